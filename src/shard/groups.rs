//! The consumer groups of a shard: the group coordinator's host on this shard's logs, the
//! routing of a group's requests to the shard that coordinates it, and the loading of the
//! groups from this shard's partitions of `__consumer_offsets` at start.

use super::Shard;
use super::messages::{ShardReply, ShardRequest};
use super::runtime::Log;
use crate::group::records::{LoggedRecord, parse_batches};
use crate::group::{
    GroupCoordinator, GroupError, GroupHost, GroupOp, GroupReply, OFFSETS_TOPIC, OffsetsLog,
    offsets_partition,
};
use crate::rt::{GlommioRuntime, LocalBoxFuture};
use bytes::Bytes;
use rand::SeedableRng;
use std::rc::{Rc, Weak};

pub type Groups = GroupHost<ShardOffsets, GlommioRuntime>;

/// The coordinator's view of this shard's `__consumer_offsets` partitions.
pub struct ShardOffsets {
    shard: Weak<Shard>,
}

impl OffsetsLog for ShardOffsets {
    fn append(
        &self,
        group: &str,
        batch: Bytes,
    ) -> LocalBoxFuture<'static, Result<i64, GroupError>> {
        let log = self.shard.upgrade().and_then(|s| offsets_log(&s, group));
        let Some(log) = log else {
            return Box::pin(async { Err(GroupError::NotCoordinator) });
        };
        // The append takes its place in line here, before the host spawns the wait.
        let append = log.append(batch);
        Box::pin(async move {
            append
                .await
                .map(|info| info.base_offset)
                .map_err(GroupError::from)
        })
    }
}

/// The group host of a shard, appending to the shard's own logs.
pub fn host(shard: Weak<Shard>, config: &crate::config::BrokerConfig) -> Rc<Groups> {
    let coordinator = GroupCoordinator::new(
        config.group.clone(),
        config.message_max_bytes,
        rand::rngs::StdRng::from_rng(&mut rand::rng()),
    );
    GroupHost::new(coordinator, ShardOffsets { shard }, GlommioRuntime)
}

fn offsets_partitions(shard: &Shard) -> i32 {
    shard
        .meta()
        .topics
        .get(OFFSETS_TOPIC)
        .map(|t| t.partitions)
        .unwrap_or(shard.config.group.offsets_topic_partitions)
}

/// The log of the group's offsets partition, if this shard owns it.
fn offsets_log(shard: &Shard, group: &str) -> Option<Log> {
    let n = shard.meta().topics.get(OFFSETS_TOPIC)?.partitions;
    shard.log_of(OFFSETS_TOPIC, offsets_partition(group, n))
}

/// The shard that coordinates `group`: the owner of its offsets partition.
pub fn coordinator_shard(shard: &Shard, group: &str) -> usize {
    shard.owner(
        OFFSETS_TOPIC,
        offsets_partition(group, offsets_partitions(shard)),
    )
}

/// Sends `op` to the coordinator of `group` and waits for its answer. `None` when the
/// mesh is gone (the broker is stopping).
pub async fn route(shard: &Rc<Shard>, group: &str, op: GroupOp) -> Option<GroupReply> {
    let owner = coordinator_shard(shard, group);
    match shard.call(owner, ShardRequest::Group(Box::new(op))).await {
        Some(ShardReply::Group(r)) => r,
        _ => None,
    }
}

/// Runs `op` on this shard, which coordinates the groups it names.
pub async fn handle(shard: &Rc<Shard>, op: GroupOp) -> Option<GroupReply> {
    let meta = shard.meta();
    let topics = |t: &str| meta.topics.get(t).map(|v| v.partitions).unwrap_or(0);
    shard.groups.handle(op, &topics).await
}

/// Reads this shard's partitions of `__consumer_offsets` and hands their records, in log
/// order, to the coordinator; it serves requests from then on.
pub async fn load(shard: &Shard) {
    let n = shard
        .meta()
        .topics
        .get(OFFSETS_TOPIC)
        .map(|t| t.partitions)
        .unwrap_or(0);
    let mut records: Vec<LoggedRecord> = Vec::new();
    for p in 0..n {
        if shard.owner(OFFSETS_TOPIC, p) != shard.id {
            continue;
        }
        if let Some(log) = shard.log_of(OFFSETS_TOPIC, p) {
            read_records(&log, p, &mut records).await;
        }
    }
    let count_before = shard.groups.with(|c| c.group_count());
    shard.groups.load(records);
    let count = shard.groups.with(|c| c.group_count());
    if count > count_before {
        tracing::info!("shard {}: loaded {count} consumer groups", shard.id);
    }
}

/// Appends the records of one offsets partition to `out`, in log order.
async fn read_records(log: &Log, partition: i32, out: &mut Vec<LoggedRecord>) {
    let mut offset = log.log_start_offset();
    while offset < log.high_watermark() {
        let slice = match log.read(offset, 1 << 20).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot load {OFFSETS_TOPIC}-{partition} at {offset}: {e}");
                return;
            }
        };
        let mut bytes = Vec::new();
        for region in &slice.regions {
            match region.read().await {
                Ok(b) => bytes.extend_from_slice(&b),
                Err(e) => {
                    tracing::error!("cannot read {OFFSETS_TOPIC}-{partition}: {e}");
                    return;
                }
            }
        }
        let (records, next) = parse_batches(&bytes);
        out.extend(records.into_iter().filter(|r| r.offset >= offset));
        match next {
            Some(next) if next > offset => offset = next,
            _ => return,
        }
    }
}
