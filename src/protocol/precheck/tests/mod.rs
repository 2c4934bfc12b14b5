//! Tests of the pre-check against the `kafka-protocol` crate: requests built and encoded
//! with the crate's types, then walked, decoded and measured.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod build_configs;
mod build_data;
mod build_groups;
mod build_log_admin;
mod build_txn;
mod coverage;
mod footprint;
mod fuzz;
mod hostile;
mod min_size;
mod structure;

use super::{Limits, PrecheckError, check_request, schema_for};
use bytes::{Bytes, BytesMut};
use footprint::Footprint;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::buf::NotEnoughBytesError;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Tag number of the unknown tagged field every flexible struct carries.
pub const UNKNOWN_TAG: i32 = 77;
/// Builder variants: 0 fills nullable fields, 1 leaves them null.
pub const CASES: usize = 2;

pub fn s(x: &'static str) -> StrBytes {
    StrBytes::from_static_str(x)
}

pub fn tv() -> Bytes {
    Bytes::from_static(b"tag!")
}

/// Header then body, as a client encodes them (without the length prefix).
fn encode<T: Encodable>(api: ApiKey, version: i16, case: usize, body: &T) -> Vec<u8> {
    let header_version = api.request_header_version(version);
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(7000 + i32::from(version))
        .with_client_id((case == 0).then(|| s("precheck-client")))
        .with_unknown_tagged_field(UNKNOWN_TAG + 1, tv());
    let mut buf = BytesMut::new();
    header.encode(&mut buf, header_version).unwrap();
    body.encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("encoding {api:?} v{version} case {case}: {e}"));
    buf.to_vec()
}

/// A frame of `api` at `version` for builder variant `case`; `None` for an API the tests
/// cannot build.
pub fn build(api: ApiKey, version: i16, case: usize) -> Option<Vec<u8>> {
    use build_data as d;
    use build_groups as g;
    let (v, c) = (version, case);
    Some(match api {
        ApiKey::Produce => encode(api, v, c, &d::produce(v, c)),
        ApiKey::Fetch => encode(api, v, c, &d::fetch(v, c)),
        ApiKey::ListOffsets => encode(api, v, c, &d::list_offsets(v, c)),
        ApiKey::OffsetForLeaderEpoch => encode(api, v, c, &d::offset_for_leader_epoch(v, c)),
        ApiKey::Metadata => encode(api, v, c, &d::metadata(v, c)),
        ApiKey::ApiVersions => encode(api, v, c, &d::api_versions(v, c)),
        ApiKey::CreateTopics => encode(api, v, c, &d::create_topics(v, c)),
        ApiKey::DeleteTopics => encode(api, v, c, &d::delete_topics(v, c)),
        ApiKey::InitProducerId => encode(api, v, c, &d::init_producer_id(v, c)),
        ApiKey::DescribeConfigs => encode(api, v, c, &build_configs::describe(v, c)),
        ApiKey::AlterConfigs => encode(api, v, c, &build_configs::alter(v, c)),
        ApiKey::IncrementalAlterConfigs => encode(api, v, c, &build_configs::incremental(v, c)),
        ApiKey::DescribeCluster => encode(api, v, c, &build_configs::describe_cluster(v, c)),
        ApiKey::DescribeProducers => encode(api, v, c, &build_configs::describe_producers(v, c)),
        ApiKey::CreatePartitions => encode(api, v, c, &build_log_admin::create_partitions(v, c)),
        ApiKey::DeleteRecords => encode(api, v, c, &build_log_admin::delete_records(v, c)),
        ApiKey::DescribeLogDirs => encode(api, v, c, &build_log_admin::describe_log_dirs(v, c)),
        ApiKey::FindCoordinator => encode(api, v, c, &g::find_coordinator(v, c)),
        ApiKey::JoinGroup => encode(api, v, c, &g::join_group(v, c)),
        ApiKey::SyncGroup => encode(api, v, c, &g::sync_group(v, c)),
        ApiKey::Heartbeat => encode(api, v, c, &g::heartbeat(v, c)),
        ApiKey::LeaveGroup => encode(api, v, c, &g::leave_group(v, c)),
        ApiKey::OffsetCommit => encode(api, v, c, &g::offset_commit(v, c)),
        ApiKey::OffsetFetch => encode(api, v, c, &g::offset_fetch(v, c)),
        ApiKey::ListGroups => encode(api, v, c, &g::list_groups(v, c)),
        ApiKey::DescribeGroups => encode(api, v, c, &g::describe_groups(v, c)),
        ApiKey::DeleteGroups => encode(api, v, c, &g::delete_groups(v, c)),
        ApiKey::OffsetDelete => encode(api, v, c, &g::offset_delete(v, c)),
        ApiKey::SaslHandshake => encode(api, v, c, &build_configs::sasl_handshake(v, c)),
        ApiKey::SaslAuthenticate => encode(api, v, c, &build_configs::sasl_authenticate(v, c)),
        ApiKey::CreateAcls => encode(api, v, c, &build_configs::create_acls(v, c)),
        ApiKey::DescribeAcls => encode(api, v, c, &build_configs::describe_acls(v, c)),
        ApiKey::DeleteAcls => encode(api, v, c, &build_configs::delete_acls(v, c)),
        ApiKey::DescribeUserScramCredentials => {
            encode(api, v, c, &build_configs::describe_scram(v, c))
        }
        ApiKey::AlterUserScramCredentials => encode(api, v, c, &build_configs::alter_scram(v, c)),
        ApiKey::AddPartitionsToTxn => encode(api, v, c, &build_txn::add_partitions(v, c)),
        ApiKey::AddOffsetsToTxn => encode(api, v, c, &build_txn::add_offsets(v, c)),
        ApiKey::EndTxn => encode(api, v, c, &build_txn::end_txn(v, c)),
        ApiKey::TxnOffsetCommit => encode(api, v, c, &build_txn::txn_offset_commit(v, c)),
        ApiKey::WriteTxnMarkers => encode(api, v, c, &build_txn::write_txn_markers(v, c)),
        ApiKey::DescribeTransactions => encode(api, v, c, &build_txn::describe_transactions(v, c)),
        ApiKey::ListTransactions => encode(api, v, c, &build_txn::list_transactions(v, c)),
        _ => return None,
    })
}

/// Every frame the builders make for every version the schemas serve.
pub fn corpus() -> Vec<(ApiKey, i16, Vec<u8>)> {
    let mut out = Vec::new();
    for schema in super::schema::ALL {
        for v in schema.versions.min..=schema.versions.max {
            for case in 0..CASES {
                out.push((schema.api, v, build(schema.api, v, case).unwrap()));
            }
        }
    }
    out
}

/// Why the crate's decode failed (the messages are read through `Debug` in failures).
#[derive(Debug)]
#[allow(dead_code)]
pub enum Failure {
    /// Not an API and version the broker serves: refused before decoding.
    Gate,
    /// The buffer ran out.
    MissingBytes(anyhow::Error),
    /// Anything else (invalid UTF-8, null where not nullable, negative lengths...).
    Other(anyhow::Error),
}

fn classify(e: anyhow::Error) -> Failure {
    let missing = e.chain().any(|c| {
        c.downcast_ref::<NotEnoughBytesError>().is_some()
            || c.downcast_ref::<bytes::TryGetError>().is_some()
    });
    if missing {
        Failure::MissingBytes(e)
    } else {
        Failure::Other(e)
    }
}

/// Decodes `frame` as the server does (header, then body, from a `Bytes`) and returns the
/// footprint of what it decoded.
pub fn crate_decode(frame: &[u8]) -> Result<usize, Failure> {
    if frame.len() < 4 {
        return Err(Failure::MissingBytes(anyhow::anyhow!(
            "no api key and version"
        )));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api = ApiKey::try_from(key).map_err(|_| Failure::Gate)?;
    match schema_for(api) {
        Some(schema) if schema.versions.contains(version) => {}
        _ => return Err(Failure::Gate),
    }
    let mut buf = Bytes::copy_from_slice(frame);
    let header =
        RequestHeader::decode(&mut buf, api.request_header_version(version)).map_err(classify)?;
    let body = decode_body(api, version, &mut buf).map_err(classify)?;
    Ok(header.footprint() + body)
}

fn decode_body(api: ApiKey, v: i16, buf: &mut Bytes) -> anyhow::Result<usize> {
    fn fp<T: Decodable + Footprint>(buf: &mut Bytes, v: i16) -> anyhow::Result<usize> {
        T::decode(buf, v).map(|m| m.footprint())
    }
    match api {
        ApiKey::Produce => fp::<ProduceRequest>(buf, v),
        ApiKey::Fetch => fp::<FetchRequest>(buf, v),
        ApiKey::ListOffsets => fp::<ListOffsetsRequest>(buf, v),
        ApiKey::OffsetForLeaderEpoch => fp::<OffsetForLeaderEpochRequest>(buf, v),
        ApiKey::Metadata => fp::<MetadataRequest>(buf, v),
        ApiKey::ApiVersions => fp::<ApiVersionsRequest>(buf, v),
        ApiKey::CreateTopics => fp::<CreateTopicsRequest>(buf, v),
        ApiKey::DeleteTopics => fp::<DeleteTopicsRequest>(buf, v),
        ApiKey::InitProducerId => fp::<InitProducerIdRequest>(buf, v),
        ApiKey::DescribeConfigs => fp::<DescribeConfigsRequest>(buf, v),
        ApiKey::AlterConfigs => fp::<AlterConfigsRequest>(buf, v),
        ApiKey::IncrementalAlterConfigs => fp::<IncrementalAlterConfigsRequest>(buf, v),
        ApiKey::DescribeCluster => fp::<DescribeClusterRequest>(buf, v),
        ApiKey::DescribeProducers => fp::<DescribeProducersRequest>(buf, v),
        ApiKey::CreatePartitions => fp::<CreatePartitionsRequest>(buf, v),
        ApiKey::DeleteRecords => fp::<DeleteRecordsRequest>(buf, v),
        ApiKey::DescribeLogDirs => fp::<DescribeLogDirsRequest>(buf, v),
        ApiKey::FindCoordinator => fp::<FindCoordinatorRequest>(buf, v),
        ApiKey::JoinGroup => fp::<JoinGroupRequest>(buf, v),
        ApiKey::SyncGroup => fp::<SyncGroupRequest>(buf, v),
        ApiKey::Heartbeat => fp::<HeartbeatRequest>(buf, v),
        ApiKey::LeaveGroup => fp::<LeaveGroupRequest>(buf, v),
        ApiKey::OffsetCommit => fp::<OffsetCommitRequest>(buf, v),
        ApiKey::OffsetFetch => fp::<OffsetFetchRequest>(buf, v),
        ApiKey::ListGroups => fp::<ListGroupsRequest>(buf, v),
        ApiKey::DescribeGroups => fp::<DescribeGroupsRequest>(buf, v),
        ApiKey::DeleteGroups => fp::<DeleteGroupsRequest>(buf, v),
        ApiKey::OffsetDelete => fp::<OffsetDeleteRequest>(buf, v),
        ApiKey::SaslHandshake => fp::<SaslHandshakeRequest>(buf, v),
        ApiKey::SaslAuthenticate => fp::<SaslAuthenticateRequest>(buf, v),
        ApiKey::CreateAcls => fp::<CreateAclsRequest>(buf, v),
        ApiKey::DescribeAcls => fp::<DescribeAclsRequest>(buf, v),
        ApiKey::DeleteAcls => fp::<DeleteAclsRequest>(buf, v),
        ApiKey::DescribeUserScramCredentials => fp::<DescribeUserScramCredentialsRequest>(buf, v),
        ApiKey::AlterUserScramCredentials => fp::<AlterUserScramCredentialsRequest>(buf, v),
        ApiKey::AddPartitionsToTxn => fp::<AddPartitionsToTxnRequest>(buf, v),
        ApiKey::AddOffsetsToTxn => fp::<AddOffsetsToTxnRequest>(buf, v),
        ApiKey::EndTxn => fp::<EndTxnRequest>(buf, v),
        ApiKey::TxnOffsetCommit => fp::<TxnOffsetCommitRequest>(buf, v),
        ApiKey::WriteTxnMarkers => fp::<WriteTxnMarkersRequest>(buf, v),
        ApiKey::DescribeTransactions => fp::<DescribeTransactionsRequest>(buf, v),
        ApiKey::ListTransactions => fp::<ListTransactionsRequest>(buf, v),
        other => anyhow::bail!("no decoder wired for {other:?}"),
    }
}

/// How the walker and the crate judged a frame, when they agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Both accepted, and the crate reserved no more than the estimate.
    Accepted,
    /// The walker accepted; the crate failed for a reason other than missing bytes.
    AcceptedCrateOther,
    /// Both refused.
    Refused,
    /// The walker refused by a limit; the crate was not consulted.
    Limit,
}

/// Runs the walker and the crate on `frame`; `Err` describes a disagreement: the walker
/// accepted what runs the crate out of bytes or reserves more than the estimate, or
/// refused (other than by a limit) what the crate decodes.
pub fn differential(frame: &[u8], limits: &Limits) -> Result<Verdict, String> {
    match check_request(frame, limits) {
        Ok(c) => match crate_decode(frame) {
            Ok(fp) if fp <= c.decoded_bytes_estimate => Ok(Verdict::Accepted),
            Ok(fp) => Err(format!("crate reserved {fp} > estimate {c:?}")),
            Err(Failure::Other(_)) => Ok(Verdict::AcceptedCrateOther),
            Err(e) => Err(format!("accepted ({c:?}), but the crate fails: {e:?}")),
        },
        Err(e) if e.is_limit() => Ok(Verdict::Limit),
        // More elements than bytes: every element takes a byte at least (the schema tests
        // hold that), so the crate cannot fill the array either. It is not asked to, which
        // would reserve the claimed count (hundreds of GiB, in address space only).
        Err(PrecheckError::ArrayTooLong {
            count, remaining, ..
        }) if count > remaining => Ok(Verdict::Refused),
        Err(e) => match crate_decode(frame) {
            Ok(fp) => Err(format!(
                "refused ({e}), but the crate decodes it ({fp} bytes)"
            )),
            Err(_) => Ok(Verdict::Refused),
        },
    }
}
