//! KIP-368 re-authentication against the real binary with `connections.max.reauth.ms`:
//! SaslAuthenticate tells the session lifetime, librdkafka re-authenticates on its own and
//! keeps producing across several sessions, a raw client that does not re-authenticate is
//! disconnected at its first request after the session ended, one that does goes on, and
//! re-authenticating as another user is refused and closes the connection.

mod common;
#[path = "common/deliveries.rs"]
mod deliveries;

use common::{Broker, RawClient, disk_tempdir, free_port, users_add};
use deliveries::{Deliveries, Recorder};
use kafka_protocol::messages::{
    MetadataRequest, MetadataResponse, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SASL_AUTHENTICATION_FAILED: i16 = 58;
const ILLEGAL_SASL_STATE: i16 = 34;
const SESSION_MS: i64 = 2000;

/// A broker with a SASL_PLAINTEXT listener whose sessions last `reauth_ms` (0: for ever);
/// alice and bob have PLAIN and SCRAM-SHA-256 credentials.
fn start_with(reauth_ms: i64) -> (Broker, tempfile::TempDir, u16) {
    let data = disk_tempdir("rb-reauth-");
    for m in ["PLAIN", "SCRAM-SHA-256"] {
        users_add(data.path(), m, "alice", "alice-secret");
        users_add(data.path(), m, "bob", "bob-secret");
    }
    let (plain, sasl) = (free_port(), free_port());
    let extra = [
        format!("listeners=PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl}"),
        format!("connections.max.reauth.ms={reauth_ms}"),
    ]
    .into_iter()
    .flat_map(|s| ["--set".to_string(), s])
    .collect();
    let broker = Broker::start_with_listeners(data.path(), plain, extra);
    (broker, data, sasl)
}

fn start() -> (Broker, tempfile::TempDir, u16) {
    start_with(SESSION_MS)
}

/// A PLAIN exchange (handshake v1, authenticate v1) on `c`.
fn plain_login(c: &mut RawClient, user: &str, password: &str) -> SaslAuthenticateResponse {
    let h: SaslHandshakeResponse = c.call(
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    );
    assert_eq!(h.error_code, 0);
    c.call(
        1,
        &SaslAuthenticateRequest::default()
            .with_auth_bytes(bytes::Bytes::from(format!("\0{user}\0{password}"))),
    )
}

fn metadata_ok(c: &mut RawClient) -> bool {
    let m: MetadataResponse = c.call(4, &MetadataRequest::default().with_topics(Some(vec![])));
    !m.brokers.is_empty()
}

fn sasl_addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn a_session_ends_unless_the_client_re_authenticates_as_itself() {
    let (_broker, _data, sasl) = start();

    // Never re-authenticates: served while the session lasts, closed at the first request
    // after it.
    let mut lapsed = RawClient::connect(sasl_addr(sasl));
    let a = plain_login(&mut lapsed, "alice", "alice-secret");
    assert_eq!(a.error_code, 0);
    assert_eq!(a.session_lifetime_ms, SESSION_MS, "v1 tells the lifetime");
    assert!(metadata_ok(&mut lapsed));

    // Re-authenticates before the end: served after the first session would have ended.
    let mut renewed = RawClient::connect(sasl_addr(sasl));
    assert_eq!(
        plain_login(&mut renewed, "alice", "alice-secret").error_code,
        0
    );
    std::thread::sleep(Duration::from_millis(1200));
    let again = plain_login(&mut renewed, "alice", "alice-secret");
    assert_eq!(again.error_code, 0, "re-authentication");
    assert_eq!(again.session_lifetime_ms, SESSION_MS);

    // Re-authenticates as someone else: refused, and the connection closes.
    let mut impostor = RawClient::connect(sasl_addr(sasl));
    assert_eq!(
        plain_login(&mut impostor, "alice", "alice-secret").error_code,
        0
    );
    let other = plain_login(&mut impostor, "bob", "bob-secret");
    assert_eq!(other.error_code, SASL_AUTHENTICATION_FAILED);
    impostor.expect_closed("re-authenticated as another principal");

    std::thread::sleep(Duration::from_millis(1200));
    // 2.4 s after the first logins: the first session is over, the renewed one (until
    // 3.2 s) is not.
    assert!(metadata_ok(&mut renewed), "the renewed session goes on");
    lapsed.send(4, &MetadataRequest::default().with_topics(Some(vec![])));
    lapsed.expect_closed("its session expired");

    // Re-authentication must keep the mechanism and cannot go back to raw tokens (v0).
    for (version, mechanism) in [(1, "SCRAM-SHA-256"), (0, "PLAIN")] {
        let mut c = RawClient::connect(sasl_addr(sasl));
        assert_eq!(plain_login(&mut c, "alice", "alice-secret").error_code, 0);
        let h: SaslHandshakeResponse = c.call(
            version,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism)),
        );
        assert_eq!(h.error_code, ILLEGAL_SASL_STATE, "v{version} {mechanism}");
        c.expect_closed("a re-authentication that changes the mechanism or framing");
    }

    // A wrong password on re-authentication closes the connection too.
    let mut c = RawClient::connect(sasl_addr(sasl));
    assert_eq!(plain_login(&mut c, "bob", "bob-secret").error_code, 0);
    let wrong = plain_login(&mut c, "bob", "not-bob");
    assert_eq!(wrong.error_code, SASL_AUTHENTICATION_FAILED);
    c.expect_closed("a failed re-authentication");
}

#[test]
fn without_connections_max_reauth_ms_a_session_lasts_and_sasl_requests_are_out_of_place() {
    let (_broker, _data, sasl) = start_with(0);
    let mut c = RawClient::connect(sasl_addr(sasl));
    let a = plain_login(&mut c, "alice", "alice-secret");
    assert_eq!((a.error_code, a.session_lifetime_ms), (0, 0));
    let h: SaslHandshakeResponse = c.call(
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    );
    assert_eq!(h.error_code, ILLEGAL_SASL_STATE);
    assert!(metadata_ok(&mut c), "the connection stays open");
}

#[test]
fn librdkafka_keeps_producing_across_re_authentications() {
    let (broker, _data, sasl) = start();
    let deliveries = Arc::new(Deliveries::default());
    let producer: ThreadedProducer<Recorder> = ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{sasl}"))
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanisms", "SCRAM-SHA-256")
        .set("sasl.username", "alice")
        .set("sasl.password", "alice-secret")
        .set("message.timeout.ms", "20000")
        .set("linger.ms", "5")
        .create_with_context(Recorder(deliveries.clone()))
        .expect("producer");
    // About three sessions' worth of records, one every 100 ms.
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_millis(3 * SESSION_MS as u64 + 500) {
        producer
            .send(
                BaseRecord::<(), _>::to("reauth")
                    .payload(&format!("r{sent}"))
                    .partition(0),
            )
            .map_err(|(e, _)| e)
            .expect("enqueue");
        sent += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
    let results = deliveries.0.lock().unwrap().clone();
    assert_eq!(results.len(), sent, "every record got a delivery report");
    let failed: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
    assert!(failed.is_empty(), "deliveries failed: {failed:?}");
    let mut offsets: Vec<i64> = results.iter().filter_map(|r| r.clone().ok()).collect();
    offsets.sort();
    assert_eq!(
        offsets,
        (0..sent as i64).collect::<Vec<_>>(),
        "each record once"
    );

    let log = broker.log();
    let reauths = log.matches("re-authenticated as alice").count();
    eprintln!("{sent} records delivered across {reauths} re-authentications");
    assert!(reauths >= 2, "only {reauths} re-authentications:\n{log}");
    assert!(
        !log.contains("session expired"),
        "librdkafka re-authenticated in time:\n{log}"
    );
}
