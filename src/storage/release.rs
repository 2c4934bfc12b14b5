//! Deleted files are closed for the last time on the blocking pool.
//!
//! The last close of an unlinked file frees its blocks and drops its page-cache pages, in
//! the thread that closes it: ext4 took 125-300 ms for a 1 GiB segment, and when the shard
//! dropped a segment that retention had deleted, its whole reactor stopped for that long
//! (every producer of the shard saw it as a latency spike). A file found unlinked when it
//! is dropped hands a descriptor of its own to this thread's queue instead; the inode stays
//! alive through it, so the reactor's own closes are cheap. Responses being sent from the
//! file hold a [`Pin`] of it (their duplicate of its descriptor, possibly on another
//! shard, would otherwise be the last). The shard's tick takes the descriptors no pin is
//! left on, and the blocking pool truncates those files in steps and closes them.

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

thread_local! {
    static HELD: RefCell<Vec<Arc<OwnedFd>>> = const { RefCell::new(Vec::new()) };
    static RELEASED: Cell<u64> = const { Cell::new(0) };
}

/// Deleted files this thread (a shard) had closed for the last time on the blocking pool.
pub fn released_here() -> u64 {
    RELEASED.with(Cell::get)
}

/// Keeps a file from being closed for the last time while a response is sent from it.
pub struct Pin {
    /// Only counted (`Arc::strong_count`), never used.
    _held: Arc<OwnedFd>,
}

impl Pin {
    /// A pin of the file whose own descriptor is `fd` (the one [`hold_if_deleted`] gets).
    pub fn new(fd: &Arc<OwnedFd>) -> Pin {
        Pin { _held: fd.clone() }
    }
}

/// Whether the file open as `fd` has no name left (it was unlinked).
fn unlinked(fd: &OwnedFd) -> bool {
    // SAFETY: fstat on a descriptor we own, into a zeroed stat we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::fstat(fd.as_raw_fd(), &mut st) };
    r == 0 && st.st_nlink == 0
}

/// Called as a file is dropped, with a descriptor of the same inode that nothing else
/// will use: if the file was deleted, that descriptor is held here so the last close
/// happens in [`close_due`], not in the thread dropping the file.
pub(super) fn hold_if_deleted(fd: &Arc<OwnedFd>) {
    if unlinked(fd) {
        HELD.with(|h| h.borrow_mut().push(fd.clone()));
    }
}

/// Blocks freed per truncation step.
const SHRINK_STEP: u64 = 32 << 20;

/// Frees a deleted file's blocks from its end in steps: one truncation of a whole large
/// segment is one long journal transaction, during which the appends of every log on the
/// same file system wait for theirs.
fn shrink(fd: &OwnedFd) {
    // A segment reopened after a restart is read-only: a writable descriptor of the same
    // (nameless) inode comes from /proc.
    let Ok(file) = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
    else {
        return;
    };
    let Ok(mut len) = file.metadata().map(|m| m.len()) else {
        return;
    };
    // The file has no name, and no response is sent from it any more (no pin is left).
    while len > 0 {
        len = len.saturating_sub(SHRINK_STEP);
        if file.set_len(len).is_err() {
            return;
        }
    }
}

/// Takes this thread's held descriptors that nothing else holds any more.
fn take_due() -> Vec<Arc<OwnedFd>> {
    HELD.with(|h| {
        let mut held = h.borrow_mut();
        let (due, keep): (Vec<_>, Vec<_>) =
            held.drain(..).partition(|fd| Arc::strong_count(fd) == 1);
        *held = keep;
        due
    })
}

/// Descriptors held on this thread.
#[cfg(test)]
fn held() -> usize {
    HELD.with(|h| h.borrow().len())
}

/// Closes the held descriptors nothing else holds, on the blocking pool (a shard's tick).
/// Not awaited by the caller: freeing a large file's blocks takes long.
pub fn close_due() {
    let due = take_due();
    if due.is_empty() {
        return;
    }
    glommio::spawn_local(close(due)).detach();
}

async fn close(due: Vec<Arc<OwnedFd>>) {
    let n = due.len();
    let closed = super::glommio_io::off_reactor("last close", move || {
        for fd in &due {
            shrink(fd);
        }
        drop(due);
        Ok(())
    })
    .await;
    match closed {
        Ok(()) => RELEASED.with(|r| r.set(r.get().saturating_add(n as u64))),
        Err(e) => tracing::warn!("closing {n} deleted files on the blocking pool: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd_of(path: &std::path::Path) -> Arc<OwnedFd> {
        Arc::new(std::fs::File::open(path).expect("open").into())
    }

    #[test]
    fn only_deleted_files_are_held_and_only_while_pinned() {
        let dir = tempfile::tempdir().expect("dir");
        let (kept, gone) = (dir.path().join("kept"), dir.path().join("gone"));
        std::fs::write(&kept, b"k").expect("write");
        std::fs::write(&gone, vec![7u8; 100 << 20]).expect("write");
        let (a, b) = (fd_of(&kept), fd_of(&gone));
        std::fs::remove_file(&gone).expect("unlink");
        hold_if_deleted(&a);
        assert_eq!(held(), 0, "a file with a name is not held");
        let pin = Pin::new(&b);
        hold_if_deleted(&b);
        drop(b);
        assert_eq!(held(), 1, "the deleted file is held");
        assert!(take_due().is_empty(), "a pinned file is not due");
        drop(pin);
        let due = take_due();
        assert_eq!(due.len(), 1);
        assert_eq!(held(), 0);
        // The held descriptor is the last one: the file is still there through it, until
        // it is shrunk.
        let fd = Arc::try_unwrap(due.into_iter().next().expect("one")).expect("last one");
        let f = std::fs::File::from(fd);
        assert_eq!(f.metadata().expect("stat").len(), 100 << 20);
        let fd = OwnedFd::from(f);
        shrink(&fd);
        let f = std::fs::File::from(fd);
        assert_eq!(
            f.metadata().expect("stat").len(),
            0,
            "its blocks freed in steps"
        );
    }
}
