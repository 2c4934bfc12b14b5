//! Listeners with security protocols, SASL (PLAIN, SCRAM-SHA-256/512) and TLS, against the
//! real binary with real clients: librdkafka (the `rdkafka` crate), kcat, kafka-python and
//! confluent-kafka, and raw requests for the exact answers. A throwaway CA and server
//! certificate are made per test with `rcgen`; users are added offline with
//! `ringbroker users add` before the broker starts.

mod common;
#[path = "common/pki.rs"]
mod pki_gen;
use pki_gen::{ca, leaf};
#[path = "common/deliveries.rs"]
mod deliveries;

use common::{
    Broker, RawClient, ReadOutcome, disk_tempdir, free_port, run_python, run_to_exit, users_add,
};
use deliveries::{Deliveries, Recorder};
use kafka_protocol::messages::{
    MetadataRequest, MetadataResponse, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SASL_AUTHENTICATION_FAILED: i16 = 58;
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const ILLEGAL_SASL_STATE: i16 = 34;
const PASSWORD: &str = "alice-secret";

/// A CA, a server certificate for localhost and 127.0.0.1 signed by it, a client
/// certificate signed by it, and a second CA with its own client certificate that the
/// broker does not trust.
struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    keystore: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    rogue_ca: PathBuf,
    rogue_cert: PathBuf,
    rogue_key: PathBuf,
}

fn pki() -> Pki {
    let dir = disk_tempdir("rb-pki-");
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let (ca_params, ca_key, ca_pem) = ca("ringbroker test CA");
    let (server_cert, server_key) = leaf(&["localhost", "127.0.0.1"], &ca_params, &ca_key);
    let (client_cert, client_key) = leaf(&["client.test"], &ca_params, &ca_key);
    let (rogue_params, rogue_key_pair, rogue_pem) = ca("rogue CA");
    let (rogue_cert, rogue_key) = leaf(&["client.test"], &rogue_params, &rogue_key_pair);
    Pki {
        ca: write("ca.pem", &ca_pem),
        keystore: write("server.pem", &format!("{server_key}{server_cert}")),
        client_cert: write("client.pem", &client_cert),
        client_key: write("client.key", &client_key),
        rogue_ca: write("rogue-ca.pem", &rogue_pem),
        rogue_cert: write("rogue.pem", &rogue_cert),
        rogue_key: write("rogue.key", &rogue_key),
        _dir: dir,
    }
}

/// A broker with all four kinds of listener, alice (every mechanism) and bob (SCRAM-SHA-256).
struct Secure {
    broker: Broker,
    pki: Pki,
    _data: tempfile::TempDir,
    plain: u16,
    sasl: u16,
    ssl: u16,
    sasl_ssl: u16,
}

impl Secure {
    fn start(sets: &[&str]) -> Secure {
        let data = disk_tempdir("rb-secure-");
        for m in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
            users_add(data.path(), m, "alice", PASSWORD);
        }
        users_add(data.path(), "SCRAM-SHA-256", "bob", "bob-secret");
        let pki = pki();
        let (plain, sasl, ssl, sasl_ssl) = (free_port(), free_port(), free_port(), free_port());
        let mut extra = vec![
            format!(
                "listeners=PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl},\
                 SSL://127.0.0.1:{ssl},SASL_SSL://127.0.0.1:{sasl_ssl}"
            ),
            format!("ssl.keystore.location={}", pki.keystore.display()),
            format!("ssl.truststore.location={}", pki.ca.display()),
        ];
        extra.extend(sets.iter().map(|s| s.to_string()));
        let extra = extra
            .into_iter()
            .flat_map(|s| ["--set".to_string(), s])
            .collect();
        let broker = Broker::start_with_listeners(data.path(), plain, extra);
        Secure {
            broker,
            pki,
            _data: data,
            plain,
            sasl,
            ssl,
            sasl_ssl,
        }
    }

    fn addr(port: u16) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn bootstrap(port: u16) -> String {
        format!("127.0.0.1:{port}")
    }
}

/// Produces `n` records with librdkafka under `settings`, reads them back, and returns
/// what was read (values), or what went wrong.
fn rdkafka_round_trip(settings: &[(&str, &str)], topic: &str, n: usize) -> Vec<String> {
    let mut config = ClientConfig::new();
    for (k, v) in settings {
        config.set(*k, *v);
    }
    let deliveries = Arc::new(Deliveries::default());
    let producer: ThreadedProducer<Recorder> = config
        .clone()
        .set("message.timeout.ms", "30000")
        .create_with_context(Recorder(deliveries.clone()))
        .expect("producer");
    let values: Vec<String> = (0..n).map(|i| format!("{topic}-{i}")).collect();
    for v in &values {
        producer
            .send(BaseRecord::<(), _>::to(topic).payload(v).partition(0))
            .map_err(|(e, _)| e)
            .expect("enqueue");
    }
    producer.flush(Duration::from_secs(40)).expect("flush");
    let results = deliveries.0.lock().unwrap().clone();
    assert_eq!(results.len(), n, "every record got a delivery report");
    for r in &results {
        assert!(r.is_ok(), "delivery failed: {r:?}");
    }
    let consumer: BaseConsumer = config
        .set("group.id", format!("g-{topic}"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while got.len() < n && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string());
        }
    }
    assert_eq!(got, values, "records read back over {settings:?}");
    got
}

fn sasl_settings<'a>(
    bootstrap: &'a str,
    protocol: &'a str,
    mechanism: &'a str,
    user: &'a str,
    password: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("bootstrap.servers", bootstrap),
        ("security.protocol", protocol),
        ("sasl.mechanisms", mechanism),
        ("sasl.username", user),
        ("sasl.password", password),
    ]
}

/// A raw SASL exchange up to the handshake answer.
fn handshake(c: &mut RawClient, version: i16, mechanism: &str) -> SaslHandshakeResponse {
    c.call(
        version,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mechanism.into())),
    )
}

fn authenticate(c: &mut RawClient, version: i16, token: &[u8]) -> SaslAuthenticateResponse {
    c.call(
        version,
        &SaslAuthenticateRequest::default().with_auth_bytes(bytes::Bytes::copy_from_slice(token)),
    )
}

#[test]
fn sasl_plaintext_with_plain_and_scram_through_librdkafka() {
    let s = Secure::start(&[]);
    let bootstrap = Secure::bootstrap(s.sasl);
    for (mechanism, topic) in [
        ("PLAIN", "sasl-plain"),
        ("SCRAM-SHA-256", "sasl-scram256"),
        ("SCRAM-SHA-512", "sasl-scram512"),
    ] {
        let settings = sasl_settings(&bootstrap, "SASL_PLAINTEXT", mechanism, "alice", PASSWORD);
        rdkafka_round_trip(&settings, topic, 20);
    }
    // bob has a SCRAM-SHA-256 credential and nothing else.
    let settings = sasl_settings(
        &bootstrap,
        "SASL_PLAINTEXT",
        "SCRAM-SHA-256",
        "bob",
        "bob-secret",
    );
    rdkafka_round_trip(&settings, "sasl-bob", 5);
    // The records are the same on the PLAINTEXT listener.
    let plain = Secure::bootstrap(s.plain);
    rdkafka_round_trip(&[("bootstrap.servers", &plain)], "plain-too", 3);
    drop(s);
}

#[test]
fn metadata_advertises_the_listener_the_client_came_through() {
    let s = Secure::start(&[]);
    let mut c = RawClient::connect(Secure::addr(s.plain));
    let m: MetadataResponse = c.call(4, &MetadataRequest::default());
    assert_eq!(m.brokers.len(), 1);
    assert_eq!(m.brokers[0].port, i32::from(s.plain));

    let mut c = RawClient::connect(Secure::addr(s.sasl));
    assert_eq!(handshake(&mut c, 1, "PLAIN").error_code, 0);
    let a = authenticate(&mut c, 2, format!("\0alice\0{PASSWORD}").as_bytes());
    assert_eq!(a.error_code, 0, "{:?}", a.error_message);
    let m: MetadataResponse = c.call(4, &MetadataRequest::default());
    assert_eq!(m.brokers[0].port, i32::from(s.sasl));
}

#[test]
fn wrong_passwords_and_unknown_users_are_refused_and_the_connection_closed() {
    let s = Secure::start(&[]);
    let addr = Secure::addr(s.sasl);
    for (who, token) in [
        ("wrong password", "\0alice\0not-her-password".to_string()),
        ("unknown user", format!("\0mallory\0{PASSWORD}")),
        ("authzid of another user", format!("bob\0alice\0{PASSWORD}")),
    ] {
        let mut c = RawClient::connect(addr);
        let h = handshake(&mut c, 1, "PLAIN");
        assert_eq!(h.error_code, 0, "{who}");
        let a = authenticate(&mut c, 1, token.as_bytes());
        assert_eq!(a.error_code, SASL_AUTHENTICATION_FAILED, "{who}");
        c.expect_closed(who);
    }
    // A mechanism the listener does not offer: its list comes back, then the close.
    let mut c = RawClient::connect(addr);
    let h = handshake(&mut c, 1, "GSSAPI");
    assert_eq!(h.error_code, UNSUPPORTED_SASL_MECHANISM);
    let offered: Vec<&str> = h.mechanisms.iter().map(|m| m.as_str()).collect();
    assert_eq!(offered, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]);
    c.expect_closed("unsupported mechanism");
    // Anything but ApiVersions and SASL before authenticating closes the connection.
    let mut c = RawClient::connect(addr);
    c.send(4, &MetadataRequest::default());
    c.expect_closed("Metadata before authenticating");
    let mut c = RawClient::connect(addr);
    let a = authenticate(&mut c, 1, b"\0alice\0x");
    assert_eq!(a.error_code, ILLEGAL_SASL_STATE);
    c.expect_closed("SaslAuthenticate before SaslHandshake");
    // On a listener without SASL the SASL requests are out of place, and nothing closes.
    let mut c = RawClient::connect(Secure::addr(s.plain));
    assert_eq!(handshake(&mut c, 1, "PLAIN").error_code, ILLEGAL_SASL_STATE);
    let m: MetadataResponse = c.call(4, &MetadataRequest::default());
    assert_eq!(m.brokers.len(), 1);

    // Real clients see an authentication failure.
    let bootstrap = Secure::bootstrap(s.sasl);
    for (mechanism, user, password) in [
        ("SCRAM-SHA-256", "alice", "wrong"),
        ("SCRAM-SHA-512", "mallory", PASSWORD),
        ("PLAIN", "alice", "wrong"),
    ] {
        for mode in ["confluent-refused", "kafka-python-refused"] {
            run_python(
                "security_clients.py",
                &[
                    mode,
                    &bootstrap,
                    "SASL_PLAINTEXT",
                    mechanism,
                    user,
                    password,
                    "-",
                    "refused",
                ],
            );
        }
    }
    // The broker still serves the right password.
    let mut c = RawClient::connect(addr);
    handshake(&mut c, 1, "PLAIN");
    let a = authenticate(&mut c, 1, format!("\0alice\0{PASSWORD}").as_bytes());
    assert_eq!(a.error_code, 0);
}

/// SaslHandshake v0: the tokens that follow are raw (a length and the bytes, no header).
#[test]
fn handshake_v0_takes_raw_tokens() {
    let s = Secure::start(&[]);
    let mut c = RawClient::connect(Secure::addr(s.sasl));
    assert_eq!(handshake(&mut c, 0, "PLAIN").error_code, 0);
    c.send_frame(format!("\0alice\0{PASSWORD}").as_bytes())
        .unwrap();
    assert_eq!(
        c.read_frame().unwrap(),
        Vec::<u8>::new(),
        "an empty token back"
    );
    let m: MetadataResponse = c.call(4, &MetadataRequest::default());
    assert_eq!(m.brokers[0].port, i32::from(s.sasl));

    let mut c = RawClient::connect(Secure::addr(s.sasl));
    assert_eq!(handshake(&mut c, 0, "PLAIN").error_code, 0);
    c.send_frame(b"\0alice\0wrong").unwrap();
    c.expect_closed("a wrong raw PLAIN token");
}

#[test]
fn ssl_and_sasl_ssl_through_librdkafka_kcat_and_python() {
    let s = Secure::start(&[]);
    let ca = s.pki.ca.to_str().unwrap().to_string();
    let ssl = Secure::bootstrap(s.ssl);
    rdkafka_round_trip(
        &[
            ("bootstrap.servers", &ssl),
            ("security.protocol", "SSL"),
            ("ssl.ca.location", &ca),
        ],
        "over-ssl",
        50,
    );
    let sasl_ssl = Secure::bootstrap(s.sasl_ssl);
    for (mechanism, topic) in [
        ("SCRAM-SHA-512", "sasl-ssl-512"),
        ("PLAIN", "sasl-ssl-plain"),
    ] {
        let mut settings = sasl_settings(&sasl_ssl, "SASL_SSL", mechanism, "alice", PASSWORD);
        settings.push(("ssl.ca.location", &ca));
        rdkafka_round_trip(&settings, topic, 20);
    }

    // A fetch larger than one TLS record and one file piece: 3 MiB of records.
    let big: String = "x".repeat(100_000);
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &ssl)
        .set("security.protocol", "SSL")
        .set("ssl.ca.location", &ca);
    let producer: ThreadedProducer<Recorder> = config
        .clone()
        .create_with_context(Recorder(Arc::new(Deliveries::default())))
        .unwrap();
    for i in 0..30 {
        let v = format!("{i:04}{big}");
        producer
            .send(BaseRecord::<(), _>::to("ssl-big").payload(&v).partition(0))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(40)).unwrap();
    let consumer: BaseConsumer = config
        .set("group.id", "g-big")
        .set("fetch.max.bytes", "52428800")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("ssl-big", 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(40);
    while got < 30 && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            let v = m.payload().unwrap();
            assert_eq!(
                v,
                format!("{got:04}{big}").as_bytes(),
                "record {got} byte for byte"
            );
            got += 1;
        }
    }
    assert_eq!(got, 30);

    // kcat (Debian's librdkafka) over SASL_SSL with SCRAM-SHA-256.
    let kcat = |extra: &[&str], input: Option<&str>| -> String {
        let mut cmd = std::process::Command::new("kcat");
        cmd.args([
            "-b",
            &sasl_ssl,
            "-X",
            "security.protocol=SASL_SSL",
            "-X",
            "sasl.mechanisms=SCRAM-SHA-256",
            "-X",
            "sasl.username=alice",
            "-X",
            &format!("sasl.password={PASSWORD}"),
            "-X",
            &format!("ssl.ca.location={ca}"),
        ])
        .args(extra)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
        let mut child = cmd.spawn().expect("kcat (scripts/setup.sh installs it)");
        if let Some(text) = input {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "kcat {extra:?}");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    kcat(
        &["-P", "-t", "kcat-ssl", "-p", "0"],
        Some("one\ntwo\nthree\n"),
    );
    let out = kcat(
        &["-C", "-t", "kcat-ssl", "-p", "0", "-e", "-f", "%s\n"],
        None,
    );
    assert_eq!(out, "one\ntwo\nthree\n");

    // kafka-python and confluent-kafka over SASL_SSL and SSL.
    for mode in ["kafka-python", "confluent"] {
        for (mechanism, topic) in [("SCRAM-SHA-512", "py-512"), ("SCRAM-SHA-256", "py-256")] {
            let topic = format!("{topic}-{mode}");
            run_python(
                "security_clients.py",
                &[
                    mode, &sasl_ssl, "SASL_SSL", mechanism, "alice", PASSWORD, &ca, &topic,
                ],
            );
        }
        let topic = format!("py-ssl-{mode}");
        run_python(
            "security_clients.py",
            &[mode, &ssl, "SSL", "-", "-", "-", &ca, &topic],
        );
        let topic = format!("py-plain-{mode}");
        run_python(
            "security_clients.py",
            &[
                mode,
                &Secure::bootstrap(s.sasl),
                "SASL_PLAINTEXT",
                "PLAIN",
                "alice",
                PASSWORD,
                "-",
                &topic,
            ],
        );
    }
}

#[test]
fn certificates_are_checked_both_ways() {
    let s = Secure::start(&["ssl.client.auth=required"]);
    let p = &s.pki;
    let port = s.ssl.to_string();
    let path = |p: &PathBuf| p.to_str().unwrap().to_string();
    // The client does not trust a server whose CA it does not know.
    run_python("tls_probe.py", &["untrusted", &port, &path(&p.rogue_ca)]);
    // The broker requires a client certificate from its CA.
    run_python("tls_probe.py", &["refused", &port, &path(&p.ca)]);
    run_python(
        "tls_probe.py",
        &[
            "refused",
            &port,
            &path(&p.ca),
            &path(&p.rogue_cert),
            &path(&p.rogue_key),
        ],
    );
    run_python(
        "tls_probe.py",
        &[
            "ok",
            &port,
            &path(&p.ca),
            &path(&p.client_cert),
            &path(&p.client_key),
        ],
    );
    // librdkafka with its certificate produces and consumes.
    let ca = path(&p.ca);
    let (cert, key) = (path(&p.client_cert), path(&p.client_key));
    rdkafka_round_trip(
        &[
            ("bootstrap.servers", &Secure::bootstrap(s.ssl)),
            ("security.protocol", "SSL"),
            ("ssl.ca.location", &ca),
            ("ssl.certificate.location", &cert),
            ("ssl.key.location", &key),
        ],
        "mtls",
        10,
    );
}

/// Reads until the broker closes the connection (or the read timeout of the raw client,
/// which fails the test).
fn wait_closed(c: &mut RawClient, what: &str) {
    let mut buf = [0u8; 4096];
    loop {
        match std::io::Read::read(&mut c.stream, &mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("{what}: the broker did not close the connection: {e}"),
        }
    }
}

#[test]
fn hostile_input_on_the_tls_and_sasl_listeners_is_refused() {
    let s = Secure::start(&["socket.frame.timeout.ms=2000"]);
    // Garbage where a TLS ClientHello should be.
    let mut c = RawClient::connect(Secure::addr(s.ssl));
    c.send_bytes(&[0x16, 0x03, 0x01, 0xff, 0xff, 0xde, 0xad, 0xbe, 0xef])
        .unwrap();
    c.send_bytes(&[0x42; 4096]).unwrap();
    wait_closed(&mut c, "garbage before the handshake");
    // A Kafka request in clear text on the TLS port.
    let mut c = RawClient::connect(Secure::addr(s.sasl_ssl));
    c.send(4, &MetadataRequest::default());
    wait_closed(&mut c, "plain text on a TLS listener");
    // Half a ClientHello, then nothing: the others are served meanwhile, and the
    // connection is closed once socket.frame.timeout.ms has passed.
    let mut half = RawClient::connect(Secure::addr(s.ssl));
    half.send_bytes(&[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ])
    .unwrap();
    run_python(
        "tls_probe.py",
        &["ok", &s.ssl.to_string(), s.pki.ca.to_str().unwrap()],
    );
    wait_closed(&mut half, "a half-done handshake");

    // A huge SASL token: the frame is refused by its length, before its bytes are read.
    let mut c = RawClient::connect(Secure::addr(s.sasl));
    assert_eq!(handshake(&mut c, 1, "SCRAM-SHA-256").error_code, 0);
    let token = vec![b'n'; 8 << 20];
    let frame = RawClient::encode_raw(36, 1, 99, &{
        let mut body = (token.len() as i32).to_be_bytes().to_vec();
        body.extend_from_slice(&token);
        body
    });
    let _ = c.send_frame(&frame);
    assert_eq!(c.read_outcome(), ReadOutcome::Closed, "huge SASL token");
    // A large token within the frame limit is refused by SCRAM's own bound.
    let mut c = RawClient::connect(Secure::addr(s.sasl));
    assert_eq!(handshake(&mut c, 1, "SCRAM-SHA-256").error_code, 0);
    let a = authenticate(&mut c, 1, &vec![b'n'; 100_000]);
    assert_eq!(a.error_code, SASL_AUTHENTICATION_FAILED);
    c.expect_closed("a 100 kB SCRAM message");
    // Garbage frames on the SASL listener.
    for garbage in [
        &[0xff_u8; 3][..],
        &[0x00, 0x11, 0x7f, 0x7f, 0, 0, 0, 1, 0xff, 0xff][..],
    ] {
        let mut c = RawClient::connect(Secure::addr(s.sasl));
        c.send_frame(garbage).unwrap();
        c.expect_closed("a garbage frame before authentication");
    }
    // Endless ApiVersions without authenticating are cut off.
    let mut c = RawClient::connect(Secure::addr(s.sasl));
    let mut closed = false;
    for _ in 0..100 {
        c.send(0, &kafka_protocol::messages::ApiVersionsRequest::default());
        if c.read_outcome() == ReadOutcome::Closed {
            closed = true;
            break;
        }
    }
    assert!(closed, "a client that never authenticates is cut off");

    // The broker is unharmed: SCRAM over SASL_SSL still works.
    let ca = s.pki.ca.to_str().unwrap().to_string();
    let bootstrap = Secure::bootstrap(s.sasl_ssl);
    let mut settings = sasl_settings(&bootstrap, "SASL_SSL", "SCRAM-SHA-256", "alice", PASSWORD);
    settings.push(("ssl.ca.location", &ca));
    rdkafka_round_trip(&settings, "after-hostile", 5);
}

#[test]
fn users_are_added_offline_stored_hashed_and_kept_across_restarts() {
    let mut s = Secure::start(&[]);
    let text =
        std::fs::read_to_string(s.broker.data_dir().join("__ringbroker_users.json")).unwrap();
    assert!(!text.contains(PASSWORD), "no password in the users file");
    assert!(text.contains("SCRAM-SHA-512") && text.contains("alice"));
    // The data dir is locked while the broker runs.
    let dir = s.broker.data_dir().to_str().unwrap().to_string();
    let (status, stderr) = run_to_exit(
        &[
            "users",
            "add",
            "--data-dir",
            &dir,
            "--mechanism",
            "PLAIN",
            "--user",
            "x",
            "--password",
            "y",
        ],
        Duration::from_secs(30),
    );
    assert!(!status.success() && stderr.contains("in use"), "{stderr}");
    s.broker.stop();
    users_add(s.broker.data_dir(), "PLAIN", "carol", "carol-secret");
    let (status, stderr) = run_to_exit(
        &[
            "users",
            "add",
            "--data-dir",
            &dir,
            "--mechanism",
            "MD5",
            "--user",
            "x",
            "--password",
            "y",
        ],
        Duration::from_secs(30),
    );
    assert!(
        !status.success() && stderr.contains("unknown mechanism"),
        "{stderr}"
    );
    s.broker.start_again();
    let bootstrap = Secure::bootstrap(s.sasl);
    for (mechanism, user, password, topic) in [
        ("SCRAM-SHA-512", "alice", PASSWORD, "restart-alice"),
        ("PLAIN", "carol", "carol-secret", "restart-carol"),
    ] {
        let settings = sasl_settings(&bootstrap, "SASL_PLAINTEXT", mechanism, user, password);
        rdkafka_round_trip(&settings, topic, 5);
    }
}

/// AlterUserScramCredentials and DescribeUserScramCredentials through confluent-kafka's
/// AdminClient: a user added at run time can authenticate at once and after a restart,
/// and a deleted one no longer can.
#[test]
fn scram_credentials_are_managed_through_the_admin_apis() {
    let mut s = Secure::start(&[]);
    let bootstrap = Secure::bootstrap(s.sasl);
    run_python("scram_admin.py", &["add", &bootstrap, "scram-admin"]);
    s.broker.restart();
    run_python("scram_admin.py", &["works", &bootstrap, "scram-admin"]);
    let text =
        std::fs::read_to_string(s.broker.data_dir().join("__ringbroker_users.json")).unwrap();
    assert!(text.contains("carol") && !text.contains("carol-secret"));
    run_python("scram_admin.py", &["remove", &bootstrap, "scram-admin"]);
    s.broker.restart();
    let mut c = RawClient::connect(Secure::addr(s.sasl));
    assert_eq!(handshake(&mut c, 1, "PLAIN").error_code, 0);
    let a = authenticate(&mut c, 1, format!("\0alice\0{PASSWORD}").as_bytes());
    assert_eq!(a.error_code, 0, "alice's PLAIN credential is untouched");
}

#[test]
fn listener_settings_are_checked_at_start() {
    let data = disk_tempdir("rb-bad-listeners-");
    let dir = data.path().to_str().unwrap();
    for (sets, expect) in [
        (vec!["listeners=SSL://127.0.0.1:1"], "ssl.keystore.location"),
        (
            vec!["listeners=FOO://127.0.0.1:1"],
            "listener.security.protocol.map",
        ),
        (vec!["listeners=PLAINTEXT:1"], "NAME://HOST:PORT"),
        (
            vec![
                "listeners=SSL://127.0.0.1:1",
                "ssl.keystore.location=/nonexistent.pem",
            ],
            "nonexistent",
        ),
    ] {
        let mut args = vec!["serve", "--data-dir", dir];
        for s in &sets {
            args.push("--set");
            args.push(s);
        }
        let (status, stderr) = run_to_exit(&args, Duration::from_secs(30));
        assert!(!status.success(), "{sets:?} started");
        assert!(stderr.contains(expect), "{sets:?}: {stderr}");
    }
}
