//! Fetch, versions 4-12 (topics by name; no fetch sessions: we answer session id 0, which
//! tells the client that every fetch is a full one).
//!
//! A fetch reads every partition on its owning shard (one message per shard), and when the
//! result is below `min_bytes` it long-polls: each shard waits until one of its partitions
//! advances or `max_wait_ms` passes; the first shard to report a change triggers a new read.

use super::fetch_frame::{self, PartitionFrame, TopicFrame};
use super::{Ctx, Request, RequestError, topic_str};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use crate::server::response::Response;
use crate::shard::messages::{ReadPart, ReadResult, ShardReply, ShardRequest};
use crate::shard::scatter::ShardUnreachable;
use kafka_protocol::messages::FetchRequest;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// One partition of the request, in request order.
struct Wanted {
    topic: String,
    partition: i32,
    offset: i64,
    max_bytes: u64,
    current_leader_epoch: i32,
    last_fetched_epoch: i32,
    /// Owning shard, or `None` when the partition does not exist or may not be read.
    owner: Option<usize>,
    /// The principal may not read the topic.
    denied: bool,
}

/// One read of every partition, on its owning shard; the results in request order.
async fn read_round(
    ctx: &Ctx,
    wanted: &[Wanted],
    max_bytes: u64,
    replica: i32,
    committed: bool,
) -> Vec<ReadResult> {
    let reads = wanted.iter().filter_map(|w| {
        let read = ReadPart {
            topic: w.topic.clone(),
            partition: w.partition,
            offset: w.offset,
            max_bytes: w.max_bytes,
            replica,
            current_leader_epoch: w.current_leader_epoch,
            last_fetched_epoch: w.last_fetched_epoch,
            committed,
        };
        Some((w.owner?, read))
    });
    let read = |parts| ShardRequest::Read { parts, max_bytes };
    let mut answers = ctx
        .shard
        .scatter(reads, read, |reply| match reply {
            ShardReply::Read(rs) => Some(rs),
            _ => None,
        })
        .await
        .into_iter();
    // The answers are those of the partitions that exist, in the same order.
    wanted
        .iter()
        .map(|w| match w.owner {
            None if w.denied => ReadResult::error(code::TOPIC_AUTHORIZATION_FAILED),
            None => ReadResult::error(code::UNKNOWN_TOPIC_OR_PARTITION),
            Some(_) => answers.next().unwrap_or_else(|| ShardUnreachable.into()),
        })
        .collect()
}

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Response, RequestError> {
    let request: FetchRequest = req.decode_body()?;
    let meta = ctx.shard.meta();
    // Each partition is read and answered once, however often the request names it (the
    // first position given wins, as a fetch session would keep one).
    let mut seen: HashSet<(&str, i32)> = HashSet::new();
    let mut wanted = Vec::new();
    // A follower's fetch (Kafka's replica fetcher) names its broker id; consumers send -1.
    let replica = if request.replica_id.0 >= 0 {
        request.replica_id.0
    } else {
        -1
    };
    // Only brokers replicate: a follower's fetch needs CLUSTER_ACTION on the cluster, and
    // each partition of one without it is refused as Kafka refuses it.
    let replicating = replica >= 0
        && ctx.allowed(
            op::CLUSTER_ACTION,
            resource::CLUSTER,
            resource::CLUSTER_NAME,
        );
    for t in &request.topics {
        let topic = topic_str(&t.topic);
        let partitions = meta.topics.get(&topic).map(|v| v.partitions).unwrap_or(0);
        let denied = if replica >= 0 {
            !replicating
        } else {
            !ctx.allowed(op::READ, resource::TOPIC, &topic)
        };
        for p in &t.partitions {
            if !seen.insert((t.topic.0.as_str(), p.partition)) {
                continue;
            }
            let exists = p.partition >= 0 && p.partition < partitions && !denied;
            wanted.push(Wanted {
                denied,
                owner: exists.then(|| ctx.shard.owner(&topic, p.partition)),
                topic: topic.clone(),
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as u64,
                current_leader_epoch: p.current_leader_epoch,
                last_fetched_epoch: p.last_fetched_epoch,
            });
        }
    }
    let max_bytes = if request.max_bytes <= 0 {
        u64::MAX
    } else {
        request.max_bytes as u64
    };
    let min_bytes = request.min_bytes.max(0) as u64;
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);

    // isolation_level 1: read_committed (a follower always reads to the log end).
    let committed = request.isolation_level == 1 && replica < 0;
    let results = loop {
        let results = read_round(ctx, &wanted, max_bytes, replica, committed).await;
        let bytes: u64 = results.iter().map(ReadResult::records_len).sum();
        let failed = results.iter().any(|r| r.error_code != code::NONE);
        let now = Instant::now();
        // min_bytes = 0 asks for an immediate answer, data or not (as in Kafka).
        if bytes >= min_bytes || failed || now >= deadline || wanted.is_empty() {
            break results;
        }
        // Park until one partition advances past what this round saw, or the deadline.
        let timeout_ms = (deadline - now).as_millis() as u64 + 1;
        // A follower waits for its leader's log to grow past its fetch offset; a consumer
        // for the high watermark to move past what it saw.
        let seen = wanted.iter().zip(&results).filter_map(|(w, r)| {
            let seen = if replica >= 0 {
                w.offset
            } else {
                r.high_watermark
            };
            Some((w.owner?, (w.topic.clone(), w.partition, seen)))
        });
        ctx.shard
            .scatter_first(seen, |parts| ShardRequest::WaitChanged {
                parts,
                timeout_ms,
                replica: replica >= 0,
            })
            .await;
    };

    // Shards filled their partitions independently: keep the whole response within
    // max_bytes, except that the first records returned are always whole (KIP-74).
    let mut used = 0u64;
    let mut frames: Vec<TopicFrame> = Vec::new();
    for (w, r) in wanted.into_iter().zip(results) {
        let len = r.records_len();
        let records = if used > 0 && used + len > max_bytes {
            Vec::new()
        } else {
            used += len;
            r.records
        };
        let partition = PartitionFrame {
            partition: w.partition,
            error_code: r.error_code,
            high_watermark: r.high_watermark,
            last_stable_offset: r.last_stable_offset,
            log_start_offset: r.log_start_offset,
            records,
            diverging: r.diverging,
            aborted: r.aborted,
        };
        // Partitions of one topic named together stay together, in request order.
        match frames.last_mut() {
            Some(last) if last.name == w.topic => last.partitions.push(partition),
            _ => frames.push(TopicFrame {
                name: w.topic,
                partitions: vec![partition],
            }),
        }
    }
    Ok(fetch_frame::encode(
        req.version,
        req.header.correlation_id,
        frames,
    ))
}
