//! A simulated disk that injects faults, for crash and fault tests of the real log code.
//!
//! Each file has two images: `data`, what reads see (the page cache), and `durable`, what
//! survives a crash. Writes and length changes go to `data` and are remembered as unsynced
//! operations until `sync_data`. A newly created file's directory entry is durable only
//! after `sync_dir` of its directory. [`SimStorage::crash_image`] builds the disk a crash
//! leaves behind: the durable image plus an arbitrary subset of the unsynced operations,
//! each write possibly torn at 512-byte sector boundaries. Faults:
//! - `crash_at_write(n)`: the n-th write (1-based, counted from the call) is torn and every
//!   operation after it fails, as if the process died mid-write;
//! - `fail_sync_at(n)`: the n-th `sync_data` fails with EIO and, like Linux, forgets the
//!   dirty data it could not write: it stays readable but is not durable;
//! - `crash_at_op(n)`: the n-th changing operation (write, truncate, sync, create, remove,
//!   rename, directory sync) does not happen and the disk is gone, so a test can take a
//!   crash image between any two steps of a multi-file protocol (the cleaner's swap).
//!
//! A rename is atomic: a crash image shows the file under its new name if it was durable
//! under the old one (the old state is what a crash just before the rename shows).
//!
//! Directories are not durable at once either: `create_dir_all` does what
//! `GlommioStorage::create_dir_all` does, a mkdir of each missing directory (two changing
//! operations each: the mkdir, then the fsync of its parent that makes the name durable),
//! so a crash between them loses the new directory and every file in it, fsynced or not.
//! `sync_dir` of a directory also makes the names of the directories in it durable.

use super::io::{FileKind, Storage, StorageFile};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;

const SECTOR: usize = 512;

#[derive(Debug, Clone)]
enum Op {
    Write { pos: u64, bytes: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Default)]
struct FileState {
    data: Vec<u8>,
    durable: Vec<u8>,
    unsynced: Vec<Op>,
    entry_durable: bool,
}

fn apply(img: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write { pos, bytes } => {
            let end = *pos as usize + bytes.len();
            if img.len() < end {
                img.resize(end, 0);
            }
            img[*pos as usize..end].copy_from_slice(bytes);
        }
        Op::SetLen(len) => img.resize(*len as usize, 0),
    }
}

#[derive(Default)]
struct Faults {
    crash_at_write: Option<u64>,
    crash_at_op: Option<u64>,
    fail_sync_at: Option<u64>,
    /// Opens to let through before one fails with EMFILE, as when descriptors run out.
    open_fails_after: Option<u32>,
}

struct Fs {
    files: BTreeMap<PathBuf, Rc<RefCell<FileState>>>,
    /// Directories, and whether their name is durable (their parent was synced).
    dirs: BTreeMap<PathBuf, bool>,
    faults: Faults,
    writes: u64,
    syncs: u64,
    ops: u64,
    bytes_read: u64,
    crashed: bool,
    rng: StdRng,
}

impl Fs {
    /// Counts a changing operation; the one `crash_at_op` names does not happen.
    fn op(&mut self) -> io::Result<()> {
        if self.crashed {
            return Err(crashed_err());
        }
        self.ops += 1;
        if self.faults.crash_at_op == Some(self.ops) {
            self.crashed = true;
            return Err(crashed_err());
        }
        Ok(())
    }
}

/// The fault-injecting simulated disk. Cloning shares the same disk.
#[derive(Clone)]
pub struct SimStorage {
    fs: Rc<RefCell<Fs>>,
}

pub struct SimFile {
    fs: Rc<RefCell<Fs>>,
    state: Rc<RefCell<FileState>>,
}

fn crashed_err() -> io::Error {
    io::Error::other("simulated crash: the disk is gone")
}

impl SimStorage {
    pub fn new(seed: u64) -> SimStorage {
        SimStorage {
            fs: Rc::new(RefCell::new(Fs {
                files: BTreeMap::new(),
                dirs: BTreeMap::new(),
                faults: Faults::default(),
                writes: 0,
                syncs: 0,
                ops: 0,
                bytes_read: 0,
                crashed: false,
                rng: StdRng::seed_from_u64(seed),
            })),
        }
    }

    /// The `n`-th write from now (1-based) is torn, and the disk is gone after it.
    pub fn crash_at_write(&self, n: u64) {
        let mut fs = self.fs.borrow_mut();
        fs.faults.crash_at_write = Some(fs.writes + n);
    }

    /// The `n`-th changing operation from now (1-based) does not happen, and the disk is
    /// gone from it on.
    pub fn crash_at_op(&self, n: u64) {
        let mut fs = self.fs.borrow_mut();
        fs.faults.crash_at_op = Some(fs.ops + n);
    }

    /// The `n`-th `sync_data` from now (1-based) fails with EIO.
    pub fn fail_sync_at(&self, n: u64) {
        let mut fs = self.fs.borrow_mut();
        fs.faults.fail_sync_at = Some(fs.syncs + n);
    }

    /// The `n`-th open from now (1-based) fails with EMFILE, as when the process is out
    /// of file descriptors.
    pub fn fail_open_at(&self, n: u32) {
        self.fs.borrow_mut().faults.open_fails_after = Some(n.saturating_sub(1));
    }

    /// Makes every operation fail from now on, as if the process died here.
    pub fn crash_now(&self) {
        self.fs.borrow_mut().crashed = true;
    }

    pub fn has_crashed(&self) -> bool {
        self.fs.borrow().crashed
    }

    pub fn writes(&self) -> u64 {
        self.fs.borrow().writes
    }

    /// Bytes returned by `read_at` so far.
    pub fn bytes_read(&self) -> u64 {
        self.fs.borrow().bytes_read
    }

    /// `sync_data` calls so far.
    pub fn syncs(&self) -> u64 {
        self.fs.borrow().syncs
    }

    /// The disk a crash leaves behind now: durable images plus a random subset of the
    /// unsynced operations, writes possibly torn; files whose directory entry was never
    /// synced are gone. `seed` picks the subset.
    pub fn crash_image(&self, seed: u64) -> SimStorage {
        let mut rng = StdRng::seed_from_u64(seed);
        let fs = self.fs.borrow();
        let mut files = BTreeMap::new();
        // A directory whose name never became durable is gone, with all below it.
        let lost = |p: &Path| {
            p.ancestors()
                .any(|a| fs.dirs.get(a).is_some_and(|durable| !durable))
        };
        for (path, st) in &fs.files {
            let st = st.borrow();
            if !st.entry_durable || lost(path) {
                continue;
            }
            let mut img = st.durable.clone();
            for op in &st.unsynced {
                if !rng.random_bool(0.5) {
                    continue;
                }
                match op {
                    Op::Write { pos, bytes } if bytes.len() > SECTOR && rng.random_bool(0.5) => {
                        // A torn write: an arbitrary subset of its sectors reaches the disk.
                        for (i, sector) in bytes.chunks(SECTOR).enumerate() {
                            if rng.random_bool(0.5) {
                                let op = Op::Write {
                                    pos: pos + (i * SECTOR) as u64,
                                    bytes: sector.to_vec(),
                                };
                                apply(&mut img, &op);
                            }
                        }
                    }
                    op => apply(&mut img, op),
                }
            }
            files.insert(
                path.clone(),
                Rc::new(RefCell::new(FileState {
                    data: img.clone(),
                    durable: img,
                    unsynced: Vec::new(),
                    entry_durable: true,
                })),
            );
        }
        SimStorage {
            fs: Rc::new(RefCell::new(Fs {
                files,
                dirs: fs
                    .dirs
                    .iter()
                    .filter(|(d, _)| !lost(d))
                    .map(|(d, _)| (d.clone(), true))
                    .collect(),
                faults: Faults::default(),
                writes: 0,
                syncs: 0,
                ops: 0,
                bytes_read: 0,
                crashed: false,
                rng: StdRng::seed_from_u64(seed ^ 0x5eed),
            })),
        }
    }

    /// Direct access for tests that damage files: the current (readable) bytes.
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let fs = self.fs.borrow();
        fs.files.get(path).map(|f| f.borrow().data.clone())
    }

    /// Replaces a file's bytes, durably (for tests that damage files between opens).
    pub fn set_file_bytes(&self, path: &Path, bytes: Vec<u8>) {
        let mut fs = self.fs.borrow_mut();
        let f = fs.files.entry(path.to_path_buf()).or_default();
        let mut f = f.borrow_mut();
        f.data = bytes.clone();
        f.durable = bytes;
        f.unsynced.clear();
        f.entry_durable = true;
    }

    fn check(&self) -> io::Result<()> {
        if self.fs.borrow().crashed {
            Err(crashed_err())
        } else {
            Ok(())
        }
    }
}

impl SimFile {
    fn check(&self) -> io::Result<()> {
        if self.fs.borrow().crashed {
            Err(crashed_err())
        } else {
            Ok(())
        }
    }
}

impl StorageFile for SimFile {
    async fn write_at(&self, pos: u64, bufs: &[Bytes]) -> io::Result<()> {
        futures_lite::future::yield_now().await;
        self.check()?;
        let mut bytes = Vec::new();
        for b in bufs {
            bytes.extend_from_slice(b);
        }
        let torn = {
            let mut fs = self.fs.borrow_mut();
            fs.op()?;
            fs.writes += 1;
            if fs.faults.crash_at_write == Some(fs.writes) {
                fs.crashed = true;
                let keep = fs.rng.random_range(0..=bytes.len());
                Some(keep)
            } else {
                None
            }
        };
        let mut st = self.state.borrow_mut();
        if let Some(keep) = torn {
            bytes.truncate(keep);
        }
        let op = Op::Write { pos, bytes };
        apply(&mut st.data, &op);
        st.unsynced.push(op);
        if torn.is_some() {
            return Err(crashed_err());
        }
        Ok(())
    }

    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Vec<u8>> {
        futures_lite::future::yield_now().await;
        self.check()?;
        let st = self.state.borrow();
        let start = (pos as usize).min(st.data.len());
        let end = (start + len).min(st.data.len());
        self.fs.borrow_mut().bytes_read += (end - start) as u64;
        Ok(st.data[start..end].to_vec())
    }

    async fn sync_data(&self) -> io::Result<()> {
        futures_lite::future::yield_now().await;
        self.check()?;
        let fail = {
            let mut fs = self.fs.borrow_mut();
            fs.op()?;
            fs.syncs += 1;
            fs.faults.fail_sync_at == Some(fs.syncs)
        };
        let mut st = self.state.borrow_mut();
        if fail {
            // Linux marks the pages clean after a failed writeback: the data is still
            // readable but will not survive a crash, and a retried fsync reports success.
            st.unsynced.clear();
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        st.durable = st.data.clone();
        st.unsynced.clear();
        Ok(())
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        futures_lite::future::yield_now().await;
        self.check()?;
        self.fs.borrow_mut().op()?;
        let mut st = self.state.borrow_mut();
        let op = Op::SetLen(len);
        apply(&mut st.data, &op);
        st.unsynced.push(op);
        Ok(())
    }

    fn len(&self) -> u64 {
        self.state.borrow().data.len() as u64
    }

    async fn preallocate(&self, _len: u64) -> io::Result<()> {
        self.check()
    }

    fn raw_fd(&self) -> Option<RawFd> {
        None
    }

    async fn close(&self) -> io::Result<()> {
        self.check()
    }
}

impl Storage for SimStorage {
    type File = SimFile;

    async fn open(&self, path: &Path, _kind: FileKind, create: bool) -> io::Result<SimFile> {
        futures_lite::future::yield_now().await;
        self.check()?;
        let mut fs = self.fs.borrow_mut();
        match fs.faults.open_fails_after {
            Some(0) => {
                fs.faults.open_fails_after = None;
                return Err(io::Error::from_raw_os_error(libc::EMFILE));
            }
            Some(n) => fs.faults.open_fails_after = Some(n - 1),
            None => {}
        }
        let state = match fs.files.get(path) {
            Some(s) => s.clone(),
            None if create => {
                fs.op()?;
                let s = Rc::new(RefCell::new(FileState::default()));
                fs.files.insert(path.to_path_buf(), s.clone());
                s
            }
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} not found", path.display()),
                ));
            }
        };
        Ok(SimFile {
            fs: self.fs.clone(),
            state,
        })
    }

    async fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.check()?;
        let created: Vec<PathBuf> = {
            let fs = self.fs.borrow();
            dir.ancestors()
                .take_while(|d| d.parent().is_some() && !d.as_os_str().is_empty())
                .filter(|d| !fs.dirs.contains_key(*d))
                .map(Path::to_path_buf)
                .collect()
        };
        // Outermost first: each mkdir, then (as GlommioStorage) the fsync of its parent.
        for d in created.iter().rev() {
            let mut fs = self.fs.borrow_mut();
            fs.op()?;
            fs.dirs.insert(d.clone(), false);
        }
        for d in created.iter().rev() {
            futures_lite::future::yield_now().await;
            let mut fs = self.fs.borrow_mut();
            fs.op()?;
            fs.dirs.insert(d.clone(), true);
        }
        Ok(())
    }

    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.check()?;
        let fs = self.fs.borrow();
        Ok(fs
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(String::from))
            .collect())
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.check()?;
        let mut fs = self.fs.borrow_mut();
        if !fs.files.contains_key(path) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such file"));
        }
        fs.op()?;
        fs.files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }

    async fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.check()?;
        let mut fs = self.fs.borrow_mut();
        fs.files.retain(|p, _| !p.starts_with(dir));
        fs.dirs.retain(|d, _| !d.starts_with(dir));
        Ok(())
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check()?;
        let mut fs = self.fs.borrow_mut();
        if !fs.files.contains_key(from) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such file"));
        }
        fs.op()?;
        let f = fs
            .files
            .remove(from)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))?;
        // Atomic: a file durable under its old name is durable under the new one (the
        // state before the rename is the image of a crash just before it).
        fs.files.insert(to.to_path_buf(), f);
        Ok(())
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        futures_lite::future::yield_now().await;
        self.check()?;
        self.fs.borrow_mut().op()?;
        let mut fs = self.fs.borrow_mut();
        for (p, f) in &fs.files {
            if p.parent() == Some(dir) {
                f.borrow_mut().entry_durable = true;
            }
        }
        for (d, durable) in fs.dirs.iter_mut() {
            if d.parent() == Some(dir) {
                *durable = true;
            }
        }
        Ok(())
    }

    async fn exists(&self, path: &Path) -> bool {
        let fs = self.fs.borrow();
        fs.files.contains_key(path) || fs.dirs.contains_key(path)
    }

    async fn offload<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        futures_lite::future::yield_now().await;
        crate::fatal::contained_call(work)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;

    #[test]
    fn a_new_directory_is_durable_only_once_create_dir_all_returns() {
        block_on(async {
            let dir = Path::new("/d/t-0");
            // Two mkdirs (/d, /d/t-0), then the fsync of each one's parent: a crash at any
            // of them leaves no /d/t-0.
            for n in 1..=4 {
                let sim = SimStorage::new(n);
                sim.crash_at_op(n);
                assert!(sim.create_dir_all(dir).await.is_err(), "crash at op {n}");
                let img = sim.crash_image(n);
                assert!(
                    !img.exists(dir).await,
                    "crash at op {n}: the directory survived"
                );
                assert_eq!(img.exists(Path::new("/d")).await, n > 3, "crash at op {n}");
            }
            // Once it returned, the directory and a file synced in it survive.
            let sim = SimStorage::new(9);
            sim.create_dir_all(dir).await.expect("mkdir");
            let path = dir.join("f");
            let f = sim
                .open(&path, FileKind::Buffered, true)
                .await
                .expect("open");
            f.write_at(0, &[Bytes::from_static(b"x")])
                .await
                .expect("write");
            f.sync_data().await.expect("sync");
            sim.sync_dir(dir).await.expect("sync dir");
            let img = sim.crash_image(9);
            assert!(img.exists(dir).await);
            assert_eq!(img.file_bytes(&path), Some(b"x".to_vec()));
        });
    }
}
