//! WriteTxnMarkers, version 1: a transaction coordinator on another broker has this
//! broker write commit or abort markers on partitions it leads. Only brokers may
//! (CLUSTER_ACTION on the cluster).

use super::{Ctx, Request, RequestError};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use crate::shard::messages::{MarkerPart, ShardReply, ShardRequest};
use bytes::Bytes;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use std::collections::BTreeMap;

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: WriteTxnMarkersRequest = req.decode_body()?;
    let allowed = ctx.allowed(
        op::CLUSTER_ACTION,
        resource::CLUSTER,
        resource::CLUSTER_NAME,
    );
    let mut markers = Vec::with_capacity(request.markers.len());
    for m in &request.markers {
        // Per partition of this marker, its code; the writes grouped by owning shard.
        let mut codes: BTreeMap<(String, i32), i16> = BTreeMap::new();
        let mut by_shard: BTreeMap<usize, Vec<MarkerPart>> = BTreeMap::new();
        for t in &m.topics {
            let topic = t.name.to_string();
            for p in &t.partition_indexes {
                if !allowed {
                    codes.insert((topic.clone(), *p), code::CLUSTER_AUTHORIZATION_FAILED);
                    continue;
                }
                codes.insert((topic.clone(), *p), code::UNKNOWN_SERVER_ERROR);
                by_shard
                    .entry(ctx.shard.owner(&topic, *p))
                    .or_default()
                    .push(MarkerPart {
                        topic: topic.clone(),
                        partition: *p,
                        producer_id: m.producer_id.0,
                        epoch: m.producer_epoch,
                        commit: m.transaction_result,
                        coordinator_epoch: m.coordinator_epoch,
                    });
            }
        }
        for (shard, parts) in by_shard {
            let names: Vec<_> = parts
                .iter()
                .map(|p| (p.topic.clone(), p.partition))
                .collect();
            let reply = ctx
                .shard
                .call(shard, ShardRequest::WriteMarkers(parts))
                .await;
            if let Some(ShardReply::WriteMarkers(cs)) = reply {
                for (name, c) in names.into_iter().zip(cs) {
                    codes.insert(name, c);
                }
            }
        }
        let topics = m
            .topics
            .iter()
            .map(|t| {
                let topic = t.name.to_string();
                let partitions = t
                    .partition_indexes
                    .iter()
                    .map(|p| {
                        let c = codes
                            .get(&(topic.clone(), *p))
                            .copied()
                            .unwrap_or(code::UNKNOWN_SERVER_ERROR);
                        WritableTxnMarkerPartitionResult::default()
                            .with_partition_index(*p)
                            .with_error_code(c)
                    })
                    .collect();
                WritableTxnMarkerTopicResult::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        markers.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics),
        );
    }
    req.respond(&WriteTxnMarkersResponse::default().with_markers(markers))
}
