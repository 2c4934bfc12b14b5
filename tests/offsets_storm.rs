//! `__consumer_offsets` stays bounded on disk under a commit storm: the topic is compacted,
//! so the cleaner keeps about one record per (group, topic, partition) in its sealed
//! segments however many commits arrive. Against the real binary, with 1 MiB offsets
//! segments; the committed offsets read back exactly, before and after a restart.

mod common;

use common::{Broker, RawClient, kafka};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{GroupId, OffsetCommitRequest, OffsetFetchRequest};
use kafka_protocol::protocol::StrBytes;
use std::path::Path;
use std::time::{Duration, Instant};

const TOPIC: &str = "storm";
const PARTITIONS: i32 = 10;
const GROUPS: [&str; 3] = ["storm-a", "storm-b", "storm-c"];
/// Commits per group; each writes one record per partition.
const ROUNDS: i64 = 5_000;
const SEGMENT: u64 = 1 << 20;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Bytes of `.log` files of `__consumer_offsets` (all partitions) under `data`.
fn offsets_log_bytes(data: &Path) -> u64 {
    let mut total = 0;
    for dir in std::fs::read_dir(data).expect("data dir").flatten() {
        if !dir
            .file_name()
            .to_string_lossy()
            .starts_with("__consumer_offsets-")
        {
            continue;
        }
        for f in std::fs::read_dir(dir.path())
            .expect("partition dir")
            .flatten()
        {
            if f.path().extension().is_some_and(|e| e == "log") {
                total += f.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    total
}

/// A simple commit (no member, generation -1) of `offset + p` for every partition.
fn commit(c: &mut RawClient, group: &str, offset: i64) {
    let partitions = (0..PARTITIONS)
        .map(|p| {
            OffsetCommitRequestPartition::default()
                .with_partition_index(p)
                .with_committed_offset(offset + i64::from(p))
        })
        .collect();
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(kafka::topic_name(TOPIC))
                .with_partitions(partitions),
        ]);
    let resp = c.call(8, &req);
    for p in &resp.topics[0].partitions {
        assert_eq!(p.error_code, 0, "commit of {group} at {offset}");
    }
}

fn committed(c: &mut RawClient, group: &str) -> Vec<i64> {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(kafka::topic_name(TOPIC))
                .with_partition_indexes((0..PARTITIONS).collect()),
        ]));
    let resp = c.call(7, &req);
    assert_eq!(resp.error_code, 0);
    resp.topics[0]
        .partitions
        .iter()
        .map(|p| p.committed_offset)
        .collect()
}

#[test]
fn a_commit_storm_leaves_offsets_bounded_on_disk_and_exact() {
    let mut broker = Broker::start(&[
        "offsets.topic.num.partitions=1",
        &format!("offsets.topic.segment.bytes={SEGMENT}"),
        "log.cleaner.backoff.ms=100",
    ]);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, TOPIC, PARTITIONS);
    for round in 0..ROUNDS {
        for g in GROUPS {
            commit(&mut c, g, round * 100);
        }
    }
    let want: Vec<i64> = (0..PARTITIONS)
        .map(|p| (ROUNDS - 1) * 100 + i64::from(p))
        .collect();
    for g in GROUPS {
        assert_eq!(committed(&mut c, g), want, "{g} right after the storm");
    }

    // Each commit wrote a batch of ten records: the storm wrote well over ten segments.
    // Once cleaned, the sealed segments hold 30 live records and the active segment at
    // most a segment's worth: the topic is bounded by about two segments.
    let bound = 2 * SEGMENT + (SEGMENT / 2);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut size = offsets_log_bytes(broker.data_dir());
    while size > bound {
        assert!(
            Instant::now() < deadline,
            "__consumer_offsets still holds {size} bytes of .log files (bound {bound})\n{}",
            broker.log()
        );
        std::thread::sleep(Duration::from_millis(200));
        size = offsets_log_bytes(broker.data_dir());
    }
    eprintln!("__consumer_offsets: {size} bytes on disk after the storm");
    for g in GROUPS {
        assert_eq!(committed(&mut c, g), want, "{g} after cleaning");
    }

    // The cleaned log loads back to the same offsets.
    broker.restart();
    let mut c = RawClient::connect(broker.addr());
    for g in GROUPS {
        assert_eq!(committed(&mut c, g), want, "{g} after a restart");
    }
}
