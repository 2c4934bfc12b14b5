//! A follower's fetcher: one task per leader broker on each shard, fetching every
//! partition the shard follows from that leader in one Fetch request (v12, with the
//! follower's replica id), long-polling at the leader like a consumer. The fetches are
//! incremental (KIP-227, `session`): after a full one, a fetch names only the partitions
//! whose position moved, and the leader answers only those with news.
//!
//! Each partition names its last fetched epoch; a leader whose log parted from the
//! follower's answers with the diverging epoch and where it ends (KIP-595's Fetch-based
//! truncation, which replaces an OffsetForLeaderEpoch round trip), and the follower cuts
//! its log back to where the histories agree before fetching again.

use super::client::{ClientError, LeaderConn};
use super::session::FollowerSession;
use crate::protocol::code;
use crate::shard::Shard;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse};
use std::rc::Rc;
use std::time::Duration;

const FETCH_VERSION: i16 = 12;
/// A pause after a failed connection or an error answer, before trying again.
const BACKOFF: Duration = Duration::from_millis(100);

pub async fn run(shard: Rc<Shard>, leader: i32) {
    let mut conn: Option<LeaderConn> = None;
    let mut session = FollowerSession::default();
    loop {
        let repl = &shard.replication;
        let parts = repl.followed_from(leader);
        if repl.stopped.get() || parts.is_empty() {
            repl.fetchers.borrow_mut().remove(&leader);
            return;
        }
        let view = shard.meta();
        let Some(c) = &view.meta.cluster else {
            repl.fetchers.borrow_mut().remove(&leader);
            return;
        };
        let me = c.node;
        let Some((client, host, port)) = shard.broker_link(c, leader) else {
            glommio::timer::sleep(BACKOFF).await;
            continue;
        };
        let config = &shard.config.cluster;
        let per_part = config.replica_fetch_max_bytes;
        let n = parts.len() as u64;
        // A partition answers at least one whole batch, however large.
        let max_frame = usize::try_from(
            n.saturating_mul(per_part.saturating_add(shard.config.log.max_batch_bytes))
                .saturating_add(1 << 20),
        )
        .unwrap_or(usize::MAX);
        if conn.as_ref().is_some_and(LeaderConn::expired) {
            conn = None;
            session.failed();
        }
        if conn.is_none() {
            match LeaderConn::connect(client.as_deref(), &host, port, me, max_frame).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::debug!("cannot reach leader {leader} at {host}:{port}: {e}");
                    glommio::timer::sleep(BACKOFF).await;
                    continue;
                }
            }
        }
        let Some(link) = conn.as_mut() else {
            continue;
        };
        let mut next = session.next(followed(&shard, &parts, config));
        let total = config
            .replica_fetch_max_bytes
            .saturating_mul(parts.len() as u64);
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(me))
            .with_max_wait_ms(i32::try_from(config.replica_fetch_wait_max_ms).unwrap_or(500))
            .with_min_bytes(1)
            .with_max_bytes(i32::try_from(total).unwrap_or(i32::MAX))
            .with_session_id(next.session_id)
            .with_session_epoch(next.epoch)
            .with_topics(std::mem::take(&mut next.topics))
            .with_forgotten_topics_data(std::mem::take(&mut next.forgotten));
        let wait = Duration::from_millis(config.replica_fetch_wait_max_ms);
        let answer: Result<FetchResponse, ClientError> = link
            .call(
                ApiKey::Fetch,
                FETCH_VERSION,
                &request,
                wait + Duration::from_secs(5),
            )
            .await;
        let response = match answer {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("fetch from leader {leader} failed: {e}");
                conn = None;
                session.failed();
                glommio::timer::sleep(BACKOFF).await;
                continue;
            }
        };
        if !session.answered(next, response.error_code, response.session_id) {
            // A session error: the next fetch is a full one, at once for those of the
            // session itself.
            tracing::debug!(
                "fetch from leader {leader}: session error {}",
                response.error_code
            );
            if !matches!(
                response.error_code,
                code::FETCH_SESSION_ID_NOT_FOUND | code::INVALID_FETCH_SESSION_EPOCH
            ) {
                glommio::timer::sleep(BACKOFF).await;
            }
            continue;
        }
        let mut back_off = false;
        for topic in response.responses {
            let name = topic.topic.0.to_string();
            for part in topic.partitions {
                // Only what was asked for (the leader answers no more, but it is a peer);
                // `parts` is sorted by topic and partition.
                let asked = parts
                    .binary_search_by(|(t, p, _)| {
                        (t.as_str(), *p).cmp(&(name.as_str(), part.partition_index))
                    })
                    .is_ok();
                if !asked {
                    continue;
                }
                if !apply_partition(&shard, &name, part).await {
                    back_off = true;
                }
            }
        }
        if back_off {
            glommio::timer::sleep(BACKOFF).await;
        }
    }
}

/// The fetch position of every followed partition with a log here, sorted as `parts`.
fn followed(
    shard: &Shard,
    parts: &[(String, i32, i32)],
    config: &crate::config::ClusterConfig,
) -> Vec<(String, FetchPartition)> {
    let max_bytes = i32::try_from(config.replica_fetch_max_bytes).unwrap_or(i32::MAX);
    parts
        .iter()
        .filter_map(|(topic, p, epoch)| {
            let log = shard.log(topic, *p)?;
            let partition = FetchPartition::default()
                .with_partition(*p)
                .with_current_leader_epoch(*epoch)
                .with_fetch_offset(log.log_end_offset())
                .with_last_fetched_epoch(log.latest_epoch().unwrap_or(-1))
                .with_log_start_offset(log.log_start_offset())
                .with_partition_max_bytes(max_bytes);
            Some((topic.clone(), partition))
        })
        .collect()
}

/// Applies one partition's answer; `false` when the fetcher should pause (an error the
/// metadata will resolve).
async fn apply_partition(
    shard: &Rc<Shard>,
    topic: &str,
    part: kafka_protocol::messages::fetch_response::PartitionData,
) -> bool {
    let p = part.partition_index;
    let Some(log) = shard.log(topic, p) else {
        return true;
    };
    match part.error_code {
        code::NONE => {}
        code::OFFSET_OUT_OF_RANGE if log.log_end_offset() < part.log_start_offset => {
            // Retention at the leader deleted what this replica still lacked: copy the log
            // from the leader's start instead.
            tracing::warn!(
                "{topic}-{p}: the leader's log starts at {}, past this copy's end {}: \
                 starting the copy again from there",
                part.log_start_offset,
                log.log_end_offset()
            );
            if let Err(e) = shard
                .restart_replica_at(topic, p, part.log_start_offset)
                .await
            {
                tracing::error!("{topic}-{p}: cannot start the copy again: {e}");
                return false;
            }
            return true;
        }
        code::OFFSET_OUT_OF_RANGE => {
            tracing::warn!(
                "{topic}-{p}: the leader has no offset {} (its log starts at {})",
                log.log_end_offset(),
                part.log_start_offset
            );
            return false;
        }
        other => {
            tracing::debug!("{topic}-{p}: the leader answered error {other}");
            return false;
        }
    }
    let diverging = &part.diverging_epoch;
    if diverging.epoch >= 0 || diverging.end_offset >= 0 {
        let reported = (diverging.epoch, diverging.end_offset);
        if let Some(to) = crate::replication::truncation_for(&log, reported) {
            tracing::warn!(
                "{topic}-{p}: log diverged from the leader's at epoch {}: truncating {} -> {to}",
                diverging.epoch,
                log.log_end_offset()
            );
            if let Err(e) = shard.truncate_replica(topic, p, to).await {
                tracing::error!("{topic}-{p}: truncation failed: {e}");
                return false;
            }
        }
        return true;
    }
    if let Some(records) = part.records
        && !records.is_empty()
        && let Err(e) = log.append_replica(records).await
    {
        tracing::error!("{topic}-{p}: cannot append what the leader sent: {e}");
        return false;
    }
    crate::replication::learn_high_watermark(&log, part.high_watermark);
    true
}

impl Shard {
    /// Empties a followed partition's log and starts it at `start` (the leader's log start).
    async fn restart_replica_at(
        &self,
        topic: &str,
        p: i32,
        start: i64,
    ) -> Result<(), crate::storage::StorageError> {
        let Some(log) = self.log(topic, p) else {
            return Ok(());
        };
        let config = log.config();
        let dir = log.dir().to_path_buf();
        log.close().await?;
        crate::storage::log::restart_closed_at(&self.storage, &dir, start).await?;
        let log = self.open_partition_log(dir, config).await?;
        if let Some(parts) = self.table.logs.borrow_mut().get_mut(topic) {
            parts.insert(p, log);
        }
        Ok(())
    }

    /// Cuts a followed partition's log back to `offset`: closes it, truncates its files and
    /// opens it again (recovery rebuilds indexes, producer state and epochs from what is
    /// left).
    pub(super) async fn truncate_replica(
        &self,
        topic: &str,
        p: i32,
        offset: i64,
    ) -> Result<(), crate::storage::StorageError> {
        let Some(log) = self.log(topic, p) else {
            return Ok(());
        };
        let config = log.config();
        let hw = log.hw_limit();
        let dir = log.dir().to_path_buf();
        log.close().await?;
        let end = crate::storage::log::truncate_closed(&self.storage, &dir, offset).await?;
        let log = self.open_partition_log(dir, config).await?;
        log.set_hw_limit(hw.map(|h| h.min(end)));
        if let Some(parts) = self.table.logs.borrow_mut().get_mut(topic) {
            parts.insert(p, log);
        }
        Ok(())
    }
}
