//! One shard: a glommio executor that owns some partition logs, serves connections, and
//! answers requests of other shards that arrive on the mesh.
//!
//! Routing guarantee: work on a partition always runs on its owning shard. A request for a
//! partition of this shard runs inline; one for another shard becomes one mesh message
//! carrying the request id, and the reply comes back on the mesh to the shard that asked.

use super::messages::*;
use super::meta::Metadata;
use super::stats::FetchStats;
use super::table;
use crate::config::BrokerConfig;
use crate::storage::{BatchCache, GlommioStorage};
use glommio::channels::channel_mesh::{Receivers, Senders};
use glommio::channels::local_channel::{self, LocalSender};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::logs::LogTable;
pub use super::logs::{Log, MetaView, TopicView};
use crate::group::{GroupOp, GroupReply, OFFSETS_TOPIC, offsets_partition};

pub use crate::rt::LocalBoxFuture;
pub use crate::rt::join::{first_of, join_all};

pub struct Shard {
    pub id: usize,
    pub nshards: usize,
    pub config: Arc<BrokerConfig>,
    pub(super) storage: GlommioStorage,
    /// The metadata view and the partition logs this shard owns.
    pub(super) table: Rc<LogTable>,
    mesh: Senders<MeshMsg>,
    pending: RefCell<HashMap<u64, LocalSender<ShardReply>>>,
    next_id: Cell<u64>,
    /// Long-poll waits parked here for other shards, by (caller shard, request id):
    /// dropping the sender ends the wait.
    waits: RefCell<HashMap<(usize, u64), LocalSender<()>>>,
    /// The consumer groups this shard coordinates (see `crate::group`).
    pub groups: Rc<super::groups::Groups>,
    /// The transactional ids this shard coordinates (see `crate::txn`, `shard::txns`).
    pub txns: RefCell<crate::txn::TxnCoordinator>,
    /// When timed-out transactions were last looked for.
    pub(super) txn_checked_at: Cell<i64>,
    /// Notified whenever a transactional id stops being busy.
    pub(super) txn_settled: Rc<crate::storage::notify::Notify>,
    /// The broker's producer id allocator, shared by all shards.
    pub producer_ids: Arc<crate::producer::ProducerIdAllocator>,
    /// Serialises metadata changes on shard 0: one persist-and-broadcast at a time, so
    /// every shard sees versions in order. Not on the data path.
    pub(super) meta_write: async_lock::Mutex<()>,
    /// Bytes fetched per send path (sendfile, writev, copying fallback, batch cache).
    pub fetch_stats: FetchStats,
    /// Request, connection and mesh counters for the metrics endpoint.
    pub metrics: super::metrics::ShardMetrics,
    /// Recently written batches of this shard's `io = direct` logs.
    pub(super) batch_cache: Rc<RefCell<BatchCache>>,
    stats_logged_at: Cell<std::time::Instant>,
    stats_logged_total: Cell<u64>,
    /// In a cluster, on shard 0: this broker's controller node.
    pub controller: RefCell<Option<Rc<super::controller::Controller>>>,
    /// In a cluster: this shard's leaders' follower progress and its followers' fetchers.
    pub(super) replication: super::replica::Replication,
    /// In a cluster: how this broker reaches the others (set once at start).
    pub inter_broker: RefCell<Option<Arc<super::replica::client::InterBrokerClient>>>,
}

impl Shard {
    pub fn new(
        config: Arc<BrokerConfig>,
        mesh: Senders<MeshMsg>,
        nshards: usize,
        initial: Arc<Metadata>,
        producer_ids: Arc<crate::producer::ProducerIdAllocator>,
    ) -> Rc<Shard> {
        let view = MetaView::build(initial, &config);
        let cache_bytes = config.direct_cache_bytes_per_shard(nshards);
        crate::storage::aligned::keep_for_cache(cache_bytes);
        let table = Rc::new(LogTable::new(view));
        Rc::new(Shard {
            id: mesh.peer_id(),
            nshards,
            storage: GlommioStorage,
            table: table.clone(),
            mesh,
            pending: RefCell::new(HashMap::new()),
            next_id: Cell::new(0),
            waits: RefCell::new(HashMap::new()),
            meta_write: async_lock::Mutex::new(()),
            fetch_stats: FetchStats::default(),
            metrics: super::metrics::ShardMetrics::new(nshards),
            stats_logged_at: Cell::new(std::time::Instant::now()),
            stats_logged_total: Cell::new(0),
            batch_cache: Rc::new(RefCell::new(BatchCache::new(cache_bytes))),
            groups: super::groups::host(table, &config),
            txns: RefCell::new(crate::txn::TxnCoordinator::new(config.txn.max_timeout_ms)),
            txn_checked_at: Cell::new(0),
            txn_settled: Rc::default(),
            controller: RefCell::new(None),
            replication: super::replica::Replication::default(),
            inter_broker: RefCell::new(None),
            producer_ids,
            config,
        })
    }

    /// How to reach the other brokers, and where broker `id` listens for them.
    pub(super) fn broker_link(
        &self,
        cluster: &super::meta::ClusterView,
        id: i32,
    ) -> Option<(
        Option<Arc<super::replica::client::InterBrokerClient>>,
        String,
        u16,
    )> {
        let client = self.inter_broker.borrow().clone();
        let (host, port) = match &client {
            Some(c) => cluster.address_on(id, &c.link.listener)?,
            None => cluster.brokers.get(&id)?.clone(),
        };
        Some((client, host, port))
    }

    pub fn meta(&self) -> Rc<MetaView> {
        self.table.meta()
    }

    pub fn owner(&self, topic: &str, partition: i32) -> usize {
        table::owner(topic, partition, self.nshards)
    }

    pub(super) fn log(&self, topic: &str, partition: i32) -> Option<Log> {
        self.table.log(topic, partition)
    }

    /// The log of a partition this shard owns.
    pub fn log_of(&self, topic: &str, partition: i32) -> Option<Log> {
        self.log(topic, partition)
    }

    pub(super) fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
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
        self.metrics.mesh_sent_to(shard);
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

    /// Proposes a command to the cluster's metadata log (through shard 0's controller node)
    /// and waits until this broker has applied it.
    pub async fn propose(
        self: &Rc<Self>,
        cmd: crate::cluster::image::Command,
    ) -> Result<crate::cluster::image::Outcome, crate::cluster::ProposeError> {
        match self.call(0, ShardRequest::Propose(cmd)).await {
            Some(ShardReply::Proposed(r)) => r,
            _ => Err(crate::cluster::ProposeError::NoController),
        }
    }

    /// The shard that coordinates `group`: the owner of its offsets partition.
    pub fn group_coordinator(&self, group: &str) -> usize {
        let n = super::groups::offsets_partitions(&self.meta(), &self.config);
        self.owner(OFFSETS_TOPIC, offsets_partition(group, n))
    }

    /// Sends `op` to the coordinator of `group` and waits for its answer. `None` when the
    /// mesh is gone (the broker is stopping) or the coordinator dropped the request.
    pub async fn route_group(self: &Rc<Self>, group: &str, op: GroupOp) -> Option<GroupReply> {
        let owner = self.group_coordinator(group);
        match self.call(owner, ShardRequest::Group(Box::new(op))).await {
            Some(ShardReply::Group(r)) => r,
            _ => None,
        }
    }

    /// Loads this shard's consumer groups from its partitions of `__consumer_offsets`.
    pub async fn load_groups(self: &Rc<Self>) {
        let owned: Vec<i32> = (0..super::groups::offsets_partitions(&self.meta(), &self.config))
            .filter(|p| self.owner(OFFSETS_TOPIC, *p) == self.id)
            .collect();
        super::groups::load(&self.groups, &self.table, &owned, self.id).await;
        let txn_partitions = self.owned_txn_partitions(&self.meta());
        self.load_txns(&txn_partitions).await;
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
                                    ShardRequest::WaitChanged {
                                        parts,
                                        timeout_ms,
                                        replica,
                                    } => {
                                        let (tx, cancel) = local_channel::new_bounded(1);
                                        shard.waits.borrow_mut().insert((from, id), tx);
                                        shard
                                            .wait_changed(parts, timeout_ms, replica, Some(cancel))
                                            .await;
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
                ShardRequest::WaitChanged {
                    parts,
                    timeout_ms,
                    replica,
                } => {
                    self.wait_changed(parts, timeout_ms, replica, None).await;
                    ShardReply::Changed
                }
                ShardRequest::ListOffsets(parts) => {
                    ShardReply::ListOffsets(self.list_offsets(parts).await)
                }
                ShardRequest::DescribeProducers(parts) => {
                    ShardReply::DescribeProducers(self.describe_producers(parts))
                }
                ShardRequest::EpochEnds(parts) => ShardReply::EpochEnds(self.epoch_ends(parts)),
                ShardRequest::DeleteRecords(parts) => {
                    ShardReply::DeleteRecords(self.delete_records(parts).await)
                }
                ShardRequest::CreateTopics {
                    topics,
                    validate_only,
                } => ShardReply::CreateTopics(self.create_topics(topics, validate_only).await),
                ShardRequest::DeleteTopics(names) => {
                    ShardReply::DeleteTopics(self.delete_topics(names).await)
                }
                ShardRequest::AlterTopicConfigs {
                    changes,
                    validate_only,
                } => ShardReply::AlterTopicConfigs(
                    self.alter_topic_configs(changes, validate_only).await,
                ),
                ShardRequest::AlterBrokerConfigs {
                    changes,
                    validate_only,
                } => ShardReply::AlterBrokerConfigs(
                    self.alter_broker_configs(changes, validate_only).await,
                ),
                ShardRequest::CreatePartitions {
                    topics,
                    validate_only,
                } => ShardReply::CreatePartitions(
                    self.create_partitions(topics, validate_only).await,
                ),
                ShardRequest::Group(op) => {
                    let meta = self.meta();
                    if let Some(group) = op.group_id()
                        && meta.meta.cluster.is_some()
                    {
                        let n = super::groups::offsets_partitions(&meta, &self.config);
                        if !meta.leads(OFFSETS_TOPIC, offsets_partition(group, n)) {
                            let refused = crate::group::admit::refuse(
                                *op,
                                crate::group::GroupError::NotCoordinator,
                            );
                            return ShardReply::Group(Some(refused));
                        }
                    }
                    let topics = |t: &str| meta.topics.get(t).map(|v| v.partitions).unwrap_or(0);
                    ShardReply::Group(self.groups.handle(*op, &topics).await)
                }
                ShardRequest::ApplyMetadata(meta) => {
                    self.apply_metadata(meta).await;
                    ShardReply::Applied
                }
                ShardRequest::Metrics => ShardReply::Metrics(Box::new(self.metrics_snapshot())),
                ShardRequest::Txn(op) => ShardReply::Txn(self.txn_handle(*op).await),
                ShardRequest::WriteMarkers(parts) => {
                    ShardReply::WriteMarkers(self.write_markers(parts).await)
                }
                ShardRequest::CreateTxnTopic => {
                    self.create_txn_topic().await;
                    ShardReply::Applied
                }
                ShardRequest::LogSizes(filter) => ShardReply::LogSizes(self.log_sizes(&filter)),
                ShardRequest::Propose(cmd) => {
                    let controller = self.controller.borrow().clone();
                    ShardReply::Proposed(match controller {
                        Some(c) => c.propose(cmd).await,
                        None => Err(crate::cluster::ProposeError::NotClustered),
                    })
                }
            }
        })
    }

    /// The size of every log this shard holds that `filter` names (`None`: all).
    fn log_sizes(&self, filter: &Option<LogSizesFilter>) -> Vec<LogSize> {
        let logs = self.table.logs.borrow();
        let mut out = Vec::new();
        for (topic, parts) in logs.iter() {
            let wanted = match filter {
                None => None,
                Some(f) => match f.get(topic) {
                    Some(ps) => Some(ps),
                    None => continue,
                },
            };
            for (p, log) in parts {
                if wanted.is_none_or(|ps| ps.contains(p)) {
                    out.push(LogSize {
                        topic: topic.clone(),
                        partition: *p,
                        size_bytes: log.size_bytes(),
                    });
                }
            }
        }
        out
    }

    pub fn all_logs(&self) -> Vec<(String, i32, Log)> {
        let logs = self.table.logs.borrow();
        let mut out = Vec::new();
        for (topic, parts) in logs.iter() {
            for (p, log) in parts {
                out.push((topic.clone(), *p, log.clone()));
            }
        }
        out
    }

    /// Interval flush, segment roll and retention of every log of this shard.
    pub async fn tick(self: &Rc<Self>) {
        // The logs were opened with `PartitionLog::open`, whose clock is the wall clock.
        let now_ms = crate::storage::log::wall_clock_ms();
        self.log_fetch_stats(false);
        self.groups.tick();
        self.txn_tick();
        for (topic, p, log) in self.all_logs() {
            if let Err(e) = log.tick(now_ms).await {
                tracing::error!("maintenance of {topic}-{p} failed: {e}");
            }
        }
        // Deleted segments' last closes, on the blocking pool.
        crate::storage::release::close_due();
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
        let logs = std::mem::take(&mut *self.table.logs.borrow_mut());
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
