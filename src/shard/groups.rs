//! The consumer groups of a shard: the group coordinator's host on this shard's logs, and
//! the loading of the groups from its partitions of `__consumer_offsets` at start. Routing
//! a group's request to its coordinator shard is `Shard::route_group`.

use super::logs::{Log, LogTable, MetaView};
use crate::group::records::{LoggedRecord, parse_batches};
use crate::group::{
    GroupCoordinator, GroupError, GroupHost, OFFSETS_TOPIC, OffsetsLog, offsets_partition,
};
use crate::rt::{GlommioRuntime, LocalBoxFuture};
use bytes::Bytes;
use rand::SeedableRng;
use std::rc::Rc;

pub type Groups = GroupHost<ShardOffsets, GlommioRuntime>;

/// The coordinator's view of this shard's `__consumer_offsets` partitions.
pub struct ShardOffsets {
    table: Rc<LogTable>,
}

impl OffsetsLog for ShardOffsets {
    fn append(
        &self,
        group: &str,
        batch: Bytes,
    ) -> LocalBoxFuture<'static, Result<i64, GroupError>> {
        let meta = self.table.meta();
        let partition = meta
            .topics
            .get(OFFSETS_TOPIC)
            .map(|t| offsets_partition(group, t.partitions));
        // An offsets partition taken offline for damage on disk: KAFKA_STORAGE_ERROR, as
        // for any other partition, rather than sending the client to look for another
        // coordinator.
        if let Some(why) = partition.and_then(|p| self.table.offline(OFFSETS_TOPIC, p)) {
            let e = crate::storage::StorageError::Failed(why);
            return Box::pin(async move { Err(GroupError::from(e)) });
        }
        let log = partition.and_then(|p| self.table.log(OFFSETS_TOPIC, p));
        let Some(log) = log else {
            return Box::pin(async { Err(GroupError::NotCoordinator) });
        };
        // The append takes its place in line here, before the host spawns the wait.
        let append = log.append(batch);
        Box::pin(async move {
            let info = append.await.map_err(GroupError::from)?;
            // With replicas, a commit is answered once every in-sync replica has it (Kafka
            // writes offsets with acks=all), so it survives the loss of this broker.
            if !super::txns::replicated(&log, info.last_offset).await {
                return Err(GroupError::CoordinatorNotAvailable);
            }
            Ok(info.base_offset)
        })
    }
}

/// The group host of a shard, appending to the shard's own logs.
pub fn host(table: Rc<LogTable>, config: &crate::config::BrokerConfig) -> Rc<Groups> {
    let coordinator = GroupCoordinator::new(
        config.group.clone(),
        config.message_max_bytes,
        rand::rngs::StdRng::from_rng(&mut rand::rng()),
    );
    GroupHost::new(coordinator, ShardOffsets { table }, GlommioRuntime)
}

/// Partitions of `__consumer_offsets`: the topic's, or the configured count before it
/// exists.
pub fn offsets_partitions(meta: &MetaView, config: &crate::config::BrokerConfig) -> i32 {
    meta.topics
        .get(OFFSETS_TOPIC)
        .map(|t| t.partitions)
        .unwrap_or(config.group.offsets_topic_partitions)
}

/// Reads the shard's `owned` partitions of `__consumer_offsets` and hands their records, in
/// log order, to the coordinator; it serves requests from then on.
pub async fn load(groups: &Groups, table: &LogTable, owned: &[i32], shard: usize) {
    let mut records: Vec<LoggedRecord> = Vec::new();
    for p in owned {
        if let Some(log) = table.log(OFFSETS_TOPIC, *p) {
            read_records(&log, OFFSETS_TOPIC, *p, &mut records).await;
        }
    }
    groups.load(records);
    let count = groups.with(|c| c.group_count());
    if count > 0 {
        tracing::info!("shard {shard}: loaded {count} consumer groups");
    }
}

/// Appends the records of one partition of an internal topic (`__consumer_offsets`,
/// `__transaction_state`) to `out`, in log order.
pub(super) async fn read_records(
    log: &Log,
    topic: &str,
    partition: i32,
    out: &mut Vec<LoggedRecord>,
) {
    let mut offset = log.log_start_offset();
    // To the log end, not the high watermark: a new leader's high watermark lags its log
    // for a moment, and what it holds past it is the partition's future (its followers
    // copy it). Loading below it would miss the latest state: a transaction found decided
    // that was completed long ago would get its markers again, and commit whatever the
    // producer has open now.
    while offset < log.local_end() {
        let slice = match log.read_for_replica(offset, 1 << 20).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot load {topic}-{partition} at {offset}: {e}");
                return;
            }
        };
        let mut bytes = Vec::new();
        for region in &slice.regions {
            match region.read().await {
                Ok(b) => bytes.extend_from_slice(&b),
                Err(e) => {
                    tracing::error!("cannot read {topic}-{partition}: {e}");
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
