//! Record bytes a read hands out: in memory (the direct-IO batch cache) or a range of a
//! segment file, which the server sends with sendfile without reading it.

use bytes::Bytes;
use std::os::fd::OwnedFd;

/// A piece of record data.
pub enum Chunk {
    Bytes(Bytes),
    /// `len` bytes of a file from `position`. The descriptor is a dup of the segment's, so
    /// the range stays readable even if retention deletes the segment meanwhile, and it
    /// can cross to the connection's shard.
    File {
        fd: OwnedFd,
        position: u64,
        len: u64,
        /// Keeps a deleted segment's last close (which frees its blocks) for the blocking
        /// pool once this is sent (`storage::release`).
        pin: Option<super::release::Pin>,
    },
}

impl Chunk {
    pub fn len(&self) -> u64 {
        match self {
            Chunk::Bytes(b) => b.len() as u64,
            Chunk::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `len` bytes from `skip` bytes into the concatenation of `chunks`, as slices.
pub fn slice_chunks(chunks: &[Bytes], mut skip: u64, mut len: u64) -> Vec<Bytes> {
    let mut out = Vec::new();
    for c in chunks {
        if len == 0 {
            break;
        }
        let clen = c.len() as u64;
        if skip >= clen {
            skip -= clen;
            continue;
        }
        let take = (clen - skip).min(len);
        out.push(c.slice(skip as usize..(skip + take) as usize));
        len -= take;
        skip = 0;
    }
    out
}
