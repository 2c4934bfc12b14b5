//! What of a file is in the page cache, and bringing the rest in, so that a shard thread
//! never waits for the disk inside a read, a sendfile or an unlink (issue 17: a consumer
//! reading cold data must not stall every other client of its shard).
//!
//! - [`uncached_pages`]: cachestat(2) (Linux 6.5) counts the cached pages of a range
//!   without touching them, so a shard can tell a hot range (send it now) from a cold one
//!   (read it on the blocking thread pool first).
//! - [`fill`]: brings a range into the page cache (a populated mapping, no copy), waiting
//!   for the disk; for the blocking thread pool only.
//! - [`on_reactor`] / [`blocking_call`]: shard threads mark themselves; a blocking file
//!   call made on one is counted, per thread ([`blocking_calls_here`], in the shard's
//!   metrics), which the tests assert stays zero on the cold read and deletion paths.

use std::cell::Cell;
use std::io;
use std::os::fd::RawFd;

const PAGE: u64 = 4096;
/// cachestat(2) on the generic syscall table (x86_64 and aarch64 alike).
const SYS_CACHESTAT: libc::c_long = 451;

#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// Pages of `len` bytes at `offset` of `fd` not in the page cache; `None` when the
/// kernel cannot tell (no cachestat), so the caller reads the range off the reactor.
pub fn uncached_pages(fd: RawFd, offset: u64, len: u64) -> Option<u64> {
    if len == 0 {
        return Some(0);
    }
    let first = offset / PAGE;
    let last = offset.checked_add(len - 1)? / PAGE;
    let pages = last - first + 1;
    let range = CachestatRange {
        off: first * PAGE,
        len: pages * PAGE,
    };
    let mut stat = Cachestat::default();
    // SAFETY: cachestat reads `range` and writes `stat`, both live for the call.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            fd,
            &range as *const CachestatRange,
            &mut stat as *mut Cachestat,
            0u32,
        )
    };
    (r == 0).then(|| pages.saturating_sub(stat.nr_cache))
}

/// Brings `len` bytes at `offset` of `fd` into the page cache, waiting for the disk, for
/// the blocking thread pool only. Stops early at the end of the file.
///
/// The range is mapped and populated (`MADV_POPULATE_READ`, Linux 5.14): the kernel reads
/// the missing pages and nothing is copied to user space. Where that is refused, the range
/// is read into a scratch buffer and discarded: one copy of the cold bytes.
pub fn fill(fd: RawFd, offset: u64, len: u64) -> io::Result<()> {
    if len == 0 || populate(fd, offset, len).is_ok() {
        return Ok(());
    }
    fill_by_reading(fd, offset, len)
}

/// Maps the pages covering `[offset, offset + len)` (clipped to the file's size) and
/// populates the mapping, which reads them into the page cache.
fn populate(fd: RawFd, offset: u64, len: u64) -> io::Result<()> {
    // SAFETY: fstat into a zeroed struct of the right type.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `fd` is a descriptor the caller keeps open.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let size = u64::try_from(st.st_size).unwrap_or(0);
    let end = offset.saturating_add(len).min(size);
    let start = offset - offset % PAGE;
    if end <= start {
        return Ok(());
    }
    let map_len = usize::try_from(end - start)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "range too large"))?;
    let map_off = libc::off_t::try_from(start)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
    // SAFETY: a fresh shared read-only mapping of the file; nothing else refers to it, and
    // it is unmapped below. Only the kernel touches its pages (populate).
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            map_len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd,
            map_off,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `addr..addr + map_len` is the mapping made above.
    let populated = unsafe { libc::madvise(addr, map_len, libc::MADV_POPULATE_READ) };
    let err = (populated != 0).then(io::Error::last_os_error);
    // SAFETY: unmaps exactly the mapping made above.
    unsafe { libc::munmap(addr, map_len) };
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn fill_by_reading(fd: RawFd, offset: u64, len: u64) -> io::Result<()> {
    const PIECE: usize = 1 << 20;
    let mut buf = vec![0u8; PIECE.min(usize::try_from(len).unwrap_or(PIECE))];
    let mut at = offset;
    let end = offset.saturating_add(len);
    while at < end {
        let want = usize::try_from(end - at).unwrap_or(PIECE).min(buf.len());
        // SAFETY: pread into a live buffer of at least `want` bytes.
        let n = unsafe {
            libc::pread(
                fd,
                buf.as_mut_ptr() as *mut libc::c_void,
                want,
                at as libc::off_t,
            )
        };
        match n {
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            0 => return Ok(()),
            n => at += n as u64,
        }
    }
    Ok(())
}

thread_local! {
    static REACTOR: Cell<bool> = const { Cell::new(false) };
    static BLOCKING_ON_REACTOR: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    BLOCKING_ON_REACTOR.with(|c| c.set(c.get().saturating_add(1)));
}

/// Marks this thread as a shard's reactor.
pub fn on_reactor() {
    REACTOR.with(|r| r.set(true));
}

/// Runs a blocking file call (`what`, for the log), counting it if this is a reactor
/// thread: such calls belong on the blocking thread pool.
pub fn blocking_call<T>(what: &str, call: impl FnOnce() -> T) -> T {
    if REACTOR.with(Cell::get) {
        count();
        tracing::debug!("blocking file call on a shard thread: {what}");
    }
    call()
}

/// Counts a read of uncached file data about to be made on this (reactor) thread.
pub fn note_cold_read_on_reactor() {
    if REACTOR.with(Cell::get) {
        count();
    }
}

/// Blocking file calls made on this thread (a shard's reactor) since it started.
pub fn blocking_calls_here() -> u64 {
    BLOCKING_ON_REACTOR.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn cached_and_dropped_pages_are_told_apart() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("f");
        let mut f = std::fs::File::create(&path).expect("create");
        f.write_all(&vec![7u8; 1 << 20]).expect("write");
        f.sync_all().expect("sync");
        let f = std::fs::File::open(&path).expect("open");
        let fd = f.as_raw_fd();
        let Some(_) = uncached_pages(fd, 0, 1 << 20) else {
            return; // no cachestat on this kernel: nothing to check
        };
        // SAFETY: fadvise on our own descriptor.
        unsafe { libc::posix_fadvise(fd, 0, 0, libc::POSIX_FADV_DONTNEED) };
        let cold = uncached_pages(fd, 0, 1 << 20).expect("cachestat");
        fill(fd, 0, 1 << 20).expect("fill");
        assert_eq!(uncached_pages(fd, 0, 1 << 20), Some(0), "filled");
        assert!(cold > 0, "DONTNEED dropped nothing (tmpfs?)");
        assert_eq!(uncached_pages(fd, 0, 0), Some(0));
        // The copying fallback, and a range that starts inside a page and runs past the end
        // of the file.
        // SAFETY: fadvise on our own descriptor.
        unsafe { libc::posix_fadvise(fd, 0, 0, libc::POSIX_FADV_DONTNEED) };
        fill_by_reading(fd, 0, 1 << 20).expect("fill by reading");
        assert_eq!(uncached_pages(fd, 0, 1 << 20), Some(0), "filled by reading");
        // SAFETY: fadvise on our own descriptor.
        unsafe { libc::posix_fadvise(fd, 0, 0, libc::POSIX_FADV_DONTNEED) };
        populate(fd, 5000, 4 << 20).expect("populate past the end");
        assert_eq!(
            uncached_pages(fd, 4096, (1 << 20) - 4096),
            Some(0),
            "populated"
        );
    }

    #[test]
    fn blocking_calls_count_only_on_reactor_threads() {
        blocking_call("test", || ());
        note_cold_read_on_reactor();
        assert_eq!(blocking_calls_here(), 0);
        let counted = std::thread::spawn(|| {
            on_reactor();
            blocking_call("test", || ());
            note_cold_read_on_reactor();
            blocking_calls_here()
        })
        .join()
        .expect("thread");
        assert_eq!(counted, 2);
    }
}
