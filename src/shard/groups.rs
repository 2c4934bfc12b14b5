//! The consumer groups of a shard: the group coordinator's host on this shard's logs, and
//! the loading of the groups from its partitions of `__consumer_offsets` at start. Routing
//! a group's request to its coordinator shard is `Shard::route_group`.

use super::logs::{LogTable, MetaView};
use crate::group::records::LoggedRecord;
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
            if !super::internal_log::replicated(&log, info.last_offset).await {
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
            super::internal_log::read_records(&log, OFFSETS_TOPIC, *p, &mut records).await;
        }
    }
    groups.load(records);
    let count = groups.with(|c| c.group_count());
    if count > 0 {
        tracing::info!("shard {shard}: loaded {count} consumer groups");
    }
}
