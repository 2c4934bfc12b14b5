//! The size of the filesystem that holds a directory (DescribeLogDirs v4 reports it).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Bytes of the filesystem holding `path`: (total, usable by an unprivileged writer).
/// One `statvfs` call: it reads the superblock the kernel keeps in memory and does not
/// touch the disk, so a shard may make it.
pub fn space(path: &Path) -> io::Result<(u64, u64)> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call, and `st`
    // is a plain C struct the call fills in (zeroed first, so it is initialised either way).
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let frsize = st.f_frsize;
    let total = st.f_blocks.saturating_mul(frsize);
    let usable = st.f_bavail.saturating_mul(frsize);
    Ok((total, usable))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_current_directory_has_a_size() {
        let (total, usable) = super::space(std::path::Path::new(".")).expect("statvfs");
        assert!(total > 0 && usable <= total, "{total} {usable}");
    }
}
