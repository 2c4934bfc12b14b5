//! Damage on disk, against the real binary: a corrupt batch in a sealed segment, a segment
//! missing in the middle, a sealed segment cut short at a batch boundary (the offset gap
//! recovery used to accept; with its indexes removed, and with its index kept, pointing
//! past the end), and a truncated log start checkpoint. For each: the broker starts, the damaged partition goes
//! offline with one log line naming the file and what is wrong, and answers
//! KAFKA_STORAGE_ERROR to Produce, Fetch and ListOffsets, while the other partition keeps
//! serving; no file of the damaged partition changes. `ringbroker repair --dry-run` changes
//! nothing; `ringbroker repair` keeps the log up to the last good batch (moving the rest
//! aside), and after a restart the partition serves that prefix and takes new writes.
//! An index that points past the end of a whole segment (the next one follows on) is
//! derived data: it is rebuilt, with a warning naming it. Damaged broker-wide files (the
//! metadata, the producer id block) stop the broker at start with a message naming the
//! file. Damage that appears under a running broker is found by the scrubber, and so is
//! damage in a sealed segment below the newest producer state snapshot (the open does not
//! read those), within seconds of the start; without a snapshot the open finds it.

mod common;

use common::kafka::{self, NONE};
use common::{Broker, RawClient};
use ringbroker::protocol::batch::testing::build_batch;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const TOPIC: &str = "dmg";
const KAFKA_STORAGE_ERROR: i16 = 56;
const BATCHES: usize = 80;

fn value(p: i32, i: usize, r: usize) -> Vec<u8> {
    format!("p{p} b{i} r{r} {}", "v".repeat(150)).into_bytes()
}

/// A broker with topic `dmg` (2 partitions, 16 KiB segments, so each partition has several
/// sealed segments), `BATCHES` batches of 3 records in each, stopped cleanly.
fn damaged_setup() -> Broker {
    let mut b = Broker::start(&["log.segment.bytes=16384"]);
    fill(&b);
    b.stop();
    b
}

/// Topic `dmg` with `BATCHES` batches of 3 records in each of its 2 partitions.
fn fill(b: &Broker) {
    let mut c = RawClient::connect(b.addr());
    kafka::create_topic(&mut c, TOPIC, 2);
    let ts = common::recent_ts();
    for i in 0..BATCHES {
        for p in 0..2 {
            let vals: Vec<Vec<u8>> = (0..3).map(|r| value(p, i, r)).collect();
            let refs: Vec<&[u8]> = vals.iter().map(Vec::as_slice).collect();
            let (err, base) = kafka::produce_one(&mut c, TOPIC, p, build_batch(&refs, ts));
            assert_eq!((err, base), (NONE, 3 * i as i64), "produce to {p}");
        }
    }
}

fn part_dir(b: &Broker, p: i32) -> PathBuf {
    b.data_dir().join(format!("{TOPIC}-{p}"))
}

/// The segment `.log` files of a partition directory, oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read partition dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    out.sort();
    out
}

fn base_of(seg: &Path) -> i64 {
    let stem = seg
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("segment name");
    stem.parse().expect("segment base")
}

/// `(position, base offset, size)` of each batch of a segment file.
fn batches(seg: &Path) -> Vec<(u64, i64, u64)> {
    let bytes = std::fs::read(seg).expect("read segment");
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 12 <= bytes.len() {
        let base = i64::from_be_bytes(bytes[pos..pos + 8].try_into().expect("8 bytes"));
        let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().expect("4 bytes"));
        let size = 12 + len as usize;
        out.push((pos as u64, base, size as u64));
        pos += size;
    }
    out
}

/// Every file of the directory (recursively) with its length and content hash.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, u64)> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(snapshot(&p));
            continue;
        }
        let bytes = std::fs::read(&p).expect("read file");
        let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
        out.insert(p, (bytes.len() as u64, hash));
    }
    out
}

/// The log of the broker's last start.
fn last_start_log(b: &Broker) -> String {
    let log = b.log();
    let from = log.rfind("===== harness: start #").unwrap_or(0);
    log[from..].to_string()
}

/// Starts the broker on the damaged data and checks the partition is offline: one log
/// line that names `file` and contains `why`, KAFKA_STORAGE_ERROR to Produce, Fetch and
/// ListOffsets, partition 1 serving, and no file of partition 0 changed. Stops it.
fn assert_offline(b: &mut Broker, file: &str, why: &str) {
    let dir = part_dir(b, 0);
    let before = snapshot(&dir);
    b.start_again();
    // Damage in a sealed segment below the newest producer state snapshot is not read at
    // open: the scrubber finds it within seconds of the start. Everything else is found
    // at open.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !last_start_log(b).contains(&format!("partition {TOPIC}-0 is offline")) {
        assert!(
            std::time::Instant::now() < deadline,
            "{TOPIC}-0 did not go offline within 30 s:\n{}",
            last_start_log(b)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let log = last_start_log(b);
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!("partition {TOPIC}-0 is offline")))
        .collect();
    assert_eq!(lines.len(), 1, "one offline line for {TOPIC}-0:\n{log}");
    assert!(
        lines[0].contains(file) && lines[0].contains(why),
        "the offline line names {file} and says {why:?}: {}",
        lines[0]
    );
    assert!(
        lines[0].contains("ringbroker repair"),
        "the line says how to repair: {}",
        lines[0]
    );
    let mut c = RawClient::connect(b.addr());
    let batch = build_batch(&[b"new"], common::recent_ts());
    assert_eq!(
        kafka::produce_one(&mut c, TOPIC, 0, batch.clone()).0,
        KAFKA_STORAGE_ERROR,
        "Produce to the damaged partition"
    );
    let f = kafka::fetch(&mut c, TOPIC, &[(0, 0)]);
    assert_eq!(f.len(), 1);
    assert_eq!(
        f[0].1, KAFKA_STORAGE_ERROR,
        "Fetch of the damaged partition"
    );
    assert!(f[0].3.is_empty(), "no records from the damaged partition");
    for ts in [-1, -2] {
        assert_eq!(
            kafka::list_offset(&mut c, TOPIC, 0, ts).0,
            KAFKA_STORAGE_ERROR,
            "ListOffsets {ts} of the damaged partition"
        );
    }
    // The other partition serves everything, and takes writes.
    let end = 3 * BATCHES as i64;
    assert_eq!(kafka::produce_one(&mut c, TOPIC, 1, batch), (NONE, end));
    let recs = kafka::fetch_all(&mut c, TOPIC, 1, 0);
    assert_eq!(recs.len() as i64, end + 1, "partition 1 keeps serving");
    for (i, r) in recs.iter().take(end as usize).enumerate() {
        assert_eq!(r.value.as_deref(), Some(value(1, i / 3, i % 3).as_slice()));
    }
    drop(c);
    // The repair refuses to run under a broker (it takes the data directory's lock).
    let data = b.data_dir().to_str().expect("utf-8 path").to_string();
    let out = Command::new(common::broker_bin())
        .args([
            "repair",
            "--data-dir",
            &data,
            "--topic",
            TOPIC,
            "--partition",
            "0",
        ])
        .output()
        .expect("run ringbroker repair");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("in use"),
        "repair under a running broker: {}: {stderr}",
        out.status
    );
    b.stop();
    // Nothing existing changed or went; at most empty index files were created.
    let after = snapshot(&dir);
    for (path, was) in &before {
        assert_eq!(
            after.get(path),
            Some(was),
            "the broker changed {} of the damaged partition",
            path.display()
        );
    }
    for (path, (len, _)) in &after {
        assert!(
            before.contains_key(path) || *len == 0,
            "the broker wrote {} in the damaged partition",
            path.display()
        );
    }
}

/// Runs `ringbroker repair` on partition 0; returns its stdout (it must succeed).
fn repair(b: &Broker, dry_run: bool) -> String {
    let data = b.data_dir().to_str().expect("utf-8 path").to_string();
    let mut args = vec![
        "repair",
        "--data-dir",
        data.as_str(),
        "--topic",
        TOPIC,
        "--partition",
        "0",
    ];
    if dry_run {
        args.push("--dry-run");
    }
    let out = Command::new(common::broker_bin())
        .args(&args)
        .output()
        .expect("run ringbroker repair");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "repair failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Dry run (changes nothing), repair, restart: partition 0 serves exactly its first
/// `kept` records and takes a write at `kept`.
fn repair_and_check(b: &mut Broker, damage: &str, kept: i64) {
    let dir = part_dir(b, 0);
    let before = snapshot(&dir);
    let dry = repair(b, true);
    assert!(
        dry.contains(damage),
        "dry run names the damage {damage:?}:\n{dry}"
    );
    assert!(dry.contains("dry run: nothing changed"), "{dry}");
    assert_eq!(snapshot(&dir), before, "--dry-run changed files");
    let done = repair(b, false);
    assert!(
        done.contains(&format!("keeps every batch before offset {kept}")),
        "repair keeps offsets below {kept}:\n{done}"
    );
    assert!(
        done.contains("repair-"),
        "repair says where the removed data went:\n{done}"
    );
    b.start_again();
    assert!(
        !last_start_log(b).contains("is offline"),
        "still offline after repair:\n{}",
        last_start_log(b)
    );
    let mut c = RawClient::connect(b.addr());
    let start = kafka::list_offset(&mut c, TOPIC, 0, -2);
    assert_eq!(start, (NONE, 0), "log start after repair");
    assert_eq!(
        kafka::latest_offset(&mut c, TOPIC, 0),
        kept,
        "log end after repair"
    );
    let recs = kafka::fetch_all(&mut c, TOPIC, 0, 0);
    assert_eq!(recs.len() as i64, kept);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!(r.value.as_deref(), Some(value(0, i / 3, i % 3).as_slice()));
    }
    let batch = build_batch(&[b"after repair"], common::recent_ts());
    assert_eq!(kafka::produce_one(&mut c, TOPIC, 0, batch), (NONE, kept));
    drop(c);
    b.stop();
    // Nothing was deleted: what the repair took away is kept aside.
    let aside: u64 = snapshot(&dir)
        .iter()
        .filter(|(p, _)| p.to_string_lossy().contains("/repair-"))
        .map(|(_, (len, _))| len)
        .sum();
    assert!(
        aside > 0 || kept == 3 * BATCHES as i64,
        "nothing moved aside"
    );
}

#[test]
fn a_corrupt_batch_in_a_sealed_segment_takes_the_partition_offline_until_repair() {
    let _serial = common::heavy_lock();
    let mut b = damaged_setup();
    let segs = segments(&part_dir(&b, 0));
    assert!(segs.len() >= 3, "several segments: {segs:?}");
    // A bit flip in the records of the second batch of the first segment.
    let (pos, base, _) = batches(&segs[0])[1];
    let mut bytes = std::fs::read(&segs[0]).expect("read");
    bytes[pos as usize + 80] ^= 0x10;
    std::fs::write(&segs[0], bytes).expect("write");
    assert_offline(
        &mut b,
        "00000000000000000000.log",
        &format!("position {pos}"),
    );
    // The segment lies below the newest producer state snapshot: the open did not read
    // it, the scrubber found the damage right after the start.
    let log = last_start_log(&b);
    let listening = log.find("ringbroker listening on").expect("started");
    let offline = log.find("partition dmg-0 is offline").expect("offline");
    assert!(offline > listening, "found after the start:\n{log}");
    repair_and_check(&mut b, "CRC mismatch", base);
}

/// Without a usable producer state snapshot the open walks every sealed segment, and finds
/// the damage before the broker listens (as it does for segments after the snapshot).
#[test]
fn without_a_snapshot_a_corrupt_sealed_segment_is_found_at_open() {
    let _serial = common::heavy_lock();
    let mut b = damaged_setup();
    let dir = part_dir(&b, 0);
    let segs = segments(&dir);
    let mut removed = 0;
    for e in std::fs::read_dir(&dir).expect("dir").flatten() {
        if e.path().extension().is_some_and(|x| x == "snapshot") {
            std::fs::remove_file(e.path()).expect("remove snapshot");
            removed += 1;
        }
    }
    assert!(removed > 0, "the rolls wrote snapshots");
    let (pos, _, _) = batches(&segs[0])[1];
    let mut bytes = std::fs::read(&segs[0]).expect("read");
    bytes[pos as usize + 80] ^= 0x10;
    std::fs::write(&segs[0], bytes).expect("write");
    assert_offline(
        &mut b,
        "00000000000000000000.log",
        &format!("position {pos}"),
    );
    let log = last_start_log(&b);
    let listening = log.find("ringbroker listening on").expect("started");
    let offline = log.find("partition dmg-0 is offline").expect("offline");
    assert!(offline < listening, "found at open:\n{log}");
}

#[test]
fn a_missing_segment_in_the_middle_takes_the_partition_offline_until_repair() {
    let _serial = common::heavy_lock();
    let mut b = damaged_setup();
    let dir = part_dir(&b, 0);
    let segs = segments(&dir);
    assert!(segs.len() >= 3, "several segments: {segs:?}");
    let (second, third) = (base_of(&segs[1]), base_of(&segs[2]));
    for ext in ["log", "index", "timeindex"] {
        std::fs::remove_file(dir.join(format!("{second:020}.{ext}"))).expect("remove");
    }
    assert_offline(
        &mut b,
        "00000000000000000000.log",
        &format!("offsets {second}..{third} are missing"),
    );
    repair_and_check(&mut b, &format!("starts at offset {third}"), second);
}

#[test]
fn a_sealed_segment_cut_short_at_a_batch_boundary_is_damage_not_a_gap() {
    let _serial = common::heavy_lock();
    let mut b = damaged_setup();
    let dir = part_dir(&b, 0);
    let segs = segments(&dir);
    let second = base_of(&segs[1]);
    // Cut the first segment after its third batch, and take its indexes with it (they
    // are rebuilt from the log): only the offsets tell that the log lost its end.
    let (pos, cut_at, _) = batches(&segs[0])[3];
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segs[0])
        .expect("open")
        .set_len(pos)
        .expect("truncate");
    for ext in ["index", "timeindex"] {
        std::fs::remove_file(dir.join(format!("{:020}.{ext}", 0))).expect("remove");
    }
    assert_offline(
        &mut b,
        "00000000000000000000.log",
        &format!("offsets {cut_at}..{second} are missing"),
    );
    repair_and_check(&mut b, &format!("starts at offset {second}"), cut_at);
}

#[test]
fn an_index_pointing_past_the_end_of_a_cut_short_segment_takes_the_partition_offline() {
    let _serial = common::heavy_lock();
    let mut b = damaged_setup();
    let dir = part_dir(&b, 0);
    let segs = segments(&dir);
    let second = base_of(&segs[1]);
    // The first segment cut after its third batch, its indexes kept: they point past the
    // end of what is left.
    let (pos, cut_at, _) = batches(&segs[0])[3];
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segs[0])
        .expect("open")
        .set_len(pos)
        .expect("truncate");
    assert_offline(&mut b, "00000000000000000000.index", "past the end");
    assert!(
        last_start_log(&b).contains(&format!("offsets {cut_at}..{second} are missing")),
        "{}",
        last_start_log(&b)
    );
    repair_and_check(&mut b, "past the end", cut_at);
}

#[test]
fn a_damaged_index_of_a_whole_segment_is_rebuilt_and_said() {
    let _serial = common::heavy_lock();
    let mut b = damaged_setup();
    let dir = part_dir(&b, 0);
    let index = dir.join(format!("{:020}.index", 0));
    let len = std::fs::metadata(segs_first(&dir)).expect("stat").len();
    // An entry after the last one, pointing past the end of a segment that is whole (the
    // next segment follows on): the index is what is damaged, and it is derived data.
    let mut bytes = std::fs::read(&index).expect("read index");
    assert!(!bytes.is_empty(), "the sealed segment has index entries");
    let last_rel = u32::from_be_bytes(
        bytes[bytes.len() - 8..bytes.len() - 4]
            .try_into()
            .expect("4"),
    );
    bytes.extend_from_slice(&(last_rel + 1).to_be_bytes());
    bytes.extend_from_slice(&(len as u32 + 100).to_be_bytes());
    std::fs::write(&index, bytes).expect("write index");
    b.start_again();
    let log = last_start_log(&b);
    assert!(!log.contains("is offline"), "{log}");
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("00000000000000000000.index")
            && l.contains("past the end")
            && l.contains("rebuilt from it")),
        "a warning names the rebuilt index:\n{log}"
    );
    let mut c = RawClient::connect(b.addr());
    let recs = kafka::fetch_all(&mut c, TOPIC, 0, 0);
    assert_eq!(recs.len(), 3 * BATCHES, "nothing lost");
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.value.as_deref(), Some(value(0, i / 3, i % 3).as_slice()));
    }
    drop(c);
    b.stop();
}

fn segs_first(dir: &Path) -> PathBuf {
    segments(dir).into_iter().next().expect("a segment")
}

#[test]
fn a_truncated_log_start_checkpoint_takes_the_partition_offline() {
    let _serial = common::heavy_lock();
    let mut b = damaged_setup();
    // Move the log start with DeleteRecords (written to the checkpoint), then cut the
    // checkpoint's last byte: its offset could have lost digits.
    b.start_again();
    let mut c = RawClient::connect(b.addr());
    let req = kafka_protocol::messages::DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            kafka_protocol::messages::delete_records_request::DeleteRecordsTopic::default()
                .with_name(kafka::topic_name(TOPIC))
                .with_partitions(vec![
                    kafka_protocol::messages::delete_records_request::DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(15),
                ]),
        ]);
    let resp: kafka_protocol::messages::DeleteRecordsResponse = c.call(1, &req);
    assert_eq!(resp.topics[0].partitions[0].error_code, NONE);
    assert_eq!(kafka::list_offset(&mut c, TOPIC, 0, -2), (NONE, 15));
    drop(c);
    b.stop();
    let checkpoint = part_dir(&b, 0).join("log-start-offset-checkpoint");
    let text = std::fs::read(&checkpoint).expect("checkpoint");
    assert!(
        text.ends_with(b" 15\n"),
        "{:?}",
        String::from_utf8_lossy(&text)
    );
    std::fs::write(&checkpoint, &text[..text.len() - 1]).expect("truncate");
    assert_offline(&mut b, "log-start-offset-checkpoint", "truncated");
    // Repaired, the log starts at its first segment again (records DeleteRecords hid are
    // readable again, as the repair says).
    repair_and_check(&mut b, "log-start-offset-checkpoint", 3 * BATCHES as i64);
}

#[test]
fn damaged_broker_files_stop_the_broker_with_a_message_naming_them() {
    let _serial = common::heavy_lock();
    let mut b = Broker::start(&[]);
    let mut c = RawClient::connect(b.addr());
    kafka::create_topic(&mut c, "a", 1);
    kafka::create_topic(&mut c, "b", 1);
    // A producer id block gets written.
    let v = c.pick_version::<kafka_protocol::messages::InitProducerIdRequest>(4);
    let _ = c.call(
        v,
        &kafka_protocol::messages::InitProducerIdRequest::default()
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(kafka_protocol::messages::ProducerId(-1))
            .with_producer_epoch(-1),
    );
    drop(c);
    b.stop();
    let data = b.data_dir().to_path_buf();
    let start = |what: &str| {
        let port = common::free_port().to_string();
        let listen = format!("127.0.0.1:{port}");
        let (status, stderr) = common::run_to_exit(
            &[
                "serve",
                "--listen",
                &listen,
                "--data-dir",
                data.to_str().expect("utf-8"),
            ],
            std::time::Duration::from_secs(60),
        );
        assert!(!status.success(), "the broker started on a damaged {what}");
        stderr
    };
    // The metadata cut at a line boundary still parses as TOML, without the last topic.
    let meta = data.join("__ringbroker_meta.toml");
    let good = std::fs::read_to_string(&meta).expect("meta");
    let cut = good.rfind("[topics.").expect("a topic table");
    std::fs::write(&meta, &good[..cut]).expect("truncate meta");
    let err = start("metadata");
    assert!(
        err.contains("__ringbroker_meta.toml") && err.contains("damaged"),
        "{err}"
    );
    std::fs::write(&meta, &good).expect("restore meta");
    // The producer id block cut short: ids would repeat.
    let ids = data.join("producer_ids");
    let good_ids = std::fs::read_to_string(&ids).expect("producer_ids");
    assert!(
        good_ids.ends_with('\n') && good_ids.len() > 2,
        "{good_ids:?}"
    );
    std::fs::write(&ids, &good_ids[..good_ids.len() - 2]).expect("truncate ids");
    let err = start("producer id block");
    assert!(err.contains("producer_ids"), "{err}");
    std::fs::write(&ids, &good_ids).expect("restore ids");
    b.start_again();
    let mut c = RawClient::connect(b.addr());
    let md = kafka::metadata(&mut c, &["a", "b"]);
    assert_eq!(md.topics.len(), 2, "{md:?}");
    assert!(md.topics.iter().all(|t| t.error_code == NONE), "{md:?}");
    drop(c);
    b.stop();
}

/// A measurement, not a check (ignored in the suite): how long a broker takes to open a
/// partition of 1 GiB in 8 sealed segments of 1 KiB batches, which it verifies whole at
/// open (header chain, CRC-32C, offsets). Run with
/// `cargo test --test disk_damage open_time -- --ignored --nocapture`
/// (`RINGBROKER_BIN=target/release/ringbroker` for a release broker).
#[test]
#[ignore]
fn open_time_of_a_1_gib_partition() {
    let _serial = common::heavy_lock();
    const SEGMENT: u64 = 128 << 20;
    let mut b = Broker::start(&["log.segment.bytes=134217728"]);
    let mut c = RawClient::connect(b.addr());
    kafka::create_topic(&mut c, TOPIC, 1);
    drop(c);
    b.stop();
    let dir = part_dir(&b, 0);
    for e in std::fs::read_dir(&dir).expect("dir").flatten() {
        std::fs::remove_file(e.path()).expect("remove");
    }
    // One batch of ~1 KiB (4 records), stamped with each base offset in turn (the base
    // offset is outside the CRC).
    let vals: Vec<Vec<u8>> = (0..4).map(|r| value(0, 0, r)).collect();
    let refs: Vec<&[u8]> = vals.iter().map(Vec::as_slice).collect();
    let template = build_batch(&refs, common::recent_ts());
    let per_segment = SEGMENT / template.len() as u64;
    let mut offset = 0i64;
    for _ in 0..8 {
        let mut bytes = Vec::with_capacity(SEGMENT as usize);
        let base = offset;
        for _ in 0..per_segment {
            let mut batch = template.clone();
            batch[..8].copy_from_slice(&offset.to_be_bytes());
            bytes.extend_from_slice(&batch);
            offset += 4;
        }
        std::fs::write(dir.join(format!("{base:020}.log")), &bytes).expect("write segment");
    }
    // A clean shutdown's indexes: start once to build them, then time the second start.
    for run in ["first start (indexes rebuilt)", "second start"] {
        let t = std::time::Instant::now();
        b.start_again();
        let mut c = RawClient::connect(b.addr());
        assert_eq!(kafka::latest_offset(&mut c, TOPIC, 0), offset);
        eprintln!(
            "{run}: 1 GiB partition open and answering after {:?}",
            t.elapsed()
        );
        drop(c);
        b.stop();
    }
}

#[test]
fn offset_commits_to_an_offline_offsets_partition_get_a_storage_error() {
    use kafka_protocol::messages::{
        GroupId, OffsetCommitRequest, TopicName, offset_commit_request,
    };
    use kafka_protocol::protocol::StrBytes;
    let _serial = common::heavy_lock();
    let mut b = damaged_setup();
    // Every partition of __consumer_offsets gets an unreadable log start checkpoint.
    let mut damaged = 0;
    for e in std::fs::read_dir(b.data_dir()).expect("data dir").flatten() {
        if e.file_name()
            .to_string_lossy()
            .starts_with("__consumer_offsets-")
        {
            std::fs::write(e.path().join("log-start-offset-checkpoint"), "0\n1\n").expect("write");
            damaged += 1;
        }
    }
    assert!(damaged > 0, "the offsets topic has partitions on disk");
    b.start_again();
    let mut c = RawClient::connect(b.addr());
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(3),
                ]),
        ]);
    let resp = c.call(7, &commit);
    let code = resp.topics[0].partitions[0].error_code;
    assert_eq!(
        code, KAFKA_STORAGE_ERROR,
        "OffsetCommit to an offline offsets partition"
    );
    // The topic's own partitions serve.
    assert_eq!(kafka::latest_offset(&mut c, TOPIC, 0), 3 * BATCHES as i64);
    drop(c);
    b.stop();
}

/// Damage that appears while the broker runs (a bit flip in a sealed segment) is found by
/// the scrubber (`log.scrub.interval.ms`), which takes the partition offline as the open
/// would: one line naming the file and the position, KAFKA_STORAGE_ERROR to Produce and
/// Fetch, the other partition serving; without the scrubber it would be served.
#[test]
fn damage_appearing_while_running_is_found_by_the_scrubber() {
    let _serial = common::heavy_lock();
    let b = Broker::start(&["log.segment.bytes=16384", "log.scrub.interval.ms=300"]);
    fill(&b);
    let segs = segments(&part_dir(&b, 0));
    assert!(segs.len() >= 3, "several segments: {segs:?}");
    let (pos, _, _) = batches(&segs[0])[1];
    let mut bytes = std::fs::read(&segs[0]).expect("read");
    bytes[pos as usize + 80] ^= 0x10;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&segs[0])
        .expect("open segment");
    std::os::unix::fs::FileExt::write_all_at(&f, &bytes, 0).expect("write");
    f.sync_all().expect("sync");
    let mut c = RawClient::connect(b.addr());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let batch = build_batch(&[b"new"], common::recent_ts());
    loop {
        let (err, _) = kafka::produce_one(&mut c, TOPIC, 0, batch.clone());
        if err == KAFKA_STORAGE_ERROR {
            break;
        }
        assert_eq!(
            err, NONE,
            "Produce to partition 0 before the scrubber found the damage"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the scrubber did not find the damage within 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let log = b.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!("partition {TOPIC}-0 is offline")))
        .collect();
    assert_eq!(lines.len(), 1, "one offline line for {TOPIC}-0:\n{log}");
    assert!(
        lines[0].contains("00000000000000000000.log")
            && lines[0].contains(&format!("position {pos}")),
        "the line names the file and the position: {}",
        lines[0]
    );
    let f = kafka::fetch(&mut c, TOPIC, &[(0, 0)]);
    assert_eq!(
        f[0].1, KAFKA_STORAGE_ERROR,
        "Fetch of the damaged partition"
    );
    let end = 3 * BATCHES as i64;
    assert_eq!(kafka::produce_one(&mut c, TOPIC, 1, batch), (NONE, end));
    assert_eq!(
        kafka::fetch_all(&mut c, TOPIC, 1, 0).len() as i64,
        end + 1,
        "partition 1 keeps serving"
    );
}
