//! TLS beyond the handshake, against the real binary: on an SSL listener the client
//! certificate's subject (through `ssl.principal.mapping.rules`) is the principal the ACLs
//! name, checked with librdkafka; and the key and certificate files are reloaded while the
//! broker runs (`ssl.reload.interval.ms`): new connections get the new certificate, open
//! ones go on, a broken replacement is refused with one ERROR and the last good one stays.

mod common;
#[path = "common/deliveries.rs"]
mod deliveries;

use common::kafka;
use common::{Broker, RawClient, disk_tempdir, free_port};
use deliveries::{Deliveries, Recorder};
use kafka_protocol::messages::CreateAclsRequest;
use kafka_protocol::messages::CreateAclsResponse;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

// Kafka's enum values (ResourceType, PatternType, AclOperation, AclPermissionType).
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const LITERAL: i8 = 3;
const ALL: i8 = 2;
const ALLOW: i8 = 3;

struct Ca {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    pem: String,
}

fn ca() -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "tls test CA");
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    Ca { params, key, pem }
}

/// A certificate signed by `ca` for `names` with the subject `dn` (most significant RDN
/// first, as a certificate stores it): its PEM, its DER and its key's PEM.
fn leaf(ca: &Ca, names: &[&str], dn: &[(rcgen::DnType, &str)]) -> (String, Vec<u8>, String) {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for (t, v) in dn {
        params.distinguished_name.push(t.clone(), *v);
    }
    let key = rcgen::KeyPair::generate().unwrap();
    let issuer = rcgen::Issuer::from_params(&ca.params, &ca.key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    (cert.pem(), cert.der().to_vec(), key.serialize_pem())
}

fn server_cert(ca: &Ca, cn: &str) -> (String, Vec<u8>, String) {
    leaf(
        ca,
        &["localhost", "127.0.0.1"],
        &[(rcgen::DnType::CommonName, cn)],
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Replaces a file in one step (write aside, rename), as certificate tools do.
fn replace(path: &Path, text: &str) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, text).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

/// A broker with a PLAINTEXT listener (for the admin, `User:ANONYMOUS`) and an SSL one.
fn start(dir: &Path, keystore: &Path, sets: &[String]) -> (Broker, u16, u16) {
    let (plain, ssl) = (free_port(), free_port());
    let mut extra = vec![
        format!("listeners=PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{ssl}"),
        format!("ssl.keystore.location={}", keystore.display()),
    ];
    extra.extend(sets.iter().cloned());
    let extra = extra
        .into_iter()
        .flat_map(|s| ["--set".to_string(), s])
        .collect();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    (
        Broker::start_with_listeners(&data, plain, extra),
        plain,
        ssl,
    )
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Produces `n` records with librdkafka over SSL presenting `cert`/`key`; returns the
/// delivery results.
fn produce_as(
    ssl: u16,
    ca: &Path,
    cert: &Path,
    key: &Path,
    topic: &str,
    n: usize,
) -> Vec<Result<i64, String>> {
    let deliveries = Arc::new(Deliveries::default());
    let producer: ThreadedProducer<Recorder> = ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{ssl}"))
        .set("security.protocol", "SSL")
        .set("ssl.ca.location", ca.to_str().unwrap())
        .set("ssl.certificate.location", cert.to_str().unwrap())
        .set("ssl.key.location", key.to_str().unwrap())
        .set("message.timeout.ms", "8000")
        .create_with_context(Recorder(deliveries.clone()))
        .expect("producer");
    for i in 0..n {
        let v = format!("{topic}-{i}");
        producer
            .send(BaseRecord::<(), _>::to(topic).payload(&v).partition(0))
            .map_err(|(e, _)| e)
            .expect("enqueue");
    }
    let _ = producer.flush(Duration::from_secs(20));
    let results = deliveries.0.lock().unwrap().clone();
    assert_eq!(results.len(), n, "every record got a delivery report");
    results
}

fn allow_all(admin: &mut RawClient, principal: &str, topic: &str) {
    let s = |x: &str| StrBytes::from_string(x.to_string());
    let acl = |rt: i8, name: &str| {
        AclCreation::default()
            .with_resource_type(rt)
            .with_resource_name(s(name))
            .with_resource_pattern_type(LITERAL)
            .with_principal(s(principal))
            .with_host(s("*"))
            .with_operation(ALL)
            .with_permission_type(ALLOW)
    };
    let r: CreateAclsResponse = admin.call(
        2,
        &CreateAclsRequest::default().with_creations(vec![acl(TOPIC, topic), acl(GROUP, topic)]),
    );
    assert!(r.results.iter().all(|r| r.error_code == 0), "{r:?}");
}

#[test]
fn the_client_certificate_subject_is_the_principal_acls_name() {
    let dir = disk_tempdir("rb-tls-principal-");
    let ca = ca();
    let (server_pem, _, server_key) = server_cert(&ca, "broker");
    let keystore = write(
        dir.path(),
        "server.pem",
        &format!("{server_key}{server_pem}"),
    );
    let ca_path = write(dir.path(), "ca.pem", &ca.pem);
    let client = |name: &str, ou: &str| {
        let (pem, _, key) = leaf(
            &ca,
            &["client.test"],
            &[
                (rcgen::DnType::OrganizationName, "Example"),
                (rcgen::DnType::OrganizationalUnitName, ou),
                (rcgen::DnType::CommonName, name),
            ],
        );
        (
            write(dir.path(), &format!("{name}.pem"), &pem),
            write(dir.path(), &format!("{name}.key"), &key),
        )
    };
    let (alice_cert, alice_key) = client("alice", "eng");
    let (bob_cert, bob_key) = client("Bob", "ops");
    let (_broker, plain, ssl) = start(
        dir.path(),
        &keystore,
        &[
            format!("ssl.truststore.location={}", ca_path.display()),
            "ssl.client.auth=required".to_string(),
            "authorizer.enabled=true".to_string(),
            "super.users=User:ANONYMOUS".to_string(),
            // Operators are known by their lower-cased CN; everyone else by the full name.
            "ssl.principal.mapping.rules=RULE:^CN=([^,]*),OU=ops,.*$/$1/L, DEFAULT".to_string(),
        ],
    );
    let mut admin = RawClient::connect(addr(plain));
    assert_eq!(kafka::create_topics(&mut admin, &[("secured", 1)])[0].1, 0);

    // alice: User:CN=alice,OU=eng,O=Example, refused until an ACL names her.
    let refused = produce_as(ssl, &ca_path, &alice_cert, &alice_key, "secured", 3);
    assert!(
        refused
            .iter()
            .all(|r| r.as_ref().is_err_and(|e| e.contains("uthoriz"))),
        "no ACL yet: {refused:?}"
    );
    allow_all(&mut admin, "User:CN=alice,OU=eng,O=Example", "secured");
    let allowed = produce_as(ssl, &ca_path, &alice_cert, &alice_key, "secured", 3);
    assert!(allowed.iter().all(Result::is_ok), "{allowed:?}");

    // Bob of OU=ops: the rule makes him User:bob; an ACL for alice's name does not help him.
    let refused = produce_as(ssl, &ca_path, &bob_cert, &bob_key, "secured", 2);
    assert!(refused.iter().all(Result::is_err), "{refused:?}");
    allow_all(&mut admin, "User:bob", "secured");
    let allowed = produce_as(ssl, &ca_path, &bob_cert, &bob_key, "secured", 2);
    assert!(allowed.iter().all(Result::is_ok), "{allowed:?}");
    assert_eq!(kafka::latest_offset(&mut admin, "secured", 0), 5);
}

/// A TLS client that trusts `ca_pem`; `None` when the handshake fails.
fn tls_connect(
    port: u16,
    ca_pem: &str,
) -> Option<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let sock = TcpStream::connect(addr(port)).ok()?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).ok()?;
    }
    Some(tls)
}

fn served_cert(tls: &rustls::StreamOwned<rustls::ClientConnection, TcpStream>) -> Vec<u8> {
    tls.conn.peer_certificates().unwrap()[0].to_vec()
}

/// ApiVersions v0 over an open TLS connection: the answer carries our correlation id.
fn api_versions_answered(
    tls: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    id: i32,
) -> bool {
    let frame = RawClient::encode_raw(18, 0, id, &[]);
    let mut out = (frame.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&frame);
    if tls.write_all(&out).and_then(|_| tls.flush()).is_err() {
        return false;
    }
    let mut len = [0u8; 4];
    if tls.read_exact(&mut len).is_err() {
        return false;
    }
    let mut body = vec![0u8; i32::from_be_bytes(len).clamp(0, 1 << 20) as usize];
    tls.read_exact(&mut body).is_ok() && body.get(..4) == Some(&id.to_be_bytes()[..])
}

#[test]
fn a_replaced_certificate_is_served_to_new_connections_while_open_ones_go_on() {
    let dir = disk_tempdir("rb-tls-reload-");
    let ca = ca();
    let (a_pem, a_der, a_key) = server_cert(&ca, "broker A");
    let (b_pem, b_der, b_key) = server_cert(&ca, "broker B");
    let keystore = write(dir.path(), "server.pem", &format!("{a_key}{a_pem}"));
    let (broker, _, ssl) = start(
        dir.path(),
        &keystore,
        &["ssl.reload.interval.ms=100".to_string()],
    );

    let mut before = tls_connect(ssl, &ca.pem).expect("handshake with A");
    assert_eq!(served_cert(&before), a_der);
    assert!(api_versions_answered(&mut before, 1));

    replace(&keystore, &format!("{b_key}{b_pem}"));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = tls_connect(ssl, &ca.pem).expect("handshake");
        if served_cert(&now) == b_der {
            break;
        }
        assert_eq!(served_cert(&now), a_der);
        assert!(Instant::now() < deadline, "B is not served after 15 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        api_versions_answered(&mut before, 2),
        "the connection opened with A goes on"
    );

    // A's key with B's certificate: refused, with one ERROR however often it is checked.
    replace(&keystore, &format!("{a_key}{b_pem}"));
    let deadline = Instant::now() + Duration::from_secs(15);
    while !broker.log().contains("new TLS files refused") {
        assert!(Instant::now() < deadline, "no ERROR for a mismatched key");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(600));
    let log = broker.log();
    assert_eq!(log.matches("new TLS files refused").count(), 1, "{log}");
    assert!(log.contains("ERROR"), "logged as an error");
    let after = tls_connect(ssl, &ca.pem).expect("handshake with B still");
    assert_eq!(
        served_cert(&after),
        b_der,
        "the last good certificate stays"
    );
    replace(&keystore, "garbage");
    std::thread::sleep(Duration::from_millis(400));
    let after = tls_connect(ssl, &ca.pem).expect("handshake with B still");
    assert_eq!(served_cert(&after), b_der);
    assert!(api_versions_answered(&mut before, 3));
}
