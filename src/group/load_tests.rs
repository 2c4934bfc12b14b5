//! Rebuilding the groups from `__consumer_offsets` as a log cleaner leaves it (offset gaps
//! between and inside batches, overwritten values and tombstones gone), with values of
//! every format a log may hold; and the group record a rebalance writes.

use super::records::{self, GroupValue, Key, MemberValue, OffsetValue, parse_batches};
use super::*;
use crate::config::GroupConfig;
use bytes::Bytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use rand::SeedableRng;

fn offset_key(group: &str, partition: i32) -> Vec<u8> {
    let key = Key::Offset {
        group: group.into(),
        topic: "t".into(),
        partition,
    };
    key.encode().unwrap()
}

fn offset_value(offset: i64) -> Vec<u8> {
    OffsetValue {
        offset,
        leader_epoch: 2,
        metadata: Some("m".into()),
        commit_timestamp_ms: 1_000,
    }
    .encode()
    .unwrap()
}

/// A record at its offset: key and value (`None`: a tombstone).
type AtOffset = (i64, Vec<u8>, Option<Vec<u8>>);

/// One batch holding `records` at their own offsets, written by another encoder (the
/// `kafka-protocol` crate's), as a cleaner keeps them: offset deltas with holes.
fn batch_at(records: &[AtOffset]) -> Vec<u8> {
    let records: Vec<Record> = records
        .iter()
        .map(|(offset, k, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: *offset,
            // The encoder keeps records in one batch while offset - sequence is constant:
            // this keeps records with holes between their offsets in one batch.
            sequence: *offset as i32,
            timestamp: 1_000,
            key: Some(Bytes::from(k.clone())),
            value: v.clone().map(Bytes::from),
            headers: Default::default(),
        })
        .collect();
    let mut out = bytes::BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, &records, &options).unwrap();
    out.to_vec()
}

/// (base offset, last offset) of each batch in `log`.
fn batch_bounds(mut log: &[u8]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    while let Ok(h) = crate::protocol::batch::BatchHeader::parse(log) {
        out.push((h.base_offset, h.last_offset()));
        log = &log[h.total_bytes()..];
    }
    out
}

fn coordinator() -> GroupCoordinator {
    GroupCoordinator::new(
        GroupConfig::default(),
        1 << 20,
        rand::rngs::StdRng::seed_from_u64(3),
    )
}

#[test]
fn loading_is_correct_over_offset_gaps_and_removed_tombstones() {
    let group_value = GroupValue {
        protocol_type: "consumer".into(),
        generation: 4,
        protocol: None,
        leader: None,
        timestamp_ms: 500,
        members: vec![],
    };
    // What a cleaner leaves of: g's partition 0 committed at 3 then 5 (3 is gone), g's
    // partition 1 at 9, g's metadata at 40; "gone" committed and deleted (values and
    // tombstones all removed); "h" committed at 50 and deleted at 60 (its tombstone is
    // not yet expired); "old" committed by an older ringbroker (legacy value) at 70.
    let mut log = batch_at(&[
        (5, offset_key("g", 0), Some(offset_value(20))),
        (9, offset_key("g", 1), Some(offset_value(30))),
    ]);
    let g_key = Key::Group { group: "g".into() }.encode().unwrap();
    log.extend(batch_at(&[(
        40,
        g_key,
        Some(group_value.encode().unwrap()),
    )]));
    log.extend(batch_at(&[(60, offset_key("h", 0), None)]));
    let legacy = super::values_tests::legacy_offset(77, -1, None, 900);
    log.extend(batch_at(&[(70, offset_key("old", 3), Some(legacy))]));

    assert_eq!(
        batch_bounds(&log),
        [(5, 9), (40, 40), (60, 60), (70, 70)],
        "one batch with a hole inside"
    );
    let (records, next) = parse_batches(&log);
    assert_eq!(next, Some(71), "the load resumes after the last batch");
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(
        offsets,
        [5, 9, 40, 60, 70],
        "offsets come from the batches, gaps kept"
    );
    let mut c = coordinator();
    c.load(records, 10_000);
    c.finish_load();
    let mut committed = c.committed_offsets();
    committed.sort();
    assert_eq!(
        committed,
        [
            ("g".to_string(), "t".to_string(), 0, 20),
            ("g".to_string(), "t".to_string(), 1, 30),
            ("old".to_string(), "t".to_string(), 3, 77),
        ]
    );
    let g = c.group("g").unwrap();
    assert_eq!((g.generation, g.empty_since_ms), (4, 500));
    assert!(c.group("gone").is_none() && c.group("h").is_none());
    let fetched = c.fetch("old", None, false);
    assert_eq!(
        fetched.topics[0].1[0].metadata, None,
        "a legacy null metadata"
    );
    // Load order decides between two values of a key, whatever their offsets' spacing.
    let later = batch_at(&[(1_000, offset_key("g", 0), Some(offset_value(21)))]);
    let mut c = coordinator();
    c.load(parse_batches(&[log, later].concat()).0, 10_000);
    assert!(
        c.committed_offsets()
            .contains(&("g".into(), "t".into(), 0, 21))
    );
}

#[test]
fn a_group_persisted_with_members_loads_empty_from_now() {
    let member = MemberValue {
        member_id: "m".into(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "/h".into(),
        rebalance_timeout_ms: 1,
        session_timeout_ms: 1,
        subscription: Bytes::new(),
        assignment: Bytes::new(),
    };
    let v = GroupValue {
        protocol_type: "consumer".into(),
        generation: 9,
        protocol: Some("range".into()),
        leader: Some("m".into()),
        timestamp_ms: 5,
        members: vec![member],
    };
    let key = Key::Group { group: "g".into() }.encode().unwrap();
    let log = batch_at(&[(0, key, Some(v.encode().unwrap()))]);
    let mut c = coordinator();
    c.load(parse_batches(&log).0, 10_000);
    let g = c.group("g").unwrap();
    assert_eq!((g.generation, g.empty_since_ms), (9, 10_000));
    assert!(g.members.is_empty(), "members rejoin after a load");
}

/// A transactional batch of `producer_id` (TxnOffsetCommit), as the coordinator writes it.
fn txn_batch(producer_id: i64, base: i64, records: &[(Vec<u8>, Option<Vec<u8>>)]) -> Vec<u8> {
    let b = records::build_batch_of(records, 1_000, Some((producer_id, 0))).unwrap();
    let mut b = b.to_vec();
    crate::protocol::batch::set_base_offset(&mut b, base);
    b
}

fn marker(producer_id: i64, at: i64, commit: bool) -> Vec<u8> {
    let mut b = crate::protocol::batch::encode_marker(producer_id, 0, commit, 0, 1_000);
    crate::protocol::batch::set_base_offset(&mut b, at);
    b
}

#[test]
fn transactional_offsets_count_once_their_commit_marker_follows() {
    // Producer 7 commits g/0 = 100 and its transaction commits; producer 8 commits
    // g/1 = 200 and aborts; producer 9 commits g/2 = 300 and has no marker yet; a plain
    // commit of g/0 = 50 sits between 7's offsets and 7's marker.
    let mut log = txn_batch(7, 0, &[(offset_key("g", 0), Some(offset_value(100)))]);
    log.extend(txn_batch(
        8,
        1,
        &[(offset_key("g", 1), Some(offset_value(200)))],
    ));
    log.extend(batch_at(&[(2, offset_key("g", 0), Some(offset_value(50)))]));
    log.extend(txn_batch(
        9,
        3,
        &[(offset_key("g", 2), Some(offset_value(300)))],
    ));
    log.extend(marker(7, 4, true));
    log.extend(marker(8, 5, false));
    let (records, next) = parse_batches(&log);
    assert_eq!(next, Some(6));
    assert_eq!(
        records.iter().filter(|r| r.marker.is_some()).count(),
        2,
        "markers are read as markers, not offsets"
    );
    let mut c = coordinator();
    c.load(records, 10_000);
    c.finish_load();
    let mut committed = c.committed_offsets();
    committed.sort();
    // g/0: the plain commit at offset 2 is later in the log than 7's offset at 0, so it
    // wins; 8's aborted offset is not there; 9's is pending.
    assert_eq!(committed, [("g".to_string(), "t".to_string(), 0, 50)]);
    let stable = c.fetch("g", Some(vec![("t".into(), vec![2])]), true);
    assert_eq!(
        stable.topics[0].1[0].error_code,
        crate::protocol::code::UNSTABLE_OFFSET_COMMIT,
        "a pending transactional offset is unstable"
    );
    let plain = c.fetch("g", Some(vec![("t".into(), vec![2])]), false);
    assert_eq!(plain.topics[0].1[0].offset, -1);
    // 9's commit marker arrives: its offset counts.
    c.txn_marker(9, true, 0, 1);
    assert!(
        c.committed_offsets()
            .contains(&("g".into(), "t".into(), 2, 300))
    );
    let stable = c.fetch("g", Some(vec![("t".into(), vec![2])]), true);
    assert_eq!(stable.topics[0].1[0].offset, 300);
}
