//! A power-cut filesystem for tests, in the way LazyFS does it: a FUSE pass-through
//! filesystem over a real (backing) directory that remembers what has not been made durable
//! and, on command, takes it back as a power cut would.
//!
//! # What it models
//!
//! - **File data** is durable once `fsync` or `fdatasync` of that file returns. Until then
//!   every write, truncation, size-changing `fallocate` and hole punch of the file since its
//!   last sync is volatile: a cut puts back the file's length and bytes as they were at that
//!   sync (the pages are saved before their first change after it).
//! - **O_DIRECT** writes are no different: the kernel hands them to the filesystem as writes
//!   (bypassing the page cache of the mount), and they count as sitting in the device's
//!   volatile cache until an `fsync`/`fdatasync` of the file (the FLUSH a real one issues).
//! - **Names**: creating a file, `mkdir`, `unlink`, `rmdir` and `rename` are durable only
//!   once the directory holding the new name is fsynced (for `rename`, the destination's
//!   directory). Until then a cut undoes them, last first: a created file vanishes (even if
//!   its data was fsynced), an unlinked file comes back with its durable content, a renamed
//!   file goes back to its old name and what it replaced comes back. A directory fsync also
//!   makes durable the earlier operations on the same inodes (the creation of a file that
//!   was then renamed into the synced directory).
//! - **Torn writes** ([`Tear`]): a cut may keep the first bytes of the last pending write,
//!   cut at any byte or at a page (4 KiB) boundary, instead of dropping it whole.
//! - **The cut is atomic**: operations are applied one at a time; from the cut on, every
//!   operation fails with EIO (the process is gone after a real power cut; tests kill it
//!   right after), and the backing directory is rewritten to exactly what survives. It can
//!   then be mounted again, or used directly.
//!
//! - **Injected faults**: [`Mounted::fail_writes`] makes every write (and every `fallocate`
//!   that allocates) fail with an errno of the test's choosing (ENOSPC for a full disk,
//!   EIO for a failing device) without changing anything; [`Mounted::fail_syncs`] makes
//!   `fsync`/`fdatasync` of files fail, leaving what was written volatile (a cut drops it).
//!
//! # What it does not model
//!
//! - Anything more forgiving than the strict rules above: ext4 commits all earlier metadata
//!   on any fsync, and the kernel writes dirty pages back on its own, so on a real machine
//!   more survives. The model is the worst case POSIX allows (with one torn write).
//! - Partial survival other than a prefix of one write: no reordering of pending writes,
//!   no random subset of dirty pages surviving, no corruption of durable data, no lost
//!   fsync (a device that lies about FLUSH).
//! - `fsync` of a file does not make its name durable (no ext4 "fsync commits the whole
//!   journal"), and `fsync` vs `fdatasync` are the same (file size included).
//! - Metadata other than size and names: modes and times change at once and are not
//!   reverted; hard links, symlinks, xattrs and renames over a directory are not supported.
//! - Memory-mapped writes are not intercepted differently from writes (FUSE turns them into
//!   writes when the kernel writes the pages back).
//! - Undo runs in reverse order and assumes later operations that were made durable do not
//!   depend on earlier volatile ones in other directories; where that fails, the step is
//!   reported in [`CutReport::errors`] (tests assert there are none).

mod cut;
mod fs;
mod state;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use cut::{CutReport, Tear};
pub use state::PAGE;

/// A mounted power-cut filesystem. Dropping it unmounts it.
pub struct Mounted {
    session: Option<fuser::BackgroundSession>,
    state: Arc<Mutex<state::State>>,
    mountpoint: PathBuf,
    backing: PathBuf,
}

/// Mounts the power-cut filesystem over `backing` (which must exist) at `mountpoint` (an
/// empty directory). Needs `/dev/fuse` and the right to mount (root).
pub fn mount(backing: &Path, mountpoint: &Path) -> io::Result<Mounted> {
    let state = Arc::new(Mutex::new(state::State::new(backing)?));
    let fs = fs::PowerCutFs {
        state: state.clone(),
    };
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("powercut".into()),
        fuser::MountOption::RW,
    ];
    let session = fuser::spawn_mount(fs, mountpoint, &config)?;
    Ok(Mounted {
        session: Some(session),
        state,
        mountpoint: mountpoint.to_path_buf(),
        backing: backing.to_path_buf(),
    })
}

impl Mounted {
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    pub fn backing(&self) -> &Path {
        &self.backing
    }

    /// Cuts the power: from now on every operation fails with EIO, and the backing
    /// directory keeps only what was durable (plus the torn prefix, if asked).
    pub fn cut(&self, tear: Option<&Tear>) -> CutReport {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.cut(tear)
    }

    /// From now on, writes and allocating `fallocate`s fail with `errno` (`None`: they
    /// work again). A full disk is `Some(libc::ENOSPC)`.
    pub fn fail_writes(&self, errno: Option<i32>) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .fail_writes = errno;
    }

    /// From now on, `fsync`/`fdatasync` of files fail with `errno` (`None`: they work
    /// again); the data they would have made durable stays volatile.
    pub fn fail_syncs(&self, errno: Option<i32>) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .fail_syncs = errno;
    }

    /// Bytes written and namespace operations not durable yet.
    pub fn pending(&self) -> (u64, usize) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pending()
    }

    /// Unmounts (waits for the session thread).
    pub fn unmount(mut self) -> io::Result<()> {
        // Right after a process using the mount was killed, the kernel may still hold its
        // files for a moment (an io_uring ring is torn down after the process is gone), and
        // umount fails with EBUSY: unmount here first, retrying EBUSY for a few seconds.
        if let Ok(path) = std::ffi::CString::new(self.mountpoint.as_os_str().as_encoded_bytes()) {
            for _ in 0..100 {
                // SAFETY: umount2 with a valid NUL-terminated path and no flags.
                if unsafe { libc::umount2(path.as_ptr(), 0) } == 0
                    || io::Error::last_os_error().raw_os_error() != Some(libc::EBUSY)
                {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        match self.session.take() {
            // Unmounted above: the kernel closed the session's channel, and its thread
            // ends (with ENODEV or ECONNABORTED, which say just that).
            Some(s) if !is_mounted(&self.mountpoint) => {
                let _ = s.join();
                Ok(())
            }
            Some(s) => match s.umount_and_join() {
                // The session can end with ECONNABORTED when the kernel tore the connection
                // down first (after a cut, a killed client's requests were still in
                // flight): the filesystem is gone all the same. Only a mount that is still
                // there is an error.
                Err(e)
                    if e.raw_os_error() == Some(libc::ECONNABORTED)
                        && !is_mounted(&self.mountpoint) =>
                {
                    Ok(())
                }
                r => r,
            },
            None => Ok(()),
        }
    }
}

/// Whether `mountpoint` is a mount point now (from `/proc/self/mountinfo`).
fn is_mounted(mountpoint: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return true;
    };
    let want = std::fs::canonicalize(mountpoint).unwrap_or_else(|_| mountpoint.to_path_buf());
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| Path::new(m) == want)
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = s.umount_and_join();
        }
    }
}
