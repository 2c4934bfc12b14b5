//! The consumer path against the machine's loopback limit, in one run:
//! - loopback TCP bandwidth (a plain socket pair in this process, and iperf3 if installed);
//! - fetch throughput of one caught-up consumer reading large batches from a release
//!   broker (`io=buffered`, data in the page cache), as a ratio to that bandwidth;
//! - broker CPU time per GiB fetched with zero-copy sends (`fetch.zero.copy=true`, the
//!   default) and with copying writes (`false`), from /proc/<pid>/stat.
//!
//! `cargo bench --bench fetch_limits` writes `perf/results/fetch-limits-<date>.json` and
//! prints a markdown table. Under `cargo test` it runs a tiny smoke version.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, FetchRequest, ProduceRequest, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use ringbroker::protocol::batch::{self, testing::batch_of_size};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Client {
    stream: TcpStream,
    next_id: i32,
}

impl Client {
    fn connect(port: u16) -> Client {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) {
                stream.set_nodelay(true).expect("nodelay");
                return Client { stream, next_id: 1 };
            }
            assert!(Instant::now() < deadline, "broker did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a request and reads only the response length; the caller reads the rest.
    fn send_only<R: Request>(&mut self, version: i16, req: &R) -> usize {
        self.send(version, req);
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).expect("response length");
        i32::from_be_bytes(len) as usize
    }

    fn send<R: Request>(&mut self, version: i16, req: &R) {
        let mut body = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.next_id)
            .with_client_id(Some(StrBytes::from_static_str("fetch-bench")))
            .encode(
                &mut body,
                ApiKey::try_from(R::KEY)
                    .expect("key")
                    .request_header_version(version),
            )
            .expect("header");
        req.encode(&mut body, version).expect("body");
        self.next_id += 1;
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).expect("send");
    }

    fn call<R: Request>(&mut self, version: i16, req: &R) -> Bytes {
        self.send(version, req);
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).expect("response length");
        let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut resp).expect("response");
        let mut b = Bytes::from(resp);
        b.advance(4); // correlation id
        if R::Response::header_version(version) >= 1 {
            b.advance(1); // empty tagged fields
        }
        b
    }
}

fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

fn start_broker(
    data: &std::path::Path,
    port: u16,
    zero_copy: bool,
    congestion: Option<&str>,
) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ringbroker"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--shards",
            "1",
        ])
        .arg("--data-dir")
        .arg(data)
        .args(["--set", &format!("fetch.zero.copy={zero_copy}")])
        .args([
            "--set",
            &format!("socket.tcp.congestion={}", congestion.unwrap_or("")),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start broker")
}

fn stop(mut child: Child) {
    // SAFETY: plain kill(2) on our child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Reads the whole partition from offset 0 with large fetches; returns (bytes, seconds).
/// The client does what a consumer must and no more: it reads each response into one
/// reused buffer and walks the batch headers to find the next offset.
fn fetch_all(c: &mut Client, end_offset: i64, fetch_max: i32) -> (u64, f64) {
    let mut offset = 0i64;
    let mut bytes = 0u64;
    let mut buf: Vec<u8> = Vec::new();
    let start = Instant::now();
    while offset < end_offset {
        let req = FetchRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(fetch_max)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(topic("bench"))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(fetch_max),
                    ]),
            ]);
        let len = c.send_only(11, &req);
        if buf.len() < len {
            buf.resize(len, 0);
        }
        c.stream.read_exact(&mut buf[..len]).expect("response");
        // v11 layout: correlation id, throttle, error, session, topics[1], name, partitions[1],
        // index, error, hw, lso, log start, aborted (-1 or 0 count), preferred replica, records.
        let mut at = 4 + 4 + 2 + 4 + 4;
        let name_len = i16::from_be_bytes([buf[at], buf[at + 1]]) as usize;
        at += 2 + name_len + 4 + 4;
        let error = i16::from_be_bytes([buf[at], buf[at + 1]]);
        at += 2 + 8 + 8 + 8;
        let aborted = i32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"));
        at += 4 + aborted.max(0) as usize * 16 + 4;
        let records_len = i32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"));
        at += 4;
        assert!(
            error == 0 && records_len > 0,
            "data at offset {offset}: error {error}"
        );
        let records = &buf[at..at + records_len as usize];
        let mut pos = 0usize;
        while pos + 27 <= records.len() {
            let (base, length) = batch::peek_offset_and_size(&records[pos..]).expect("header");
            let delta =
                i32::from_be_bytes(records[pos + 23..pos + 27].try_into().expect("4 bytes"));
            offset = base + delta as i64 + 1;
            pos += length as usize + batch::LOG_OVERHEAD;
        }
        bytes += records_len as u64;
    }
    (bytes, start.elapsed().as_secs_f64())
}

/// One round of one send mode, or a mode's median over the rounds:
/// (zero_copy, bytes/s, broker CPU s/GiB).
type Sample = (bool, f64, f64);

/// Everything measured under one congestion control.
struct Part {
    /// What the sockets used, e.g. "bbr (system default)" or "cubic".
    congestion: String,
    loopback: f64,
    iperf: Option<f64>,
    medians: Vec<Sample>,
    samples: Vec<Sample>,
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (log_bytes, batch_bytes) = if full {
        (1u64 << 30, 1_000_000usize)
    } else {
        (8 << 20, 256 << 10)
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&root).expect("bench dir");
    let tmp = tempfile::Builder::new()
        .prefix("fetch")
        .tempdir_in(&root)
        .expect("tmp");

    // Load the topic once (1 MB batches), then read it back with each send mode.
    let port = free_port();
    let broker = start_broker(tmp.path(), port, true, None);
    let mut c = Client::connect(port);
    c.call(
        5,
        &CreateTopicsRequest::default().with_topics(vec![
            kafka_protocol::messages::create_topics_request::CreatableTopic::default()
                .with_name(topic("bench"))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]),
    );
    // Current timestamps: older records would be deleted by the default 7-day retention.
    let now_ms = ringbroker::storage::log::wall_clock_ms();
    let batch = Bytes::from(batch_of_size(batch_bytes, 64, now_ms));
    let mut end_offset = 0i64;
    let mut written = 0u64;
    while written < log_bytes {
        let req = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic("bench"))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch.clone())),
                    ]),
            ]);
        let mut body = c.call(7, &req);
        let resp = kafka_protocol::messages::ProduceResponse::decode(&mut body, 7)
            .expect("produce response");
        let error = resp.responses[0].partition_responses[0].error_code;
        assert_eq!(error, 0, "produce accepted");
        written += batch.len() as u64;
        end_offset += 64;
    }
    stop(broker);

    // The system's congestion control, and cubic beside it when the default differs: with
    // bbr and no fq qdisc, TCP paces every socket itself with a timer per burst, which on
    // this kind of VM costs more than the bytes (see the README). FETCH_LIMITS_CC=a,b
    // picks the list ("default" is the system's).
    let system = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string());
    let ccs: Vec<Option<String>> = match std::env::var("FETCH_LIMITS_CC") {
        Ok(list) => list
            .split(',')
            .map(|a| (a != "default").then(|| a.to_string()))
            .collect(),
        Err(_) => {
            let mut v = vec![None];
            if system != "cubic" && ringbroker::os::sockopt::probe_congestion("cubic").is_ok() {
                v.push(Some("cubic".to_string()));
            }
            v
        }
    };
    // FETCH_LIMITS_ROUNDS and FETCH_LIMITS_MODE=zero-copy|copying narrow a run for
    // profiling (perf record / perf stat around one mode).
    let rounds = std::env::var("FETCH_LIMITS_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if full { 5 } else { 1 });
    let modes: Vec<bool> = match std::env::var("FETCH_LIMITS_MODE").as_deref() {
        Ok("zero-copy") => vec![true],
        Ok("copying") => vec![false],
        _ => vec![true, false],
    };
    let seconds = if full { 3.0 } else { 0.2 };

    let mut parts = Vec::new();
    for cc in &ccs {
        let cc = cc.as_deref();
        let name = cc.map_or(format!("{system} (system default)"), str::to_string);
        let loopback = ringbroker_bench::limits::tcp_builtin(seconds, cc).expect("loopback") * 1e6;
        let iperf = if full {
            ringbroker_bench::limits::tcp_iperf3(seconds, cc).map(|m| m * 1e6)
        } else {
            None
        };
        // The two send modes alternate over several rounds and each reports its median: on
        // a shared machine one round of each says little.
        let mut samples: Vec<Sample> = Vec::new();
        for _ in 0..rounds {
            for &zero_copy in &modes {
                let broker = start_broker(tmp.path(), port, zero_copy, cc);
                let mut c = Client::connect(port);
                // One warm-up pass keeps the comparison about the send path, not the page
                // cache.
                fetch_all(&mut c, end_offset, 64 << 20);
                // Two passes: CPU time is counted in 10 ms ticks.
                let cpu0 = cpu_seconds(broker.id());
                let (mut bytes, mut secs) = (0u64, 0f64);
                for _ in 0..2 {
                    let (b, s) = fetch_all(&mut c, end_offset, 64 << 20);
                    bytes += b;
                    secs += s;
                }
                let cpu = cpu_seconds(broker.id()) - cpu0;
                stop(broker);
                let gib = bytes as f64 / (1u64 << 30) as f64;
                samples.push((zero_copy, bytes as f64 / secs, cpu / gib));
            }
        }
        let median = |zero_copy: bool, pick: fn(&Sample) -> f64| {
            let mut v: Vec<f64> = samples
                .iter()
                .filter(|s| s.0 == zero_copy)
                .map(pick)
                .collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let medians: Vec<Sample> = modes
            .iter()
            .map(|&z| (z, median(z, |s| s.1), median(z, |s| s.2)))
            .collect();
        let part = Part {
            congestion: name,
            loopback,
            iperf,
            medians,
            samples,
        };
        print_part(&part, rounds);
        parts.push(part);
    }

    if full && modes.len() == 2 {
        let machine = ringbroker_bench::hardware::Machine::detect();
        let report = serde_json::json!({
            "benchmark": "fetch_limits",
            "command": "cargo bench --bench fetch_limits",
            "machine": machine,
            "params": { "rounds": rounds, "log_bytes": log_bytes, "batch_bytes": batch_bytes, "fetch_max_bytes": 64 << 20, "shards": 1, "io": "buffered" },
            "by_congestion_control": parts.iter().map(|p| serde_json::json!({
                "congestion_control": p.congestion,
                "loopback_socket_pair_bytes_per_s": p.loopback,
                "loopback_iperf3_bytes_per_s": p.iperf,
                "fetch_medians": p.medians.iter().map(|(z, bps, cpu)| serde_json::json!({
                    "zero_copy": z, "bytes_per_s": bps, "ratio_to_loopback": bps / p.loopback,
                    "ratio_to_iperf3": p.iperf.map(|i| bps / i), "broker_cpu_s_per_gib": cpu,
                })).collect::<Vec<_>>(),
                "fetch_rounds": p.samples.iter().map(|(z, bps, cpu)| serde_json::json!({
                    "zero_copy": z, "bytes_per_s": bps, "broker_cpu_s_per_gib": cpu,
                })).collect::<Vec<_>>(),
                "cpu_ratio_copying_over_zero_copy": p.medians[1].2 / p.medians[0].2.max(1e-9),
            })).collect::<Vec<_>>(),
        });
        let path = ringbroker_bench::report::write_dated(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
            "fetch-limits",
            &report,
        )
        .expect("write report");
        println!("\nwrote {}", path.display());
    }
}

fn print_part(p: &Part, rounds: usize) {
    println!("\n### congestion control: {}\n", p.congestion);
    println!("| measurement | value | ratio |");
    println!("|---|---|---|");
    println!(
        "| loopback TCP, socket pair | {:.0} MB/s | 1.00 |",
        p.loopback / 1e6
    );
    if let Some(i) = p.iperf {
        println!(
            "| loopback TCP, iperf3 | {:.0} MB/s | {:.2} |",
            i / 1e6,
            i / p.loopback
        );
    }
    for (zero_copy, bps, cpu_per_gib) in &p.medians {
        let mode = if *zero_copy {
            "zero-copy (sendfile)"
        } else {
            "copying writes"
        };
        let of_iperf = p
            .iperf
            .map_or(String::new(), |i| format!(", {:.2} of iperf3", bps / i));
        println!(
            "| fetch, 1 consumer, {mode}, median of {rounds} | {:.0} MB/s, {:.3} CPU s/GiB | {:.2} of loopback{of_iperf} |",
            bps / 1e6,
            cpu_per_gib,
            bps / p.loopback
        );
    }
    if p.medians.len() == 2 {
        let cpu_ratio = p.medians[1].2 / p.medians[0].2.max(1e-9);
        println!("| broker CPU per GiB, copying / zero-copy | {cpu_ratio:.2}x | |");
    }
}
