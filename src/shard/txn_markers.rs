//! Transaction markers: the coordinator writes a commit or abort marker to every partition
//! of a decided transaction, on the owning shards of this broker or with WriteTxnMarkers
//! on the partition leader's broker, and retries until each is written (a partition the
//! metadata no longer has is dropped); a shard appends the markers it is sent and
//! completes the transactional offsets of its groups.

use super::Shard;
use super::internal_log::replicated;
use super::messages::{MarkerPart, ShardReply, ShardRequest};
use crate::group::{GroupOp, OFFSETS_TOPIC};
use crate::protocol::code;
use crate::txn::{TXN_TOPIC, TxnMeta, TxnStatus};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

impl Shard {
    /// Writes a marker to every partition of the transaction, retrying those that fail
    /// for a passing reason. `false` when this shard stopped coordinating the id.
    pub(super) async fn txn_markers(self: &Rc<Self>, id: &str, meta: &TxnMeta) -> bool {
        let commit = meta.status == TxnStatus::PrepareCommit;
        let mut left: Vec<(String, i32)> = meta.partitions.iter().cloned().collect();
        let mut backoff = Duration::from_millis(20);
        loop {
            if !self.coordinates_txn(id) {
                return false;
            }
            let view = self.meta();
            let coordinator_epoch = self
                .txn_coordinator(id)
                .and_then(|(_, p)| view.assignment(TXN_TOPIC, p))
                .map_or(0, |a| a.leader_epoch);
            let mut here: BTreeMap<usize, Vec<MarkerPart>> = BTreeMap::new();
            let mut remote: BTreeMap<i32, Vec<MarkerPart>> = BTreeMap::new();
            let mut gone = Vec::new();
            for (topic, partition) in &left {
                let exists = view
                    .topics
                    .get(topic)
                    .is_some_and(|t| (0..t.partitions).contains(partition));
                if !exists {
                    // Deleted since: nothing to mark (Kafka drops it too).
                    gone.push((topic.clone(), *partition));
                    continue;
                }
                let part = MarkerPart {
                    topic: topic.clone(),
                    partition: *partition,
                    producer_id: meta.producer_id,
                    epoch: meta.epoch,
                    commit,
                    coordinator_epoch,
                };
                match &view.meta.cluster {
                    Some(c) => {
                        let leader = view.assignment(topic, *partition).map_or(-1, |a| a.leader);
                        if leader == c.node {
                            here.entry(self.owner(topic, *partition))
                                .or_default()
                                .push(part);
                        } else {
                            remote.entry(leader).or_default().push(part);
                        }
                    }
                    None => here
                        .entry(self.owner(topic, *partition))
                        .or_default()
                        .push(part),
                }
            }
            left.retain(|p| !gone.contains(p));
            let mut done = Vec::new();
            for (shard, parts) in here {
                let names: Vec<_> = parts
                    .iter()
                    .map(|m| (m.topic.clone(), m.partition))
                    .collect();
                if let Some(ShardReply::WriteMarkers(codes)) =
                    self.call(shard, ShardRequest::WriteMarkers(parts)).await
                {
                    // UNKNOWN_TOPIC_OR_PARTITION is retried too: a shard or broker that has
                    // not opened the log yet says so; a deleted partition is dropped above,
                    // from the metadata.
                    for (name, c) in names.into_iter().zip(codes) {
                        if c == code::NONE {
                            done.push(name);
                        } else {
                            tracing::debug!("marker for {}-{}: error {c}", name.0, name.1);
                        }
                    }
                }
            }
            for (broker, parts) in remote {
                done.extend(self.remote_markers(broker, parts).await);
            }
            left.retain(|p| !done.contains(p));
            if left.is_empty() {
                return true;
            }
            glommio::timer::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// Writes markers on this shard's partitions (WriteTxnMarkers, or the coordinator of
    /// this broker): one error code per part. A marker on `__consumer_offsets` also
    /// completes the producer's transactional offsets in its groups.
    pub(super) async fn write_markers(&self, parts: Vec<MarkerPart>) -> Vec<i16> {
        let mut out = Vec::with_capacity(parts.len());
        for m in parts {
            let log = match self.leader_log(&m.topic, m.partition) {
                Ok(log) => log,
                Err(c) => {
                    out.push(c);
                    continue;
                }
            };
            let written = log
                .append_marker(m.producer_id, m.epoch, m.commit, m.coordinator_epoch)
                .await;
            let c = match written {
                Err(e) => e.code(),
                Ok(info) if !replicated(&log, info.last_offset).await => code::NOT_ENOUGH_REPLICAS,
                Ok(_) => {
                    if m.topic == OFFSETS_TOPIC {
                        let meta = self.meta();
                        let partitions = meta.topics.get(OFFSETS_TOPIC).map_or(0, |t| t.partitions);
                        let op = GroupOp::TxnMarker {
                            producer_id: m.producer_id,
                            commit: m.commit,
                            partition: m.partition,
                            partitions,
                        };
                        let topics =
                            |t: &str| meta.topics.get(t).map(|v| v.partitions).unwrap_or(0);
                        self.groups.handle(op, &topics).await;
                    }
                    code::NONE
                }
            };
            out.push(c);
        }
        out
    }

    /// Sends markers to the leader `broker` of their partitions (WriteTxnMarkers v1); the
    /// partitions written.
    async fn remote_markers(&self, broker: i32, parts: Vec<MarkerPart>) -> Vec<(String, i32)> {
        use kafka_protocol::messages::write_txn_markers_request::{
            WritableTxnMarker, WritableTxnMarkerTopic,
        };
        use kafka_protocol::messages::{ApiKey, ProducerId, WriteTxnMarkersRequest};
        use kafka_protocol::messages::{TopicName, WriteTxnMarkersResponse};
        let meta = self.meta();
        let Some(c) = &meta.meta.cluster else {
            return Vec::new();
        };
        let Some((client, host, port)) = self.broker_link(c, broker) else {
            return Vec::new();
        };
        let Some(first) = parts.first() else {
            return Vec::new();
        };
        let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for p in &parts {
            topics.entry(p.topic.clone()).or_default().push(p.partition);
        }
        let marker = WritableTxnMarker::default()
            .with_producer_id(ProducerId(first.producer_id))
            .with_producer_epoch(first.epoch)
            .with_transaction_result(first.commit)
            .with_coordinator_epoch(first.coordinator_epoch)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        WritableTxnMarkerTopic::default()
                            .with_name(TopicName(crate::protocol::strings::str_bytes(t)))
                            .with_partition_indexes(ps)
                    })
                    .collect(),
            );
        let req = WriteTxnMarkersRequest::default().with_markers(vec![marker]);
        let me = c.node;
        let max = 1 << 20;
        let conn =
            super::replica::client::LeaderConn::connect(client.as_deref(), &host, port, me, max)
                .await;
        let mut conn = match conn {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("markers to broker {broker}: {e}");
                return Vec::new();
            }
        };
        let answer: Result<WriteTxnMarkersResponse, _> = conn
            .call(ApiKey::WriteTxnMarkers, 1, &req, Duration::from_secs(10))
            .await;
        let mut done = Vec::new();
        match answer {
            Ok(r) => {
                for m in r.markers {
                    for t in m.topics {
                        for p in t.partitions {
                            if p.error_code == code::NONE {
                                done.push((t.name.to_string(), p.partition_index));
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::debug!("markers to broker {broker}: {e}"),
        }
        done
    }
}
