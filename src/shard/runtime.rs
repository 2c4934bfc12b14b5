//! One shard: a glommio executor that owns some partition logs, serves connections, and
//! answers requests of other shards that arrive on the mesh.
//!
//! Routing guarantee: work on a partition always runs on its owning shard. A request for a
//! partition of this shard runs inline; one for another shard becomes one mesh message
//! carrying the request id, and the reply comes back on the mesh to the shard that asked.

use super::messages::*;
use super::meta::{self, Metadata, validate_topic_name};
use super::stats::{FetchStats, add};
use super::table;
use crate::config::{BrokerConfig, LogConfig, topic};
use crate::protocol::code;
use crate::storage::Chunk;
use crate::storage::{BatchCache, GlommioStorage};
use glommio::channels::channel_mesh::{Receivers, Senders};
use glommio::channels::local_channel::{self, LocalSender};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::storage::PartitionLog;

pub type Log = PartitionLog<GlommioStorage>;

type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// This shard's read-only view of the metadata, with what the hot path needs precomputed.
pub struct MetaView {
    pub meta: Arc<Metadata>,
    pub topics: HashMap<String, TopicView>,
}

pub struct TopicView {
    pub partitions: i32,
    pub id: uuid::Uuid,
    pub log: LogConfig,
}

impl MetaView {
    fn build(meta: Arc<Metadata>, defaults: &LogConfig) -> MetaView {
        let topics = meta
            .topics
            .iter()
            .map(|(name, t)| {
                let mut log = topic::effective(defaults, &t.configs);
                if meta::is_internal(name) {
                    // The broker's own state: kept whatever the broker's retention defaults
                    // say (offsets are compacted in memory only).
                    log.retention_bytes = None;
                    log.retention_ms = None;
                }
                let view = TopicView {
                    partitions: t.partitions,
                    id: t.uuid(),
                    log,
                };
                (name.clone(), view)
            })
            .collect();
        MetaView { meta, topics }
    }
}

pub struct Shard {
    pub id: usize,
    pub nshards: usize,
    pub config: Arc<BrokerConfig>,
    storage: GlommioStorage,
    meta: RefCell<Rc<MetaView>>,
    logs: RefCell<HashMap<String, BTreeMap<i32, Log>>>,
    mesh: Senders<MeshMsg>,
    pending: RefCell<HashMap<u64, LocalSender<ShardReply>>>,
    next_id: Cell<u64>,
    /// Long-poll waits parked here for other shards, by (caller shard, request id):
    /// dropping the sender ends the wait.
    waits: RefCell<HashMap<(usize, u64), LocalSender<()>>>,
    /// The consumer groups this shard coordinates (see `crate::group`).
    pub groups: Rc<super::groups::Groups>,
    /// The broker's producer id allocator, shared by all shards.
    pub producer_ids: Arc<crate::producer::ProducerIdAllocator>,
    /// Serialises metadata changes on shard 0: one persist-and-broadcast at a time, so
    /// every shard sees versions in order. Not on the data path.
    meta_write: async_lock::Mutex<()>,
    /// Bytes fetched per send path (sendfile, writev, copying fallback, batch cache).
    pub fetch_stats: FetchStats,
    /// Recently written batches of this shard's `io = direct` logs.
    batch_cache: Rc<RefCell<BatchCache>>,
    stats_logged_at: Cell<std::time::Instant>,
    stats_logged_total: Cell<u64>,
}

impl Shard {
    pub fn new(
        config: Arc<BrokerConfig>,
        mesh: Senders<MeshMsg>,
        nshards: usize,
        initial: Arc<Metadata>,
        producer_ids: Arc<crate::producer::ProducerIdAllocator>,
    ) -> Rc<Shard> {
        let view = MetaView::build(initial, &config.log);
        Rc::new_cyclic(|me| Shard {
            id: mesh.peer_id(),
            nshards,
            storage: GlommioStorage,
            meta: RefCell::new(Rc::new(view)),
            logs: RefCell::new(HashMap::new()),
            mesh,
            pending: RefCell::new(HashMap::new()),
            next_id: Cell::new(0),
            waits: RefCell::new(HashMap::new()),
            meta_write: async_lock::Mutex::new(()),
            fetch_stats: FetchStats::default(),
            stats_logged_at: Cell::new(std::time::Instant::now()),
            stats_logged_total: Cell::new(0),
            batch_cache: Rc::new(RefCell::new(BatchCache::new(
                config.direct_cache_bytes_per_shard(nshards),
            ))),
            groups: super::groups::host(me.clone(), &config),
            producer_ids,
            config,
        })
    }

    pub fn meta(&self) -> Rc<MetaView> {
        self.meta.borrow().clone()
    }

    pub fn owner(&self, topic: &str, partition: i32) -> usize {
        table::owner(topic, partition, self.nshards)
    }

    fn log(&self, topic: &str, partition: i32) -> Option<Log> {
        self.logs.borrow().get(topic)?.get(&partition).cloned()
    }

    /// The log of a partition this shard owns.
    pub fn log_of(&self, topic: &str, partition: i32) -> Option<Log> {
        self.log(topic, partition)
    }

    fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.config.data_dir.join(format!("{topic}-{partition}"))
    }

    /// Runs `req` on shard `shard`: inline when it is this one, else over the mesh.
    /// `None` means the mesh to that shard is gone (only while stopping).
    pub async fn call(self: &Rc<Self>, shard: usize, req: ShardRequest) -> Option<ShardReply> {
        if shard == self.id {
            // Inline, but in fatal mode: this changes state the shard owns, even when a
            // connection's task is the one polling it (see `crate::fatal`).
            return Some(crate::fatal::Owned::new(self.clone().handle(req)).await);
        }
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));
        let (tx, rx) = local_channel::new_bounded(1);
        self.pending.borrow_mut().insert(id, tx);
        let mut call = PendingCall {
            shard: self,
            to: shard,
            id,
            answered: false,
        };
        let msg = MeshMsg::Request {
            from: self.id,
            id,
            req,
        };
        if self.mesh.send_to(shard, msg).await.is_err() {
            call.answered = true;
            self.pending.borrow_mut().remove(&id);
            return None;
        }
        let reply = rx.recv().await;
        call.answered = true;
        reply
    }

    /// Serves the mesh: runs requests of other shards, and hands replies to their callers.
    pub fn serve_mesh(self: &Rc<Self>, mut receivers: Receivers<MeshMsg>) {
        for (_peer, rx) in receivers.streams() {
            let shard = self.clone();
            glommio::spawn_local(async move {
                while let Some(msg) = rx.recv().await {
                    match msg {
                        MeshMsg::Request { from, id, req } => {
                            // Each request runs in its own task so a slow one (a long-poll
                            // fetch, an fdatasync) does not hold up the queue.
                            let shard = shard.clone();
                            glommio::spawn_local(async move {
                                let rep = match req {
                                    ShardRequest::WaitChanged { parts, timeout_ms } => {
                                        let (tx, cancel) = local_channel::new_bounded(1);
                                        shard.waits.borrow_mut().insert((from, id), tx);
                                        shard.wait_changed(parts, timeout_ms, Some(cancel)).await;
                                        shard.waits.borrow_mut().remove(&(from, id));
                                        ShardReply::Changed
                                    }
                                    req => shard.clone().handle(req).await,
                                };
                                let _ = shard.mesh.send_to(from, MeshMsg::Reply { id, rep }).await;
                            })
                            .detach();
                        }
                        MeshMsg::Cancel { from, id } => {
                            if shard.waits.borrow_mut().remove(&(from, id)).is_some() {
                                tracing::debug!(
                                    "shard {}: long-poll wait {from}/{id} cancelled",
                                    shard.id
                                );
                            }
                        }
                        MeshMsg::Reply { id, rep } => {
                            if let Some(tx) = shard.pending.borrow_mut().remove(&id) {
                                let _ = tx.try_send(rep);
                            }
                        }
                    }
                }
            })
            .detach();
        }
    }

    /// Runs one request whose partitions this shard owns.
    fn handle(self: Rc<Self>, req: ShardRequest) -> LocalBoxFuture<'static, ShardReply> {
        Box::pin(async move {
            match req {
                ShardRequest::Produce(parts) => ShardReply::Produce(self.produce(parts).await),
                ShardRequest::Read { parts, max_bytes } => {
                    ShardReply::Read(self.read(parts, max_bytes).await)
                }
                ShardRequest::WaitChanged { parts, timeout_ms } => {
                    self.wait_changed(parts, timeout_ms, None).await;
                    ShardReply::Changed
                }
                ShardRequest::ListOffsets(parts) => {
                    ShardReply::ListOffsets(self.list_offsets(parts).await)
                }
                ShardRequest::CreateTopics {
                    topics,
                    validate_only,
                } => ShardReply::CreateTopics(self.create_topics(topics, validate_only).await),
                ShardRequest::DeleteTopics(names) => {
                    ShardReply::DeleteTopics(self.delete_topics(names).await)
                }
                ShardRequest::Group(op) => {
                    ShardReply::Group(super::groups::handle(&self, *op).await)
                }
                ShardRequest::ApplyMetadata(meta) => {
                    self.apply_metadata(meta).await;
                    ShardReply::Applied
                }
            }
        })
    }

    async fn produce(&self, parts: Vec<ProducePart>) -> Vec<ProduceResult> {
        // The partitions of one request are appended concurrently: each waits for its own
        // durability (under flush=fsync, each log's group commit), so a request for 12
        // partitions costs one fdatasync round, not 12 in a row. Offsets within a
        // partition still follow the request's order: each append takes its place in line
        // here, when called.
        let appends: Vec<LocalBoxFuture<'_, ProduceResult>> = parts
            .into_iter()
            .map(|part| {
                let log = self.log(&part.topic, part.partition);
                if crate::fatal::faults().panic_topic.as_deref() == Some(part.topic.as_str()) {
                    panic!("injected fault: an append to {} panics", part.topic);
                }
                let append = log.map(|log| log.append(part.records));
                Box::pin(async move {
                    let Some(append) = append else {
                        return ProduceResult::error(code::UNKNOWN_TOPIC_OR_PARTITION, None);
                    };
                    match append.await {
                        Ok(info) => ProduceResult {
                            error_code: code::NONE,
                            error_message: None,
                            base_offset: info.base_offset,
                            log_append_time: info.log_append_time,
                            log_start_offset: info.log_start_offset,
                        },
                        Err(e) => ProduceResult::error(e.code(), Some(e.to_string())),
                    }
                }) as LocalBoxFuture<'_, ProduceResult>
            })
            .collect();
        join_all(appends).await
    }

    async fn read(&self, parts: Vec<ReadPart>, max_bytes: u64) -> Vec<ReadResult> {
        let mut out = Vec::with_capacity(parts.len());
        let mut budget = max_bytes;
        for part in parts {
            let Some(log) = self.log(&part.topic, part.partition) else {
                out.push(ReadResult::error(code::UNKNOWN_TOPIC_OR_PARTITION));
                continue;
            };
            if budget == 0 {
                // The response is full: report the partition's offsets without records.
                out.push(ReadResult {
                    error_code: code::NONE,
                    high_watermark: log.high_watermark(),
                    log_start_offset: log.log_start_offset(),
                    records: Vec::new(),
                });
                continue;
            }
            let slice = match log.read(part.offset, part.max_bytes.min(budget)).await {
                Ok(s) => s,
                Err(e) => {
                    let mut r = ReadResult::error(e.code());
                    r.high_watermark = log.high_watermark();
                    r.log_start_offset = log.log_start_offset();
                    out.push(r);
                    continue;
                }
            };
            // Regions leave as chunks: cached bytes as they are, file ranges as a dup of the
            // segment's descriptor (so they can cross to the connection's shard and outlive
            // a retention delete), copied only when the file has no descriptor.
            let mut records = Vec::with_capacity(slice.regions.len());
            let mut failed = None;
            for region in &slice.regions {
                if let Some(cached) = &region.cached {
                    add(&self.fetch_stats.cache_hit_bytes, region.len);
                    records.extend(cached.iter().cloned().map(Chunk::Bytes));
                    continue;
                }
                if log.config().io == crate::config::IoMode::Direct {
                    add(&self.fetch_stats.cache_miss_bytes, region.len);
                }
                let dup = region.raw_fd().map(|fd| {
                    // SAFETY: `fd` is open for as long as `region` holds its file.
                    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
                    borrowed.try_clone_to_owned()
                });
                match dup {
                    Some(Ok(fd)) => records.push(Chunk::File {
                        fd,
                        position: region.position,
                        len: region.len,
                    }),
                    Some(Err(e)) => {
                        failed = Some(e);
                        break;
                    }
                    None => match region.read().await {
                        Ok(bytes) => records.push(Chunk::Bytes(bytes.into())),
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    },
                }
            }
            if let Some(e) = failed {
                tracing::error!("read of {}-{} failed: {e}", part.topic, part.partition);
                out.push(ReadResult::error(code::KAFKA_STORAGE_ERROR));
                continue;
            }
            let len: u64 = records.iter().map(Chunk::len).sum();
            budget = budget.saturating_sub(len);
            out.push(ReadResult {
                error_code: code::NONE,
                high_watermark: slice.high_watermark,
                log_start_offset: slice.log_start_offset,
                records,
            });
        }
        out
    }

    /// Waits until one of `parts` has a high watermark above the one the caller saw, or the
    /// timeout. Checking against the caller's value closes the race with an append that
    /// lands between the caller's read and this wait.
    async fn wait_changed(
        &self,
        parts: Vec<(String, i32, i64)>,
        timeout_ms: u64,
        cancel: Option<local_channel::LocalReceiver<()>>,
    ) {
        let mut logs = Vec::with_capacity(parts.len());
        for (topic, partition, seen_hw) in &parts {
            let Some(log) = self.log(topic, *partition) else {
                return;
            };
            if log.high_watermark() != *seen_hw {
                return;
            }
            logs.push(log);
        }
        // No await between the checks above and registering here, so no advance is missed.
        let mut waits: Vec<LocalBoxFuture<'_, ()>> = Vec::with_capacity(logs.len() + 1);
        for log in &logs {
            waits.push(Box::pin(log.changed()));
        }
        waits.push(Box::pin(glommio::timer::sleep(Duration::from_millis(
            timeout_ms,
        ))));
        if let Some(cancel) = cancel {
            waits.push(Box::pin(async move {
                // Resolves when the sender is dropped: the caller stopped waiting.
                let _ = cancel.recv().await;
            }));
        }
        first_of(waits).await;
    }

    async fn list_offsets(&self, parts: Vec<ListOffsetsPart>) -> Vec<ListOffsetsResult> {
        let mut out = Vec::with_capacity(parts.len());
        for part in parts {
            let Some(log) = self.log(&part.topic, part.partition) else {
                out.push(ListOffsetsResult::error(code::UNKNOWN_TOPIC_OR_PARTITION));
                continue;
            };
            let ok = |offset| ListOffsetsResult {
                error_code: code::NONE,
                offset,
                timestamp: -1,
            };
            out.push(match part.timestamp {
                -2 => ok(log.log_start_offset()),
                -1 => ok(log.high_watermark()),
                ts if ts < 0 => ListOffsetsResult::error(code::INVALID_REQUEST),
                ts => match log.offset_for_timestamp(ts).await {
                    Ok(Some((offset, timestamp))) => ListOffsetsResult {
                        error_code: code::NONE,
                        offset,
                        timestamp,
                    },
                    Ok(None) => ok(-1),
                    Err(e) => ListOffsetsResult::error(e.code()),
                },
            });
        }
        out
    }

    /// Shard 0 only: validates, persists and broadcasts new topics.
    async fn create_topics(
        self: &Rc<Self>,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<TopicResult> {
        debug_assert_eq!(self.id, 0, "metadata has one writer");
        let _writer = self.meta_write.lock().await;
        let mut next = (*self.meta().meta).clone();
        let mut results = Vec::with_capacity(topics.len());
        let mut created = Vec::new();
        for t in topics {
            let partitions = if t.partitions == -1 {
                self.config.num_partitions
            } else {
                t.partitions
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
                if t.replication_factor != -1 && t.replication_factor != 1 {
                    return Err((
                        code::INVALID_REPLICATION_FACTOR,
                        "this broker has one node: replication factor must be 1".into(),
                    ));
                }
                if t.has_assignments {
                    return Err((
                        code::INVALID_REPLICA_ASSIGNMENT,
                        "manual replica assignment is not supported".into(),
                    ));
                }
                topic::validate(
                    &self.config.log,
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
                    if !validate_only {
                        next.topics.insert(
                            t.name.clone(),
                            meta::TopicMeta {
                                partitions,
                                id,
                                configs: t.configs,
                            },
                        );
                        created.push(results.len());
                    }
                }
            }
            results.push(result);
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
    async fn delete_topics(self: &Rc<Self>, names: Vec<String>) -> Vec<TopicResult> {
        debug_assert_eq!(self.id, 0, "metadata has one writer");
        let _writer = self.meta_write.lock().await;
        let mut next = (*self.meta().meta).clone();
        let mut results = Vec::with_capacity(names.len());
        let mut deleted = Vec::new();
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
                    deleted.push(results.len());
                }
                None => result.error_code = code::UNKNOWN_TOPIC_OR_PARTITION,
            }
            results.push(result);
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

    /// Persists `next` and has every shard apply it before returning, so a client that
    /// saw CreateTopics succeed can produce to any partition at once.
    async fn publish(self: &Rc<Self>, mut next: Metadata) -> Result<(), meta::MetaError> {
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

    /// Installs a metadata version, then opens the logs of new partitions this shard owns
    /// and closes and deletes the logs of removed topics.
    pub async fn apply_metadata(&self, meta: Arc<Metadata>) {
        if meta.version < self.meta().meta.version {
            return;
        }
        let view = Rc::new(MetaView::build(meta, &self.config.log));
        *self.meta.borrow_mut() = view.clone();

        let mut removed = Vec::new();
        {
            let mut logs = self.logs.borrow_mut();
            logs.retain(|topic, parts| match view.topics.get(topic) {
                Some(t) => {
                    let gone: Vec<i32> = parts.range(t.partitions..).map(|(p, _)| *p).collect();
                    for p in gone {
                        if let Some(log) = parts.remove(&p) {
                            removed.push((topic.clone(), p, log));
                        }
                    }
                    true
                }
                None => {
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

        for (topic, t) in &view.topics {
            for p in 0..t.partitions {
                if self.owner(topic, p) != self.id || self.log(topic, p).is_some() {
                    continue;
                }
                let dir = self.partition_dir(topic, p);
                match Log::open(self.storage.clone(), dir.clone(), t.log.clone()).await {
                    Ok(log) => {
                        log.use_issued_ids(self.producer_ids.issued_below());
                        if t.log.io == crate::config::IoMode::Direct {
                            log.use_cache(self.batch_cache.clone());
                        }
                        self.logs
                            .borrow_mut()
                            .entry(topic.clone())
                            .or_default()
                            .insert(p, log);
                    }
                    Err(e) => tracing::error!("cannot open {}: {e}", dir.display()),
                }
            }
        }
    }

    pub fn all_logs(&self) -> Vec<(String, i32, Log)> {
        let logs = self.logs.borrow();
        let mut out = Vec::new();
        for (topic, parts) in logs.iter() {
            for (p, log) in parts {
                out.push((topic.clone(), *p, log.clone()));
            }
        }
        out
    }

    /// Interval flush, segment roll and retention of every log of this shard.
    pub async fn tick(&self) {
        // The logs were opened with `PartitionLog::open`, whose clock is the wall clock.
        let now_ms = crate::storage::log::wall_clock_ms();
        self.log_fetch_stats(false);
        self.groups.tick();
        for (topic, p, log) in self.all_logs() {
            if let Err(e) = log.tick(now_ms).await {
                tracing::error!("maintenance of {topic}-{p} failed: {e}");
            }
        }
    }

    /// Logs the fetch path counters every 10 s when they changed, and at shutdown.
    pub fn log_fetch_stats(&self, now: bool) {
        let total = self.fetch_stats.version();
        let due = self.stats_logged_at.get().elapsed() >= Duration::from_secs(10);
        if total != self.stats_logged_total.get() && (now || due) {
            tracing::info!("shard {}: {}", self.id, self.fetch_stats.summary());
            self.stats_logged_total.set(total);
            self.stats_logged_at.set(std::time::Instant::now());
        }
    }

    /// Flushes and closes every log (at shutdown).
    pub async fn close_logs(&self) {
        let logs = std::mem::take(&mut *self.logs.borrow_mut());
        for (topic, parts) in logs {
            for (p, log) in parts {
                if let Err(e) = log.close().await {
                    tracing::error!("closing {topic}-{p} failed: {e}");
                }
            }
        }
    }
}

/// A call to another shard in flight. If the caller stops waiting before the reply comes
/// (a long poll answered by another shard, a closed connection), the callee is told so it
/// can end a parked wait at once.
struct PendingCall<'a> {
    shard: &'a Shard,
    to: usize,
    id: u64,
    answered: bool,
}

impl Drop for PendingCall<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        self.shard.pending.borrow_mut().remove(&self.id);
        // Best effort: with a full queue the wait ends at its own timeout instead.
        let _ = self.shard.mesh.try_send_to(
            self.to,
            MeshMsg::Cancel {
                from: self.shard.id,
                id: self.id,
            },
        );
    }
}

/// The error code of a result that is left out of the response (a duplicate entry).
const OMITTED: i16 = i16::MIN;

impl ProduceResult {
    pub fn error(error_code: i16, error_message: Option<String>) -> ProduceResult {
        ProduceResult {
            error_code,
            error_message,
            base_offset: -1,
            log_append_time: -1,
            log_start_offset: -1,
        }
    }

    /// A placeholder for a repeated entry, answered with its first occurrence.
    pub fn omitted() -> ProduceResult {
        ProduceResult::error(OMITTED, None)
    }

    pub fn is_omitted(&self) -> bool {
        self.error_code == OMITTED
    }
}

impl ReadResult {
    pub fn error(error_code: i16) -> ReadResult {
        ReadResult {
            error_code,
            high_watermark: -1,
            log_start_offset: -1,
            records: Vec::new(),
        }
    }
}

impl ListOffsetsResult {
    pub fn error(error_code: i16) -> ListOffsetsResult {
        ListOffsetsResult {
            error_code,
            offset: -1,
            timestamp: -1,
        }
    }
}

/// Resolves when the first of `futs` does.
pub async fn first_of<'a>(mut futs: Vec<LocalBoxFuture<'a, ()>>) {
    std::future::poll_fn(|cx| {
        for f in futs.iter_mut() {
            if f.as_mut().poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Polls all `futs` together and returns their outputs in order.
pub async fn join_all<F: Future + Unpin>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<Option<F>> = futs.into_iter().map(Some).collect();
    let mut outs: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, out) in futs.iter_mut().zip(outs.iter_mut()) {
            if let Some(f) = slot {
                match Pin::new(f).poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *out = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outs.into_iter().flatten().collect()
}
