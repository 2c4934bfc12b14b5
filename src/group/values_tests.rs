//! The values of `__consumer_offsets`: round trips, byte strings written by hand from
//! Kafka's schemas (`OffsetCommitValue.json`, `GroupMetadataValue.json`), so the format is
//! pinned independently of the encoder, ringbroker's legacy values, and random bytes.

use super::records::{GroupValue, MemberValue, OffsetValue};
use bytes::Bytes;
use rand::{RngExt, SeedableRng};

fn i16b(v: i16) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}
fn i32b(v: i32) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}
fn i64b(v: i64) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}
/// A classic string: i16 length and bytes.
fn s(v: &str) -> Vec<u8> {
    [i16b(v.len() as i16), v.as_bytes().to_vec()].concat()
}
/// Classic bytes: i32 length and bytes.
fn b(v: &[u8]) -> Vec<u8> {
    [i32b(v.len() as i32), v.to_vec()].concat()
}
/// A compact (flexible) string or bytes: unsigned varint length + 1 (all short here).
fn cs(v: &[u8]) -> Vec<u8> {
    [vec![v.len() as u8 + 1], v.to_vec()].concat()
}
const NULL: [u8; 2] = [0xff, 0xff];

/// ringbroker's values before Kafka's format, as the older broker wrote them.
pub(super) fn legacy_offset(offset: i64, epoch: i32, metadata: Option<&str>, ts: i64) -> Vec<u8> {
    let m = metadata.map_or(NULL.to_vec(), s);
    [i16b(1), i64b(offset), i32b(epoch), m, i64b(ts)].concat()
}

pub(super) fn legacy_group(
    protocol_type: &str,
    generation: i32,
    protocol: &str,
    ts: i64,
) -> Vec<u8> {
    [
        i16b(1),
        s(protocol_type),
        i32b(generation),
        s(protocol),
        i64b(ts),
    ]
    .concat()
}

fn member() -> MemberValue {
    MemberValue {
        member_id: "m-1".into(),
        instance_id: Some("i".into()),
        client_id: "c".into(),
        client_host: "/h".into(),
        rebalance_timeout_ms: 300,
        session_timeout_ms: 45,
        subscription: Bytes::from_static(&[1, 2]),
        assignment: Bytes::from_static(&[3]),
    }
}

fn group(members: Vec<MemberValue>) -> GroupValue {
    GroupValue {
        protocol_type: "consumer".into(),
        generation: 7,
        protocol: Some("range".into()),
        leader: Some("m-1".into()),
        timestamp_ms: 1234,
        members,
    }
}

#[test]
fn every_value_round_trips() {
    for metadata in [Some("meta".to_string()), Some(String::new())] {
        let v = OffsetValue {
            offset: 42,
            leader_epoch: 3,
            metadata,
            commit_timestamp_ms: 5,
        };
        assert_eq!(OffsetValue::decode(&v.encode().unwrap()), Some(v));
    }
    let mut two = member();
    two.member_id = "m-2".into();
    two.instance_id = None;
    for g in [group(vec![]), group(vec![member(), two])] {
        assert_eq!(GroupValue::decode(&g.encode().unwrap()), Some(g));
    }
    let empty = GroupValue {
        protocol_type: String::new(),
        generation: 0,
        protocol: None,
        leader: None,
        timestamp_ms: -1,
        members: vec![],
    };
    assert_eq!(GroupValue::decode(&empty.encode().unwrap()), Some(empty));
}

#[test]
fn offset_values_match_kafkas_schema() {
    // OffsetCommitValue v3: offset, leaderEpoch, metadata, commitTimestamp.
    let v3 = [i16b(3), i64b(100), i32b(10), s("metadata"), i64b(1234)].concat();
    let want = OffsetValue {
        offset: 100,
        leader_epoch: 10,
        metadata: Some("metadata".into()),
        commit_timestamp_ms: 1234,
    };
    assert_eq!(want.encode().unwrap(), v3, "ringbroker writes Kafka's v3");
    assert_eq!(OffsetValue::decode(&v3), Some(want.clone()));
    // A null metadata is written as Kafka writes it: an empty string.
    let none = OffsetValue {
        metadata: None,
        ..want.clone()
    };
    assert_eq!(
        none.encode().unwrap(),
        [i16b(3), i64b(100), i32b(10), s(""), i64b(1234)].concat()
    );
    let no_epoch = OffsetValue {
        leader_epoch: -1,
        ..want.clone()
    };
    // v0 and v2: offset, metadata, commitTimestamp. v1 adds expireTimestamp.
    let v0 = [i16b(0), i64b(100), s("metadata"), i64b(1234)].concat();
    let v1 = [i16b(1), i64b(100), s("metadata"), i64b(1234), i64b(9999)].concat();
    let v2 = [i16b(2), i64b(100), s("metadata"), i64b(1234)].concat();
    for v in [v0, v1, v2] {
        assert_eq!(OffsetValue::decode(&v), Some(no_epoch.clone()), "{v:?}");
    }
    // v4 (flexible): compact metadata, then tagged fields (here the topic id, tag 0).
    let v4 = [
        i16b(4),
        i64b(100),
        i32b(10),
        cs(b"metadata"),
        i64b(1234),
        vec![1, 0, 16],
        vec![0xab; 16],
    ]
    .concat();
    assert_eq!(OffsetValue::decode(&v4), Some(want.clone()));
    let v4_no_tags = [
        i16b(4),
        i64b(100),
        i32b(10),
        cs(b"metadata"),
        i64b(1234),
        vec![0],
    ];
    assert_eq!(OffsetValue::decode(&v4_no_tags.concat()), Some(want));
    // Unknown versions and trailing bytes are refused.
    let v5 = [i16b(5), i64b(100), i32b(10), s(""), i64b(1)].concat();
    assert_eq!(OffsetValue::decode(&v5), None);
    let long = [i16b(3), i64b(100), i32b(10), s(""), i64b(1), vec![0]].concat();
    assert_eq!(OffsetValue::decode(&long), None);
}

#[test]
fn group_values_match_kafkas_schema() {
    let header = |v: i16| [i16b(v), s("consumer"), i32b(7), s("range"), s("m-1")].concat();
    // GroupMetadataValue v3, one member: memberId, groupInstanceId, clientId, clientHost,
    // rebalanceTimeout, sessionTimeout, subscription, assignment.
    let m3 = [
        s("m-1"),
        s("i"),
        s("c"),
        s("/h"),
        i32b(300),
        i32b(45),
        b(&[1, 2]),
        b(&[3]),
    ]
    .concat();
    let v3 = [header(3), i64b(1234), i32b(1), m3].concat();
    let want = group(vec![member()]);
    assert_eq!(want.encode().unwrap(), v3, "ringbroker writes Kafka's v3");
    assert_eq!(GroupValue::decode(&v3), Some(want.clone()));
    // v2: no groupInstanceId; v1: no currentStateTimestamp either; v0: no
    // rebalanceTimeout either.
    let m2 = [
        s("m-1"),
        s("c"),
        s("/h"),
        i32b(300),
        i32b(45),
        b(&[1, 2]),
        b(&[3]),
    ]
    .concat();
    let m0 = [s("m-1"), s("c"), s("/h"), i32b(45), b(&[1, 2]), b(&[3])].concat();
    let older = |ts: i64, rebalance: i32| {
        let mut m = member();
        m.instance_id = None;
        m.rebalance_timeout_ms = rebalance;
        GroupValue {
            timestamp_ms: ts,
            ..group(vec![m])
        }
    };
    let v2 = [header(2), i64b(1234), i32b(1), m2.clone()].concat();
    assert_eq!(GroupValue::decode(&v2), Some(older(1234, 300)));
    let v1 = [header(1), i32b(1), m2].concat();
    assert_eq!(GroupValue::decode(&v1), Some(older(-1, 300)));
    let v0 = [header(0), i32b(1), m0].concat();
    assert_eq!(GroupValue::decode(&v0), Some(older(-1, -1)));
    // v4 (flexible): compact strings, bytes and arrays, tagged fields per struct.
    let m4 = [
        cs(b"m-1"),
        cs(b"i"),
        cs(b"c"),
        cs(b"/h"),
        i32b(300),
        i32b(45),
        cs(&[1, 2]),
        cs(&[3]),
        vec![0],
    ]
    .concat();
    let v4 = [
        i16b(4),
        cs(b"consumer"),
        i32b(7),
        cs(b"range"),
        cs(b"m-1"),
        i64b(1234),
        vec![2],
        m4,
        vec![1, 5, 1, 0xee],
    ]
    .concat();
    assert_eq!(GroupValue::decode(&v4), Some(want));
    // An empty group as Kafka writes it: null protocol and leader, no members.
    let empty = [
        i16b(3),
        s("consumer"),
        i32b(8),
        NULL.to_vec(),
        NULL.to_vec(),
    ];
    let empty = [empty.concat(), i64b(55), i32b(0)].concat();
    let v = GroupValue::decode(&empty).unwrap();
    assert_eq!((v.protocol, v.leader, v.members.len()), (None, None, 0));
}

#[test]
fn legacy_values_still_decode() {
    let v = OffsetValue::decode(&legacy_offset(42, 5, Some("meta"), 77)).unwrap();
    assert_eq!(
        v,
        OffsetValue {
            offset: 42,
            leader_epoch: 5,
            metadata: Some("meta".into()),
            commit_timestamp_ms: 77,
        }
    );
    let v = OffsetValue::decode(&legacy_offset(42, -1, None, 77)).unwrap();
    assert_eq!((v.offset, v.leader_epoch, v.metadata), (42, -1, None));
    let g = GroupValue::decode(&legacy_group("consumer", 9, "range", 11)).unwrap();
    assert_eq!(
        (
            g.protocol_type.as_str(),
            g.generation,
            g.protocol.as_deref()
        ),
        ("consumer", 9, Some("range"))
    );
    assert_eq!((g.timestamp_ms, g.members.len()), (11, 0));
    let g = GroupValue::decode(&legacy_group("", 0, "", 11)).unwrap();
    assert_eq!(g.protocol, None);
}

#[test]
fn legacy_and_kafka_v1_are_told_apart() {
    // Kafka's v1 offset value, as Kafka writes it for a commit with a retention time.
    let kafka = [i16b(1), i64b(42), s("meta"), i64b(77), i64b(99)].concat();
    let v = OffsetValue::decode(&kafka).unwrap();
    assert_eq!((v.leader_epoch, v.metadata.as_deref()), (-1, Some("meta")));
    assert_eq!(v.commit_timestamp_ms, 77);
    let kafka_empty = [i16b(1), i64b(42), s(""), i64b(77), i64b(99)].concat();
    assert_eq!(
        OffsetValue::decode(&kafka_empty).map(|v| v.commit_timestamp_ms),
        Some(77)
    );
    // The one shape both layouts account for: Kafka metadata whose bytes 2..4, read as a
    // length, are its own length + 4 (a control character in third place). It is read as
    // legacy, which is what a ringbroker log holds.
    let both = [i16b(1), i64b(42), s("ab\0\x08"), i64b(77), i64b(99)].concat();
    assert_eq!(OffsetValue::decode(&both).map(|v| v.offset), Some(42));
    assert_eq!(
        OffsetValue::decode(&both).map(|v| v.leader_epoch),
        Some(0x0004_6162)
    );
    // Kafka's v1 group value of an empty group: null protocol and leader, no members.
    let kafka = [
        i16b(1),
        s("consumer"),
        i32b(3),
        NULL.to_vec(),
        NULL.to_vec(),
    ]
    .concat();
    let g = GroupValue::decode(&[kafka, i32b(0)].concat()).unwrap();
    assert_eq!((g.generation, g.protocol, g.timestamp_ms), (3, None, -1));
    // With members: Kafka's, whatever the lengths.
    let m = [s("m"), s("c"), s("h"), i32b(1), i32b(2), b(b"s"), b(b"a")].concat();
    let kafka = [i16b(1), s("consumer"), i32b(3), s("r"), s("m"), i32b(1), m].concat();
    let g = GroupValue::decode(&kafka).unwrap();
    assert_eq!((g.leader.as_deref(), g.members.len()), (Some("m"), 1));
}

/// Decoding must refuse, not panic, on anything: random bytes, and every truncation and
/// single-byte change of valid values of every version.
#[test]
fn random_bytes_never_panic() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(14);
    let mut valid = vec![
        legacy_offset(1, 2, Some("m"), 3),
        legacy_group("consumer", 1, "range", 2),
        group(vec![member(), member()]).encode().unwrap(),
        OffsetValue {
            offset: 1,
            leader_epoch: 1,
            metadata: None,
            commit_timestamp_ms: 1,
        }
        .encode()
        .unwrap(),
    ];
    let v4 = [i16b(4), cs(b"c"), i32b(1), cs(b"r"), cs(b"m"), i64b(1)].concat();
    valid.push([v4, vec![2], cs(b"m"), cs(b"i"), cs(b"c"), cs(b"h")].concat());
    let mut decoded = 0;
    for v in &valid {
        for cut in 0..v.len() {
            let _ = OffsetValue::decode(&v[..cut]);
            let _ = GroupValue::decode(&v[..cut]);
        }
        for _ in 0..2000 {
            let mut m = v.clone();
            let i = rng.random_range(0..m.len());
            m[i] = rng.random();
            decoded += usize::from(OffsetValue::decode(&m).is_some());
            decoded += usize::from(GroupValue::decode(&m).is_some());
        }
    }
    assert!(
        decoded > 0,
        "some mutations still decode: the test reaches the fields"
    );
    for _ in 0..50_000 {
        let len = rng.random_range(0..64);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if len >= 2 {
            // Mostly known versions, so the fields are read, not refused at once.
            bytes[0] = 0;
            bytes[1] = rng.random_range(0..6);
        }
        let _ = OffsetValue::decode(&bytes);
        let _ = GroupValue::decode(&bytes);
    }
    // A member count that lies is refused before anything is reserved.
    let lying = [
        i16b(3),
        s(""),
        i32b(0),
        NULL.to_vec(),
        NULL.to_vec(),
        i64b(0),
    ]
    .concat();
    assert_eq!(GroupValue::decode(&[lying, i32b(i32::MAX)].concat()), None);
    let flexible = [i16b(4), cs(b""), i32b(0), vec![0, 0], i64b(0)].concat();
    // A varint with bits beyond 32 is refused, not wrapped into a small count (here it
    // would wrap to 1: no members, and the value would decode).
    let wrapped = [0x81, 0x80, 0x80, 0x80, 0x10];
    assert_eq!(
        GroupValue::decode(&[flexible.clone(), wrapped.to_vec(), vec![0]].concat()),
        None
    );
    let huge_count = [0xff, 0xff, 0xff, 0xff, 0x0f];
    assert_eq!(
        GroupValue::decode(&[flexible, huge_count.to_vec()].concat()),
        None
    );
}
