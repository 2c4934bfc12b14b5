//! Shared helpers for the storage tests: a glommio executor to run them on, a data
//! directory on a real disk, and batch builders.
#![allow(dead_code)]

use bytes::Bytes;
use glommio::{LocalExecutorBuilder, Placement};
use ringbroker::protocol::batch::testing::build_batch;
use std::future::Future;
use std::path::PathBuf;

/// Runs `f` on a fresh glommio executor with a small io_memory (tests run in parallel
/// and share the 8 MiB locked-memory limit).
pub fn run<G, F, T>(f: G) -> T
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(256 << 10)
        .spawn(f)
        .expect("start glommio executor")
        .join()
        .expect("executor thread")
}

/// A temporary directory on the same filesystem as the build (ext4 here, never tmpfs:
/// O_DIRECT behaves differently there).
pub fn disk_dir(name: &str) -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&base).expect("target tmpdir");
    let dir = tempfile::Builder::new()
        .prefix(name)
        .tempdir_in(&base)
        .expect("temp dir");
    assert!(
        !on_tmpfs(dir.path()),
        "storage tests need a real disk, not tmpfs"
    );
    dir
}

fn on_tmpfs(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path");
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out-pointer.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type == libc::TMPFS_MAGIC
}

/// A batch of `count` records of `value_len` bytes, base timestamp `ts`, record i at ts+i.
pub fn make_batch(seed: u64, count: usize, value_len: usize, ts: i64) -> Bytes {
    let values: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            (0..value_len)
                .map(|j| (seed as usize + i * 31 + j * 7) as u8)
                .collect()
        })
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
    Bytes::from(build_batch(&refs, ts))
}
