//! Every advertised (API, version) has a schema, and the walker accepts what clients send.

use super::super::schema::{self, Elem, Ty};
use super::super::{Limits, check_request, schema_for};
use super::{CASES, build, crate_decode};
use crate::protocol::versions::{PRODUCE_MIN_DECODED, SUPPORTED};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::RequestHeader;
use kafka_protocol::protocol::Decodable;

/// Produce below this version is answered by hand, without decoding.
const PRODUCE_MIN: i16 = PRODUCE_MIN_DECODED;

fn has_array(s: &schema::StructSchema, v: i16) -> bool {
    s.fields
        .iter()
        .any(|f| f.versions.contains(v) && matches!(f.ty, Ty::Array { .. }))
}

/// Walks every advertised version, each builder variant, and checks the walker against the
/// crate: accepted, every byte consumed, header length as the crate reads it, and an
/// estimate equal to what the decoded request reserves.
#[test]
fn every_advertised_version_is_accepted_exactly() {
    let mut pairs = 0;
    for &(api, min, max) in SUPPORTED {
        for v in min..=max {
            let schema = schema_for(api).unwrap_or_else(|| panic!("no schema for {api:?}"));
            if api == ApiKey::Produce && v < PRODUCE_MIN {
                assert!(
                    !schema.versions.contains(v),
                    "Produce v{v} is answered by hand"
                );
                continue;
            }
            assert!(schema.versions.contains(v), "{api:?} v{v} has no schema");
            pairs += 1;
            for case in 0..CASES {
                let frame =
                    build(api, v, case).unwrap_or_else(|| panic!("no builder for {api:?} v{v}"));
                let what = format!("{api:?} v{v} case {case}");
                let checked = check_request(&frame, &Limits::default())
                    .unwrap_or_else(|e| panic!("{what}: refused: {e}"));
                assert_eq!((checked.api, checked.version), (api, v), "{what}");
                assert_eq!(checked.correlation_id, 7000 + i32::from(v), "{what}");
                assert_eq!(checked.consumed, frame.len(), "{what}: consumed");

                let mut rest = bytes::Bytes::copy_from_slice(&frame);
                RequestHeader::decode(&mut rest, api.request_header_version(v)).unwrap();
                assert_eq!(
                    checked.header_len,
                    frame.len() - rest.len(),
                    "{what}: header"
                );

                let footprint = crate_decode(&frame)
                    .unwrap_or_else(|e| panic!("{what}: crate cannot decode: {e:?}"));
                assert_eq!(
                    checked.decoded_bytes_estimate, footprint,
                    "{what}: estimate"
                );
                if case == 0 && (has_array(schema.body, v) || schema.is_flexible(v)) {
                    assert!(footprint > 0, "{what}: nothing measured");
                }
            }
        }
    }
    assert_eq!(
        pairs,
        // ..., ListOffsets v7-10, DescribeCluster v0-2, DescribeProducers v0,
        // CreatePartitions v0-3, DeleteRecords v0-2, DescribeLogDirs v1-4,
        // OffsetForLeaderEpoch v2-4.
        // SaslHandshake v0-1, SaslAuthenticate v0-2, Describe/Create/DeleteAcls v1-3,
        // Describe/AlterUserScramCredentials v0.
        // AddPartitionsToTxn v0-4, AddOffsetsToTxn v0-3, EndTxn v0-3, TxnOffsetCommit v0-3,
        // WriteTxnMarkers v1, DescribeTransactions v0, ListTransactions v0-1.
        118 + 4 + 3 + 2 + 4 + 3 + 1 + 4 + 3 + 4 + 3 + 2 + 3 + 3 * 3 + 2 + 5 + 4 + 4 + 4 + 1 + 1 + 2,
        "advertised (api, version) pairs with a schema (update when advertising more)"
    );
}

/// Schemas serve exactly what the broker advertises, and nothing else.
#[test]
fn schema_versions_match_the_advertised_table() {
    assert_eq!(schema::ALL.len(), SUPPORTED.len());
    for &(api, min, max) in SUPPORTED {
        let s = schema_for(api).unwrap();
        let min = if api == ApiKey::Produce {
            PRODUCE_MIN
        } else {
            min
        };
        assert_eq!((s.versions.min, s.versions.max), (min, max), "{api:?}");
    }
}

/// The flexible versions of each schema are those whose header is v2, as the crate says.
#[test]
fn flexible_versions_agree_with_header_versions() {
    for s in schema::ALL {
        for v in s.versions.min..=s.versions.max {
            let header_flexible = s.api.request_header_version(v) >= 2;
            assert_eq!(s.is_flexible(v), header_flexible, "{:?} v{v}", s.api);
        }
    }
}

fn depth(s: &schema::StructSchema) -> usize {
    let inner = |ty: Ty| match ty {
        Ty::Struct(s) => depth(s),
        Ty::Array {
            elem: Elem::Struct(s),
            ..
        } => depth(s),
        _ => 0,
    };
    let fields = s.fields.iter().map(|f| inner(f.ty));
    let tagged = s.tagged.iter().map(|t| inner(t.ty));
    1 + fields.chain(tagged).max().unwrap_or(0)
}

/// Schemas nest within the walker's depth, and every array names a Rust element size.
#[test]
fn schemas_are_well_formed() {
    fn sizes(s: &schema::StructSchema) {
        for f in s.fields {
            if let Ty::Array {
                elem,
                rust_elem_size,
                ..
            } = f.ty
            {
                assert!(rust_elem_size > 0, "{}.{}", s.name, f.name);
                if let Elem::Struct(inner) = elem {
                    sizes(inner);
                }
            }
        }
    }
    for s in schema::ALL {
        assert!(depth(s.body) <= super::super::MAX_DEPTH, "{:?}", s.api);
        sizes(s.body);
        for v in s.versions.min..=s.versions.max {
            elements_take_bytes(s.body, v, s.is_flexible(v));
        }
    }
}

/// Every element of an array present in `v` takes at least one byte, so a count above the
/// bytes left can never be filled (the walker's floor of 1 is never what decides).
fn elements_take_bytes(s: &schema::StructSchema, v: i16, flexible: bool) {
    for f in s.fields.iter().filter(|f| f.versions.contains(v)) {
        if let Ty::Array { elem, .. } = f.ty {
            let min = schema::elem_min_size(elem, v, flexible);
            assert!(min >= 1, "{}.{} v{v}", s.name, f.name);
            if let Elem::Struct(inner) = elem {
                elements_take_bytes(inner, v, flexible);
            }
        }
    }
}
