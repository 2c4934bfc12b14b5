use super::render::render;
use super::{MAX_REQUEST_BYTES, Parsed, parse};
use crate::shard::metrics::{ApiSnapshot, PartitionSnapshot, ShardSnapshot};
use crate::stats::{Histogram, LATENCY_US};

fn req(method: &str, path: &str) -> Parsed {
    Parsed::Request {
        method: method.into(),
        path: path.into(),
    }
}

#[test]
fn a_scrape_request_parses() {
    let r = parse(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
    assert_eq!(r, req("GET", "/metrics"));
    assert_eq!(
        parse(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
        req("GET", "/metrics")
    );
    assert_eq!(
        parse(b"POST /other HTTP/1.1\r\n\r\n"),
        req("POST", "/other")
    );
}

#[test]
fn truncated_requests_wait_for_more() {
    let full = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    for n in 0..full.len() {
        assert_eq!(parse(&full[..n]), Parsed::Incomplete, "{n} bytes");
    }
}

#[test]
fn oversized_requests_are_refused() {
    let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    big.resize(MAX_REQUEST_BYTES, b'a');
    assert!(matches!(parse(&big), Parsed::Bad(_)));
    big.extend_from_slice(b"\r\n\r\n");
    assert!(matches!(parse(&big), Parsed::Bad(_)));
}

#[test]
fn garbage_is_refused() {
    for bad in [
        &b"\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET /metrics\r\n\r\n",
        b"GET metrics HTTP/1.1\r\n\r\n",
        b"get /metrics HTTP/1.1\r\n\r\n",
        b"GET /metrics HTTP/2\r\n\r\n",
        b"GET  /metrics HTTP/1.1\r\n\r\n",
        b"GET /metrics HTTP/1.1 extra\r\n\r\n",
        b"\xff\xfe /metrics HTTP/1.1\r\n\r\n",
        b"\x00\x00\x00\x10\x00\x12\x00\x03\r\n\r\n",
    ] {
        assert!(matches!(parse(bad), Parsed::Bad(_)), "{bad:?}");
    }
}

#[test]
fn the_renderer_writes_text_a_prometheus_parser_reads() {
    let h = Histogram::new(LATENCY_US);
    h.observe(120);
    h.observe(3_000_000);
    let shard = ShardSnapshot {
        shard: 1,
        partitions: vec![PartitionSnapshot {
            topic: "t.x-1".into(),
            partition: 3,
            bytes_in: 1234,
            records_in: 10,
            bytes_out: 99,
            log_end_offset: 10,
            sync_us: h.snapshot(),
            ..Default::default()
        }],
        apis: vec![ApiSnapshot {
            key: 0,
            requests: 7,
            failures: vec![("decode", 2)],
            latency_us: h.snapshot(),
        }],
        connections_open: 2,
        mesh_sent: vec![5, 0],
        ..Default::default()
    };
    let text = render(vec![shard]).expect("renders");
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("parses");
    let find = |name: &str, label: (&str, &str)| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get(label.0) == Some(label.1))
            .map(|s| s.value.clone())
    };
    assert_eq!(
        find("ringbroker_partition_in_bytes_total", ("topic", "t.x-1")),
        Some(prometheus_parse::Value::Counter(1234.0)),
        "{text}"
    );
    assert_eq!(
        find("ringbroker_requests_total", ("api", "Produce")),
        Some(prometheus_parse::Value::Counter(7.0))
    );
    assert_eq!(
        find("ringbroker_connections", ("shard", "1")),
        Some(prometheus_parse::Value::Gauge(2.0))
    );
    assert_eq!(
        find("ringbroker_mesh_requests_total", ("to", "0")),
        Some(prometheus_parse::Value::Counter(5.0))
    );
    match find("ringbroker_request_duration_seconds", ("api", "Produce")) {
        Some(prometheus_parse::Value::Histogram(b)) => {
            let inf = b.last().expect("buckets");
            assert_eq!(inf.count, 2.0);
            let first = b.first().expect("buckets");
            assert!(first.less_than < 0.0001 && first.count == 0.0, "{b:?}");
            // 120 µs and 3 s: one in each of the buckets up to 250 µs and up to 5 s.
            let at = |le: f64| b.iter().find(|x| x.less_than == le).map(|x| x.count);
            assert_eq!(at(0.0001), Some(0.0));
            assert_eq!(at(0.00025), Some(1.0));
            assert_eq!(at(2.5), Some(1.0));
            assert_eq!(at(5.0), Some(2.0));
        }
        other => panic!("no latency histogram: {other:?}\n{text}"),
    }
    assert!(text.contains("# TYPE ringbroker_fdatasync_duration_seconds histogram"));
}
