//! One handler per Kafka API. Each file states the versions it supports; [`SUPPORTED`] is
//! what ApiVersions advertises and what a request's version is checked against.

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_configs;
pub mod alter_user_scram_credentials;
pub mod api_versions;
pub mod create_acls;
pub mod create_partitions;
pub mod create_topics;
pub mod dedupe;
pub mod delete_acls;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_acls;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_transactions;
pub mod describe_user_scram_credentials;
pub mod end_txn;
pub mod fetch;
pub mod fetch_frame;
pub mod find_coordinator;
pub mod heartbeat;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sasl_authenticate;
pub mod sasl_handshake;
pub mod sync_group;
pub mod txn_offset_commit;
pub mod write_txn_markers;

use crate::protocol::precheck;
pub use crate::protocol::strings::{str_bytes, topic_name, topic_str};
use crate::server::response::Response;
use crate::shard::Shard;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use std::rc::Rc;
use thiserror::Error;

pub use crate::protocol::versions::{SUPPORTED, supported};

/// Why a request cannot be answered: the connection is closed, as Kafka does.
#[derive(Debug, Error)]
pub enum RequestError {
    #[error("unknown API key {0}")]
    UnknownApi(i16),
    #[error("unsupported version {version} of {api:?}")]
    UnsupportedVersion { api: ApiKey, version: i16 },
    #[error("cannot decode request: {0}")]
    Decode(String),
    #[error("cannot encode response: {0}")]
    Encode(String),
}

impl RequestError {
    /// A short name of the reason, the label of the metrics' failure counter.
    pub fn kind(&self) -> &'static str {
        match self {
            RequestError::UnknownApi(_) => "unknown_api",
            RequestError::UnsupportedVersion { .. } => "unsupported_version",
            RequestError::Decode(_) => "decode",
            RequestError::Encode(_) => "encode",
        }
    }
}

/// What a handler sees of its connection.
pub struct Ctx {
    pub shard: Rc<Shard>,
    /// The broker's request memory pool; decoded requests are charged to it too.
    pub pool: std::sync::Arc<crate::server::pool::MemoryPool>,
    /// The listener the client came through: in a cluster, Metadata and FindCoordinator
    /// answer each broker's address on the listener of this name.
    pub listener: String,
    /// Host and port returned in Metadata for this broker.
    pub advertised_host: String,
    pub advertised_port: i32,
    /// The client's address, as DescribeGroups shows it (`/IP`, like Kafka).
    pub client_host: String,
    /// Who the client is: `User:NAME` once SASL authenticated it, else `User:ANONYMOUS`.
    pub principal: std::cell::RefCell<String>,
    /// Decides what the principal may do.
    pub authorizer: std::sync::Arc<crate::server::authorizer::Authorizer>,
    /// The SASL users (AlterUserScramCredentials changes them).
    pub users: std::sync::Arc<crate::server::durable::Durable<crate::security::credentials::Users>>,
    /// This shard's incremental fetch sessions.
    pub fetch_sessions: Rc<crate::server::fetch_sessions::FetchSessions>,
}

impl Ctx {
    /// Whether this connection's principal may do `operation` on a resource.
    pub fn allowed(&self, operation: i8, resource_type: i8, name: &str) -> bool {
        if !self.authorizer.enabled {
            return true;
        }
        let principal = self.principal.borrow();
        let who = crate::security::acl::Requester {
            principal: &principal,
            host: self.client_host.trim_start_matches('/'),
        };
        self.authorizer
            .allows(&self.acls(), &who, operation, resource_type, name)
    }

    /// Whether this connection's principal may have a producer id for idempotent writes:
    /// IDEMPOTENT_WRITE on the cluster, or WRITE on some topic (KIP-679).
    pub fn may_write_idempotently(&self) -> bool {
        if !self.authorizer.enabled {
            return true;
        }
        let principal = self.principal.borrow();
        let who = crate::security::acl::Requester {
            principal: &principal,
            host: self.client_host.trim_start_matches('/'),
        };
        self.authorizer.may_write_idempotently(&self.acls(), &who)
    }

    /// Whether this connection's principal may create topic `name`.
    pub fn may_create_topic(&self, name: &str) -> bool {
        if !self.authorizer.enabled {
            return true;
        }
        let principal = self.principal.borrow();
        let who = crate::security::acl::Requester {
            principal: &principal,
            host: self.client_host.trim_start_matches('/'),
        };
        self.authorizer.may_create_topic(&self.acls(), &who, name)
    }
}

/// A decoded request header and the rest of the frame (the body).
pub struct Request {
    pub api: ApiKey,
    pub version: i16,
    pub header: RequestHeader,
    pub body: Bytes,
}

impl Request {
    pub fn decode_body<T: Decodable>(&mut self) -> Result<T, RequestError> {
        T::decode(&mut self.body, self.version).map_err(|e| RequestError::Decode(e.to_string()))
    }

    /// Encodes a response frame: length, header (in the version this API and version
    /// use), body.
    pub fn respond<T: Encodable + HeaderVersion>(&self, body: &T) -> Result<Bytes, RequestError> {
        encode_frame(
            self.header.correlation_id,
            T::header_version(self.version),
            body,
            self.version,
        )
    }
}

pub fn encode_frame<T: Encodable>(
    correlation_id: i32,
    header_version: i16,
    body: &T,
    version: i16,
) -> Result<Bytes, RequestError> {
    let enc = |e: anyhow::Error| RequestError::Encode(e.to_string());
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let size = header.compute_size(header_version).map_err(enc)?
        + body.compute_size(version).map_err(enc)?;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(size as i32);
    header.encode(&mut buf, header_version).map_err(enc)?;
    body.encode(&mut buf, version).map_err(enc)?;
    debug_assert_eq!(buf.len(), 4 + size);
    Ok(buf.freeze())
}

/// Decodes and answers one request frame. `Ok(None)` sends nothing (Produce acks=0).
pub async fn handle(ctx: &Ctx, frame: Bytes) -> Result<Option<Response>, RequestError> {
    let started = std::time::Instant::now();
    let key = match frame.get(..2) {
        Some(k) => i16::from_be_bytes([k[0], k[1]]),
        None => -1,
    };
    let answer = handle_api(ctx, frame).await;
    // Counted per API key as it came; a key no API has is counted nowhere.
    if let Some(api) = ctx.shard.metrics.api(key) {
        crate::stats::add(&api.requests, 1);
        api.latency_us.observe_since(started);
        if let Err(e) = &answer {
            *api.failures.borrow_mut().entry(e.kind()).or_insert(0) += 1;
        }
    }
    Ok(answer?.map(Response::from_either))
}

/// A handler's answer: an encoded frame, or a Fetch frame of chunks.
pub enum Answer {
    Bytes(Bytes),
    Chunks(Response),
}

impl Response {
    fn from_either(a: Answer) -> Response {
        match a {
            Answer::Bytes(b) => b.into(),
            Answer::Chunks(r) => r,
        }
    }
}

/// Checks a frame of a supported API and version and decodes its header: no count or
/// length of the frame reaches the decoder before it is checked against the bytes that
/// hold it, and what decoding will allocate is known (and charged to the request memory
/// pool, for as long as the returned reservation lives) before it does.
pub fn decode_request(
    ctx: &Ctx,
    frame: Bytes,
) -> Result<(Request, crate::server::pool::Reservation), RequestError> {
    let checked = precheck::check_request(&frame, &precheck::Limits::default())
        .map_err(|e| RequestError::Decode(e.to_string()))?;
    let (api, version) = (checked.api, checked.version);
    if !supported(api, version) {
        return Err(RequestError::UnsupportedVersion { api, version });
    }
    let decoded = ctx
        .pool
        .force_reserve(checked.decoded_bytes_estimate as u64);
    let mut body = frame;
    let header = RequestHeader::decode(&mut body, api.request_header_version(version))
        .map_err(|e| RequestError::Decode(e.to_string()))?;
    if let Some(id) = &crate::fatal::faults().panic_client_id
        && header.client_id.as_deref() == Some(id.as_str())
    {
        panic!("injected fault: a request from client {id} panics");
    }
    let req = Request {
        api,
        version,
        header,
        body,
    };
    Ok((req, decoded))
}

async fn handle_api(ctx: &Ctx, frame: Bytes) -> Result<Option<Answer>, RequestError> {
    if frame.len() < 8 {
        return Err(RequestError::Decode(format!(
            "frame of {} bytes has no header",
            frame.len()
        )));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api = ApiKey::try_from(key).map_err(|_| RequestError::UnknownApi(key))?;
    if !supported(api, version) {
        // Clients probe ApiVersions with their newest version and expect our ranges back.
        if api == ApiKey::ApiVersions {
            return api_versions::unsupported(correlation_id).map(|b| Some(Answer::Bytes(b)));
        }
        return Err(RequestError::UnsupportedVersion { api, version });
    }
    if api == ApiKey::Produce && version < produce::MIN_VERSION {
        return produce::unsupported_old_version(frame, version).map(|b| b.map(Answer::Bytes));
    }
    let (mut req, _decoded) = decode_request(ctx, frame)?;
    let bytes = match api {
        ApiKey::Fetch => {
            return fetch::handle(ctx, &mut req)
                .await
                .map(|r| Some(Answer::Chunks(r)));
        }
        ApiKey::Produce => {
            return produce::handle(ctx, &mut req)
                .await
                .map(|b| b.map(Answer::Bytes));
        }
        ApiKey::ApiVersions => api_versions::handle(ctx, &mut req).await,
        ApiKey::Metadata => metadata::handle(ctx, &mut req).await,
        ApiKey::ListOffsets => list_offsets::handle(ctx, &mut req).await,
        ApiKey::CreateTopics => create_topics::handle(ctx, &mut req).await,
        ApiKey::DeleteTopics => delete_topics::handle(ctx, &mut req).await,
        ApiKey::FindCoordinator => find_coordinator::handle(ctx, &mut req).await,
        ApiKey::JoinGroup => join_group::handle(ctx, &mut req).await,
        ApiKey::SyncGroup => sync_group::handle(ctx, &mut req).await,
        ApiKey::Heartbeat => heartbeat::handle(ctx, &mut req).await,
        ApiKey::LeaveGroup => leave_group::handle(ctx, &mut req).await,
        ApiKey::OffsetCommit => offset_commit::handle(ctx, &mut req).await,
        ApiKey::OffsetFetch => offset_fetch::handle(ctx, &mut req).await,
        ApiKey::ListGroups => list_groups::handle(ctx, &mut req).await,
        ApiKey::DescribeGroups => describe_groups::handle(ctx, &mut req).await,
        ApiKey::DeleteGroups => delete_groups::handle(ctx, &mut req).await,
        ApiKey::OffsetDelete => offset_delete::handle(ctx, &mut req).await,
        ApiKey::InitProducerId => init_producer_id::handle(ctx, &mut req).await,
        ApiKey::DescribeConfigs => describe_configs::handle(ctx, &mut req).await,
        ApiKey::AlterConfigs => alter_configs::handle_alter(ctx, &mut req).await,
        ApiKey::IncrementalAlterConfigs => alter_configs::handle_incremental(ctx, &mut req).await,
        ApiKey::DescribeCluster => describe_cluster::handle(ctx, &mut req).await,
        ApiKey::DescribeProducers => describe_producers::handle(ctx, &mut req).await,
        ApiKey::OffsetForLeaderEpoch => offset_for_leader_epoch::handle(ctx, &mut req).await,
        ApiKey::CreatePartitions => create_partitions::handle(ctx, &mut req).await,
        ApiKey::DeleteRecords => delete_records::handle(ctx, &mut req).await,
        ApiKey::DescribeLogDirs => describe_log_dirs::handle(ctx, &mut req).await,
        ApiKey::SaslHandshake => sasl_handshake::handle(ctx, &mut req).await,
        ApiKey::CreateAcls => create_acls::handle(ctx, &mut req).await,
        ApiKey::DescribeAcls => describe_acls::handle(ctx, &mut req).await,
        ApiKey::DeleteAcls => delete_acls::handle(ctx, &mut req).await,
        ApiKey::DescribeUserScramCredentials => {
            describe_user_scram_credentials::handle(ctx, &mut req).await
        }
        ApiKey::AlterUserScramCredentials => {
            alter_user_scram_credentials::handle(ctx, &mut req).await
        }
        ApiKey::SaslAuthenticate => sasl_authenticate::handle(ctx, &mut req).await,
        ApiKey::AddPartitionsToTxn => add_partitions_to_txn::handle(ctx, &mut req).await,
        ApiKey::AddOffsetsToTxn => add_offsets_to_txn::handle(ctx, &mut req).await,
        ApiKey::EndTxn => end_txn::handle(ctx, &mut req).await,
        ApiKey::TxnOffsetCommit => txn_offset_commit::handle(ctx, &mut req).await,
        ApiKey::WriteTxnMarkers => write_txn_markers::handle(ctx, &mut req).await,
        ApiKey::DescribeTransactions => describe_transactions::handle(ctx, &mut req).await,
        ApiKey::ListTransactions => list_transactions::handle(ctx, &mut req).await,
        other => Err(RequestError::UnsupportedVersion {
            api: other,
            version,
        }),
    };
    bytes.map(|b| Some(Answer::Bytes(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_advertised_api_has_a_precheck_schema() {
        for (api, _, _) in SUPPORTED {
            assert!(precheck::schema_for(*api).is_some(), "{api:?}");
        }
    }

    #[test]
    fn advertised_versions_are_ones_the_codec_knows() {
        for (api, min, max) in SUPPORTED {
            let codec = api.valid_versions();
            // Produce v0-2 are advertised but answered by hand (see produce.rs).
            let min = if *api == ApiKey::Produce {
                produce::MIN_VERSION
            } else {
                *min
            };
            assert!(codec.min <= min && *max <= codec.max, "{api:?}");
        }
    }
}
