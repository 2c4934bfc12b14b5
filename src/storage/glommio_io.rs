//! The production IO: glommio's io_uring files.
//!
//! `FileKind::Buffered` files are glommio `BufferedFile`s, written with pwritev into the page
//! cache on the blocking pool, straight from the queued pieces.
//! `FileKind::Direct` files are `DmaFile`s opened with O_DIRECT: every write is 4 KiB-aligned
//! memory of our own (regions of the reusable arena in `aligned`) that starts with the
//! partial tail page kept in memory, so the tail page is rewritten on each append; the copy
//! into it runs on the shard (the bytes are still in its cache from the receive and the
//! CRC check) and the pwritev on the blocking pool (glommio's io_uring writes take only its
//! own DMA buffers, which would cost a second copy for the batch cache); space is reserved
//! ahead with fallocate so appends do not allocate extents. A direct file also keeps a
//! second, buffered, read-only descriptor: reads and sendfile go through it, since splice
//! from an O_DIRECT descriptor needs aligned ranges.

use super::aligned::{self, RegionMut};
use super::chunk::slice_chunks;
use super::io::{FileKind, Storage, StorageFile};
use bytes::Bytes;
use glommio::io::{BufferedFile, DmaFile, OpenOptions};
use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::Arc;

/// O_DIRECT alignment. ext4 and xfs accept the logical block size (512 or 4096); 4096
/// works on every device we target.
pub const DIRECT_ALIGN: u64 = 4096;
const _: () = assert!(DIRECT_ALIGN.is_power_of_two() && DIRECT_ALIGN.is_multiple_of(512));
const _: () = assert!(aligned::ALIGN as u64 == DIRECT_ALIGN);

fn align_down(v: u64) -> u64 {
    v & !(DIRECT_ALIGN - 1)
}

fn align_up(v: u64) -> u64 {
    (v + DIRECT_ALIGN - 1) & !(DIRECT_ALIGN - 1)
}

#[derive(Clone, Default)]
pub struct GlommioStorage;

pub enum GlommioFile {
    Buffered {
        file: BufferedFile,
        /// A dup of `file`'s descriptor for the writes made on the blocking pool: it stays
        /// open while a write runs there, even if this file is dropped meanwhile.
        writer: Arc<OwnedFd>,
        len: Cell<u64>,
    },
    Direct {
        file: DmaFile,
        /// A dup of `file`'s descriptor (O_DIRECT too) for the writes made on the blocking
        /// pool from buffers of our own.
        writer: Arc<OwnedFd>,
        reader: BufferedFile,
        len: Cell<u64>,
        /// Bytes of the partial last page: `[align_down(len), len)`.
        tail: RefCell<Vec<u8>>,
        reserved: Cell<u64>,
    },
}

impl Drop for GlommioFile {
    fn drop(&mut self) {
        // A deleted file's last close frees its blocks: not on the reactor (`release`).
        let (GlommioFile::Buffered { writer, .. } | GlommioFile::Direct { writer, .. }) = self;
        super::release::hold_if_deleted(writer);
    }
}

fn total_len(bufs: &[Bytes]) -> usize {
    bufs.iter().map(|b| b.len()).sum()
}

/// Most iovecs one `pwritev` takes (`IOV_MAX` on Linux).
const IOV_MAX: usize = 1024;

/// Writes the concatenation of `bufs` at `pos` with `pwritev`, straight from the caller's
/// buffers into the page cache: the kernel's copy is the only one. Runs on the blocking
/// pool (a buffered write can wait on dirty-page throttling or block allocation), through
/// a descriptor of its own.
async fn buffered_write_all(fd: &Arc<OwnedFd>, pos: u64, bufs: &[Bytes]) -> io::Result<()> {
    let (fd, bufs) = (fd.clone(), bufs.to_vec());
    off_reactor("pwritev", move || {
        pwritev_all(&fd, pos, &bufs)?;
        start_writeback(&fd, pos, pos + total_len(&bufs) as u64);
        Ok(())
    })
    .await
}

/// Granule of the writeback a buffered write starts itself: at most this many dirty bytes
/// of a segment (plus the partial window being written) wait for the kernel's own timing.
/// 2 MiB gave a lower ack p99 but a worse p99.9 and max in three runs (four times the
/// sync_file_range calls on the write's path, which can wait behind a journal commit).
const WRITEBACK_WINDOW: u64 = 8 << 20;

/// The range whose writeback a write `[from, to)` should start, once it completes a
/// window (`None` when it completes none): from the window `from` falls in, or the one
/// before it, up to the last whole window below `to`. A log's writes are sequential (one
/// writer per log), so everything below `to` is written, and the previous write's range
/// ended where this one's window starts: together they cover every whole window, however
/// long a write is. Only whole pages below `to` are in it, so no page is put to disk while
/// the log is still filling it.
fn writeback_range(from: u64, to: u64) -> Option<(u64, u64)> {
    if to <= from || from / WRITEBACK_WINDOW == to / WRITEBACK_WINDOW {
        return None;
    }
    let end = (to / WRITEBACK_WINDOW) * WRITEBACK_WINDOW;
    // One window back as well: its pages may have been under writeback, and so skipped,
    // when the previous range was started.
    let start = (from / WRITEBACK_WINDOW).saturating_sub(1) * WRITEBACK_WINDOW;
    Some((start, end))
}

/// Starts the writeback of what [`writeback_range`] names (sync_file_range,
/// SYNC_FILE_RANGE_WRITE: it does not wait for the disk). The fdatasync that seals a
/// segment at a roll, made under the log's assignment lock, then finds at most one window
/// left to write: without this, a roll of a 128 MiB segment under `flush=none` held every
/// append of the partition for the time to write it all out (hundreds of ms, seconds for
/// 1 GiB segments). Started one window late (before 2026-12-05), the roll's fdatasync
/// waited 10.5-10.8 ms (medians, 1 partition at 150 MB/s, 128 MiB segments); now 5.6-5.7.
fn start_writeback(fd: &OwnedFd, from: u64, to: u64) {
    let Some((start, end)) = writeback_range(from, to) else {
        return;
    };
    let (Ok(offset), Ok(len)) = (
        libc::off64_t::try_from(start),
        libc::off64_t::try_from(end - start),
    ) else {
        return;
    };
    // SAFETY: sync_file_range on a descriptor we own; it only starts IO. Failures are
    // left to the fdatasync that follows (which reports them).
    unsafe {
        libc::sync_file_range(fd.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

fn pwritev_all(fd: &OwnedFd, pos: u64, bufs: &[Bytes]) -> io::Result<()> {
    let total = total_len(bufs);
    let mut done = 0usize;
    while done < total {
        // The iovecs of the bytes not written yet, at most IOV_MAX of them.
        let mut iov: Vec<libc::iovec> = Vec::with_capacity(bufs.len().min(IOV_MAX));
        let mut at = 0usize;
        for b in bufs {
            let end = at + b.len();
            if end > done && !b.is_empty() {
                let skip = done.saturating_sub(at);
                let piece = &b[skip..];
                iov.push(libc::iovec {
                    iov_base: piece.as_ptr() as *mut libc::c_void,
                    iov_len: piece.len(),
                });
                if iov.len() == IOV_MAX {
                    break;
                }
            }
            at = end;
        }
        let offset = libc::off_t::try_from(pos + done as u64)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file position too large"))?;
        // SAFETY: every iovec points into a `Bytes` of `bufs`, alive for the call; the
        // descriptor is owned.
        let n = unsafe { libc::pwritev(fd.as_raw_fd(), iov.as_ptr(), iov.len() as i32, offset) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short write"));
        }
        done += n as usize;
    }
    Ok(())
}

impl GlommioFile {
    /// An append to a direct file: the partial tail page and the new bytes, copied once
    /// into one 4 KiB-aligned buffer (zero-padded to a whole page) on the shard, written
    /// with O_DIRECT on the blocking pool. Returns the new bytes as a slice of that buffer,
    /// which the batch cache keeps without another copy.
    async fn direct_write(&self, pos: u64, bufs: &[Bytes]) -> io::Result<Vec<Bytes>> {
        let GlommioFile::Direct {
            file,
            writer,
            len,
            tail,
            reserved,
            ..
        } = self
        else {
            unreachable!("direct_write on a buffered file");
        };
        if pos != len.get() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("direct write at {pos} but file length is {}", len.get()),
            ));
        }
        let head = tail.borrow().len();
        let total = head + total_len(bufs);
        let start = align_down(pos);
        let end_logical = start + total as u64;
        if end_logical > reserved.get() {
            // Keep extents allocated ahead so the write does not block on allocation.
            let want = align_up(end_logical) + (32 << 20);
            file.pre_allocate(want, true).await?;
            reserved.set(want);
        }
        // The memory is regions of this thread's reusable aligned arena (`aligned`), one
        // per `aligned::MAX_REGION` bytes, written with one pwritev. The copy runs here, where
        // the bytes were just received and CRC-checked: run on the blocking pool instead,
        // the same build cost 14 % more CPU per GB produced (perf/README, "The copy for
        // O_DIRECT").
        let mut regions = aligned::regions(total);
        {
            let head_bytes = tail.borrow();
            let sources = std::iter::once(&head_bytes[..]).chain(bufs.iter().map(|b| &b[..]));
            aligned::fill(&mut regions, sources);
        }
        let frozen: Vec<Bytes> = regions.into_iter().map(RegionMut::freeze).collect();
        let fd = writer.clone();
        let written = off_reactor("pwrite (O_DIRECT)", move || {
            pwritev_all(&fd, start, &frozen)?;
            Ok(frozen)
        })
        .await?;
        // The new tail page, and the new bytes (without the old tail page and the padding)
        // for the batch cache.
        let keep_from = (align_down(end_logical) - start) as usize;
        let new_bytes = slice_chunks(&written, head as u64, (total - head) as u64);
        {
            let mut new_tail = tail.borrow_mut();
            new_tail.clear();
            for piece in slice_chunks(&written, keep_from as u64, (total - keep_from) as u64) {
                new_tail.extend_from_slice(&piece);
            }
        }
        len.set(end_logical);
        Ok(new_bytes)
    }
}

impl StorageFile for GlommioFile {
    async fn write_at(&self, pos: u64, bufs: &[Bytes]) -> io::Result<()> {
        match self {
            GlommioFile::Buffered { writer, len, .. } => {
                buffered_write_all(writer, pos, bufs).await?;
                let end = pos + total_len(bufs) as u64;
                if end > len.get() {
                    len.set(end);
                }
                Ok(())
            }
            GlommioFile::Direct { .. } => self.direct_write(pos, bufs).await.map(|_| ()),
        }
    }

    async fn write_at_keep(&self, pos: u64, bufs: &[Bytes]) -> io::Result<Option<Vec<Bytes>>> {
        match self {
            GlommioFile::Buffered { .. } => self.write_at(pos, bufs).await.map(|()| None),
            GlommioFile::Direct { .. } => self.direct_write(pos, bufs).await.map(Some),
        }
    }

    async fn read_at(&self, pos: u64, want: usize) -> io::Result<Vec<u8>> {
        let (reader, len) = match self {
            GlommioFile::Buffered { file, len, .. } => (file, len.get()),
            GlommioFile::Direct { reader, len, .. } => (reader, len.get()),
        };
        if pos >= len {
            return Ok(Vec::new());
        }
        let want = want.min((len - pos) as usize);
        let mut out = Vec::with_capacity(want);
        while out.len() < want {
            let r = reader
                .read_at(pos + out.len() as u64, want - out.len())
                .await?;
            if r.is_empty() {
                break;
            }
            out.extend_from_slice(&r);
        }
        Ok(out)
    }

    async fn sync_data(&self) -> io::Result<()> {
        match self {
            GlommioFile::Buffered { file, .. } => file.fdatasync().await?,
            GlommioFile::Direct { file, .. } => file.fdatasync().await?,
        }
        Ok(())
    }

    async fn truncate(&self, new_len: u64) -> io::Result<()> {
        match self {
            GlommioFile::Buffered { file, len, .. } => {
                file.truncate(new_len).await?;
                len.set(new_len);
            }
            GlommioFile::Direct {
                file,
                reader,
                len,
                tail,
                reserved,
                ..
            } => {
                file.truncate(new_len).await?;
                len.set(new_len);
                reserved.set(0);
                let start = align_down(new_len);
                let mut page = Vec::new();
                while (start + page.len() as u64) < new_len {
                    let r = reader
                        .read_at(
                            start + page.len() as u64,
                            (new_len - start) as usize - page.len(),
                        )
                        .await?;
                    if r.is_empty() {
                        break;
                    }
                    page.extend_from_slice(&r);
                }
                *tail.borrow_mut() = page;
            }
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        match self {
            GlommioFile::Buffered { len, .. } | GlommioFile::Direct { len, .. } => len.get(),
        }
    }

    async fn preallocate(&self, want: u64) -> io::Result<()> {
        if let GlommioFile::Direct { file, reserved, .. } = self
            && want > reserved.get()
        {
            file.pre_allocate(align_up(want), true).await?;
            reserved.set(align_up(want));
        }
        Ok(())
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(match self {
            GlommioFile::Buffered { file, .. } => file.as_raw_fd(),
            GlommioFile::Direct { reader, .. } => reader.as_raw_fd(),
        })
    }

    fn send_pin(&self) -> Option<super::release::Pin> {
        let (GlommioFile::Buffered { writer, .. } | GlommioFile::Direct { writer, .. }) = self;
        Some(super::release::Pin::new(writer))
    }

    async fn close(&self) -> io::Result<()> {
        if let GlommioFile::Direct { file, len, .. } = self {
            // Drop the zero padding of the last page and the reserved extents.
            file.truncate(len.get()).await?;
        }
        Ok(())
    }
}

/// A descriptor of our own on the same open file.
fn dup_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: the caller holds `fd` open for the duration of this call.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }.try_clone_to_owned()
}

async fn open_buffered(path: &Path, write: bool, create: bool) -> io::Result<BufferedFile> {
    Ok(OpenOptions::new()
        .read(true)
        .write(write)
        .create(create && write)
        .buffered_open(path)
        .await?)
}

impl Storage for GlommioStorage {
    type File = GlommioFile;

    async fn open(&self, path: &Path, kind: FileKind, create: bool) -> io::Result<GlommioFile> {
        // io_uring opens resolve relative paths against no directory: make them absolute.
        let path = &std::path::absolute(path)?;
        match kind {
            FileKind::Buffered => {
                let file = open_buffered(path, true, create).await?;
                let len = file.file_size().await?;
                let writer = Arc::new(dup_fd(file.as_raw_fd())?);
                Ok(GlommioFile::Buffered {
                    file,
                    writer,
                    len: Cell::new(len),
                })
            }
            FileKind::Direct => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(create)
                    .dma_open(path)
                    .await?;
                let reader = open_buffered(path, false, false).await?;
                let len = file.file_size().await?;
                let writer = Arc::new(dup_fd(file.as_raw_fd())?);
                let f = GlommioFile::Direct {
                    file,
                    writer,
                    reader,
                    len: Cell::new(len),
                    tail: RefCell::new(Vec::new()),
                    reserved: Cell::new(0),
                };
                // Load the partial tail page so the next append can rewrite it.
                f.truncate(len).await?;
                Ok(f)
            }
        }
    }

    async fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        // A new directory's name is durable only once its parent is synced (found by
        // tests/power_cut.rs: without it a power cut can take a partition's whole directory,
        // fsynced segments and all). Sync the parent of every directory created here.
        let target = dir.to_path_buf();
        let created = off_reactor("create_dir_all", move || {
            let mut created = Vec::new();
            let mut at = Some(target.as_path());
            while let Some(d) = at.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
                created.push(d.to_path_buf());
                at = d.parent();
            }
            std::fs::create_dir_all(&target).map(|()| created)
        })
        .await?;
        for d in &created {
            match d.parent() {
                Some(p) if !p.as_os_str().is_empty() => self.sync_dir(p).await?,
                _ => self.sync_dir(Path::new(".")).await?,
            }
        }
        Ok(())
    }

    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let dir = dir.to_path_buf();
        off_reactor("read_dir", move || {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                if let Some(name) = entry.file_name().to_str() {
                    names.push(name.to_string());
                }
            }
            Ok(names)
        })
        .await
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        let path = path.to_path_buf();
        off_reactor("unlink", move || std::fs::remove_file(&path)).await
    }

    async fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        let dir = dir.to_path_buf();
        off_reactor("remove_dir_all", move || std::fs::remove_dir_all(&dir)).await
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from, to) = (from.to_path_buf(), to.to_path_buf());
        off_reactor("rename", move || std::fs::rename(&from, &to)).await
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let d = glommio::io::Directory::open(std::path::absolute(dir)?).await?;
        d.sync().await?;
        d.close().await?;
        Ok(())
    }

    async fn exists(&self, path: &Path) -> bool {
        let path = path.to_path_buf();
        off_reactor("stat", move || Ok(path.exists()))
            .await
            .unwrap_or(false)
    }

    async fn offload<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        glommio::executor()
            .spawn_blocking(move || crate::fatal::contained_call(work))
            .await
    }
}

/// Runs a blocking file call on the blocking thread pool, so the reactor serves others
/// meanwhile (a deletion of a large segment, or a directory of many, takes milliseconds).
pub(super) async fn off_reactor<T: Send + 'static>(
    what: &'static str,
    call: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    GlommioStorage
        .offload(move || crate::os::pagecache::blocking_call(what, call))
        .await
        .unwrap_or_else(|| Err(io::Error::other(format!("{what} panicked"))))
}

#[cfg(test)]
mod tests {
    use super::{WRITEBACK_WINDOW as W, writeback_range};

    #[test]
    fn writeback_is_started_up_to_the_last_whole_window_of_every_write() {
        // Sequential appends, as a buffered segment takes them, of sizes from a few KiB to
        // several windows: after each one, less than a window is left unstarted, nothing
        // at or past its end is started (its last page may still be filling), and no
        // window is skipped.
        let (mut pos, mut started_to) = (0u64, 0u64);
        let steps = [300_007u64, 4_093, 9 * W + 17, W, 3 * W - 1, 1];
        for i in 0..400 {
            let to = pos + steps[i % steps.len()];
            if let Some((start, end)) = writeback_range(pos, to) {
                assert!(
                    end <= to,
                    "started [{start}, {end}) past the write's end {to}"
                );
                assert!(
                    start <= started_to,
                    "[{started_to}, {start}) was never started"
                );
                assert_eq!(end % W, 0);
                started_to = end;
            }
            assert!(
                to - started_to < W,
                "{} bytes below {to} left unstarted",
                to - started_to
            );
            pos = to;
        }
        assert_eq!(writeback_range(0, 10), None);
        assert_eq!(writeback_range(W - 1, W), Some((0, W)));
        assert_eq!(writeback_range(0, 10 * W + 5), Some((0, 10 * W)));
        assert_eq!(writeback_range(3 * W + 1, 4 * W), Some((2 * W, 4 * W)));
        assert_eq!(writeback_range(5, 5), None);
    }
}
