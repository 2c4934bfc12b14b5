//! The controller node of a broker in a cluster, run by shard 0: drives raft-rs (ticks,
//! messages, the Ready loop), keeps the brokers' sessions while this node is the Raft
//! leader, heartbeats to the leader, and publishes every new metadata image to all shards.
//!
//! One task owns the node and takes events from one queue (peer frames, ticks, proposals
//! of this broker's shards, the controlled shutdown), so raft-rs is only ever driven from
//! one place.

use super::Shard;
use super::messages::ShardRequest;
use super::meta::{Assignment, ClusterView, Metadata, TopicMeta};
use crate::cluster::ProposeError;
use crate::cluster::image::{Command, Image, NewTopic, Outcome};
use crate::cluster::liveness::Sessions;
use crate::cluster::node::{Node, Proposal, node_of};
use crate::cluster::transport::{Heartbeat, HeartbeatAck, Transport, Wire};
use crate::config::ClusterConfig;
use crate::group::OFFSETS_TOPIC;
use crate::storage::GlommioStorage;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(100);
/// How long a proposal may wait for a controller and for its application.
const PROPOSE_TIMEOUT_MS: u64 = 15_000;
/// How long a controlled shutdown waits for its command to apply.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);
const EVENT_QUEUE: usize = 4096;

type Reply = LocalSender<Result<Outcome, ProposeError>>;

pub enum Event {
    Peer(Wire),
    Tick,
    Propose(Command, Reply),
}

/// Shard 0's handle on its controller node.
pub struct Controller {
    events: Rc<LocalSender<Event>>,
    incarnation: u64,
    id: i32,
    /// Set once the broker is stopping: heartbeats say so and it is not registered again.
    leaving: Rc<std::cell::Cell<bool>>,
    /// Whether this node is the Raft leader, as of the driver's last tick.
    leader: Rc<std::cell::Cell<bool>>,
}

struct Driver {
    shard: Rc<Shard>,
    node: Node<GlommioStorage>,
    transport: Transport,
    config: ClusterConfig,
    me: i32,
    /// This broker's listeners, the first one where clients reach it.
    endpoints: Vec<crate::cluster::image::Endpoint>,
    incarnation: u64,
    leaving: Rc<std::cell::Cell<bool>>,
    leader: Rc<std::cell::Cell<bool>>,
    ticks: u64,
    started: Instant,
    sessions: Sessions,
    was_leader: bool,
    next_seq: u64,
    /// Proposals waiting for their outcome: seq → (reply, deadline ms).
    waiting: HashMap<u64, (Option<Reply>, u64)>,
    /// Proposals waiting for a controller to be known.
    queued: Vec<(Command, Option<Reply>, u64)>,
    last_ack_ms: Option<u64>,
    last_heartbeat_ms: u64,
    /// A block of producer ids is on its way.
    ids_requested_at: Option<u64>,
    /// The offsets topic's creation is on its way.
    offsets_requested_at: Option<u64>,
    published: Option<(u64, Option<i32>, bool)>,
    publish: Rc<Publisher>,
}

impl Controller {
    /// Opens the node's Raft state under `<data>/__cluster`, starts the transport and the
    /// driver. `endpoints` are this broker's listeners (at least one).
    pub async fn start(
        shard: Rc<Shard>,
        endpoints: Vec<crate::cluster::image::Endpoint>,
        tls: Option<crate::cluster::transport::PeerTls>,
    ) -> anyhow::Result<Rc<Controller>> {
        if endpoints.is_empty() {
            anyhow::bail!("no listener to register");
        }
        let config = shard.config.cluster.clone();
        let me = config
            .node_id
            .ok_or_else(|| anyhow::anyhow!("node.id is not set"))?;
        let voters: Vec<i32> = config.voters.iter().map(|v| v.id).collect();
        let dir = shard.config.data_dir.join("__cluster");
        let logger = crate::cluster::logging::logger();
        let node = Node::open(GlommioStorage, dir, me, &voters, &logger)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the controller's Raft log: {e}"))?;
        let (tx, rx) = local_channel::new_bounded(EVENT_QUEUE);
        let events = Rc::new(tx);
        let listen = config
            .controller_listen_addr()
            .ok_or_else(|| anyhow::anyhow!("no controller.listen address"))?;
        let transport = Transport::start(
            me,
            &config.voters,
            &listen,
            tls,
            events.clone(),
            Event::Peer,
        )
        .map_err(|e| anyhow::anyhow!("cannot listen for controller traffic on {listen}: {e}"))?;
        let incarnation = rand::random::<u64>();
        let leaving = Rc::new(std::cell::Cell::new(false));
        let leader = Rc::new(std::cell::Cell::new(false));
        tracing::info!(
            "node {me}: controller listening on {listen}; voters {:?}",
            voters
        );
        let publish = Publisher::start(shard.clone());
        let driver = Driver {
            shard,
            node,
            transport,
            config,
            me,
            endpoints,
            incarnation,
            leaving: leaving.clone(),
            leader: leader.clone(),
            ticks: 0,
            started: Instant::now(),
            sessions: Sessions::default(),
            was_leader: false,
            next_seq: 0,
            waiting: HashMap::new(),
            queued: Vec::new(),
            last_ack_ms: None,
            last_heartbeat_ms: 0,
            ids_requested_at: None,
            offsets_requested_at: None,
            published: None,
            publish,
        };
        glommio::spawn_local(driver.run(rx)).detach();
        let ticker = events.clone();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(TICK).await;
                if ticker.send(Event::Tick).await.is_err() {
                    return;
                }
            }
        })
        .detach();
        Ok(Rc::new(Controller {
            events,
            incarnation,
            id: me,
            leaving,
            leader,
        }))
    }

    /// Proposes `cmd` and waits until this broker has applied it.
    pub async fn propose(&self, cmd: Command) -> Result<Outcome, ProposeError> {
        let (tx, rx) = local_channel::new_bounded(1);
        if self.events.send(Event::Propose(cmd, tx)).await.is_err() {
            return Err(ProposeError::NoController);
        }
        rx.recv().await.unwrap_or(Err(ProposeError::NoController))
    }

    /// Controlled shutdown: the controller fences this broker and moves its partitions'
    /// leadership away before the broker stops serving; a controller that is this node
    /// hands the Raft leadership to another voter.
    pub async fn leave(&self) {
        self.leaving.set(true);
        let cmd = Command::ControlledShutdown {
            id: self.id,
            incarnation: self.incarnation,
        };
        let done = crate::rt::join::first_of(vec![
            Box::pin(async {
                let _ = self.propose(cmd).await;
            }) as crate::rt::LocalBoxFuture<'_, ()>,
            Box::pin(glommio::timer::sleep(LEAVE_TIMEOUT)),
        ]);
        done.await;
        // The controller itself hands the Raft leadership over (the driver asks another
        // voter to take it) before it goes.
        let deadline = std::time::Instant::now() + LEAVE_TIMEOUT;
        while self.leader.get() && std::time::Instant::now() < deadline {
            glommio::timer::sleep(Duration::from_millis(20)).await;
        }
        tracing::info!("node {}: left the cluster (controlled shutdown)", self.id);
    }
}

impl Driver {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn run(mut self, rx: LocalReceiver<Event>) {
        while let Some(ev) = rx.recv().await {
            self.handle(ev);
            if let Err(e) = self.ready().await {
                // The Raft state can no longer be made durable: a voter that went on would
                // break its promises to the others.
                tracing::error!("node {}: controller log failed: {e}; stopping", self.me);
                std::process::exit(1);
            }
        }
    }

    fn handle(&mut self, ev: Event) {
        let now = self.now_ms();
        match ev {
            Event::Tick => self.tick(now),
            Event::Peer(Wire::Raft(m)) => {
                if let Err(e) = self.node.step(m) {
                    tracing::debug!("node {}: raft message refused: {e}", self.me);
                }
            }
            Event::Peer(Wire::Heartbeat(hb)) => self.heard(hb, now),
            Event::Peer(Wire::Ack(a)) => {
                if Some(a.controller) == self.node.leader() {
                    self.last_ack_ms = Some(now);
                }
            }
            Event::Propose(cmd, reply) => self.propose(cmd, Some(reply), now),
        }
    }

    fn propose(&mut self, cmd: Command, reply: Option<Reply>, now: u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let p = Proposal {
            from: self.me,
            seq,
            cmd,
        };
        match self.node.propose(&p) {
            Ok(()) => {
                self.waiting
                    .insert(seq, (reply, now.saturating_add(PROPOSE_TIMEOUT_MS)));
            }
            Err(_) => self
                .queued
                .push((p.cmd, reply, now.saturating_add(PROPOSE_TIMEOUT_MS))),
        }
    }

    /// A heartbeat reached this node: answered if it is the controller.
    fn heard(&mut self, hb: Heartbeat, now: u64) {
        if !self.node.is_leader() {
            return;
        }
        let from = hb.id;
        if let Some(cmd) = self.sessions.heard(self.node.image(), &hb, now) {
            self.propose(cmd, None, now);
        }
        if from == self.me {
            self.last_ack_ms = Some(now);
        } else {
            self.transport.send(
                from,
                &Wire::Ack(HeartbeatAck {
                    controller: self.me,
                    term: self.node.term(),
                }),
            );
        }
    }

    fn tick(&mut self, now: u64) {
        self.node.tick();
        self.ticks += 1;
        let leader = self.node.is_leader();
        self.leader.set(leader);
        if leader && self.leaving.get() && self.ticks.is_multiple_of(5) {
            let image = self.node.image();
            let voters = &self.config.voters;
            let next = image
                .live()
                .into_iter()
                .find(|id| *id != self.me && voters.iter().any(|v| v.id == *id));
            if let Some(to) = next {
                tracing::info!("node {}: handing the controller to node {to}", self.me);
                self.node.transfer_leader(to);
            }
        }
        if leader && !self.was_leader {
            tracing::info!("node {}: now the controller", self.me);
            self.sessions.start(self.node.image(), now);
        }
        self.was_leader = leader;

        if now.saturating_sub(self.last_heartbeat_ms) >= self.config.broker_heartbeat_interval_ms
            || self.last_heartbeat_ms == 0
        {
            self.last_heartbeat_ms = now.max(1);
            let (host, port) = self
                .endpoints
                .first()
                .map(|e| (e.host.clone(), e.port))
                .unwrap_or_default();
            let hb = Heartbeat {
                id: self.me,
                host,
                port,
                incarnation: self.incarnation,
                shutting_down: self.leaving.get(),
                endpoints: self.endpoints.clone(),
            };
            match self.node.leader() {
                Some(l) if l == self.me => self.heard(hb, now),
                Some(l) => self.transport.send(l, &Wire::Heartbeat(hb)),
                None => {}
            }
        }

        if leader {
            let timeout = self.config.broker_session_timeout_ms;
            let image = self.node.image().clone();
            for cmd in self.sessions.expired(&image, now, timeout) {
                tracing::info!("node {}: fencing a silent broker: {cmd:?}", self.me);
                self.propose(cmd, None, now);
            }
            self.create_offsets_topic(&image, now);
        }
        self.request_producer_ids(now);

        // Proposals that waited for a controller, and those that waited too long.
        if self.node.leader().is_some() {
            for (cmd, reply, deadline) in std::mem::take(&mut self.queued) {
                let seq = self.next_seq;
                let p = Proposal {
                    from: self.me,
                    seq,
                    cmd,
                };
                if self.node.propose(&p).is_ok() {
                    self.next_seq += 1;
                    self.waiting.insert(seq, (reply, deadline));
                } else {
                    self.queued.push((p.cmd, reply, deadline));
                }
            }
        }
        self.queued.retain(|(_, reply, deadline)| {
            if *deadline > now {
                return true;
            }
            if let Some(r) = reply {
                let _ = r.try_send(Err(ProposeError::NoController));
            }
            false
        });
        self.waiting.retain(|_, (reply, deadline)| {
            if *deadline > now {
                return true;
            }
            if let Some(r) = reply {
                let _ = r.try_send(Err(ProposeError::Timeout));
            }
            false
        });
        self.publish_if_changed(now, false);
    }

    /// The active controller creates `__consumer_offsets` once enough brokers are alive
    /// for its replication factor (or all voters are).
    fn create_offsets_topic(&mut self, image: &Image, now: u64) {
        if image.topics.contains_key(OFFSETS_TOPIC)
            || self
                .offsets_requested_at
                .is_some_and(|at| now.saturating_sub(at) < PROPOSE_TIMEOUT_MS)
        {
            return;
        }
        let live = image.live().len();
        let wanted = usize::try_from(self.config.offsets_topic_replication_factor)
            .unwrap_or(1)
            .min(self.config.voters.len());
        if live == 0 || live < wanted {
            return;
        }
        self.offsets_requested_at = Some(now);
        let cmd = Command::CreateTopics {
            topics: vec![NewTopic {
                name: OFFSETS_TOPIC.to_string(),
                id: super::meta::new_topic_id(),
                partitions: self.shard.config.group.offsets_topic_partitions,
                replication_factor: i16::try_from(wanted).unwrap_or(1),
                configs: super::meta::offsets_topic_configs(&self.shard.config.group),
                assignments: None,
            }],
        };
        self.propose(cmd, None, now);
    }

    /// Keeps a block of producer ids ready for InitProducerId.
    fn request_producer_ids(&mut self, now: u64) {
        if self.shard.producer_ids.remaining() >= crate::cluster::image::PRODUCER_ID_BLOCK / 2
            || self
                .ids_requested_at
                .is_some_and(|at| now.saturating_sub(at) < PROPOSE_TIMEOUT_MS)
            || self.node.leader().is_none()
        {
            return;
        }
        self.ids_requested_at = Some(now);
        self.propose(Command::AllocateProducerIds { broker: self.me }, None, now);
    }

    async fn ready(&mut self) -> Result<(), crate::cluster::node::NodeError> {
        loop {
            let out = self.node.ready().await?;
            if out.messages.is_empty() && out.applied.is_empty() && !out.changed {
                return Ok(());
            }
            for m in out.messages {
                if let Some(to) = node_of(m.to) {
                    self.transport.send(to, &Wire::Raft(m));
                }
            }
            for a in out.applied {
                match &a.cmd {
                    Command::Register { id, .. }
                    | Command::Fence { id }
                    | Command::ControlledShutdown { id, .. } => self.sessions.applied(*id),
                    _ => {}
                }
                if a.from != self.me {
                    continue;
                }
                if let (Command::AllocateProducerIds { .. }, Outcome::ProducerIds { start, end }) =
                    (&a.cmd, &a.outcome)
                {
                    self.shard.producer_ids.add_block(*start, *end);
                    self.ids_requested_at = None;
                }
                if let Some((Some(reply), _)) = self.waiting.remove(&a.seq) {
                    let _ = reply.try_send(Ok(a.outcome));
                }
            }
            if out.changed {
                let now = self.now_ms();
                self.publish_if_changed(now, true);
            }
        }
    }

    /// Publishes the image to the shards when it changed, when the controller changed, or
    /// when this broker's lease did.
    fn publish_if_changed(&mut self, now: u64, changed: bool) {
        let image = self.node.image();
        let lease = image.is_live(self.me)
            && self
                .last_ack_ms
                .is_some_and(|at| now.saturating_sub(at) <= self.config.broker_session_timeout_ms);
        let key = (self.node.applied(), self.node.leader(), lease);
        if !changed && self.published == Some(key) {
            return;
        }
        if self.published.is_some_and(|(_, _, was)| was != lease) {
            tracing::info!(
                "node {}: {} partition leadership (lease {})",
                self.me,
                if lease { "may take" } else { "gives up" },
                if lease { "renewed" } else { "lost" }
            );
        }
        self.published = Some(key);
        self.shard
            .producer_ids
            .note_issued_below(image.next_producer_id);
        let meta = to_metadata(image, self.me, self.node.leader(), lease);
        self.publish.offer(meta);
    }
}

/// The shards' metadata from the cluster image.
pub fn to_metadata(image: &Image, me: i32, controller: Option<i32>, lease: bool) -> Metadata {
    let topics = image
        .topics
        .iter()
        .map(|(name, t)| {
            let assignment: Vec<Assignment> = t
                .partitions
                .iter()
                .map(|p| Assignment {
                    replicas: p.replicas.clone(),
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    isr: p.isr.clone(),
                    partition_epoch: p.partition_epoch,
                })
                .collect();
            let meta = TopicMeta {
                partitions: i32::try_from(assignment.len()).unwrap_or(i32::MAX),
                id: t.id.clone(),
                configs: t.configs.clone(),
                assignment,
            };
            (name.clone(), meta)
        })
        .collect();
    let addresses = |fenced: bool| {
        image
            .brokers
            .iter()
            .filter(|(_, b)| b.fenced == fenced)
            .map(|(id, b)| (*id, (b.host.clone(), b.port)))
            .collect()
    };
    let (brokers, fenced) = (addresses(false), addresses(true));
    let endpoints = image
        .brokers
        .iter()
        .map(|(id, b)| (*id, b.endpoints.clone()))
        .collect();
    Metadata {
        version: 0,
        topics,
        broker_configs: image.broker_configs.clone(),
        cluster: Some(ClusterView {
            node: me,
            controller,
            brokers,
            fenced,
            endpoints,
            lease,
            producer_ids_issued: image.next_producer_id,
            acls: Arc::new(image.security.acls.clone()),
            acls_version: image.security.acls_version,
            users: Arc::new(image.security.users.clone()),
            users_version: image.security.users_version,
        }),
    }
}

/// Hands metadata versions to every shard one at a time, always the newest: a shard opens
/// and closes logs while it applies one, so two must never overlap.
struct Publisher {
    latest: RefCell<Option<Metadata>>,
    wake: LocalSender<()>,
    version: std::cell::Cell<u64>,
}

impl Publisher {
    fn start(shard: Rc<Shard>) -> Rc<Publisher> {
        let (wake, rx) = local_channel::new_bounded(1);
        let p = Rc::new(Publisher {
            latest: RefCell::new(None),
            wake,
            version: std::cell::Cell::new(shard.meta().meta.version),
        });
        let me = p.clone();
        glommio::spawn_local(async move {
            while rx.recv().await.is_some() {
                let Some(mut meta) = me.latest.borrow_mut().take() else {
                    continue;
                };
                let v = me.version.get() + 1;
                me.version.set(v);
                meta.version = v;
                let meta = Arc::new(meta);
                for s in 0..shard.nshards {
                    let _ = shard
                        .call(s, ShardRequest::ApplyMetadata(meta.clone()))
                        .await;
                }
            }
        })
        .detach();
        p
    }

    fn offer(&self, meta: Metadata) {
        *self.latest.borrow_mut() = Some(meta);
        let _ = self.wake.try_send(());
    }
}
