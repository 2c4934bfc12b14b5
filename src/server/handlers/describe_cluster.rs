//! DescribeCluster, versions 0-2: the cluster id, the controller and the brokers, as
//! AdminClient's `describeCluster` and tools such as kafka-ui ask for them.
//!
//! v1 names the endpoint type asked for: this listener serves brokers (1), so a request for
//! controllers (2) gets MISMATCHED_ENDPOINT_TYPE, as Kafka's broker listener answers. v2 may
//! ask for the fenced brokers too. With the authorizer on it needs DESCRIBE on the cluster
//! (else CLUSTER_AUTHORIZATION_FAILED), and the authorized operations asked for are those
//! the principal's ACLs allow; with no authorizer they are all of the cluster's.

use super::metadata::{CLUSTER_ID, brokers};
use super::{Ctx, Request, RequestError, str_bytes};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use bytes::Bytes;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

const ENDPOINT_BROKERS: i8 = 1;

/// The operations of Kafka's cluster resource (`AclOperation` codes): CREATE 5, ALTER 7,
/// DESCRIBE 8, CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12.
pub const CLUSTER_OPERATIONS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

/// `cluster_authorized_operations` when the client did not ask (Kafka's INT32_MIN).
const NOT_ASKED: i32 = i32::MIN;

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: DescribeClusterRequest = req.decode_body()?;
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(ENDPOINT_BROKERS)
        .with_cluster_id(str_bytes(CLUSTER_ID));
    if req.version >= 1 && request.endpoint_type != ENDPOINT_BROKERS {
        let response = response
            .with_error_code(code::MISMATCHED_ENDPOINT_TYPE)
            .with_error_message(Some(str_bytes(format!(
                "this listener serves endpoint type {ENDPOINT_BROKERS} (brokers), not {}",
                request.endpoint_type
            ))));
        return req.respond(&response);
    }
    if !ctx.allowed(op::DESCRIBE, resource::CLUSTER, resource::CLUSTER_NAME) {
        return req.respond(&response.with_error_code(code::CLUSTER_AUTHORIZATION_FAILED));
    }
    let meta = ctx.shard.meta();
    let with_fenced = req.version >= 2 && request.include_fenced_brokers;
    let (list, controller) = brokers(ctx, &meta.meta, with_fenced);
    let list = list
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(str_bytes(b.host))
                .with_port(b.port)
                .with_is_fenced(b.fenced)
        })
        .collect();
    let operations = if request.include_cluster_authorized_operations {
        (0..31)
            .filter(|bit| CLUSTER_OPERATIONS & (1 << bit) != 0)
            .filter(|bit| {
                let operation = i8::try_from(*bit).unwrap_or(op::ALL);
                ctx.allowed(operation, resource::CLUSTER, resource::CLUSTER_NAME)
            })
            .fold(0, |ops, bit| ops | (1 << bit))
    } else {
        NOT_ASKED
    };
    req.respond(
        &response
            .with_controller_id(BrokerId(controller))
            .with_brokers(list)
            .with_cluster_authorized_operations(operations),
    )
}
