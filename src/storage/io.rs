//! The IO seam under the storage engine.
//!
//! Everything the log does to a disk goes through these two traits, so tests can put a
//! fault-injecting simulated disk ([`super::sim`]) under the real log code, and a later move
//! away from glommio stays a contained change ([`super::glommio_io`]). The futures are not
//! `Send`: a log lives on one shard and is touched only by that shard's executor.

use bytes::Bytes;
use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

/// How a file is opened. Segment `.log` files follow the log's `io` mode; index files are
/// always opened `Buffered` since they are small and rebuilt on recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Buffered,
    Direct,
}

/// A file of the storage engine. Positions are absolute; the log only ever appends.
#[allow(async_fn_in_trait)]
pub trait StorageFile: 'static {
    /// Writes `bufs` back to back starting at `pos`. For `FileKind::Direct` files `pos` must
    /// be the current logical length (an append): the implementation rewrites the partial
    /// tail page itself.
    async fn write_at(&self, pos: u64, bufs: &[Bytes]) -> io::Result<()>;
    /// As [`StorageFile::write_at`], and hands back the bytes written, as owned `Bytes`
    /// back to back from `pos`, when the implementation made that copy anyway (a direct-IO
    /// file copies into aligned buffers), for the batch cache to keep; `None` otherwise.
    async fn write_at_keep(&self, pos: u64, bufs: &[Bytes]) -> io::Result<Option<Vec<Bytes>>> {
        self.write_at(pos, bufs).await.map(|()| None)
    }
    /// Reads up to `len` bytes at `pos` (fewer only at end of file).
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Vec<u8>>;
    /// fdatasync: every write that completed before this call is durable when it returns.
    async fn sync_data(&self) -> io::Result<()>;
    /// Sets the logical length (drops a torn tail, or trims padding).
    async fn truncate(&self, len: u64) -> io::Result<()>;
    /// The logical length: bytes written, excluding direct-IO padding.
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reserves disk space up to `len` without changing the logical length.
    async fn preallocate(&self, len: u64) -> io::Result<()>;
    /// A descriptor the server can pass to sendfile/splice, if this file has one.
    fn raw_fd(&self) -> Option<RawFd>;
    /// Keeps the file's last close from happening while a response is sent from it
    /// (`release`), for files that need it.
    fn send_pin(&self) -> Option<super::release::Pin> {
        None
    }
    /// Trims padding and releases the file.
    async fn close(&self) -> io::Result<()>;
}

/// A directory tree of files: open, list, remove, and make directory entries durable.
#[allow(async_fn_in_trait)]
pub trait Storage: Clone + 'static {
    type File: StorageFile;
    /// Opens `path`, creating it if `create` is set.
    async fn open(&self, path: &Path, kind: FileKind, create: bool) -> io::Result<Self::File>;
    async fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// File names (not paths) in `dir`.
    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    async fn remove_file(&self, path: &Path) -> io::Result<()>;
    async fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// fsync of the directory, so created, renamed and removed entries survive a crash.
    async fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    async fn exists(&self, path: &Path) -> bool;
    /// Runs CPU-heavy work on a client's bytes (walking decompressed records) away from
    /// the reactor, so one large batch cannot stall the shard's other clients. A panic in
    /// `work` is contained to it: `None`.
    async fn offload<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T>;
}

/// `<dir>/<20-digit base offset>.<ext>`, Kafka's segment file naming.
pub fn segment_path(dir: &Path, base_offset: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{ext}"))
}
