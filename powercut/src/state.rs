//! The inode table and the record of what is not durable yet.
//!
//! Every operation is applied to the backing directory at once (reads simply read it); what a
//! power cut would take back is kept as undo records: per file, the bytes of each page at the
//! last durability point (saved before the first write to it since then) and the length then;
//! per directory, the namespace operations since its last fsync, in order.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Page size of the model: a torn write keeps a prefix rounded to it (if asked), and undo
/// records are kept per page.
pub const PAGE: u64 = 4096;

/// The root's inode number (FUSE's).
pub const ROOT: u64 = 1;

/// The hidden directory, inside the backing root, that keeps unlinked and replaced files
/// until a cut (which may bring them back) or the end. Invisible through the mount.
pub const TRASH: &str = ".powercut-trash";

/// A file's changes since its last fsync/fdatasync.
#[derive(Debug, Default)]
pub struct Dirty {
    /// The file's length at the durability point.
    pub orig_len: u64,
    /// Page index -> the page's bytes at the durability point (short at the end of file).
    /// Only pages that held durable bytes (below `orig_len`) are kept.
    pub pages: BTreeMap<u64, Vec<u8>>,
    /// The last write since then: (sequence number, offset, length).
    pub last_write: Option<(u64, u64, u64)>,
    /// Bytes written since the durability point.
    pub written: u64,
}

/// A namespace operation not yet made durable by an fsync of its directory.
#[derive(Debug)]
pub enum MetaKind {
    /// A file was created at `path`.
    Create,
    /// A directory was created at `path`.
    Mkdir,
    /// The file at `path` was unlinked; it waits in `trash`.
    Unlink { trash: PathBuf },
    /// The (empty) directory at `path` was removed.
    Rmdir,
    /// `from` was renamed to `path`; what `path` named before waits in `replaced`.
    Rename {
        from: PathBuf,
        replaced: Option<PathBuf>,
    },
}

#[derive(Debug)]
pub struct MetaOp {
    /// The directory whose fsync makes the operation durable (the new name's directory).
    pub dir: u64,
    /// The inode the operation is about.
    pub ino: u64,
    /// The path the operation produced or removed (relative to the backing root).
    pub path: PathBuf,
    pub kind: MetaKind,
    pub durable: bool,
}

/// All the bookkeeping of one mounted filesystem.
pub struct State {
    pub backing: PathBuf,
    /// inode -> path relative to the backing root ("" is the root).
    pub paths: HashMap<u64, PathBuf>,
    pub inodes: HashMap<PathBuf, u64>,
    next_ino: u64,
    pub handles: HashMap<u64, (u64, File)>,
    next_fh: u64,
    pub dirty: HashMap<u64, Dirty>,
    pub journal: Vec<MetaOp>,
    next_seq: u64,
    next_trash: u64,
    /// Set by a cut: every later operation fails with EIO.
    pub frozen: bool,
    /// Injected faults: writes (and size-growing `fallocate`s) fail with this errno.
    pub fail_writes: Option<i32>,
    /// Injected faults: `fsync`/`fdatasync` of files fail with this errno (what was
    /// written stays volatile).
    pub fail_syncs: Option<i32>,
    /// Durability points seen (fsync/fdatasync of files, fsync of directories).
    pub file_syncs: u64,
    pub dir_syncs: u64,
}

impl State {
    pub fn new(backing: &Path) -> io::Result<State> {
        let trash = backing.join(TRASH);
        if trash.exists() {
            std::fs::remove_dir_all(&trash)?;
        }
        std::fs::create_dir_all(&trash)?;
        let mut s = State {
            backing: backing.to_path_buf(),
            paths: HashMap::new(),
            inodes: HashMap::new(),
            next_ino: ROOT + 1,
            handles: HashMap::new(),
            next_fh: 1,
            dirty: HashMap::new(),
            journal: Vec::new(),
            next_seq: 1,
            next_trash: 0,
            frozen: false,
            fail_writes: None,
            fail_syncs: None,
            file_syncs: 0,
            dir_syncs: 0,
        };
        s.paths.insert(ROOT, PathBuf::new());
        s.inodes.insert(PathBuf::new(), ROOT);
        Ok(s)
    }

    pub fn abs(&self, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
            self.backing.clone()
        } else {
            self.backing.join(rel)
        }
    }

    pub fn path_of(&self, ino: u64) -> Option<PathBuf> {
        self.paths.get(&ino).cloned()
    }

    /// The inode of `rel`, assigned on first sight.
    pub fn ino_for(&mut self, rel: &Path) -> u64 {
        if let Some(&ino) = self.inodes.get(rel) {
            return ino;
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(rel.to_path_buf(), ino);
        self.paths.insert(ino, rel.to_path_buf());
        ino
    }

    pub fn add_handle(&mut self, ino: u64, file: File) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, (ino, file));
        fh
    }

    pub fn trash_path(&mut self) -> PathBuf {
        self.next_trash += 1;
        Path::new(TRASH).join(format!("{}", self.next_trash))
    }

    /// Moves every inode at or under `from` to the same place under `to`.
    pub fn move_paths(&mut self, from: &Path, to: &Path) {
        let moved: Vec<(PathBuf, u64)> = self
            .inodes
            .iter()
            .filter(|(p, _)| p.starts_with(from))
            .map(|(p, &i)| (p.clone(), i))
            .collect();
        for (p, _) in &moved {
            self.inodes.remove(p);
        }
        for (p, ino) in moved {
            let rest = p.strip_prefix(from).unwrap_or(Path::new(""));
            let np = if rest.as_os_str().is_empty() {
                to.to_path_buf()
            } else {
                to.join(rest)
            };
            self.inodes.insert(np.clone(), ino);
            self.paths.insert(ino, np);
        }
    }

    /// Before bytes `[start, end)` of `ino` change (a write, a truncation, a hole punched):
    /// saves the durable bytes of the pages they touch, once per durability interval.
    pub fn before_change(&mut self, ino: u64, file: &File, start: u64, end: u64) -> io::Result<()> {
        let dirty = match self.dirty.entry(ino) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let len = file.metadata()?.len();
                e.insert(Dirty {
                    orig_len: len,
                    ..Dirty::default()
                })
            }
        };
        let end = end.min(dirty.orig_len);
        if start >= end {
            return Ok(());
        }
        for page in start / PAGE..end.div_ceil(PAGE) {
            if dirty.pages.contains_key(&page) {
                continue;
            }
            let want = (dirty.orig_len - page * PAGE).min(PAGE) as usize;
            let mut buf = vec![0u8; want];
            let mut got = 0;
            while got < want {
                let n = file.read_at(&mut buf[got..], page * PAGE + got as u64)?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            buf.truncate(got);
            dirty.pages.insert(page, buf);
        }
        Ok(())
    }

    pub fn note_write(&mut self, ino: u64, offset: u64, len: u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(d) = self.dirty.get_mut(&ino)
            && len > 0
        {
            d.last_write = Some((seq, offset, len));
            d.written += len;
        }
    }

    /// fsync/fdatasync of a file: its data is durable.
    pub fn sync_file(&mut self, ino: u64) {
        self.file_syncs += 1;
        self.dirty.remove(&ino);
    }

    pub fn record(&mut self, dir: u64, ino: u64, path: PathBuf, kind: MetaKind) {
        self.journal.push(MetaOp {
            dir,
            ino,
            path,
            kind,
            durable: false,
        });
    }

    /// fsync of a directory: its namespace operations so far are durable, and so are the
    /// earlier operations they build on (the creation of a file renamed into it).
    pub fn sync_dir(&mut self, dir: u64) {
        self.dir_syncs += 1;
        let mut inos: Vec<u64> = Vec::new();
        for op in self.journal.iter_mut().rev() {
            if op.durable {
                continue;
            }
            if op.dir == dir || inos.contains(&op.ino) {
                op.durable = true;
                inos.push(op.ino);
            }
        }
        self.journal.retain(|op| !op.durable);
    }

    /// Bytes written and namespace operations not durable yet.
    pub fn pending(&self) -> (u64, usize) {
        (
            self.dirty.values().map(|d| d.written).sum(),
            self.journal.len(),
        )
    }
}
