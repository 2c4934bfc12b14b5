//! The command line and configuration as a user meets them: a config file, `--set`,
//! `--advertised`, refusals with a message for bad keys and values, and one broker per data
//! directory.

mod common;

use std::time::Duration;

use common::kafka::{self, NONE};
use common::{Broker, RawClient};
use ringbroker::protocol::batch::testing::build_batch;

const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

fn refuses(args: &[&str], must_mention: &str) {
    let (status, stderr) = common::run_to_exit(args, EXIT_TIMEOUT);
    assert!(
        !status.success(),
        "`ringbroker {}` should fail; stderr:\n{stderr}",
        args.join(" ")
    );
    assert!(
        stderr.contains(must_mention),
        "`ringbroker {}`: the message should name {must_mention:?}; stderr:\n{stderr}",
        args.join(" ")
    );
    assert!(
        !stderr.contains("panicked"),
        "`ringbroker {}` panicked instead of refusing with a message:\n{stderr}",
        args.join(" ")
    );
}

#[test]
fn bad_keys_and_values_are_refused_with_a_message() {
    let dir = common::disk_tempdir("rb-cli-");
    let data = dir.path().to_str().expect("utf8 path");
    let listen = format!("127.0.0.1:{}", common::free_port());
    let base = ["serve", "--listen", listen.as_str(), "--data-dir", data];
    for (set, mention) in [
        ("log.flsh=fsync", "log.flsh"),
        ("log.io=mmap", "log.io"),
        ("log.flush=sometimes", "log.flush"),
        ("num.partitions=zero", "num.partitions"),
        (
            "auto.create.topics.enable=maybe",
            "auto.create.topics.enable",
        ),
        ("no-equals-sign", "no-equals-sign"),
        (
            "socket.tcp.congestion=no-such-algo",
            "socket.tcp.congestion",
        ),
    ] {
        let mut args = base.to_vec();
        args.extend(["--set", set]);
        refuses(&args, mention);
    }

    let bad_toml = dir.path().join("bad.toml");
    std::fs::write(&bad_toml, "\"log.retention.mss\" = 5\n").expect("write config");
    let mut args = base.to_vec();
    args.extend(["--config", bad_toml.to_str().expect("utf8")]);
    refuses(&args, "log.retention.mss");

    let mut args = base.to_vec();
    args.extend(["--config", "/nonexistent/ringbroker.toml"]);
    refuses(&args, "/nonexistent/ringbroker.toml");
}

#[test]
fn config_file_set_and_advertised_take_effect() {
    let conf_dir = common::disk_tempdir("rb-conf-");
    let conf = conf_dir.path().join("ringbroker.toml");
    std::fs::write(
        &conf,
        "\"num.partitions\" = 4\n[log]\nio = \"direct\"\nflush = \"fsync\"\n",
    )
    .expect("write config");
    let mut broker = Broker::start_with_args(vec![
        "--config".into(),
        conf.to_str().expect("utf8").into(),
        "--shards".into(),
        "2".into(),
        // --set beats the file.
        "--set".into(),
        "num.partitions=5".into(),
        "--advertised".into(),
        "broker-a.invalid:19092".into(),
    ]);
    let mut c = RawClient::connect(broker.addr());
    let (err, base) = kafka::produce_one(
        &mut c,
        "auto5",
        4,
        build_batch(&[b"x"], common::recent_ts()),
    );
    assert_eq!(
        (err, base),
        (NONE, 0),
        "auto-created topic has num.partitions=5"
    );
    let md = kafka::metadata(&mut c, &["auto5"]);
    assert_eq!(md.topics[0].partitions.len(), 5);
    assert_eq!(md.brokers.len(), 1);
    assert_eq!(md.brokers[0].host.as_str(), "broker-a.invalid");
    assert_eq!(md.brokers[0].port, 19092);
    broker.stop();
}

#[test]
fn one_broker_per_data_dir() {
    let broker = Broker::start(&[]);
    let data = broker.data_dir().to_str().expect("utf8").to_string();
    let listen = format!("127.0.0.1:{}", common::free_port());
    let (status, stderr) = common::run_to_exit(
        &[
            "serve",
            "--listen",
            &listen,
            "--data-dir",
            &data,
            "--shards",
            "1",
        ],
        EXIT_TIMEOUT,
    );
    assert!(
        !status.success(),
        "a second broker on a data dir in use must refuse to start; stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "refuse with a message, not a panic:\n{stderr}"
    );
    // The first one is unaffected.
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "still-mine", 1);
}

/// The shards bind with SO_REUSEPORT: without a check a second broker would share the port
/// and take part of the first one's clients.
#[test]
fn one_broker_per_port() {
    let broker = Broker::start(&[]);
    let other = common::disk_tempdir("rb-second-");
    let data = other.path().to_str().expect("utf8").to_string();
    let listen = broker.bootstrap();
    refuses(
        &[
            "serve",
            "--listen",
            &listen,
            "--data-dir",
            &data,
            "--shards",
            "1",
        ],
        "already in use",
    );
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "still-mine", 1);
}

/// Two brokers started at the same instant on one address would both find nothing
/// listening there (neither listens yet) and then share the port through SO_REUSEPORT,
/// each taking part of the other's clients. Exactly one may start.
#[test]
fn brokers_started_at_once_never_share_a_port() {
    use std::process::{Command, Stdio};
    let listen = format!("127.0.0.1:{}", common::free_port());
    let dirs = [
        common::disk_tempdir("rb-race-a-"),
        common::disk_tempdir("rb-race-b-"),
    ];
    let mut children: Vec<_> = dirs
        .iter()
        .map(|d| {
            let err = std::fs::File::create(d.path().join("stderr.log")).expect("stderr file");
            let data = d.path().join("data");
            let child = Command::new(common::broker_bin())
                .args(["serve", "--listen", &listen, "--shards", "1", "--data-dir"])
                .arg(&data)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(err))
                .spawn()
                .expect("spawn ringbroker");
            (child, d.path().join("stderr.log"))
        })
        .collect();
    let deadline = std::time::Instant::now() + EXIT_TIMEOUT;
    let loser = loop {
        let exited = children
            .iter_mut()
            .position(|(c, _)| c.try_wait().expect("try_wait").is_some());
        if let Some(i) = exited {
            break i;
        }
        if std::time::Instant::now() > deadline {
            for (c, _) in children.iter_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
            panic!("both brokers started on {listen}: they share the port");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut lost, lost_err) = children.remove(loser);
    let status = lost.wait().expect("wait");
    let stderr = std::fs::read_to_string(&lost_err).unwrap_or_default();
    let (won, won_err) = children.remove(0);
    // Stopped however the test ends.
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut won = Stop(won);
    assert!(
        !status.success() && stderr.contains("already in use"),
        "the second broker must refuse the address in use ({status}); stderr:\n{stderr}"
    );
    let addr: std::net::SocketAddr = listen.parse().expect("addr");
    let mut c = (0..200)
        .find_map(|_| {
            if let Ok(c) = RawClient::try_connect(addr) {
                return Some(c);
            }
            std::thread::sleep(Duration::from_millis(50));
            None
        })
        .expect("the broker that started serves");
    kafka::create_topic(&mut c, "raced", 1);
    assert!(
        won.0.try_wait().expect("try_wait").is_none(),
        "the first broker must keep running; stderr:\n{}",
        std::fs::read_to_string(&won_err).unwrap_or_default()
    );
}

/// The README's start command uses the embedded default data dir, `./data`, a relative
/// path: the broker must work from it (io_uring resolves no relative paths itself).
#[test]
fn relative_data_dir_works() {
    let work = common::disk_tempdir("rb-cwd-");
    let port = common::free_port();
    let mut child = std::process::Command::new(common::broker_bin())
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--shards",
            "2",
        ])
        .current_dir(work.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start broker");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = std::time::Instant::now() + EXIT_TIMEOUT;
    let mut c = loop {
        if let Ok(c) = RawClient::try_connect(addr) {
            break c;
        }
        assert!(std::time::Instant::now() < deadline, "broker did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    kafka::create_topic(&mut c, "relative", 2);
    for p in 0..2 {
        let (code, _) = kafka::produce_one(
            &mut c,
            "relative",
            p,
            build_batch(&[b"x"], common::recent_ts()),
        );
        assert_eq!(code, NONE, "produce to partition {p}");
    }
    assert!(
        work.path().join("data/relative-0").is_dir(),
        "data in ./data"
    );
    // SAFETY: kill(2) on our child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().expect("wait");
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    assert!(status.success(), "clean stop; stderr:\n{stderr}");
    assert!(!stderr.contains("ERROR"), "no errors logged:\n{stderr}");
}

/// `socket.tcp.congestion` reaches the client sockets: `ss` shows the algorithm on the
/// broker's side of an established connection.
#[test]
fn congestion_control_is_set_on_client_sockets() {
    // An algorithm other than the system's default, so the check means something.
    let system =
        std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control").unwrap_or_default();
    let algo = if system.trim() == "reno" {
        "cubic"
    } else {
        "reno"
    };
    let set = format!("socket.tcp.congestion={algo}");
    let mut broker = common::Broker::start(&[set.as_str()]);
    let mut c = common::RawClient::connect(broker.addr());
    // A request and its answer: the connection is accepted and configured.
    assert!(!c.versions().is_empty());
    let port = broker.port;
    let out = std::process::Command::new("ss")
        .args([
            "-tinH",
            "state",
            "established",
            "sport",
            "=",
            &format!(":{port}"),
        ])
        .output()
        .expect("ss (iproute2) runs; scripts/setup.sh installs it");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.split_whitespace().any(|w| w == algo),
        "the broker's socket uses {algo}: {text}"
    );
    broker.stop();
}

/// The load generator left the broker binary (it is `ringbroker-bench` now, so the broker
/// does not link librdkafka): `ringbroker bench ...` only says where it went.
#[test]
fn bench_names_the_new_binary() {
    let (status, stderr) =
        common::run_to_exit(&["bench", "sweep", "--rates", "1000"], EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains("ringbroker-bench sweep --rates 1000"),
        "the message should show the new command; stderr:\n{stderr}"
    );
}
