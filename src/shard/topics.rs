//! Topic metadata: shard 0 creates and deletes topics (persisting the metadata before it
//! answers), and every shard applies each version, opening and closing its logs.

use super::Shard;
use super::messages::*;
use super::meta::{self, Metadata, validate_topic_name};
use super::runtime::{Log, MetaView};
use crate::config::topic;
use crate::protocol::code;
use crate::storage::Storage;
use std::rc::Rc;
use std::sync::Arc;

impl Shard {
    /// Shard 0 only: validates, persists and broadcasts new topics.
    pub(super) async fn create_topics(
        self: &Rc<Self>,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<TopicResult> {
        debug_assert_eq!(self.id, 0, "metadata has one writer");
        let _writer = self.meta_write.lock().await;
        let mut next = (*self.meta().meta).clone();
        let cluster = next.cluster.clone();
        let replication_factor = |rf: i16| {
            if rf == -1 {
                self.config.cluster.default_replication_factor
            } else {
                rf
            }
        };
        let mut results = Vec::with_capacity(topics.len());
        let mut created = Vec::new();
        let mut proposed = Vec::new();
        for t in topics {
            let partitions = match &t.assignments {
                Some(a) => i32::try_from(a.len()).unwrap_or(i32::MAX),
                None if t.partitions == -1 => self.config.num_partitions,
                None => t.partitions,
            };
            let check = || -> Result<(), (i16, String)> {
                validate_topic_name(&t.name)
                    .map_err(|m| (code::INVALID_TOPIC_EXCEPTION, m.to_string()))?;
                if meta::is_internal(&t.name) {
                    return Err((
                        code::INVALID_REQUEST,
                        format!("{} is an internal topic; the broker creates it", t.name),
                    ));
                }
                if next.topics.contains_key(&t.name) {
                    return Err((
                        code::TOPIC_ALREADY_EXISTS,
                        format!("topic {} already exists", t.name),
                    ));
                }
                let max = self.config.limits.topic_partitions_max;
                if !(1..=max).contains(&partitions) {
                    return Err((
                        code::INVALID_PARTITIONS,
                        format!("partitions must be in 1..={max} (topic.partitions.max)"),
                    ));
                }
                let held: i64 = next.topics.values().map(|t| i64::from(t.partitions)).sum();
                let cap = self.config.limits.broker_partitions_max;
                if held.saturating_add(i64::from(partitions)) > cap {
                    return Err((
                        code::POLICY_VIOLATION,
                        format!(
                            "the broker holds {held} partitions; {partitions} more would pass \
                             broker.partitions.max = {cap}"
                        ),
                    ));
                }
                match &cluster {
                    // A broker alone is node 0: every partition lives there.
                    None if t
                        .assignments
                        .as_ref()
                        .is_some_and(|a| a.iter().any(|r| r.as_slice() != [0])) =>
                    {
                        return Err((
                            code::INVALID_REPLICA_ASSIGNMENT,
                            "this broker runs alone (node 0): every partition's replicas must \
                             be [0]"
                                .into(),
                        ));
                    }
                    // The metadata log checks chosen replicas against the registered brokers.
                    Some(_) if t.assignments.is_some() => {}
                    None if t.replication_factor != -1 && t.replication_factor != 1 => {
                        return Err((
                            code::INVALID_REPLICATION_FACTOR,
                            "this broker runs alone: replication factor must be 1".into(),
                        ));
                    }
                    Some(c) => {
                        let rf = replication_factor(t.replication_factor);
                        if rf < 1 || usize::try_from(rf).unwrap_or(0) > c.brokers.len() {
                            return Err((
                                code::INVALID_REPLICATION_FACTOR,
                                format!(
                                    "replication factor {rf} needs that many live brokers; {} \
                                     are alive",
                                    c.brokers.len()
                                ),
                            ));
                        }
                    }
                    None => {}
                }
                topic::validate(
                    &self.meta().config.log,
                    &t.configs,
                    self.config.socket_request_max_bytes,
                )
                .map_err(|e| (code::INVALID_CONFIG, e.to_string()))?;
                Ok(())
            };
            let mut result = TopicResult {
                name: t.name.clone(),
                error_code: code::NONE,
                error_message: None,
                partitions,
                id: String::new(),
            };
            match check() {
                Err((c, m)) => {
                    result.error_code = c;
                    result.error_message = Some(m);
                }
                Ok(()) => {
                    let id = meta::new_topic_id();
                    result.id = id.clone();
                    if !validate_only && cluster.is_some() {
                        proposed.push(crate::cluster::image::NewTopic {
                            name: t.name.clone(),
                            id,
                            partitions,
                            replication_factor: replication_factor(t.replication_factor),
                            configs: t.configs,
                            assignments: t.assignments,
                        });
                    } else if !validate_only {
                        next.topics.insert(
                            t.name.clone(),
                            meta::TopicMeta {
                                partitions,
                                id,
                                configs: t.configs,
                                assignment: Vec::new(),
                            },
                        );
                        created.push(results.len());
                    }
                }
            }
            results.push(result);
        }
        if !proposed.is_empty() {
            let cmd = crate::cluster::image::Command::CreateTopics { topics: proposed };
            self.apply_outcome(cmd, &mut results, |m, n| m.topics.contains_key(n))
                .await;
        }
        if !created.is_empty()
            && let Err(e) = self.publish(next).await
        {
            tracing::error!("cannot persist new topics: {e}");
            for i in created {
                results[i].error_code = code::KAFKA_STORAGE_ERROR;
                results[i].error_message = Some(e.to_string());
            }
        }
        results
    }

    /// Shard 0 only: removes topics, persists and broadcasts.
    pub(super) async fn delete_topics(self: &Rc<Self>, names: Vec<String>) -> Vec<TopicResult> {
        debug_assert_eq!(self.id, 0, "metadata has one writer");
        let _writer = self.meta_write.lock().await;
        let mut next = (*self.meta().meta).clone();
        let mut results = Vec::with_capacity(names.len());
        let mut deleted = Vec::new();
        let mut proposed = Vec::new();
        for name in names {
            let mut result = TopicResult {
                name: name.clone(),
                error_code: code::NONE,
                error_message: None,
                partitions: 0,
                id: String::new(),
            };
            if meta::is_internal(&name) {
                result.error_code = code::INVALID_TOPIC_EXCEPTION;
                result.error_message = Some(format!(
                    "{name} is an internal topic: it belongs to the broker and cannot be deleted"
                ));
                results.push(result);
                continue;
            }
            match next.topics.remove(&name) {
                Some(t) => {
                    result.partitions = t.partitions;
                    result.id = t.id;
                    if next.cluster.is_some() {
                        proposed.push(name);
                    } else {
                        deleted.push(results.len());
                    }
                }
                None => result.error_code = code::UNKNOWN_TOPIC_OR_PARTITION,
            }
            results.push(result);
        }
        if !proposed.is_empty() {
            let cmd = crate::cluster::image::Command::DeleteTopics { names: proposed };
            self.apply_outcome(cmd, &mut results, |m, n| !m.topics.contains_key(n))
                .await;
        }
        if !deleted.is_empty()
            && let Err(e) = self.publish(next).await
        {
            tracing::error!("cannot persist topic deletion: {e}");
            for i in deleted {
                results[i].error_code = code::KAFKA_STORAGE_ERROR;
                results[i].error_message = Some(e.to_string());
            }
        }
        results
    }

    /// In a cluster: proposes a topic command to the metadata log, copies each topic's
    /// outcome into `results`, and waits (briefly) until this broker's shards see the
    /// change (`settled` holds for every topic that succeeded), so a client told "created"
    /// can use the topic here at once.
    pub(super) async fn apply_outcome(
        self: &Rc<Self>,
        cmd: crate::cluster::image::Command,
        results: &mut [TopicResult],
        settled: impl Fn(&MetaView, &str) -> bool,
    ) {
        use crate::cluster::image::Outcome;
        let names: Vec<String> = match &cmd {
            crate::cluster::image::Command::CreateTopics { topics } => {
                topics.iter().map(|t| t.name.clone()).collect()
            }
            crate::cluster::image::Command::DeleteTopics { names } => names.clone(),
            crate::cluster::image::Command::AlterTopicConfigs { topics } => {
                topics.iter().map(|t| t.name.clone()).collect()
            }
            crate::cluster::image::Command::CreatePartitions { topics } => {
                topics.iter().map(|t| t.name.clone()).collect()
            }
            _ => Vec::new(),
        };
        match self.propose(cmd).await {
            Ok(Outcome::Topics(outcomes)) => {
                for o in outcomes {
                    if let Some(r) = results.iter_mut().find(|r| r.name == o.name) {
                        r.error_code = o.error_code;
                        r.error_message = o.message;
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                for r in results.iter_mut().filter(|r| names.contains(&r.name)) {
                    r.error_code = e.code();
                    r.error_message = Some(e.to_string());
                }
            }
        }
        let all_settled = |meta: &MetaView| {
            results
                .iter()
                .filter(|r| r.error_code == code::NONE && names.contains(&r.name))
                .all(|r| settled(meta, &r.name))
        };
        for _ in 0..200 {
            if all_settled(&self.meta()) {
                break;
            }
            glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Persists `next` and has every shard apply it before returning, so a client that
    /// saw CreateTopics succeed can produce to any partition at once.
    pub(super) async fn publish(
        self: &Rc<Self>,
        mut next: Metadata,
    ) -> Result<(), meta::MetaError> {
        next.version = self.meta().meta.version + 1;
        meta::persist(&self.storage, &self.config.data_dir, &next).await?;
        let next = Arc::new(next);
        for shard in 0..self.nshards {
            if self
                .call(shard, ShardRequest::ApplyMetadata(next.clone()))
                .await
                .is_none()
            {
                tracing::warn!(
                    "shard {shard} did not take metadata version {}",
                    next.version
                );
            }
        }
        Ok(())
    }

    /// Applies a metadata version: closes and deletes the logs of removed topics, opens the
    /// logs of new partitions this shard owns, then installs the version.
    pub async fn apply_metadata(self: &Rc<Self>, meta: Arc<Metadata>) {
        let before = self.meta();
        if meta.version < before.meta.version {
            return;
        }
        let view = Rc::new(MetaView::build(meta, &self.config));
        if let Some(c) = &view.meta.cluster {
            self.producer_ids.note_issued_below(c.producer_ids_issued);
        }

        self.reconfigure_logs(&view).await;
        let mut removed = Vec::new();
        {
            let mut logs = self.table.logs.borrow_mut();
            // A topic whose id changed was deleted and created again between two versions
            // this shard saw (a cluster's publisher hands over only the newest): its old
            // logs go like a deleted topic's.
            let same_topic = |topic: &str, t: &super::logs::TopicView| {
                before.topics.get(topic).is_none_or(|old| old.id == t.id)
            };
            logs.retain(|topic, parts| match view.topics.get(topic) {
                Some(t) if same_topic(topic, t) => {
                    let gone: Vec<i32> = parts.range(t.partitions..).map(|(p, _)| *p).collect();
                    for p in gone {
                        if let Some(log) = parts.remove(&p) {
                            removed.push((topic.clone(), p, log));
                        }
                    }
                    true
                }
                _ => {
                    for (p, log) in std::mem::take(parts) {
                        removed.push((topic.clone(), p, log));
                    }
                    false
                }
            });
        }
        for (topic, p, log) in removed {
            if let Err(e) = log.delete().await {
                tracing::error!("cannot delete {topic}-{p}: {e}");
            }
        }
        // An offline partition of a deleted topic goes with it: deleting the topic is the
        // operator's word to remove its data, damaged or not.
        let gone: Vec<(String, i32)> = self
            .table
            .offline
            .borrow()
            .keys()
            .filter(|(topic, p)| match view.topics.get(topic) {
                Some(t) => {
                    *p >= t.partitions || before.topics.get(topic).is_some_and(|o| o.id != t.id)
                }
                None => true,
            })
            .cloned()
            .collect();
        for (topic, p) in gone {
            self.table.offline.borrow_mut().remove(&(topic.clone(), p));
            let dir = self.partition_dir(&topic, p);
            if let Err(e) = self.storage.remove_dir_all(&dir).await
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::error!("cannot delete offline partition {topic}-{p}: {e}");
            }
        }

        for (topic, t) in &view.topics {
            for p in 0..t.partitions {
                if self.owner(topic, p) != self.id
                    || self.log(topic, p).is_some()
                    || self.table.offline(topic, p).is_some()
                    || !view.is_replica(topic, p)
                {
                    continue;
                }
                let dir = self.partition_dir(topic, p);
                match self.open_partition_log(dir.clone(), t.log.clone()).await {
                    Ok(log) => {
                        self.table
                            .logs
                            .borrow_mut()
                            .entry(topic.clone())
                            .or_default()
                            .insert(p, log);
                    }
                    // One line, when the partition goes offline; its requests are
                    // answered KAFKA_STORAGE_ERROR from then on without more noise.
                    Err(e) => self.take_offline(topic, p, &e),
                }
            }
        }
        // A leader stamps its epoch into every batch it appends from the first one on, and
        // stops counting its own end as replicated once followers are in sync: both set
        // before the version is installed, so no append sees the new version without them.
        if let Some(c) = &view.meta.cluster {
            for (topic, p, log) in self.all_logs() {
                let led = view.assignment(&topic, p).filter(|a| a.leader == c.node);
                log.set_leader_epoch(led.map(|a| a.leader_epoch));
                // Followers that joined the ISR hold the high watermark from here on.
                if let Some(a) = led {
                    crate::replication::isr_seen(&log, &a.isr);
                }
            }
        }
        // Installed once the new partitions' logs are open: a client that sees a topic in
        // Metadata finds its logs here.
        *self.table.meta.borrow_mut() = view.clone();
        if view.meta.cluster.is_some() {
            self.move_group_coordinators(&before, &view).await;
        }
        self.move_txn_coordinators(&before, &view).await;
    }

    /// Opens (and recovers) a partition log of this shard, wired to the shard's producer
    /// ids and, for `io = direct`, its batch cache.
    /// Takes a partition offline for damage found at open or while running: its log (if
    /// open) leaves the table, one ERROR line says what is wrong and how to repair it, and
    /// its requests get KAFKA_STORAGE_ERROR from then on.
    pub fn take_offline(&self, topic: &str, partition: i32, e: &crate::storage::StorageError) {
        if let Some(parts) = self.table.logs.borrow_mut().get_mut(topic) {
            parts.remove(&partition);
        }
        tracing::error!(
            "partition {topic}-{partition} is offline: {e}. Nothing was changed on disk; the \
             other partitions keep serving. To bring it back, stop the broker and run \
             `ringbroker repair --data-dir {} --topic {topic} --partition {partition}` (add \
             --dry-run to see what it would remove)",
            self.config.data_dir.display()
        );
        self.table
            .offline
            .borrow_mut()
            .insert((topic.to_string(), partition), e.to_string());
    }

    pub(super) async fn open_partition_log(
        &self,
        dir: std::path::PathBuf,
        config: crate::config::LogConfig,
    ) -> Result<Log, crate::storage::StorageError> {
        let direct = config.io == crate::config::IoMode::Direct;
        let log = Log::open(self.storage.clone(), dir, config).await?;
        if self.config.cluster.node_id.is_some() {
            log.restore_hw_checkpoint().await;
        }
        log.use_issued_ids(self.producer_ids.issued_below());
        if direct {
            log.use_cache(self.batch_cache.clone());
        }
        Ok(log)
    }

    /// In a cluster, a group's coordinator is the leader of its `__consumer_offsets`
    /// partition: groups of a partition this broker stopped leading are forgotten, those of
    /// one it started leading are loaded from the partition's log.
    async fn move_group_coordinators(&self, before: &MetaView, now: &MetaView) {
        let topic = crate::group::OFFSETS_TOPIC;
        let Some(t) = now.topics.get(topic) else {
            return;
        };
        let n = t.partitions;
        let mut gained = Vec::new();
        for p in 0..n {
            if self.owner(topic, p) != self.id {
                continue;
            }
            let (was, is) = (before.leads(topic, p), now.leads(topic, p));
            if was && !is {
                self.groups.forget_partition(p, n);
                tracing::info!("shard {}: no longer coordinates {topic}-{p}", self.id);
            } else if is && !was {
                self.groups.forget_partition(p, n);
                gained.push(p);
            }
        }
        if !gained.is_empty() {
            tracing::info!(
                "shard {}: coordinates {topic} partitions {gained:?}",
                self.id
            );
            super::groups::load(&self.groups, &self.table, &gained, self.id).await;
        }
    }
}
