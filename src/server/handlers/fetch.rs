//! Fetch, versions 4-12 (topics by name), with incremental fetch sessions (KIP-227, v7+;
//! the sessions are `server::fetch_sessions`, this file reads and answers).
//!
//! A fetch reads every partition on its owning shard (one message per shard), and when the
//! result is below `min_bytes` it long-polls: each shard waits until one of its partitions
//! advances or `max_wait_ms` passes; the first shard to report a change triggers a new read.
//! An incremental fetch reads every partition of its session the same way and answers
//! only those with something to say.

use super::fetch_frame::{self, PartitionFrame, TopicFrame};
use super::{Ctx, Request, RequestError, topic_str};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use crate::server::fetch_sessions::{Key, Outcome, PartAnswer, PartRequest, Plan};
use crate::server::response::Response;
use crate::shard::messages::{ReadPart, ReadResult, ShardReply, ShardRequest};
use crate::shard::scatter::ShardUnreachable;
use kafka_protocol::messages::FetchRequest;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// One partition to read, in answer order.
struct Wanted {
    key: Key,
    request: PartRequest,
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
            topic: w.key.0.clone(),
            partition: w.key.1,
            offset: w.request.fetch_offset,
            max_bytes: w.request.max_bytes,
            replica,
            current_leader_epoch: w.request.current_leader_epoch,
            last_fetched_epoch: w.request.last_fetched_epoch,
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

/// The partitions to read, with their owners and whether the principal may read them.
/// `parts` come grouped by topic (as requests and sessions keep them), so the ACL and the
/// metadata are looked up once per run of one topic.
fn locate(ctx: &Ctx, parts: Vec<(Key, PartRequest)>, replica: i32) -> Vec<Wanted> {
    let meta = ctx.shard.meta();
    // Only brokers replicate: a follower's fetch needs CLUSTER_ACTION on the cluster, and
    // each partition of one without it is refused as Kafka refuses it.
    let replicating = replica >= 0
        && ctx.allowed(
            op::CLUSTER_ACTION,
            resource::CLUSTER,
            resource::CLUSTER_NAME,
        );
    let mut last: Option<(String, i32, bool)> = None;
    parts
        .into_iter()
        .map(|(key, request)| {
            let (partitions, denied) = match &last {
                Some((topic, n, denied)) if *topic == key.0 => (*n, *denied),
                _ => {
                    let n = meta.topics.get(&key.0).map(|v| v.partitions).unwrap_or(0);
                    let denied = if replica >= 0 {
                        !replicating
                    } else {
                        !ctx.allowed(op::READ, resource::TOPIC, &key.0)
                    };
                    last = Some((key.0.clone(), n, denied));
                    (n, denied)
                }
            };
            let exists = key.1 >= 0 && key.1 < partitions && !denied;
            Wanted {
                owner: exists.then(|| ctx.shard.owner(&key.0, key.1)),
                denied,
                key,
                request,
            }
        })
        .collect()
}

/// The request's partitions, each once (the first position given wins, as a session
/// keeps one), and the partitions it forgets.
fn asked(request: &FetchRequest) -> (Vec<(Key, PartRequest)>, Vec<Key>) {
    let mut seen: HashSet<(&str, i32)> = HashSet::new();
    let mut asked = Vec::new();
    for t in &request.topics {
        let topic = topic_str(&t.topic);
        for p in &t.partitions {
            if !seen.insert((t.topic.0.as_str(), p.partition)) {
                continue;
            }
            let part = PartRequest {
                fetch_offset: p.fetch_offset,
                log_start_offset: p.log_start_offset,
                max_bytes: p.partition_max_bytes.max(0) as u64,
                current_leader_epoch: p.current_leader_epoch,
                last_fetched_epoch: p.last_fetched_epoch,
            };
            asked.push(((topic.clone(), p.partition), part));
        }
    }
    let forgotten = request
        .forgotten_topics_data
        .iter()
        .flat_map(|t| {
            let topic = topic_str(&t.topic);
            t.partitions.iter().map(move |p| (topic.clone(), *p))
        })
        .collect();
    (asked, forgotten)
}

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Response, RequestError> {
    let request: FetchRequest = req.decode_body()?;
    // A follower's fetch (Kafka's replica fetcher) names its broker id; consumers send -1.
    let replica = if request.replica_id.0 >= 0 {
        request.replica_id.0
    } else {
        -1
    };
    let (asked, forgotten) = asked(&request);
    let sessions = &ctx.fetch_sessions;
    let plan = if req.version >= 7 {
        let now = Instant::now();
        let plan = sessions.begin(
            request.session_id,
            request.session_epoch,
            &asked,
            &forgotten,
            now,
        );
        ctx.shard.metrics.fetch_sessions.set(sessions.len() as u64);
        plan
    } else {
        Plan::Full { create: false }
    };
    let (kind, parts) = match plan {
        Plan::Error(error) => {
            let (version, correlation) = (req.version, req.header.correlation_id);
            return Ok(fetch_frame::encode(
                version,
                correlation,
                error,
                0,
                Vec::new(),
            ));
        }
        Plan::Closed => (Kind::Sessionless, Vec::new()),
        Plan::Full { create: true } => (Kind::Create, asked),
        Plan::Full { create: false } => (Kind::Sessionless, asked),
        Plan::Incremental { id, parts } => (Kind::Incremental(id), parts),
    };
    let wanted = locate(ctx, parts, replica);
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
                w.request.fetch_offset
            } else {
                r.high_watermark
            };
            Some((w.owner?, (w.key.0.clone(), w.key.1, seen)))
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
    let mut answered: Vec<(Wanted, PartitionFrame)> = Vec::with_capacity(wanted.len());
    for (w, r) in wanted.into_iter().zip(results) {
        let len = r.records_len();
        let records = if used > 0 && used + len > max_bytes {
            Vec::new()
        } else {
            used += len;
            r.records
        };
        let partition = PartitionFrame {
            partition: w.key.1,
            error_code: r.error_code,
            high_watermark: r.high_watermark,
            last_stable_offset: r.last_stable_offset,
            log_start_offset: r.log_start_offset,
            records,
            diverging: r.diverging,
            aborted: r.aborted,
        };
        answered.push((w, partition));
    }
    let session_id = match kind {
        Kind::Create => {
            let now = Instant::now();
            let parts = answered
                .iter()
                .map(|(w, f)| (w.key.clone(), w.request.clone(), outcome(f).remembered()))
                .collect();
            let created = sessions.create(replica >= 0, parts, now);
            let m = &ctx.shard.metrics;
            m.fetch_sessions.set(sessions.len() as u64);
            if created.evicted {
                crate::stats::add(&m.fetch_session_evictions, 1);
            }
            created.id
        }
        Kind::Incremental(id) => {
            let outcomes = answered.iter().map(|(w, f)| (&w.key, outcome(f)));
            let mut keep = sessions.answered(id, outcomes).into_iter();
            answered.retain(|_| keep.next().unwrap_or(true));
            id
        }
        Kind::Sessionless => 0,
    };
    let mut frames: Vec<TopicFrame> = Vec::new();
    for (w, partition) in answered {
        // Partitions of one topic named together stay together, in request order.
        match frames.last_mut() {
            Some(last) if last.name == w.key.0 => last.partitions.push(partition),
            _ => frames.push(TopicFrame {
                name: w.key.0,
                partitions: vec![partition],
            }),
        }
    }
    Ok(fetch_frame::encode(
        req.version,
        req.header.correlation_id,
        code::NONE,
        session_id,
        frames,
    ))
}

/// What the answer does with the session.
enum Kind {
    /// A full fetch asking for a session (epoch 0).
    Create,
    /// An incremental fetch of this session.
    Incremental(i32),
    /// No session: a full fetch with epoch -1 (or before v7), or a session just closed.
    Sessionless,
}

/// What a partition's answer tells the client, for the session.
fn outcome(f: &PartitionFrame) -> Outcome {
    let has_records = f.records.iter().any(|c| !c.is_empty());
    let failed = f.error_code != code::NONE;
    Outcome {
        answer: PartAnswer {
            high_watermark: f.high_watermark,
            last_stable_offset: f.last_stable_offset,
            log_start_offset: f.log_start_offset,
        },
        must_answer: has_records || failed || f.diverging.is_some(),
        has_records,
        failed,
    }
}
