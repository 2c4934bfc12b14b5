//! Idempotent producers: raw-protocol checks of duplicates, gaps and stale epochs (also
//! across a restart), and librdkafka with `enable.idempotence=true` producing through a
//! proxy that keeps cutting connections mid-request: every message ends up exactly once,
//! in order.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Broker;
use common::RawClient;
use common::kafka::*;
use kafka_protocol::messages::{InitProducerIdRequest, ProducerId};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use ringbroker::protocol::batch::{set_producer, testing::build_batch};

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;

fn idempotent_batch(values: &[&[u8]], pid: i64, epoch: i16, seq: i32) -> Vec<u8> {
    let mut b = build_batch(values, common::recent_ts());
    set_producer(&mut b, pid, epoch, seq);
    b
}

fn init_producer_id(c: &mut RawClient, current: Option<(i64, i16)>) -> (i16, i64, i16) {
    let v = c.pick_version::<InitProducerIdRequest>(4);
    let (pid, epoch) = current.unwrap_or((-1, -1));
    let req = InitProducerIdRequest::default()
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch);
    let resp = c.call(v, &req);
    (resp.error_code, resp.producer_id.0, resp.producer_epoch)
}

#[test]
fn duplicates_gaps_and_stale_epochs_over_the_raw_protocol_and_a_restart() {
    let mut broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    create_topic(&mut c, "idem", 1);

    let (err, pid, epoch) = init_producer_id(&mut c, None);
    assert_eq!((err, epoch), (NONE, 0));
    assert!(pid >= 0);
    let (_, pid2, _) = init_producer_id(&mut c, None);
    assert_ne!(
        pid, pid2,
        "every InitProducerId without an id gets a fresh one"
    );

    let first = idempotent_batch(&[b"a", b"b"], pid, 0, 0);
    assert_eq!(produce_one(&mut c, "idem", 0, first.clone()), (NONE, 0));
    // The same batch again: acknowledged with its original offset, appended once.
    assert_eq!(produce_one(&mut c, "idem", 0, first.clone()), (NONE, 0));
    assert_eq!(latest_offset(&mut c, "idem", 0), 2);
    let second = idempotent_batch(&[b"c"], pid, 0, 2);
    assert_eq!(produce_one(&mut c, "idem", 0, second.clone()), (NONE, 2));
    assert_eq!(produce_one(&mut c, "idem", 0, first.clone()), (NONE, 0));
    // A gap: sequence 5 after 2.
    let gap = idempotent_batch(&[b"x"], pid, 0, 5);
    assert_eq!(
        produce_one(&mut c, "idem", 0, gap).0,
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    assert_eq!(latest_offset(&mut c, "idem", 0), 3);

    // KIP-360: the producer passes its id and epoch and gets the epoch bumped.
    let (err, same, bumped) = init_producer_id(&mut c, Some((pid, 0)));
    assert_eq!((err, same, bumped), (NONE, pid, 1));
    let new_epoch = idempotent_batch(&[b"d"], pid, 1, 0);
    assert_eq!(produce_one(&mut c, "idem", 0, new_epoch.clone()), (NONE, 3));
    let stale = idempotent_batch(&[b"e"], pid, 0, 3);
    assert_eq!(
        produce_one(&mut c, "idem", 0, stale.clone()).0,
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(latest_offset(&mut c, "idem", 0), 4);

    // The state is rebuilt from the log on restart: retries are still deduplicated, and
    // the stale epoch is still fenced.
    drop(c);
    broker.restart();
    let mut c = RawClient::connect(broker.addr());
    assert_eq!(produce_one(&mut c, "idem", 0, new_epoch), (NONE, 3));
    assert_eq!(
        produce_one(&mut c, "idem", 0, stale).0,
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        produce_one(&mut c, "idem", 0, idempotent_batch(&[b"f"], pid, 1, 2)).0,
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    assert_eq!(
        produce_one(&mut c, "idem", 0, idempotent_batch(&[b"f"], pid, 1, 1)),
        (NONE, 4)
    );
    assert_eq!(latest_offset(&mut c, "idem", 0), 5);
    // Producer ids never repeat across restarts.
    let (_, pid3, _) = init_producer_id(&mut c, None);
    assert!(pid3 > pid2, "{pid3} after {pid2}");
    let values: Vec<Vec<u8>> = fetch_all(&mut c, "idem", 0, 0)
        .into_iter()
        .map(|r| r.value.map(|v| v.to_vec()).unwrap_or_default())
        .collect();
    assert_eq!(
        values,
        vec![
            b"a".to_vec(),
            b"b".to_vec(),
            b"c".to_vec(),
            b"d".to_vec(),
            b"f".to_vec()
        ]
    );
}

#[test]
fn every_advertised_init_producer_id_version_is_served() {
    let broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    let (min, max) = c.versions()[&22];
    assert_eq!((min, max), (0, 4));
    let mut seen = Vec::new();
    for v in min..=max {
        let resp = c.call(
            v,
            &InitProducerIdRequest::default()
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        );
        assert_eq!(resp.error_code, NONE, "v{v}");
        assert_eq!(resp.producer_epoch, 0, "v{v}");
        seen.push(resp.producer_id.0);
    }
    seen.dedup();
    assert_eq!(seen.len(), 5, "fresh ids: {seen:?}");
    // A transactional id gets its producer id from the id's coordinator: a timeout above
    // transaction.max.timeout.ms is refused, and each init bumps the id's epoch (fencing
    // the producer that held the previous one).
    let init_txn = |c: &mut RawClient, timeout_ms: i32| {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(kafka_protocol::messages::TransactionalId(
                kafka_protocol::protocol::StrBytes::from_static_str("tx"),
            )))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        // The first lookup creates __transaction_state: retry while it loads.
        for _ in 0..100 {
            let resp: kafka_protocol::messages::InitProducerIdResponse = c.call(4, &req);
            if resp.error_code != 15 && resp.error_code != 14 {
                return resp;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no transaction coordinator");
    };
    let resp = init_txn(&mut c, 900_001);
    assert_eq!(resp.error_code, 50, "INVALID_TRANSACTION_TIMEOUT");
    let first = init_txn(&mut c, 60_000);
    assert_eq!((first.error_code, first.producer_epoch), (NONE, 0));
    let second = init_txn(&mut c, 60_000);
    assert_eq!(second.error_code, NONE);
    assert_eq!(second.producer_id, first.producer_id);
    assert_eq!(second.producer_epoch, 1);
    assert!(!seen.contains(&first.producer_id.0), "a fresh producer id");
}

/// A TCP proxy that forwards to `target` and, every `period`, cuts every open connection
/// (both directions at once), so requests and responses are lost mid-flight.
struct ChaosProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    pub cuts: Arc<AtomicUsize>,
}

impl ChaosProxy {
    fn start_on(port: u16, target: std::net::SocketAddr, period: Duration) -> Option<ChaosProxy> {
        let listener = TcpListener::bind(("127.0.0.1", port)).ok()?;
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(AtomicUsize::new(0));
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        {
            let (stop, live) = (stop.clone(), live.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let Ok((client, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    };
                    let _ = client.set_nonblocking(false);
                    let Ok(server) = TcpStream::connect(target) else {
                        continue;
                    };
                    for s in [&client, &server] {
                        if let Ok(c) = s.try_clone() {
                            live.lock().unwrap().push(c);
                        }
                    }
                    for (mut from, mut to) in [
                        (client.try_clone().unwrap(), server.try_clone().unwrap()),
                        (server, client),
                    ] {
                        std::thread::spawn(move || {
                            let mut buf = vec![0u8; 64 * 1024];
                            loop {
                                match from.read(&mut buf) {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => {
                                        if to.write_all(&buf[..n]).is_err() {
                                            break;
                                        }
                                    }
                                }
                            }
                            let _ = to.shutdown(Shutdown::Both);
                            let _ = from.shutdown(Shutdown::Both);
                        });
                    }
                }
            });
        }
        {
            let (stop, cuts) = (stop.clone(), cuts.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(period);
                    let conns: Vec<TcpStream> = live.lock().unwrap().drain(..).collect();
                    if !conns.is_empty() {
                        cuts.fetch_add(1, Ordering::SeqCst);
                    }
                    for c in conns {
                        let _ = c.shutdown(Shutdown::Both);
                    }
                }
            });
        }
        Some(ChaosProxy { port, stop, cuts })
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[test]
fn librdkafka_idempotent_producer_through_dropped_connections_writes_each_message_once() {
    let _heavy = common::heavy_lock();
    const PARTITIONS: i32 = 4;
    const MESSAGES: usize = 30_000;
    // The broker advertises the proxy, so every connection of the client goes through it.
    let proxy_port = common::free_port();
    let advertised = format!("advertised=127.0.0.1:{proxy_port}");
    let broker = Broker::start(&[&advertised]);
    let mut c = RawClient::connect(broker.addr());
    create_topic(&mut c, "chaos", PARTITIONS);

    let proxy = {
        // Bind the advertised port: retry briefly in case free_port's pick is slow to free.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let p = ChaosProxy::start_on(proxy_port, broker.addr(), Duration::from_millis(300));
            match p {
                Some(p) => break p,
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                None => panic!("cannot bind proxy port {proxy_port}"),
            }
        }
    };

    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{}", proxy.port))
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.num.messages", "500")
        .set("message.timeout.ms", "120000")
        .set("request.timeout.ms", "3000")
        .set("retry.backoff.ms", "20")
        // Reconnect at once after each cut: librdkafka's backoff otherwise grows to
        // seconds, and the ~6 s of producing could then see fewer than the 10 cuts the
        // test asks for (seen once on a loaded machine).
        .set("reconnect.backoff.ms", "10")
        .set("reconnect.backoff.max.ms", "100")
        .set("socket.timeout.ms", "3000")
        .create()
        .expect("create producer");
    for i in 0..MESSAGES {
        let p = (i % PARTITIONS as usize) as i32;
        let payload = format!("m-{i}");
        let key = i.to_string();
        let mut record = BaseRecord::to("chaos")
            .partition(p)
            .key(&key)
            .payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        // Spread the produce over ~6 s so it spans many connection cuts.
        if i % 100 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .expect("all messages delivered");
    let cuts = proxy.cuts.load(Ordering::SeqCst);
    drop(producer);
    drop(proxy);
    assert!(cuts >= 10, "the proxy cut connections only {cuts} times");

    // Read straight from the broker (its metadata points at the proxy, now gone): each
    // partition holds its messages once, in order.
    let mut per_partition: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    for p in 0..PARTITIONS {
        let recs = fetch_all(&mut c, "chaos", p, 0);
        let ids: Vec<usize> = recs
            .iter()
            .map(|r| {
                let v = r.value.as_ref().expect("value");
                let s = std::str::from_utf8(v).expect("utf8");
                s.strip_prefix("m-").expect("prefix").parse().expect("id")
            })
            .collect();
        per_partition.insert(p, ids);
    }
    for (p, ids) in &per_partition {
        let expected: Vec<usize> = (0..MESSAGES)
            .filter(|i| (i % PARTITIONS as usize) as i32 == *p)
            .collect();
        assert_eq!(
            ids.len(),
            expected.len(),
            "partition {p}: duplicates or losses after {cuts} cuts"
        );
        assert_eq!(ids, &expected, "partition {p} out of order");
    }
    eprintln!("{MESSAGES} messages exactly once through {cuts} connection cuts");
}
