//! Scrubbing: the sealed segments of a log read again, in the background, with the checks
//! the open runs (each batch's CRC-32C, increasing offsets, the segment filled exactly), so
//! damage that appears while the broker runs is found without a restart.

use super::PartitionLog;
use super::open::SealedCheck;
use crate::storage::error::Result;
use crate::storage::io::Storage;
use crate::storage::segment::Scanner;

impl<S: Storage> PartitionLog<S> {
    /// Verifies the oldest sealed segment whose base offset is above `after` (any, when
    /// `None`) and below `before` (any, when `None`), and returns its base offset and
    /// size; `None` when no such sealed segment is left. The active segment is not
    /// scrubbed: its tail is checked at open. Damage is a `StorageError::Corrupt` naming
    /// the file, position and fault.
    pub async fn scrub_next(
        &self,
        after: Option<i64>,
        before: Option<i64>,
    ) -> Result<Option<(i64, u64)>> {
        let (file, size, base, path) = {
            let st = self.inner.state.borrow();
            let sealed = st.segments.len().saturating_sub(1);
            let Some(seg) = st
                .segments
                .iter()
                .take(sealed)
                .find(|s| after.is_none_or(|a| s.base_offset > a))
                .filter(|s| before.is_none_or(|b| s.base_offset < b))
            else {
                return Ok(None);
            };
            (seg.log.clone(), seg.size, seg.base_offset, seg.path("log"))
        };
        // The file stays open while it is read, even if retention removes the segment.
        let mut scanner = Scanner::new(file.as_ref(), 0, size, true);
        let mut check = SealedCheck::new(base, &path);
        while let Some(b) = scanner.next().await? {
            check.batch(&b)?;
        }
        check.end(&mut scanner, size)?;
        Ok(Some((base, size)))
    }
}
