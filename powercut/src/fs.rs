//! The FUSE operations: pass-through to the backing directory, with undo records kept.

use std::ffi::OsStr;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::state::{MetaKind, ROOT, State, TRASH};

/// Attributes and entries are not cached by the kernel: every look-up sees the backing
/// directory as it is.
const TTL: Duration = Duration::ZERO;

pub struct PowerCutFs {
    pub(crate) state: Arc<Mutex<State>>,
}

fn errno(e: io::Error) -> Errno {
    Errno::from(e)
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32)
    } else {
        UNIX_EPOCH
    }
}

fn attr(ino: u64, m: &Metadata) -> FileAttr {
    let kind = FileType::from_std(m.file_type()).unwrap_or(FileType::RegularFile);
    FileAttr {
        ino: INodeNo(ino),
        size: m.len(),
        blocks: m.blocks(),
        atime: time(m.atime(), m.atime_nsec()),
        mtime: time(m.mtime(), m.mtime_nsec()),
        ctime: time(m.ctime(), m.ctime_nsec()),
        crtime: time(m.ctime(), m.ctime_nsec()),
        kind,
        perm: (m.mode() & 0o7777) as u16,
        nlink: m.nlink() as u32,
        uid: m.uid(),
        gid: m.gid(),
        rdev: m.rdev() as u32,
        blksize: m.blksize() as u32,
        flags: 0,
    }
}

/// Opens the backing file with the caller's access mode; O_DIRECT, O_APPEND, O_TRUNC and
/// creation flags are the kernel's and the model's business, not the backing file's.
fn open_backing(path: &Path, flags: i32, create: Option<u32>) -> io::Result<File> {
    let mut o = OpenOptions::new();
    match flags & libc::O_ACCMODE {
        libc::O_RDONLY => o.read(true),
        libc::O_WRONLY => o.write(true),
        _ => o.read(true).write(true),
    };
    // Reads of the saved pages need a readable descriptor even for a write-only open.
    o.read(true);
    if let Some(mode) = create {
        o.create_new(true).mode(mode);
    }
    o.custom_flags(flags & libc::O_CLOEXEC);
    o.open(path)
}

impl PowerCutFs {
    fn lock(&self) -> Result<MutexGuard<'_, State>, Errno> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.frozen {
            return Err(Errno::EIO);
        }
        Ok(s)
    }

    fn child(s: &State, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        let dir = s.path_of(parent.0).ok_or(Errno::ENOENT)?;
        if parent.0 == ROOT && name == TRASH {
            return Err(Errno::ENOENT);
        }
        Ok(dir.join(name))
    }

    fn entry(s: &mut State, rel: &Path) -> Result<FileAttr, Errno> {
        let m = std::fs::symlink_metadata(s.abs(rel)).map_err(errno)?;
        let ino = s.ino_for(rel);
        Ok(attr(ino, &m))
    }

    fn do_setattr(
        &self,
        ino: INodeNo,
        mode: Option<u32>,
        size: Option<u64>,
        times: (Option<TimeOrNow>, Option<TimeOrNow>),
    ) -> Result<FileAttr, Errno> {
        let mut s = self.lock()?;
        let rel = s.path_of(ino.0).ok_or(Errno::ENOENT)?;
        let path = s.abs(&rel);
        if let Some(mode) = mode {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(errno)?;
        }
        if let Some(size) = size {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(errno)?;
            let len = f.metadata().map_err(errno)?.len();
            s.before_change(ino.0, &f, size.min(len), len)
                .map_err(errno)?;
            f.set_len(size).map_err(errno)?;
            s.note_write(ino.0, size, 0);
        }
        if times.0.is_some() || times.1.is_some() {
            let to_time = |t: Option<TimeOrNow>| match t {
                Some(TimeOrNow::SpecificTime(t)) => Some(t),
                Some(TimeOrNow::Now) => Some(SystemTime::now()),
                None => None,
            };
            let f = File::options().read(true).open(&path).map_err(errno)?;
            let mut ft = std::fs::FileTimes::new();
            if let Some(t) = to_time(times.0) {
                ft = ft.set_accessed(t);
            }
            if let Some(t) = to_time(times.1) {
                ft = ft.set_modified(t);
            }
            f.set_times(ft).map_err(errno)?;
        }
        Self::entry(&mut s, &rel)
    }

    fn do_rename(
        &self,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        let mut s = self.lock()?;
        let from = Self::child(&s, parent, name)?;
        let to = Self::child(&s, newparent, newname)?;
        let ino = s.ino_for(&from);
        let target = s.abs(&to);
        let replaced = if std::fs::symlink_metadata(&target).is_ok() {
            if !flags.is_empty() {
                return Err(Errno::EEXIST);
            }
            if target.is_dir() {
                // Replacing a directory is not modelled (a rename over an empty directory).
                return Err(Errno::ENOTSUP);
            }
            let t = s.trash_path();
            std::fs::rename(&target, s.abs(&t)).map_err(errno)?;
            let old = s.ino_for(&to);
            s.inodes.remove(&to);
            s.inodes.insert(t.clone(), old);
            s.paths.insert(old, t.clone());
            Some(t)
        } else {
            None
        };
        std::fs::rename(s.abs(&from), &target).map_err(errno)?;
        s.move_paths(&from, &to);
        s.record(newparent.0, ino, to, MetaKind::Rename { from, replaced });
        Ok(())
    }

    fn do_remove(&self, parent: INodeNo, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let mut s = self.lock()?;
        let rel = Self::child(&s, parent, name)?;
        let path = s.abs(&rel);
        let ino = s.ino_for(&rel);
        if dir {
            std::fs::remove_dir(&path).map_err(errno)?;
            s.inodes.remove(&rel);
            s.paths.remove(&ino);
            s.record(parent.0, ino, rel, MetaKind::Rmdir);
        } else {
            let t = s.trash_path();
            std::fs::rename(&path, s.abs(&t)).map_err(errno)?;
            s.inodes.remove(&rel);
            s.inodes.insert(t.clone(), ino);
            s.paths.insert(ino, t.clone());
            s.record(parent.0, ino, rel, MetaKind::Unlink { trash: t });
        }
        Ok(())
    }

    fn do_write(&self, fh: FileHandle, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        let mut s = self.lock()?;
        if let Some(e) = s.fail_writes {
            return Err(errno(io::Error::from_raw_os_error(e)));
        }
        let (ino, file) = s.handles.remove(&fh.0).ok_or(Errno::EBADF)?;
        let res = s
            .before_change(ino, &file, offset, offset + data.len() as u64)
            .and_then(|()| file.write_all_at(data, offset));
        s.note_write(ino, offset, data.len() as u64);
        s.handles.insert(fh.0, (ino, file));
        res.map_err(errno)?;
        Ok(data.len() as u32)
    }

    fn do_fallocate(
        &self,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> Result<(), Errno> {
        let mut s = self.lock()?;
        let grows = mode & (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE) == 0;
        if let Some(e) = s.fail_writes.filter(|_| grows) {
            return Err(errno(io::Error::from_raw_os_error(e)));
        }
        let (ino, file) = s.handles.remove(&fh.0).ok_or(Errno::EBADF)?;
        let mut res = Ok(());
        if mode & (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE) != 0 {
            res = s.before_change(ino, &file, offset, offset + length);
        } else if mode & libc::FALLOC_FL_KEEP_SIZE == 0 {
            // Growing the size: recorded like a write past the end.
            res = s.before_change(ino, &file, offset, offset);
        }
        if res.is_ok() {
            // SAFETY: fallocate on a descriptor we own, with plain integer arguments.
            let rc =
                unsafe { libc::fallocate(file.as_raw_fd_(), mode, offset as i64, length as i64) };
            if rc != 0 {
                res = Err(io::Error::last_os_error());
            }
        }
        s.note_write(ino, offset, 0);
        s.handles.insert(fh.0, (ino, file));
        res.map_err(errno)
    }
}

trait RawFd {
    fn as_raw_fd_(&self) -> i32;
}

impl RawFd for File {
    fn as_raw_fd_(&self) -> i32 {
        std::os::fd::AsRawFd::as_raw_fd(self)
    }
}

fn done(reply: ReplyEmpty, r: Result<(), Errno>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for PowerCutFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let r = self.lock().and_then(|mut s| {
            let rel = Self::child(&s, parent, name)?;
            Self::entry(&mut s, &rel)
        });
        match r {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let r = self.lock().and_then(|mut s| {
            let rel = s.path_of(ino.0).ok_or(Errno::ENOENT)?;
            Self::entry(&mut s, &rel)
        });
        match r {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        match self.do_setattr(ino, mode, size, (atime, mtime)) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let r = self.lock().and_then(|mut s| {
            let rel = Self::child(&s, parent, name)?;
            let path = s.abs(&rel);
            std::fs::create_dir(&path).map_err(errno)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & !umask))
                .map_err(errno)?;
            let a = Self::entry(&mut s, &rel)?;
            s.record(parent.0, a.ino.0, rel, MetaKind::Mkdir);
            Ok(a)
        });
        match r {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        done(reply, self.do_remove(parent, name, false));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        done(reply, self.do_remove(parent, name, true));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        done(
            reply,
            self.do_rename(parent, name, newparent, newname, flags),
        );
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let r = self.lock().and_then(|mut s| {
            let rel = s.path_of(ino.0).ok_or(Errno::ENOENT)?;
            let f = open_backing(&s.abs(&rel), flags.0, None).map_err(errno)?;
            Ok(s.add_handle(ino.0, f))
        });
        match r {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let r = self.lock().and_then(|mut s| {
            let rel = Self::child(&s, parent, name)?;
            let f = open_backing(&s.abs(&rel), flags, Some(mode & !umask)).map_err(errno)?;
            let a = Self::entry(&mut s, &rel)?;
            s.record(parent.0, a.ino.0, rel, MetaKind::Create);
            Ok((a, s.add_handle(a.ino.0, f)))
        });
        match r {
            Ok((a, fh)) => {
                reply.created(&TTL, &a, Generation(0), FileHandle(fh), FopenFlags::empty())
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let r = self.lock().and_then(|s| {
            let (_, f) = s.handles.get(&fh.0).ok_or(Errno::EBADF)?;
            let mut buf = vec![0u8; size as usize];
            let mut got = 0;
            while got < buf.len() {
                match f.read_at(&mut buf[got..], offset + got as u64) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) => return Err(errno(e)),
                }
            }
            buf.truncate(got);
            Ok(buf)
        });
        match r {
            Ok(b) => reply.data(&b),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.do_write(fh, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close() is not a durability point.
        done(reply, self.lock().map(|_| ()));
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.handles.remove(&fh.0);
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _ds: bool, reply: ReplyEmpty) {
        // fsync and fdatasync alike make the file's data durable; its name is durable only
        // once its directory is synced.
        let r = self.lock().and_then(|mut s| match s.fail_syncs {
            Some(e) => Err(errno(io::Error::from_raw_os_error(e))),
            None => {
                s.sync_file(ino.0);
                Ok(())
            }
        });
        done(reply, r);
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _ds: bool,
        reply: ReplyEmpty,
    ) {
        done(reply, self.lock().map(|mut s| s.sync_dir(ino.0)));
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let r = self.lock().and_then(|mut s| {
            let rel = s.path_of(ino.0).ok_or(Errno::ENOENT)?;
            let mut entries = vec![
                (ino.0, FileType::Directory, ".".into()),
                (ino.0, FileType::Directory, "..".into()),
            ];
            for e in std::fs::read_dir(s.abs(&rel)).map_err(errno)? {
                let e = e.map_err(errno)?;
                let name = e.file_name();
                if ino.0 == ROOT && name == TRASH {
                    continue;
                }
                let kind = e
                    .file_type()
                    .ok()
                    .and_then(FileType::from_std)
                    .unwrap_or(FileType::RegularFile);
                let child = s.ino_for(&rel.join(&name));
                entries.push((child, kind, name));
            }
            Ok(entries)
        });
        match r {
            Ok(entries) => {
                for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize)
                {
                    if reply.add(INodeNo(ino), i as u64 + 1, kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let r = self.lock().and_then(|s| {
            let c = std::ffi::CString::new(s.backing.as_os_str().as_encoded_bytes())
                .map_err(|_| Errno::EINVAL)?;
            // SAFETY: statvfs fills the zeroed struct from a valid C string path.
            let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
            if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
                return Err(errno(io::Error::last_os_error()));
            }
            Ok(st)
        });
        match r {
            Ok(st) => reply.statfs(
                st.f_blocks,
                st.f_bfree,
                st.f_bavail,
                st.f_files,
                st.f_ffree,
                st.f_bsize as u32,
                st.f_namemax as u32,
                st.f_frsize as u32,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        done(reply, self.do_fallocate(fh, offset, length, mode));
    }
}
