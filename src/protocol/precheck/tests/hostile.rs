//! Hand-made hostile frames, each refused for the stated reason; and the limits.

use super::super::{Limits, PrecheckError, TAGGED_ENTRY_BYTES, check_request};
use super::{Failure, build, crate_decode};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use std::mem::size_of;

/// A request header with a null client id (and an empty tag section when flexible).
fn header(api: ApiKey, v: i16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend((api as i16).to_be_bytes());
    f.extend(v.to_be_bytes());
    f.extend(1i32.to_be_bytes());
    f.extend((-1i16).to_be_bytes());
    if api.request_header_version(v) >= 2 {
        f.push(0);
    }
    f
}

fn frame(api: ApiKey, v: i16, body: &[u8]) -> Vec<u8> {
    let mut f = header(api, v);
    f.extend_from_slice(body);
    f
}

fn check(f: &[u8]) -> Result<super::super::Checked, PrecheckError> {
    check_request(f, &Limits::default())
}

#[test]
fn create_topics_with_a_count_of_2_pow_31_is_refused() {
    // topics: compact count 2^31 (2^31 - 1 elements), timeout_ms, validate_only: 10 bytes.
    let body = [0x80, 0x80, 0x80, 0x80, 0x08, 0, 0, 0, 0, 0];
    let f = frame(ApiKey::CreateTopics, 5, &body);
    let e = check(&f).unwrap_err();
    assert!(
        matches!(e, PrecheckError::ArrayTooLong { what: "topics", count, remaining: 5, .. }
            if count == (1 << 31) - 1),
        "{e:?}"
    );
    assert!(e.to_string().contains("topics"), "{e}");
}

#[test]
fn metadata_v1_with_a_count_of_2_pow_31_is_refused() {
    let f = frame(ApiKey::Metadata, 1, &[0x7f, 0xff, 0xff, 0xff]);
    let e = check(&f).unwrap_err();
    assert!(
        matches!(
            e,
            PrecheckError::ArrayTooLong {
                what: "topics",
                count: 0x7fff_ffff,
                remaining: 0,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn an_honest_count_that_amplifies_is_refused_by_the_decoded_limit() {
    // 100 000 topics of null name take 2 bytes each on the wire.
    let n = 100_000usize;
    let mut body = (n as i32).to_be_bytes().to_vec();
    body.extend(std::iter::repeat_n([0xff, 0xff], n).flatten());
    let f = frame(ApiKey::Metadata, 1, &body);
    let expected = n * size_of::<MetadataRequestTopic>();
    assert!(
        expected > 30 * f.len(),
        "amplification {expected} / {}",
        f.len()
    );
    let ok = check(&f).unwrap();
    assert_eq!(ok.decoded_bytes_estimate, expected);
    assert_eq!(crate_decode(&f).unwrap(), expected);
    let tight = Limits {
        max_decoded_bytes: expected - 1,
        ..Limits::default()
    };
    let e = check_request(&f, &tight).unwrap_err();
    assert!(
        matches!(e, PrecheckError::DecodedTooLarge { .. }) && e.is_limit(),
        "{e:?}"
    );
}

/// Heartbeat v4 body with `n` empty unknown tagged fields at the end.
fn heartbeat_with_tags(n: u8) -> Vec<u8> {
    let mut body = vec![2, b'g', 0, 0, 0, 1, 2, b'm', 0, n];
    for tag in 0..n {
        body.extend([tag, 0]);
    }
    frame(ApiKey::Heartbeat, 4, &body)
}

#[test]
fn tagged_sections_are_limited() {
    let ok = check(&heartbeat_with_tags(64)).unwrap();
    assert_eq!(ok.decoded_bytes_estimate, 64 * TAGGED_ENTRY_BYTES);
    let f = heartbeat_with_tags(65);
    let e = check(&f).unwrap_err();
    assert!(matches!(
        e,
        PrecheckError::TooManyTaggedFields {
            count: 65,
            limit: 64,
            ..
        }
    ));
    assert!(e.is_limit());
    // The crate would decode it: the limit is ours.
    assert!(crate_decode(&f).is_ok());
    // A count the bytes cannot hold is structural, not a limit.
    let mut f = heartbeat_with_tags(0);
    *f.last_mut().unwrap() = 100;
    let e = check(&f).unwrap_err();
    assert!(
        matches!(
            e,
            PrecheckError::ArrayTooLong {
                what: "tagged fields",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn lengths_nulls_and_varints_are_checked() {
    // Heartbeat v0 group_id of length -2, then of null (not nullable).
    let e = check(&frame(
        ApiKey::Heartbeat,
        0,
        &[0xff, 0xfe, 0, 0, 0, 0, 0, 0],
    ))
    .unwrap_err();
    assert!(
        matches!(e, PrecheckError::NegativeLength { len: -2, .. }),
        "{e:?}"
    );
    let f = frame(ApiKey::Heartbeat, 0, &[0xff, 0xff, 0, 0, 0, 0, 0, 0]);
    let e = check(&f).unwrap_err();
    assert!(
        matches!(
            e,
            PrecheckError::NullNotAllowed {
                what: "group_id",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(matches!(crate_decode(&f), Err(Failure::Other(_))));
    // A string longer than the frame.
    let e = check(&frame(ApiKey::Heartbeat, 0, &[0x10, 0x00, b'g'])).unwrap_err();
    assert!(matches!(
        e,
        PrecheckError::LengthBeyondFrame {
            len: 4096,
            remaining: 1,
            ..
        }
    ));
    // A varint whose fifth byte still continues.
    let f = frame(ApiKey::Heartbeat, 4, &[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    let e = check(&f).unwrap_err();
    assert!(
        matches!(e, PrecheckError::VarintTooLong { max: 5, .. }) && e.is_limit(),
        "{e:?}"
    );
    // A JoinGroup protocol's metadata bytes of length -1 (not nullable).
    let mut body = vec![0, 1, b'g', 0, 0, 0, 1, 0, 1, b'm', 0, 1, b'c', 0, 0, 0, 1];
    body.extend([0, 1, b'r', 0xff, 0xff, 0xff, 0xff]);
    let e = check(&frame(ApiKey::JoinGroup, 0, &body)).unwrap_err();
    assert!(
        matches!(
            e,
            PrecheckError::NullNotAllowed {
                what: "metadata",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn known_tags_are_read_by_type_as_the_crate_does() {
    // Fetch v12, no topics, no forgotten topics, empty rack, then tag 0 (cluster_id) whose
    // size says 200 while its value is a 3-byte compact string: the crate reads the string.
    let mut body = vec![0xff, 0xff, 0xff, 0xff];
    body.extend([
        0, 0, 1, 0xf4, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    body.extend([1, 1, 1]);
    body.extend([1, 0, 200, 1, 3, b'c', b'x']);
    let f = frame(ApiKey::Fetch, 12, &body);
    let ok = check(&f).unwrap();
    assert_eq!(ok.consumed, f.len());
    assert!(crate_decode(&f).is_ok());
    // Tag 1 (replica_state) exists from v15 only: the crate refuses it in v12.
    let mut g = f[..f.len() - 6].to_vec();
    g.extend([1, 0]);
    let e = check(&g).unwrap_err();
    assert!(matches!(
        e,
        PrecheckError::TagNotValidForVersion {
            tag: 1,
            version: 12,
            ..
        }
    ));
    assert!(matches!(crate_decode(&g), Err(Failure::Other(_))));
}

#[test]
fn trailing_bytes_are_allowed_and_not_consumed() {
    let mut f = build(ApiKey::Metadata, 9, 0).unwrap();
    let n = f.len();
    f.extend([9, 9, 9]);
    let ok = check(&f).unwrap();
    assert_eq!(ok.consumed, n);
}

#[test]
fn unknown_apis_and_versions_are_refused() {
    let f = frame(ApiKey::ApiVersions, 4, &[]);
    let e = check(&f).unwrap_err();
    assert!(matches!(
        e,
        PrecheckError::UnsupportedVersion {
            api: ApiKey::ApiVersions,
            version: 4
        }
    ));
    let e = check(&frame(ApiKey::Produce, 2, &[])).unwrap_err();
    assert!(matches!(
        e,
        PrecheckError::UnsupportedVersion { version: 2, .. }
    ));
    // An API the broker does not serve has no schema.
    let e = check(&frame(ApiKey::ElectLeaders, 0, &[])).unwrap_err();
    assert!(matches!(e, PrecheckError::NoSchema(ApiKey::ElectLeaders)));
    let mut f = frame(ApiKey::Metadata, 1, &[]);
    f[0..2].copy_from_slice(&999i16.to_be_bytes());
    assert!(matches!(check(&f), Err(PrecheckError::UnknownApi(999))));
    for n in 0..8 {
        assert!(matches!(
            check(&f[..n]),
            Err(PrecheckError::Truncated { .. })
        ));
    }
}
