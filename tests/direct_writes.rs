//! `io = direct` segment writes on a real ext4 file: appends of every size (under a page,
//! across pages, and larger than one region of the aligned arena, so one append is written
//! from several regions) land byte for byte, the tail page is rewritten correctly each time,
//! and the bytes handed back for the batch cache are exactly the bytes appended.

mod storage_support;

use bytes::Bytes;
use ringbroker::storage::aligned::MAX_REGION;
use ringbroker::storage::{FileKind, GlommioStorage, Storage, StorageFile};
use storage_support::{disk_dir, run};

fn pattern(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 31 + seed * 7) % 251) as u8)
        .collect()
}

#[test]
fn appends_of_every_size_land_byte_for_byte_and_are_kept_whole() {
    let dir = disk_dir("direct-writes");
    let path = dir.path().join("00000000000000000000.log");
    let sizes = [
        100,
        4096 - 100,
        5000,
        MAX_REGION + 17,
        3,
        2 * MAX_REGION + 4095,
        61,
        MAX_REGION,
        12_345,
    ];
    let p = path.clone();
    let expected = run(move || async move {
        let file = GlommioStorage
            .open(&p, FileKind::Direct, true)
            .await
            .expect("open direct file");
        let mut all = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            let data = pattern(i, n);
            // Two pieces, as the append queue passes a batch: a header and the rest.
            let cut = n.min(61);
            let bufs = [
                Bytes::copy_from_slice(&data[..cut]),
                Bytes::copy_from_slice(&data[cut..]),
            ];
            let kept = file
                .write_at_keep(all.len() as u64, &bufs)
                .await
                .expect("direct append")
                .expect("a direct file hands back what it wrote");
            let kept: Vec<u8> = kept.iter().flat_map(|b| b.iter().copied()).collect();
            assert_eq!(kept, data, "append {i} ({n} bytes): kept bytes differ");
            all.extend_from_slice(&data);
            assert_eq!(file.len(), all.len() as u64);
            let back = file.read_at(0, all.len()).await.expect("read back");
            assert!(back == all, "after append {i} ({n} bytes) the file differs");
        }
        file.close().await.expect("close");
        all
    });
    let on_disk = std::fs::read(&path).expect("read the file");
    assert_eq!(on_disk.len(), expected.len(), "padding was not trimmed");
    assert!(on_disk == expected, "the file differs from the appends");
}
