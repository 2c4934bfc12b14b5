//! Compaction on a real ext4 directory through glommio, in both io modes: a clean keeps the
//! latest record of every key at its offset (checked against a model), swaps the cleaned
//! segments in with real renames and directory syncs, reads back through the same files
//! (O_DIRECT reads of the swapped segment with `io = direct`), and a reopen reads the same.

mod storage_support;

use bytes::Bytes;
use ringbroker::config::{FlushMode, IoMode, LogConfig};
use ringbroker::protocol::batch::{self, testing::keyed};
use ringbroker::storage::clean::{Unpaced, records};
use ringbroker::storage::{GlommioStorage, PartitionLog};
use std::collections::BTreeMap;
use storage_support::{disk_dir, run};

type Log = PartitionLog<GlommioStorage>;
type Rec = (i64, Vec<u8>, Option<Vec<u8>>);

fn config(io: IoMode, flush: FlushMode) -> LogConfig {
    LogConfig {
        io,
        flush,
        segment_bytes: 16 * 1024,
        index_interval_bytes: 1024,
        retention_ms: None,
        cleanup_delete: false,
        cleanup_compact: true,
        ..LogConfig::default()
    }
}

async fn read_all(log: &Log) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    loop {
        let slice = log.read(next, 1 << 20).await.expect("read");
        if slice.regions.is_empty() {
            return out;
        }
        for r in &slice.regions {
            let bytes = r.read().await.expect("region");
            let mut at = 0;
            while at < bytes.len() {
                let (_, len) = batch::peek_offset_and_size(&bytes[at..]).expect("header");
                let end = at + len as usize + batch::LOG_OVERHEAD;
                let b = &bytes[at..end];
                let h = batch::validate_stored_batch(b).expect("valid batch");
                let recs = records::records_of(&h, b, 1 << 24).expect("records");
                for rec in records::parse(&h, &recs).expect("parse") {
                    let off = rec.offset(h.base_offset).expect("offset");
                    let key = rec.key.map(<[u8]>::to_vec).expect("keyed");
                    out.push((off, key, rec.value.map(<[u8]>::to_vec)));
                }
                next = h.last_offset() + 1;
                at = end;
            }
        }
    }
}

async fn clean_and_check(io: IoMode, flush: FlushMode) {
    let tmp = disk_dir("compact");
    let dir = tmp.path().join("t-0");
    let log = Log::open(GlommioStorage, dir.clone(), config(io, flush))
        .await
        .expect("open");
    let ts = ringbroker::storage::log::wall_clock_ms();
    for i in 0..300u32 {
        let recs: Vec<(String, Option<String>)> = (0..10u32)
            .map(|j| {
                let key = format!("key-{}", (i * 7 + j * 13) % 50);
                let value = ((i + j) % 17 != 0).then(|| format!("{i}-{j}-{}", "x".repeat(40)));
                (key, value)
            })
            .collect();
        let recs: Vec<batch::testing::KeyValue<'_>> = recs
            .iter()
            .map(|(k, v)| (Some(k.as_bytes()), v.as_ref().map(|v| v.as_bytes())))
            .collect();
        log.append(Bytes::from(keyed(&recs, ts)))
            .await
            .expect("append");
    }
    let all = read_all(&log).await;
    let active = *log.segment_bases().last().expect("segments");
    assert!(log.segment_count() > 5, "several sealed segments");
    let mut latest = BTreeMap::new();
    for (o, k, _) in all.iter().filter(|r| r.0 < active) {
        latest.insert(k.clone(), *o);
    }
    let want: Vec<Rec> = all
        .iter()
        .filter(|(o, k, _)| *o >= active || latest.get(k) == Some(o))
        .cloned()
        .collect();
    let report = log
        .clean(ts, 1 << 20, &Unpaced)
        .await
        .expect("clean")
        .expect("ran");
    assert!(report.records_removed > 0 && report.bytes_written < report.bytes_read);
    assert_eq!(read_all(&log).await, want, "{io:?} {flush:?}");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with(".cleaned") || n.ends_with(".swap")),
        "no leftovers: {names:?}"
    );
    log.close().await.expect("close");
    let log = Log::open(GlommioStorage, dir, config(io, flush))
        .await
        .expect("reopen");
    assert_eq!(read_all(&log).await, want, "after reopen");
    log.close().await.expect("close");
}

#[test]
fn cleaning_on_ext4_buffered() {
    run(|| clean_and_check(IoMode::Buffered, FlushMode::None));
}

#[test]
fn cleaning_on_ext4_direct_fsync() {
    run(|| clean_and_check(IoMode::Direct, FlushMode::Fsync));
}
