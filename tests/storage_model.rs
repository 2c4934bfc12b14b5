//! Model-based test of the partition log on a real ext4 directory through glommio: random
//! sequences of append / concurrent append / read / roll / retention / reopen / timestamp
//! lookup, checked after every step against a plain in-memory model, for every io × flush
//! pair. Reopens also switch io mode, so both write paths read each other's files.

mod storage_support;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use ringbroker::config::{FlushMode, IoMode, LogConfig};
use ringbroker::protocol::batch::{self, set_base_offset};
use ringbroker::storage::{BatchCache, GlommioStorage, PartitionLog, StorageError};
use std::path::PathBuf;
use storage_support::{disk_dir, make_batch, run};

struct ModelBatch {
    base: i64,
    last: i64,
    bytes: Vec<u8>,
    /// (offset, timestamp) of each record.
    records: Vec<(i64, i64)>,
}

#[derive(Default)]
struct Model {
    batches: Vec<ModelBatch>,
    start: i64,
}

impl Model {
    fn next_offset(&self) -> i64 {
        self.batches.last().map_or(self.start, |b| b.last + 1)
    }

    fn live(&self) -> impl Iterator<Item = &ModelBatch> {
        self.batches.iter().filter(move |b| b.base >= self.start)
    }

    fn add(&mut self, base: i64, sent: &Bytes) {
        let mut bytes = sent.to_vec();
        set_base_offset(&mut bytes, base);
        let h = batch::validate_batch(&bytes).expect("model batch valid");
        let records = batch::record_timestamps(&bytes).expect("uncompressed");
        assert_eq!(base, self.next_offset(), "offsets continue without gaps");
        self.batches.push(ModelBatch {
            base,
            last: h.last_offset(),
            bytes,
            records,
        });
    }
}

type Log = PartitionLog<GlommioStorage>;

/// Opens the log; `io = direct` logs get a small batch cache, so reads hit, partly hit and
/// miss it as the model test goes.
async fn open(dir: &std::path::Path, cfg: &LogConfig) -> Log {
    let log = Log::open(GlommioStorage, dir.to_path_buf(), cfg.clone())
        .await
        .expect("open");
    if cfg.io == IoMode::Direct {
        log.use_cache(std::rc::Rc::new(std::cell::RefCell::new(BatchCache::new(
            64 * 1024,
        ))));
    }
    log
}

async fn read_all(log: &Log) -> Vec<u8> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    loop {
        let slice = log.read(next, 64 * 1024).await.expect("read");
        if slice.regions.is_empty() {
            return out;
        }
        for r in &slice.regions {
            let bytes = r.read().await.expect("region bytes");
            let batches =
                batch::validate_batches(&bytes).expect("reads return whole valid batches");
            next = batches.last().expect("non-empty").0.last_offset() + 1;
            out.extend_from_slice(&bytes);
        }
    }
}

fn model_bytes(m: &Model) -> Vec<u8> {
    m.live().flat_map(|b| b.bytes.iter().copied()).collect()
}

async fn check_read(log: &Log, m: &Model, offset: i64, max_bytes: u64) {
    let slice = log.read(offset, max_bytes).await.expect("read in range");
    assert_eq!(slice.high_watermark, m.next_offset());
    assert_eq!(slice.log_start_offset, m.start);
    let got: Vec<u8> = {
        let mut v = Vec::new();
        for r in &slice.regions {
            v.extend(r.read().await.expect("region"));
        }
        v
    };
    if offset == m.next_offset() {
        assert!(got.is_empty(), "read at the high watermark is empty");
        return;
    }
    // The answer starts with the batch holding `offset` and holds whole model batches.
    let mut expect = Vec::new();
    let mut count = 0;
    for b in m.live().skip_while(|b| b.last < offset) {
        if expect.len() >= got.len() {
            break;
        }
        expect.extend_from_slice(&b.bytes);
        count += 1;
    }
    assert!(count >= 1, "a read in range returns at least one batch");
    assert_eq!(
        got, expect,
        "read({offset}, {max_bytes}) returns the model's batches"
    );
    assert!(
        count == 1 || got.len() as u64 <= max_bytes,
        "more than one batch only within max_bytes"
    );
}

async fn check_timestamp(log: &Log, m: &Model, target: i64) {
    let expect = m
        .live()
        .flat_map(|b| b.records.iter().copied())
        .find(|&(_, ts)| ts >= target);
    let got = log.offset_for_timestamp(target).await.expect("lookup");
    assert_eq!(got, expect, "first record at or after timestamp {target}");
}

fn config(io: IoMode, flush: FlushMode) -> LogConfig {
    LogConfig {
        io,
        flush,
        segment_bytes: 48 * 1024,
        index_interval_bytes: 1024,
        flush_interval_ms: 5,
        flush_interval_bytes: 16 * 1024,
        retention_ms: None,
        ..LogConfig::default()
    }
}

async fn model_run(seed: u64, io: IoMode, flush: FlushMode, steps: usize) {
    let tmp = disk_dir("model");
    let dir: PathBuf = tmp.path().join("topic-0");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cfg = config(io, flush);
    let mut log = open(&dir, &cfg).await;
    let mut m = Model::default();
    let mut ts = 1_000_000i64;
    for step in 0..steps {
        let op = rng.random_range(0..100);
        match op {
            0..45 => {
                let count = rng.random_range(1..6);
                let len = rng.random_range(1..3000);
                ts += rng.random_range(-50..200);
                let b = make_batch(step as u64, count, len, ts);
                let info = log.append(b.clone()).await.expect("append");
                m.add(info.base_offset, &b);
                assert_eq!(log.high_watermark(), m.next_offset());
            }
            45..52 => {
                // Concurrent appenders: offsets follow call order, every one is acknowledged.
                let n = rng.random_range(2..12);
                let batches: Vec<Bytes> = (0..n)
                    .map(|i| {
                        make_batch(
                            (step * 100 + i) as u64,
                            1 + i % 3,
                            100 + i * 10,
                            ts + i as i64,
                        )
                    })
                    .collect();
                let futs = batches.iter().map(|b| log.append(b.clone()));
                let infos = futures::future::join_all(futs).await;
                for (b, info) in batches.iter().zip(infos) {
                    let info = info.expect("concurrent append");
                    m.add(info.base_offset, b);
                }
            }
            52..72 => {
                let lo = m.start;
                let hi = m.next_offset();
                let offset = rng.random_range(lo..=hi);
                let max = rng.random_range(1..20_000);
                check_read(&log, &m, offset, max).await;
            }
            72..80 => {
                let target = ts - rng.random_range(-100..3000);
                check_timestamp(&log, &m, target).await;
            }
            80..85 => log.force_roll().await.expect("roll"),
            85..90 => {
                // Retention by size, then back to keeping everything.
                let keep = rng.random_range(20_000..200_000u64);
                let before = log.segment_count();
                let mut c = cfg.clone();
                c.retention_bytes = Some(keep);
                log.set_config(c);
                let deleted = log.apply_retention().await.expect("retention");
                log.set_config(cfg.clone());
                assert_eq!(log.segment_count(), before - deleted);
                let start = log.log_start_offset();
                assert!(start >= m.start, "log start never moves back");
                assert!(
                    start == m.next_offset() || m.batches.iter().any(|b| b.base == start),
                    "log start is a batch boundary"
                );
                m.start = start;
                let live: u64 = m.live().map(|b| b.bytes.len() as u64).sum();
                assert_eq!(
                    log.size_bytes(),
                    live,
                    "retention deletes whole segments only"
                );
                assert!(
                    deleted == 0 || live >= keep.min(live),
                    "retention keeps at least retention.bytes"
                );
            }
            90..95 => {
                // Reopen, sometimes under the other io mode.
                log.close().await.expect("close");
                if rng.random_bool(0.5) {
                    cfg.io = match cfg.io {
                        IoMode::Buffered => IoMode::Direct,
                        IoMode::Direct => IoMode::Buffered,
                    };
                }
                log = open(&dir, &cfg).await;
                assert_eq!(log.log_end_offset(), m.next_offset());
                assert_eq!(log.log_start_offset(), m.start);
                assert_eq!(read_all(&log).await, model_bytes(&m));
            }
            _ => {
                let closed = log.clone();
                closed.flush().await.expect("flush");
            }
        }
    }
    assert_eq!(read_all(&log).await, model_bytes(&m));
    log.close().await.expect("close");
    assert!(matches!(
        log.append(make_batch(0, 1, 1, 0)).await,
        Err(StorageError::Closed)
    ));
}

macro_rules! model_test {
    ($name:ident, $io:expr, $flush:expr, $seed:expr) => {
        #[test]
        fn $name() {
            run(|| model_run($seed, $io, $flush, 400));
        }
    };
}

model_test!(model_buffered_none, IoMode::Buffered, FlushMode::None, 11);
model_test!(
    model_buffered_interval,
    IoMode::Buffered,
    FlushMode::Interval,
    12
);
model_test!(model_buffered_fsync, IoMode::Buffered, FlushMode::Fsync, 13);
model_test!(model_direct_none, IoMode::Direct, FlushMode::None, 14);
model_test!(
    model_direct_interval,
    IoMode::Direct,
    FlushMode::Interval,
    15
);
model_test!(model_direct_fsync, IoMode::Direct, FlushMode::Fsync, 16);

/// A deleted or damaged `.index` is rebuilt from the log, and every lookup answers as before.
#[test]
fn deleted_and_damaged_indexes_are_rebuilt_with_identical_lookups() {
    run(|| async {
        for io in [IoMode::Buffered, IoMode::Direct] {
            let tmp = disk_dir("index");
            let dir = tmp.path().join("t-0");
            let cfg = config(io, FlushMode::None);
            let log = Log::open(GlommioStorage, dir.clone(), cfg.clone())
                .await
                .expect("open");
            let mut m = Model::default();
            for i in 0..200 {
                let b = make_batch(
                    i,
                    1 + (i as usize % 4),
                    200 + (i as usize * 37) % 900,
                    5000 + i as i64,
                );
                let info = log.append(b.clone()).await.expect("append");
                m.add(info.base_offset, &b);
            }
            assert!(log.segment_count() >= 3);
            let probes: Vec<i64> = (0..m.next_offset()).collect();
            let mut before = Vec::new();
            for &o in &probes {
                let s = log.read(o, 1).await.expect("read");
                before.push((s.regions[0].position, s.regions[0].len));
            }
            let bases = log.segment_bases();
            log.close().await.expect("close");
            // Delete the tail segment's index, truncate a middle one mid-entry, scramble another.
            let tail = bases[bases.len() - 1];
            std::fs::remove_file(dir.join(format!("{tail:020}.index"))).expect("rm index");
            let mid = dir.join(format!("{:020}.index", bases[1]));
            let len = std::fs::metadata(&mid).expect("meta").len();
            assert!(len >= 8, "the middle segment has index entries");
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&mid)
                .expect("open");
            f.set_len(len - 3).expect("truncate");
            let first = dir.join(format!("{:020}.index", bases[0]));
            std::fs::write(&first, [0xffu8; 16]).expect("scramble");

            let log = Log::open(GlommioStorage, dir.clone(), cfg.clone())
                .await
                .expect("reopen");
            for (&o, &(pos, len)) in probes.iter().zip(&before) {
                let s = log.read(o, 1).await.expect("read");
                assert_eq!(
                    (s.regions[0].position, s.regions[0].len),
                    (pos, len),
                    "offset {o}"
                );
            }
            assert_eq!(read_all(&log).await, model_bytes(&m));
            let rebuilt =
                std::fs::metadata(dir.join(format!("{tail:020}.index"))).expect("rebuilt");
            assert!(rebuilt.len() > 0 && rebuilt.len().is_multiple_of(8));
            log.close().await.expect("close");
        }
    });
}
