//! The power-cut filesystem against its own promises: what was made durable survives a cut,
//! nothing else does (but for the torn prefix asked for). Needs /dev/fuse and root.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ringbroker_powercut::{Mounted, PAGE, Tear, mount};

struct Fixture {
    _tmp: tempfile::TempDir,
    backing: PathBuf,
    mnt: PathBuf,
    fs: Option<Mounted>,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::Builder::new()
            .prefix("powercut-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("tempdir");
        let backing = tmp.path().join("backing");
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir(&backing).expect("backing");
        std::fs::create_dir(&mnt).expect("mountpoint");
        let fs = mount(&backing, &mnt).expect("mount the power-cut filesystem");
        Fixture {
            _tmp: tmp,
            backing,
            mnt,
            fs: Some(fs),
        }
    }

    fn m(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    fn b(&self, rel: &str) -> PathBuf {
        self.backing.join(rel)
    }

    fn cut(&mut self, tear: Option<&Tear>) -> ringbroker_powercut::CutReport {
        let fs = self.fs.take().expect("mounted");
        let report = fs.cut(tear);
        fs.unmount().expect("unmount");
        assert!(report.errors.is_empty(), "undo errors: {:?}", report.errors);
        report
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(fs) = self.fs.take() {
            let _ = fs.unmount();
        }
    }
}

fn sync_dir(dir: &Path) {
    File::open(dir)
        .expect("open dir")
        .sync_all()
        .expect("fsync dir");
}

fn create_durable(f: &Fixture, rel: &str, content: &[u8]) {
    let mut file = File::create(f.m(rel)).expect("create");
    file.write_all(content).expect("write");
    file.sync_all().expect("fsync");
    sync_dir(f.m(rel).parent().expect("parent"));
}

#[test]
fn written_but_not_synced_data_is_gone_synced_data_stays() {
    let mut f = Fixture::new();
    create_durable(&f, "a", b"durable;");
    let file = OpenOptions::new().write(true).open(f.m("a")).expect("open");
    file.write_all_at(b"synced;", 8).expect("write");
    file.sync_data().expect("fdatasync");
    file.write_all_at(b"volatile", 15).expect("write");
    // Overwriting durable bytes is volatile too.
    file.write_all_at(b"XX", 0).expect("overwrite");
    assert_eq!(
        std::fs::read(f.m("a")).expect("read"),
        b"XXrable;synced;volatile"
    );
    drop(file);
    let report = f.cut(None);
    assert_eq!(std::fs::read(f.b("a")).expect("read"), b"durable;synced;");
    assert_eq!(report.files_reverted, 1);
}

#[test]
fn a_truncation_not_synced_is_undone() {
    let mut f = Fixture::new();
    let content: Vec<u8> = (0..3 * PAGE).map(|i| (i % 251) as u8).collect();
    create_durable(&f, "t", &content);
    let file = OpenOptions::new().write(true).open(f.m("t")).expect("open");
    file.set_len(100).expect("truncate");
    file.set_len(5 * PAGE).expect("extend");
    file.write_all_at(b"new", 2 * PAGE).expect("write");
    drop(file);
    f.cut(None);
    assert_eq!(std::fs::read(f.b("t")).expect("read"), content);
}

#[test]
fn an_open_with_o_trunc_not_synced_is_undone() {
    let mut f = Fixture::new();
    create_durable(&f, "c", b"checkpoint 1");
    let mut file = File::create(f.m("c")).expect("open with O_TRUNC");
    file.write_all(b"2").expect("write");
    drop(file);
    f.cut(None);
    assert_eq!(std::fs::read(f.b("c")).expect("read"), b"checkpoint 1");
}

#[test]
fn a_created_file_whose_directory_was_not_synced_is_gone() {
    let mut f = Fixture::new();
    std::fs::create_dir(f.m("d")).expect("mkdir");
    sync_dir(&f.mnt);
    let mut file = File::create(f.m("d/new")).expect("create");
    file.write_all(b"data").expect("write");
    file.sync_all().expect("fsync the file, not its directory");
    drop(file);
    std::fs::create_dir(f.m("d/sub")).expect("mkdir, not synced");
    create_durable(&f, "kept", b"k");
    f.cut(None);
    assert!(f.b("d").is_dir(), "a synced mkdir stays");
    assert!(!f.b("d/new").exists(), "the unsynced creation is gone");
    assert!(!f.b("d/sub").exists(), "the unsynced mkdir is gone");
    assert_eq!(std::fs::read(f.b("kept")).expect("read"), b"k");
}

#[test]
fn a_rename_not_made_durable_reverts() {
    let mut f = Fixture::new();
    create_durable(&f, "meta", b"old");
    // The usual atomic replace, without the final directory fsync.
    let mut tmp = File::create(f.m("meta.tmp")).expect("create");
    tmp.write_all(b"new").expect("write");
    tmp.sync_all().expect("fsync");
    drop(tmp);
    std::fs::rename(f.m("meta.tmp"), f.m("meta")).expect("rename");
    assert_eq!(std::fs::read(f.m("meta")).expect("read"), b"new");
    f.cut(None);
    assert_eq!(std::fs::read(f.b("meta")).expect("read"), b"old");
    assert!(
        !f.b("meta.tmp").exists(),
        "the unsynced tmp file is gone too"
    );
}

#[test]
fn a_rename_made_durable_stays() {
    let mut f = Fixture::new();
    create_durable(&f, "meta", b"old");
    let mut tmp = File::create(f.m("meta.tmp")).expect("create");
    tmp.write_all(b"new").expect("write");
    tmp.sync_all().expect("fsync");
    drop(tmp);
    std::fs::rename(f.m("meta.tmp"), f.m("meta")).expect("rename");
    sync_dir(&f.mnt);
    f.cut(None);
    assert_eq!(std::fs::read(f.b("meta")).expect("read"), b"new");
    assert!(!f.b("meta.tmp").exists());
}

#[test]
fn an_unlink_not_made_durable_brings_the_file_back() {
    let mut f = Fixture::new();
    create_durable(&f, "seg", b"segment bytes");
    let mut file = OpenOptions::new()
        .append(true)
        .open(f.m("seg"))
        .expect("open");
    file.write_all(b" volatile").expect("write");
    drop(file);
    std::fs::remove_file(f.m("seg")).expect("unlink");
    assert!(!f.m("seg").exists());
    let listed: Vec<_> = std::fs::read_dir(&f.mnt).expect("readdir").collect();
    assert!(listed.is_empty(), "the trash is not visible: {listed:?}");
    f.cut(None);
    assert_eq!(std::fs::read(f.b("seg")).expect("read"), b"segment bytes");
}

#[test]
fn a_torn_write_keeps_a_prefix_at_the_chosen_boundary() {
    // The tear is of the last write the filesystem received: a page-aligned write below
    // FUSE's max_write arrives whole.
    for (keep, align, want_kept) in [(10_000, 1, 10_000), (10_000, PAGE, 2 * PAGE)] {
        let mut f = Fixture::new();
        create_durable(&f, "log", &vec![b'h'; PAGE as usize]);
        let file = OpenOptions::new()
            .write(true)
            .open(f.m("log"))
            .expect("open");
        file.write_all_at(b"earlier pending write", PAGE)
            .expect("write");
        let big: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
        file.write_all_at(&big, 2 * PAGE).expect("write");
        drop(file);
        let report = f.cut(Some(&Tear {
            suffix: Some("log".into()),
            keep,
            align,
            size_survives: false,
        }));
        let got = std::fs::read(f.b("log")).expect("read");
        let start = 2 * PAGE as usize;
        assert!(
            got[..PAGE as usize].iter().all(|&b| b == b'h'),
            "durable page"
        );
        assert_eq!(got.len(), start + want_kept as usize, "{report:?}");
        assert_eq!(&got[start..], &big[..want_kept as usize]);
        // The earlier pending write is not written back: its bytes read as zeros (a
        // hole), which a reader must be able to tell from data.
        assert!(got[PAGE as usize..start].iter().all(|&b| b == 0));
    }
}

#[test]
fn a_torn_write_whose_size_survives_reads_zeros_past_the_tear() {
    let mut f = Fixture::new();
    create_durable(&f, "log", b"head");
    let file = OpenOptions::new()
        .write(true)
        .open(f.m("log"))
        .expect("open");
    file.write_all_at(&[7u8; 1000], 4).expect("write");
    drop(file);
    f.cut(Some(&Tear {
        suffix: None,
        keep: 100,
        align: 1,
        size_survives: true,
    }));
    let got = std::fs::read(f.b("log")).expect("read");
    assert_eq!(got.len(), 1004, "the size of the torn write survives");
    assert_eq!(&got[..4], b"head");
    assert!(got[4..104].iter().all(|&b| b == 7), "the kept prefix");
    assert!(got[104..].iter().all(|&b| b == 0), "zeros past the tear");
}

#[test]
fn direct_io_writes_are_volatile_until_fdatasync() {
    let mut f = Fixture::new();
    create_durable(&f, "direct", b"");
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(f.m("direct"))
        .expect("open with O_DIRECT on the mount");
    let layout =
        std::alloc::Layout::from_size_align(2 * PAGE as usize, PAGE as usize).expect("layout");
    // SAFETY: a non-zero, aligned layout; freed below with the same layout.
    let buf = unsafe { std::alloc::alloc_zeroed(layout) };
    assert!(!buf.is_null());
    // SAFETY: `buf` is valid for 2 pages.
    let page = unsafe { std::slice::from_raw_parts_mut(buf, 2 * PAGE as usize) };
    page[..PAGE as usize].fill(b'a');
    page[PAGE as usize..].fill(b'b');
    file.write_all_at(&page[..PAGE as usize], 0)
        .expect("O_DIRECT write");
    file.sync_data().expect("fdatasync");
    file.write_all_at(&page[PAGE as usize..], PAGE)
        .expect("O_DIRECT write");
    // SAFETY: allocated above with `layout`.
    unsafe { std::alloc::dealloc(buf, layout) };
    drop(file);
    f.cut(None);
    let got = std::fs::read(f.b("direct")).expect("read");
    assert_eq!(got.len(), PAGE as usize);
    assert!(got.iter().all(|&b| b == b'a'));
}

#[test]
fn after_a_cut_every_operation_fails() {
    let f = Fixture::new();
    create_durable(&f, "x", b"x");
    let mut file = OpenOptions::new()
        .append(true)
        .open(f.m("x"))
        .expect("open");
    let fs = f.fs.as_ref().expect("mounted");
    fs.cut(None);
    assert!(file.write_all(b"after").is_err(), "a write after the cut");
    assert!(File::create(f.m("y")).is_err(), "a create after the cut");
}
