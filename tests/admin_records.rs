//! DeleteRecords against the real binary: the low watermark moves (inside a segment, and
//! to the high watermark with -1), segments wholly below it are gone from the disk, a fetch
//! below it is OFFSET_OUT_OF_RANGE, ListOffsets earliest returns it, it survives a crash and restart,
//! Kafka's refusals; partitions on both shards in one request; librdkafka's and
//! kafka-python's `delete_records`. DescribeLogDirs: the sizes of the partition logs (as
//! produced, and as on disk), the topics filter, the filesystem's space (v4), and
//! kafka-python's `describe_log_dirs`. In a 3-broker cluster: DeleteRecords at a follower
//! is NOT_LEADER_OR_FOLLOWER and works at the leader; each broker describes the replicas it
//! holds.

#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/python.rs"]
mod python;

use common::kafka::{self, INVALID_REQUEST, NONE, UNKNOWN_TOPIC_OR_PARTITION};
use common::{Broker, RawClient};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, DescribeLogDirsRequest, DescribeLogDirsResponse,
};
use ringbroker::protocol::batch::testing::batch_of_size;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const OFFSET_OUT_OF_RANGE: i16 = 1;
const INVALID_TOPIC_EXCEPTION: i16 = 17;

/// DeleteRecords of (topic, partition, offset)s; returns (topic, partition, error, low
/// watermark) per answer, in answer order.
fn delete_records(c: &mut RawClient, parts: &[(&str, i32, i64)]) -> Vec<(String, i32, i16, i64)> {
    let mut topics: Vec<DeleteRecordsTopic> = Vec::new();
    for (t, p, offset) in parts {
        let part = DeleteRecordsPartition::default()
            .with_partition_index(*p)
            .with_offset(*offset);
        match topics.iter_mut().find(|x| x.name.0.as_str() == *t) {
            Some(x) => x.partitions.push(part),
            None => topics.push(
                DeleteRecordsTopic::default()
                    .with_name(kafka::topic_name(t))
                    .with_partitions(vec![part]),
            ),
        }
    }
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(topics);
    let v = c.pick_version::<DeleteRecordsRequest>(2);
    let resp: DeleteRecordsResponse = c.call(v, &req);
    let mut out = Vec::new();
    for t in &resp.topics {
        for p in &t.partitions {
            out.push((
                t.name.0.to_string(),
                p.partition_index,
                p.error_code,
                p.low_watermark,
            ));
        }
    }
    out
}

fn delete_one(c: &mut RawClient, topic: &str, partition: i32, offset: i64) -> (i16, i64) {
    let r = delete_records(c, &[(topic, partition, offset)]);
    assert_eq!(r.len(), 1, "{r:?}");
    (r[0].2, r[0].3)
}

/// Base offsets of the partition's segment files on disk.
fn segment_files(dir: &Path) -> Vec<i64> {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)
        .expect("partition dir")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    bases.sort();
    bases
}

fn earliest(c: &mut RawClient, topic: &str, partition: i32) -> i64 {
    let (err, off) = kafka::list_offset(c, topic, partition, -2);
    assert_eq!(err, NONE);
    off
}

/// Fetch error code at `offset` of partition 0.
fn fetch_error(c: &mut RawClient, topic: &str, offset: i64) -> (i16, usize) {
    let r = kafka::fetch(c, topic, &[(0, offset)]);
    (r[0].1, r[0].3.len())
}

#[test]
fn delete_records_moves_the_low_watermark_deletes_segments_and_survives_restart() {
    let mut broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    let (err, msg) =
        kafka::create_topic_with(&mut c, "dr", 1, &[("segment.bytes", Some("1048576"))]);
    assert_eq!(err, NONE, "{msg:?}");
    assert_eq!(c.versions().get(&21), Some(&(0, 2)), "advertised v0-2");
    // 30 batches of 10 records, ~100 KB each: several 1 MiB segments.
    for _ in 0..30 {
        let (err, _) = kafka::produce_one(
            &mut c,
            "dr",
            0,
            batch_of_size(100_000, 10, common::recent_ts()),
        );
        assert_eq!(err, NONE);
    }
    assert_eq!(kafka::latest_offset(&mut c, "dr", 0), 300);
    let dir = broker.data_dir().join("dr-0");
    let before = segment_files(&dir);
    assert!(before.len() >= 3, "several segments: {before:?}");

    // Inside the third segment: the segments wholly below go from the disk.
    let target = before[2] + 5;
    assert_eq!(delete_one(&mut c, "dr", 0, target), (NONE, target));
    assert_eq!(segment_files(&dir), before[2..].to_vec());
    assert!(dir.join("log-start-offset-checkpoint").is_file());
    assert_eq!(earliest(&mut c, "dr", 0), target);
    assert_eq!(fetch_error(&mut c, "dr", target - 1).0, OFFSET_OUT_OF_RANGE);
    let (err, n) = fetch_error(&mut c, "dr", target);
    assert!(
        err == NONE && n > 0,
        "fetch at the low watermark: {err} {n}"
    );

    // Kafka's refusals, each answered once; an offset below the start moves nothing.
    let r = delete_records(
        &mut c,
        &[
            ("dr", 0, 301),
            ("dr", 7, 0),
            ("nope", 0, 0),
            ("__consumer_offsets", 0, 0),
        ],
    );
    let got: Vec<(i16, i64)> = r.iter().map(|x| (x.2, x.3)).collect();
    assert_eq!(
        got,
        vec![
            (OFFSET_OUT_OF_RANGE, -1),
            (UNKNOWN_TOPIC_OR_PARTITION, -1),
            (UNKNOWN_TOPIC_OR_PARTITION, -1),
            (INVALID_TOPIC_EXCEPTION, -1),
        ]
    );
    assert_eq!(delete_one(&mut c, "dr", 0, -5).0, OFFSET_OUT_OF_RANGE);
    let r = delete_records(&mut c, &[("dr", 0, 200), ("dr", 0, 250)]);
    assert_eq!(r, vec![("dr".into(), 0, INVALID_REQUEST, -1)], "a repeat");
    assert_eq!(delete_one(&mut c, "dr", 0, 3), (NONE, target));
    assert_eq!(earliest(&mut c, "dr", 0), target);

    // The start inside a segment survives a crash (SIGKILL) and restart.
    drop(c);
    broker.kill();
    // The killed process's io_uring may hold its listening socket open for a moment after
    // the process is reaped; the new broker refuses a port something still answers on.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(broker.addr()).is_ok() {
        assert!(std::time::Instant::now() < deadline, "port still answers");
        std::thread::sleep(Duration::from_millis(50));
    }
    broker.start_again();
    let mut c = RawClient::connect(broker.addr());
    assert_eq!(earliest(&mut c, "dr", 0), target);
    assert_eq!(fetch_error(&mut c, "dr", target - 1).0, OFFSET_OUT_OF_RANGE);
    assert_eq!(segment_files(&dir), before[2..].to_vec());

    // -1: up to the high watermark; only the active segment is left, and appends go on.
    assert_eq!(delete_one(&mut c, "dr", 0, -1), (NONE, 300));
    assert_eq!(segment_files(&dir).len(), 1);
    assert_eq!(earliest(&mut c, "dr", 0), 300);
    let (err, base) = kafka::produce_one(
        &mut c,
        "dr",
        0,
        batch_of_size(1_000, 1, common::recent_ts()),
    );
    assert_eq!((err, base), (NONE, 300));
}

#[test]
fn delete_records_reaches_partitions_on_every_shard() {
    let broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "spread", 6);
    for p in 0..6 {
        for _ in 0..5 {
            let b = batch_of_size(500, 2, common::recent_ts());
            assert_eq!(kafka::produce_one(&mut c, "spread", p, b).0, NONE);
        }
    }
    // The broker runs 2 shards: 6 partitions land on both.
    let parts: Vec<(&str, i32, i64)> = (0..6).map(|p| ("spread", p, i64::from(p) + 1)).collect();
    let r = delete_records(&mut c, &parts);
    let want: Vec<(String, i32, i16, i64)> = (0..6)
        .map(|p| ("spread".to_string(), p, NONE, i64::from(p) + 1))
        .collect();
    assert_eq!(r, want);
    for p in 0..6 {
        assert_eq!(earliest(&mut c, "spread", p), i64::from(p) + 1);
    }
}

#[test]
fn librdkafka_deletes_records() {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;
    use rdkafka::{Offset, TopicPartitionList};
    let broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "rdk-dr", 2);
    for p in 0..2 {
        for _ in 0..10 {
            let b = batch_of_size(200, 1, common::recent_ts());
            assert_eq!(kafka::produce_one(&mut c, "rdk-dr", p, b).0, NONE);
        }
    }
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .expect("admin client");
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("rdk-dr", 0, Offset::Offset(4))
        .expect("offset");
    tpl.add_partition_offset("rdk-dr", 1, Offset::End)
        .expect("offset");
    let out =
        futures_lite::future::block_on(admin.delete_records(&tpl, &opts)).expect("delete_records");
    let lows: Vec<(i32, Offset, bool)> = out
        .elements()
        .iter()
        .map(|e| (e.partition(), e.offset(), e.error().is_ok()))
        .collect();
    assert_eq!(
        lows,
        vec![(0, Offset::Offset(4), true), (1, Offset::Offset(10), true)]
    );
    assert_eq!(earliest(&mut c, "rdk-dr", 0), 4);
    assert_eq!(earliest(&mut c, "rdk-dr", 1), 10);
    // Above the high watermark: an error for that partition.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("rdk-dr", 0, Offset::Offset(99))
        .expect("offset");
    let out = futures_lite::future::block_on(admin.delete_records(&tpl, &opts));
    let refused = match &out {
        Err(_) => true,
        Ok(list) => list.elements().iter().any(|e| e.error().is_err()),
    };
    assert!(refused, "{out:?}");
    assert_eq!(earliest(&mut c, "rdk-dr", 0), 4);
}

#[test]
fn kafka_python_deletes_records() {
    let broker = Broker::start(&[]);
    python::run_admin_script("records", &broker.bootstrap(), "py-dr");
    let mut c = RawClient::connect(broker.addr());
    assert_eq!(earliest(&mut c, "py-dr", 0), 10);
    assert_eq!(kafka::latest_offset(&mut c, "py-dr", 0), 10);
}

/// DescribeLogDirs at `version`; returns the response.
fn log_dirs(
    c: &mut RawClient,
    version: i16,
    topics: Option<&[(&str, &[i32])]>,
) -> DescribeLogDirsResponse {
    let req = DescribeLogDirsRequest::default().with_topics(topics.map(|ts| {
        ts.iter()
            .map(|(t, ps)| {
                DescribableLogDirTopic::default()
                    .with_topic(kafka::topic_name(t))
                    .with_partitions(ps.to_vec())
            })
            .collect()
    }));
    c.call(version, &req)
}

/// (topic, partition) -> size, from the one log dir of a response.
fn sizes(resp: &DescribeLogDirsResponse) -> BTreeMap<(String, i32), i64> {
    assert_eq!(resp.error_code, NONE);
    assert_eq!(resp.results.len(), 1, "one log dir");
    let d = &resp.results[0];
    assert_eq!(d.error_code, NONE);
    let mut out = BTreeMap::new();
    for t in &d.topics {
        for p in &t.partitions {
            assert_eq!((p.offset_lag, p.is_future_key), (0, false));
            out.insert((t.name.0.to_string(), p.partition_index), p.partition_size);
        }
    }
    out
}

/// Bytes of the partition's `.log` files on disk.
fn bytes_on_disk(dir: &Path) -> i64 {
    std::fs::read_dir(dir)
        .expect("partition dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| e.metadata().map(|m| m.len() as i64).unwrap_or(0))
        .sum()
}

#[test]
fn describe_log_dirs_reports_partition_sizes_and_filesystem_space() {
    let broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    assert_eq!(c.versions().get(&35), Some(&(1, 4)), "advertised v1-4");
    kafka::create_topic(&mut c, "ld", 2);
    kafka::create_topic(&mut c, "ld-other", 1);
    let produced = [(0, 20), (1, 5)];
    let mut sent = BTreeMap::new();
    for (p, batches) in produced {
        for _ in 0..batches {
            let b = batch_of_size(10_000, 5, common::recent_ts());
            *sent.entry(p).or_insert(0i64) += b.len() as i64;
            assert_eq!(kafka::produce_one(&mut c, "ld", p, b).0, NONE);
        }
    }
    let resp = log_dirs(&mut c, 4, Some(&[("ld", &[0, 1, 9]), ("missing", &[0])]));
    let got = sizes(&resp);
    assert_eq!(
        got.keys().cloned().collect::<Vec<_>>(),
        vec![("ld".to_string(), 0), ("ld".to_string(), 1)],
        "only what the filter names and the broker holds"
    );
    for (p, bytes) in &sent {
        let size = got[&("ld".to_string(), *p)];
        // The stored batches are the produced ones, offsets rewritten: the same bytes.
        assert_eq!(size, *bytes, "ld-{p}");
        assert_eq!(
            size,
            bytes_on_disk(&broker.data_dir().join(format!("ld-{p}")))
        );
    }
    let d = &resp.results[0];
    let data_dir = std::fs::canonicalize(broker.data_dir()).expect("data dir");
    assert_eq!(
        std::fs::canonicalize(d.log_dir.as_str()).expect("log dir exists"),
        data_dir
    );
    assert!(
        d.total_bytes > 0 && d.usable_bytes > 0 && d.usable_bytes <= d.total_bytes,
        "{} {}",
        d.total_bytes,
        d.usable_bytes
    );
    // Null: every topic, the broker's own too; v1 answers the same sizes.
    let all = sizes(&log_dirs(&mut c, 1, None));
    assert!(all.contains_key(&("ld-other".to_string(), 0)));
    assert!(all.contains_key(&("__consumer_offsets".to_string(), 0)));
    assert_eq!(all[&("ld".to_string(), 0)], sent[&0]);
    // An empty topic list asks for nothing.
    assert!(sizes(&log_dirs(&mut c, 4, Some(&[]))).is_empty());
}

#[test]
fn kafka_python_describes_log_dirs() {
    let broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "py-ld", 2);
    let b = batch_of_size(20_000, 4, common::recent_ts());
    let len = b.len() as i64;
    assert_eq!(kafka::produce_one(&mut c, "py-ld", 1, b).0, NONE);
    let out = python::run_admin_script("logdirs", &broker.bootstrap(), "py-ld");
    let reported: BTreeMap<i32, i64> = out
        .lines()
        .filter_map(|l| {
            let mut w = l.strip_prefix("SIZE ")?.split(' ');
            Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
        })
        .collect();
    assert_eq!(reported, [(0, 0), (1, len)].into(), "{out}");
}

#[test]
fn cluster_deletes_records_at_the_leader_and_describes_each_brokers_replicas() {
    let c = cluster::Cluster::start3();
    let controller = c.wait_formed(&[1, 2, 3]);
    let view = c.create_topic_ok(controller, "cdr", 3, 2);
    let parts = view.topic("cdr");
    for (p, part) in &parts {
        let (err, base) = c
            .produce(part.leader, "cdr", *p, &["a", "b", "c", "d", "e"])
            .expect("produce");
        assert_eq!((err, base), (NONE, 0), "cdr-{p} at {}", part.leader);
    }
    let dr = |id: i32, p: i32, offset: i64| -> (i16, i64) {
        let req = DeleteRecordsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![
                DeleteRecordsTopic::default()
                    .with_name(kafka::topic_name("cdr"))
                    .with_partitions(vec![
                        DeleteRecordsPartition::default()
                            .with_partition_index(p)
                            .with_offset(offset),
                    ]),
            ]);
        let (_, resp) = c.call(id, 2, &req).expect("DeleteRecords");
        let r = &resp.topics[0].partitions[0];
        (r.error_code, r.low_watermark)
    };
    let p0 = &parts[&0];
    let follower = p0
        .replicas
        .iter()
        .copied()
        .find(|r| *r != p0.leader)
        .expect("a follower");
    let not_a_replica = c
        .ids()
        .into_iter()
        .find(|id| !p0.replicas.contains(id))
        .expect("a broker without cdr-0");
    const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    assert_eq!(dr(follower, 0, 2), (NOT_LEADER_OR_FOLLOWER, -1));
    assert_eq!(dr(not_a_replica, 0, 2).0, NOT_LEADER_OR_FOLLOWER);
    assert_eq!(dr(p0.leader, 0, 2), (NONE, 2));
    // Asking again for less moves nothing and reports where the start is.
    assert_eq!(dr(p0.leader, 0, 0), (NONE, 2));
    for id in c.ids() {
        let req = DescribeLogDirsRequest::default().with_topics(Some(vec![
            DescribableLogDirTopic::default()
                .with_topic(kafka::topic_name("cdr"))
                .with_partitions(vec![0, 1, 2]),
        ]));
        let (_, resp) = c.call(id, 4, &req).expect("DescribeLogDirs");
        let held: Vec<i32> = sizes(&resp).keys().map(|(_, p)| *p).collect();
        let want: Vec<i32> = parts
            .iter()
            .filter(|(_, part)| part.replicas.contains(&id))
            .map(|(p, _)| *p)
            .collect();
        assert_eq!(held, want, "node {id} describes the replicas it holds");
    }
}

#[test]
fn every_advertised_version_of_delete_records_and_describe_log_dirs_is_served() {
    let broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "vdr", 1);
    let b = batch_of_size(2_000, 10, common::recent_ts());
    let len = b.len() as i64;
    assert_eq!(kafka::produce_one(&mut c, "vdr", 0, b).0, NONE);
    for v in 0..=2 {
        let offset = i64::from(v) + 1;
        let req = DeleteRecordsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![
                DeleteRecordsTopic::default()
                    .with_name(kafka::topic_name("vdr"))
                    .with_partitions(vec![
                        DeleteRecordsPartition::default()
                            .with_partition_index(0)
                            .with_offset(offset),
                    ]),
            ]);
        let resp: DeleteRecordsResponse = c.call(v, &req);
        let p = &resp.topics[0].partitions[0];
        assert_eq!((p.error_code, p.low_watermark), (NONE, offset), "v{v}");
    }
    for v in 1..=4 {
        let got = sizes(&log_dirs(&mut c, v, Some(&[("vdr", &[0])])));
        assert_eq!(got, [(("vdr".to_string(), 0), len)].into(), "v{v}");
    }
}
