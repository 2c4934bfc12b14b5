//! With 2 shards and a topic of 8 partitions, every connection (the kernel spreads them over
//! the shards with SO_REUSEPORT) can write and read every partition: requests for partitions
//! a connection's shard does not own are routed to the owner and answered in request order.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use common::kafka::{self, NONE};
use common::{Broker, RawClient};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiVersionsRequest, BrokerId, FetchRequest, ListOffsetsRequest, ProduceRequest, ProduceResponse,
};
use kafka_protocol::records::RecordBatchDecoder;
use ringbroker::protocol::batch::testing::build_batch;

const PARTITIONS: i32 = 8;
const CONNECTIONS: usize = 12;
const TOPIC: &str = "routed";

fn single_value(c: usize, p: i32, r: usize) -> Vec<u8> {
    format!("single c{c} p{p} r{r}").into_bytes()
}

fn multi_value(c: usize, p: i32, r: usize) -> Vec<u8> {
    format!("multi c{c} p{p} r{r}").into_bytes()
}

fn batch_of(values: &[Vec<u8>], ts: i64) -> Vec<u8> {
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    build_batch(&refs, ts)
}

/// The whole content each partition must hold, in offset order: (value, timestamp).
fn expected() -> BTreeMap<i32, Vec<(Vec<u8>, i64)>> {
    let mut want: BTreeMap<i32, Vec<(Vec<u8>, i64)>> = BTreeMap::new();
    for p in 0..PARTITIONS {
        let w = want.entry(p).or_default();
        for c in 0..CONNECTIONS {
            let ts = single_ts(c, p);
            for r in 0..3 {
                w.push((single_value(c, p, r), ts + r as i64));
            }
        }
        for c in 0..CONNECTIONS {
            let ts = multi_ts(c);
            for r in 0..2 {
                w.push((multi_value(c, p, r), ts + r as i64));
            }
        }
    }
    want
}

fn single_ts(c: usize, p: i32) -> i64 {
    common::recent_ts() + (c as i64) * 100 + p as i64 * 10
}

fn multi_ts(c: usize) -> i64 {
    common::recent_ts() + 100_000 + (c as i64) * 100
}

fn read_back(conns: &mut [RawClient], want: &BTreeMap<i32, Vec<(Vec<u8>, i64)>>) {
    for (ci, c) in conns.iter_mut().enumerate() {
        for (p, w) in want {
            assert_eq!(
                kafka::latest_offset(c, TOPIC, *p),
                w.len() as i64,
                "connection {ci}: latest offset of partition {p}"
            );
            let recs = kafka::fetch_all(c, TOPIC, *p, 0);
            let got: Vec<(i64, Vec<u8>, i64)> = recs
                .iter()
                .map(|r| {
                    (
                        r.offset,
                        r.value.as_ref().map(|v| v.to_vec()).unwrap_or_default(),
                        r.timestamp,
                    )
                })
                .collect();
            let exp: Vec<(i64, Vec<u8>, i64)> = w
                .iter()
                .enumerate()
                .map(|(i, (v, ts))| (i as i64, v.clone(), *ts))
                .collect();
            assert_eq!(got.len(), exp.len(), "connection {ci}: partition {p} count");
            for (g, e) in got.iter().zip(&exp) {
                assert_eq!(
                    (g.0, String::from_utf8_lossy(&g.1), g.2),
                    (e.0, String::from_utf8_lossy(&e.1), e.2),
                    "connection {ci}: partition {p}"
                );
            }
        }
    }
}

#[test]
fn every_connection_reaches_every_partition() {
    let _serial = common::heavy_lock();
    let mut broker = Broker::start(&[]);
    let mut conns: Vec<RawClient> = (0..CONNECTIONS)
        .map(|_| RawClient::connect(broker.addr()))
        .collect();
    kafka::create_topic(&mut conns[0], TOPIC, PARTITIONS);

    // Every connection sees the topic with all partitions led by this broker.
    for (ci, c) in conns.iter_mut().enumerate() {
        let md = kafka::metadata(c, &[TOPIC]);
        assert_eq!(md.brokers.len(), 1, "connection {ci}: one broker");
        let b = &md.brokers[0];
        assert_eq!(b.port, broker.port as i32, "advertised port");
        let t = &md.topics[0];
        assert_eq!(t.error_code, NONE);
        let mut parts: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
        parts.sort();
        assert_eq!(
            parts,
            (0..PARTITIONS).collect::<Vec<_>>(),
            "connection {ci}"
        );
        for p in &t.partitions {
            assert_eq!(p.error_code, NONE);
            assert_eq!(
                p.leader_id, b.node_id,
                "partition {} leader",
                p.partition_index
            );
        }
    }

    // Each connection pipelines one single-partition produce per partition: all requests
    // are written before any response is read, and the responses come back in order.
    for (ci, c) in conns.iter_mut().enumerate() {
        let v = c.pick_version::<ProduceRequest>(12);
        let mut ids = Vec::new();
        for p in 0..PARTITIONS {
            let vals: Vec<Vec<u8>> = (0..3).map(|r| single_value(ci, p, r)).collect();
            let req = kafka::produce_request(&[(TOPIC, p, batch_of(&vals, single_ts(ci, p)))]);
            ids.push((p, c.send(v, &req)));
        }
        for (p, id) in ids {
            let (_, resp): (_, ProduceResponse) = c
                .recv::<ProduceRequest>(v, id)
                .unwrap_or_else(|e| panic!("connection {ci}: produce to partition {p}: {e:#}"));
            let r = kafka::flatten_produce(&resp);
            assert_eq!(
                r,
                vec![(TOPIC.to_string(), p, NONE, 3 * ci as i64)],
                "connection {ci}: produce to partition {p}"
            );
        }
    }

    // Then each connection sends one produce request spanning all partitions.
    for (ci, c) in conns.iter_mut().enumerate() {
        let parts: Vec<(&str, i32, Vec<u8>)> = (0..PARTITIONS)
            .map(|p| {
                let vals: Vec<Vec<u8>> = (0..2).map(|r| multi_value(ci, p, r)).collect();
                (TOPIC, p, batch_of(&vals, multi_ts(ci)))
            })
            .collect();
        let mut r = kafka::produce(c, &parts);
        r.sort();
        let base = 3 * CONNECTIONS as i64 + 2 * ci as i64;
        let want: Vec<(String, i32, i16, i64)> = (0..PARTITIONS)
            .map(|p| (TOPIC.to_string(), p, NONE, base))
            .collect();
        assert_eq!(r, want, "connection {ci}: multi-partition produce");
    }

    let want = expected();
    read_back(&mut conns, &want);

    // One fetch spanning all partitions from every connection.
    for (ci, c) in conns.iter_mut().enumerate() {
        let all: Vec<(i32, i64)> = (0..PARTITIONS).map(|p| (p, 0)).collect();
        let mut r = kafka::fetch(c, TOPIC, &all);
        r.sort_by_key(|x| x.0);
        assert_eq!(
            r.len(),
            PARTITIONS as usize,
            "connection {ci}: all partitions answered"
        );
        for (p, err, hw, recs) in r {
            assert_eq!(err, NONE);
            assert_eq!(
                hw,
                want[&p].len() as i64,
                "connection {ci}: partition {p} high watermark"
            );
            assert!(
                !recs.is_empty(),
                "connection {ci}: partition {p} returned records"
            );
            assert_eq!(recs[0].offset, 0);
            assert_eq!(
                recs[0].value.as_deref(),
                Some(want[&p][0].0.as_slice()),
                "connection {ci}: partition {p} first record"
            );
        }
    }

    // The same after a graceful restart, with the old connections still open at SIGTERM.
    broker.restart();
    drop(conns);
    let mut conns: Vec<RawClient> = (0..CONNECTIONS)
        .map(|_| RawClient::connect(broker.addr()))
        .collect();
    read_back(&mut conns, &want);
    broker.stop();
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "pipelined", PARTITIONS);
    let pv = c.pick_version::<ProduceRequest>(12);
    let lv = c.pick_version::<ListOffsetsRequest>(7);

    // 200 requests written before any response is read: produces spread over all
    // partitions (so over both shards), with ApiVersions and ListOffsets in between.
    enum Sent {
        Produce(i32, i32, i64),
        Versions(i32),
        Offsets(i32),
    }
    let mut sent = Vec::new();
    let mut next_offset = [0i64; PARTITIONS as usize];
    for i in 0..200usize {
        match i % 10 {
            3 => sent.push(Sent::Versions(c.send(3, &ApiVersionsRequest::default()))),
            7 => {
                let req = ListOffsetsRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_topics(vec![
                        ListOffsetsTopic::default()
                            .with_name(kafka::topic_name("pipelined"))
                            .with_partitions(vec![
                                ListOffsetsPartition::default()
                                    .with_partition_index(0)
                                    .with_current_leader_epoch(-1)
                                    .with_timestamp(-2),
                            ]),
                    ]);
                sent.push(Sent::Offsets(c.send(lv, &req)));
            }
            _ => {
                // Partitions in a scrambled order, several requests per partition.
                let p = ((i * 5) % PARTITIONS as usize) as i32;
                let value = format!("pipe {i}").into_bytes();
                let req = kafka::produce_request(&[(
                    "pipelined",
                    p,
                    build_batch(&[&value], common::recent_ts() + i as i64),
                )]);
                let id = c.send(pv, &req);
                sent.push(Sent::Produce(id, p, next_offset[p as usize]));
                next_offset[p as usize] += 1;
            }
        }
    }
    for s in sent {
        match s {
            Sent::Produce(id, p, want) => {
                let (_, resp) = c
                    .recv::<ProduceRequest>(pv, id)
                    .unwrap_or_else(|e| panic!("produce response {id}: {e:#}"));
                assert_eq!(
                    kafka::flatten_produce(&resp),
                    vec![("pipelined".to_string(), p, NONE, want)],
                    "request {id}: produces of one connection are applied in request order"
                );
            }
            Sent::Versions(id) => {
                let (_, resp) = c
                    .recv::<ApiVersionsRequest>(3, id)
                    .unwrap_or_else(|e| panic!("ApiVersions response {id}: {e:#}"));
                assert_eq!(resp.error_code, NONE);
            }
            Sent::Offsets(id) => {
                let (_, resp) = c
                    .recv::<ListOffsetsRequest>(lv, id)
                    .unwrap_or_else(|e| panic!("ListOffsets response {id}: {e:#}"));
                assert_eq!(resp.topics[0].partitions[0].error_code, NONE);
                assert_eq!(resp.topics[0].partitions[0].offset, 0, "earliest");
            }
        }
    }
    for p in 0..PARTITIONS {
        let recs = kafka::fetch_all(&mut c, "pipelined", p, 0);
        assert_eq!(recs.len() as i64, next_offset[p as usize], "partition {p}");
        let mut last = None;
        for r in recs {
            let v = String::from_utf8(r.value.expect("value").to_vec()).expect("utf8");
            let i: usize = v.trim_start_matches("pipe ").parse().expect("index");
            assert!(last < Some(i), "partition {p}: {v} after {last:?}");
            last = Some(i);
        }
    }
}

#[test]
fn a_parked_fetch_is_woken_by_a_produce_on_another_connection() {
    let broker = Broker::start(&[]);
    let mut reader = RawClient::connect(broker.addr());
    let mut writer = RawClient::connect(broker.addr());
    kafka::create_topic(&mut writer, "parked", PARTITIONS);

    // Fetch all (empty) partitions, waiting up to 20 s for at least one byte.
    let fv = reader.pick_version::<FetchRequest>(12);
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(20_000)
        .with_min_bytes(1)
        .with_max_bytes(1024 * 1024)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(kafka::topic_name("parked"))
                .with_partitions(
                    (0..PARTITIONS)
                        .map(|p| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_current_leader_epoch(-1)
                                .with_fetch_offset(0)
                                .with_last_fetched_epoch(-1)
                                .with_log_start_offset(-1)
                                .with_partition_max_bytes(1024 * 1024)
                        })
                        .collect(),
                ),
        ]);
    let id = reader.send(fv, &req);
    // Give the fetch time to park (not an assertion: an early produce passes too).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        kafka::produce_one(
            &mut writer,
            "parked",
            5,
            build_batch(&[b"wake up"], common::recent_ts())
        ),
        (NONE, 0)
    );
    let (_, resp) = reader
        .recv::<FetchRequest>(fv, id)
        .expect("the parked fetch is answered");
    let mut found = Vec::new();
    for t in &resp.responses {
        for p in &t.partitions {
            assert_eq!(p.error_code, NONE);
            if let Some(r) = &p.records {
                let mut b = r.clone();
                for set in RecordBatchDecoder::decode_all(&mut b).expect("decode batches") {
                    for rec in set.records {
                        found.push((p.partition_index, rec.offset, rec.value));
                    }
                }
            }
        }
    }
    assert_eq!(
        found,
        vec![(5, 0, Some(Bytes::from_static(b"wake up")))],
        "the fetch must wait for data (min_bytes=1, max_wait_ms=20000) and return the new record"
    );
}

#[test]
fn a_thousand_partitions_in_one_request() {
    const MANY: i32 = 1000;
    let _serial = common::heavy_lock();
    let mut broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "wide", MANY);
    let ts = common::recent_ts();
    let parts: Vec<(&str, i32, Vec<u8>)> = (0..MANY)
        .map(|p| ("wide", p, batch_of(&[format!("wide {p}").into_bytes()], ts)))
        .collect();
    let mut r = kafka::produce(&mut c, &parts);
    r.sort();
    let want: Vec<(String, i32, i16, i64)> = (0..MANY)
        .map(|p| ("wide".to_string(), p, NONE, 0))
        .collect();
    assert_eq!(r, want, "one produce request for {MANY} partitions");

    for round in ["before restart", "after restart"] {
        let all: Vec<(i32, i64)> = (0..MANY).map(|p| (p, 0)).collect();
        let mut got = kafka::fetch(&mut c, "wide", &all);
        got.sort_by_key(|x| x.0);
        assert_eq!(
            got.len(),
            MANY as usize,
            "{round}: every partition answered"
        );
        for (p, err, hw, recs) in got {
            assert_eq!(
                (err, hw, recs.len()),
                (NONE, 1, 1),
                "{round}: partition {p}"
            );
            assert_eq!(
                recs[0].value.as_deref(),
                Some(format!("wide {p}").as_bytes()),
                "{round}: partition {p}"
            );
        }
        if round == "before restart" {
            broker.restart();
            c = RawClient::connect(broker.addr());
        }
    }
}
