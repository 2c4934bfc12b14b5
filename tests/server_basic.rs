//! Smoke test: start the real broker binary, create a topic with the rdkafka admin client,
//! produce a few messages and consume them back.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Broker {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        // SIGTERM: the broker stops gracefully; kill only if it does not.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
    }
}

fn start_broker() -> Broker {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ringbroker"))
        .args(["serve", "--listen", &addr, "--data-dir"])
        .arg(dir.path())
        .args(["--shards", "2", "--set", "message.max.bytes=100000"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start ringbroker");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "broker did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    Broker {
        child,
        addr,
        _dir: dir,
    }
}

#[test]
fn create_produce_consume() {
    let broker = start_broker();

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .create()
        .unwrap();
    let topic = NewTopic::new("smoke", 3, TopicReplication::Fixed(1));
    let results =
        futures_lite::future::block_on(admin.create_topics([&topic], &AdminOptions::new()))
            .unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    // A second creation reports that the topic exists.
    let again = futures_lite::future::block_on(admin.create_topics([&topic], &AdminOptions::new()))
        .unwrap();
    assert!(again[0].is_err(), "{again:?}");

    // Bad creations are refused with Kafka's error codes.
    let bad = [
        NewTopic::new("bad/name", 1, TopicReplication::Fixed(1)),
        NewTopic::new("rf3", 1, TopicReplication::Fixed(3)),
        NewTopic::new("zero", 0, TopicReplication::Fixed(1)),
        NewTopic::new("conf", 1, TopicReplication::Fixed(1)).set("no.such.config", "1"),
    ];
    let results =
        futures_lite::future::block_on(admin.create_topics(&bad, &AdminOptions::new())).unwrap();
    let codes: Vec<_> = results
        .iter()
        .map(|r| r.as_ref().map_err(|(_, code)| *code))
        .collect();
    use rdkafka::types::RDKafkaErrorCode as E;
    assert_eq!(
        codes,
        vec![
            Err(E::InvalidTopic),
            Err(E::InvalidReplicationFactor),
            Err(E::InvalidPartitions),
            Err(E::InvalidConfig),
        ]
    );

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("compression.type", "gzip")
        .create()
        .unwrap();
    for p in 0..3 {
        for i in 0..5 {
            let value = format!("p{p}-m{i}");
            let record = FutureRecord::<(), _>::to("smoke")
                .partition(p)
                .payload(&value);
            let delivery =
                futures_lite::future::block_on(producer.send(record, Duration::from_secs(10)))
                    .map_err(|(e, _)| e)
                    .unwrap();
            assert_eq!((delivery.partition, delivery.offset), (p, i as i64));
        }
    }

    // Records over message.max.bytes are refused, and nothing of them is appended.
    // Incompressible bytes (a xorshift stream), so gzip cannot shrink it under the limit.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let big: Vec<u8> = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let record = FutureRecord::<(), _>::to("smoke")
        .partition(0)
        .payload(&big);
    let err = futures_lite::future::block_on(producer.send(record, Duration::from_secs(10)))
        .map(|_| ())
        .map_err(|(e, _)| e.rdkafka_error_code());
    assert_eq!(err, Err(Some(E::MessageSizeTooLarge)));

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("group.id", "unused")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset("smoke", p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < 15 && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            let value = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
            assert_eq!(value, format!("p{}-m{}", m.partition(), m.offset()));
            seen.push(value);
        }
    }
    seen.sort();
    let mut expected: Vec<String> = (0..3)
        .flat_map(|p| (0..5).map(move |i| format!("p{p}-m{i}")))
        .collect();
    expected.sort();
    assert_eq!(seen, expected);

    let (low, high) = consumer
        .fetch_watermarks("smoke", 1, Duration::from_secs(5))
        .unwrap();
    assert_eq!((low, high), (0, 5));

    let deleted =
        futures_lite::future::block_on(admin.delete_topics(&["smoke"], &AdminOptions::new()))
            .unwrap();
    assert!(deleted[0].is_ok(), "{deleted:?}");
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(5))
        .unwrap();
    assert!(metadata.topics().iter().all(|t| t.name() != "smoke"));
}
