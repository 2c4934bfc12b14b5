//! One voter of the controller quorum: raft-rs's `RawNode` over an in-memory copy of the
//! log, made durable by [`RaftStore`] before raft-rs may act on it, and the metadata
//! [`Image`] the committed commands build.
//!
//! The node neither reads a clock nor does network IO: the driver ticks it, hands it the
//! messages that arrive and sends those it returns. Elections, log matching and commitment
//! are raft-rs's; this file is the raft-rs "Ready" loop and the application of entries.

use super::image::{Command, Image, Outcome};
use super::raft_store::{RaftStore, RaftStoreError};
use crate::storage::Storage;
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, EntryType, HardState, Message, Snapshot};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, RaftState, RawNode, StateRole};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use thiserror::Error;

/// Ticks of the driver (100 ms) without a leader before a follower campaigns (randomised
/// between this and twice this by raft-rs), and between a leader's heartbeats.
pub const ELECTION_TICKS: usize = 10;
pub const HEARTBEAT_TICKS: usize = 2;
/// Applied entries between two snapshots.
const SNAPSHOT_EVERY: u64 = 1000;

/// raft-rs reserves id 0; Kafka node ids start at 0.
pub fn raft_id(node: i32) -> u64 {
    u64::from(node.unsigned_abs()) + 1
}

/// The Kafka node id of a raft id (`None` for raft's "no node").
pub fn node_of(raft: u64) -> Option<i32> {
    raft.checked_sub(1).and_then(|n| i32::try_from(n).ok())
}

#[derive(Debug, Error)]
pub enum NodeError {
    #[error("raft store: {0}")]
    Store(#[from] RaftStoreError),
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    #[error("cannot encode: {0}")]
    Encode(String),
    #[error("no controller is known yet")]
    NoLeader,
}

/// A command with who proposed it, so the proposer learns its outcome when it applies it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proposal {
    pub from: i32,
    pub seq: u64,
    pub cmd: Command,
}

/// A committed command this node applied.
#[derive(Debug, Clone)]
pub struct Applied {
    pub index: u64,
    pub from: i32,
    pub seq: u64,
    pub cmd: Command,
    pub outcome: Outcome,
}

/// What one round of the Ready loop produced.
#[derive(Debug, Default)]
pub struct Output {
    /// To send to the other voters (after the state they depend on is durable).
    pub messages: Vec<Message>,
    pub applied: Vec<Applied>,
    /// The image changed (applied entries or an installed snapshot).
    pub changed: bool,
}

/// raft-rs's storage: the in-memory log, except that snapshots carry the image.
struct NodeStorage {
    mem: MemStorage,
    snapshot: Snapshot,
}

impl raft::Storage for NodeStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.mem.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.mem.entries(low, high, max_size, context)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.mem.term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.mem.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.mem.last_index()
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot.get_metadata().index < request_index {
            return Err(raft::Error::Store(
                raft::StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

pub struct Node<S: Storage> {
    id: i32,
    raw: RawNode<NodeStorage>,
    store: RaftStore<S>,
    image: Image,
    applied: u64,
    snapshot_every: u64,
    /// Snapshots received from a leader and installed (for tests and logs).
    installed: u64,
}

impl<S: Storage> Node<S> {
    /// Snapshots every `n` applied entries, and compacts the log file once it holds
    /// `bytes` (small values make tests exercise snapshots and their installation).
    pub fn set_snapshot_every(&mut self, n: u64, bytes: u64) {
        self.snapshot_every = n.max(1);
        self.store.set_compact_bytes_min(bytes);
    }

    /// Opens the node's Raft state in `dir` (a new node starts empty with `voters` as the
    /// configuration) and rebuilds the image from the latest snapshot; raft-rs hands the
    /// committed entries after it to the first rounds of `ready`.
    pub async fn open(
        storage: S,
        dir: PathBuf,
        id: i32,
        voters: &[i32],
        logger: &slog::Logger,
    ) -> Result<Node<S>, NodeError> {
        let (store, recovered) = RaftStore::open(storage, dir).await?;
        let mem = MemStorage::new();
        let mut image = Image::default();
        let mut applied = 0;
        let snapshot = recovered.snapshot.unwrap_or_default();
        {
            let mut core = mem.wl();
            if snapshot.get_metadata().index > 0 {
                core.apply_snapshot(snapshot.clone())?;
                applied = snapshot.get_metadata().index;
                image = serde_json::from_slice(snapshot.get_data()).map_err(|e| {
                    RaftStoreError::Corrupt(format!("snapshot image does not parse: {e}"))
                })?;
            } else {
                core.set_conf_state(ConfState::from((
                    voters.iter().map(|v| raft_id(*v)).collect::<Vec<_>>(),
                    Vec::new(),
                )));
            }
            // Only the contiguous run right after the snapshot: MemStorage panics on gaps.
            let first = applied + 1;
            let mut next = first;
            let entries: Vec<Entry> = recovered
                .entries
                .into_iter()
                .skip_while(|e| e.index < first)
                .take_while(|e| {
                    let ok = e.index == next;
                    next += 1;
                    ok
                })
                .collect();
            core.append(&entries)?;
            let mut hs = recovered.hard_state;
            let last = entries.last().map(|e| e.index).unwrap_or(applied);
            // A commit index past what survived is not one we can trust.
            if hs.commit > last {
                hs.commit = last;
            }
            if hs.commit < applied {
                hs.commit = applied;
            }
            core.set_hardstate(hs);
        }
        let config = raft::Config {
            id: raft_id(id),
            election_tick: ELECTION_TICKS,
            heartbeat_tick: HEARTBEAT_TICKS,
            applied,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            // A leader that cannot reach a quorum steps down, so an isolated node stops
            // believing it is the controller; pre-vote keeps a returning node from
            // disrupting the term.
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        config.validate()?;
        let raw = RawNode::new(&config, NodeStorage { mem, snapshot }, logger)?;
        Ok(Node {
            id,
            raw,
            store,
            image,
            applied,
            snapshot_every: SNAPSHOT_EVERY,
            installed: 0,
        })
    }

    /// Snapshots this node received from a leader and installed since it opened.
    pub fn installed_snapshots(&self) -> u64 {
        self.installed
    }

    pub fn id(&self) -> i32 {
        self.id
    }

    pub fn image(&self) -> &Image {
        &self.image
    }

    pub fn applied(&self) -> u64 {
        self.applied
    }

    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// The current controller (the Raft leader), if this node knows one.
    pub fn leader(&self) -> Option<i32> {
        node_of(self.raw.raft.leader_id)
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    pub fn tick(&mut self) {
        self.raw.tick();
    }

    /// A message from another voter. Messages not addressed to this node, or from a node
    /// that is not a voter, are dropped.
    pub fn step(&mut self, msg: Message) -> Result<(), NodeError> {
        let voters = self.raw.raft.prs().conf().voters();
        if msg.to != raft_id(self.id) || !voters.contains(msg.from) {
            return Ok(());
        }
        self.raw.step(msg)?;
        Ok(())
    }

    /// Proposes a command; its outcome comes back in `Output::applied` on every node, with
    /// this node's id and `seq`. Fails at once when no leader is known (raft-rs would drop
    /// the proposal).
    pub fn propose(&mut self, p: &Proposal) -> Result<(), NodeError> {
        if self.raw.raft.leader_id == raft::INVALID_ID {
            return Err(NodeError::NoLeader);
        }
        let data = serde_json::to_vec(p).map_err(|e| NodeError::Encode(e.to_string()))?;
        self.raw.propose(Vec::new(), data)?;
        Ok(())
    }

    /// Hands the leadership to `to` (controlled shutdown of the leader).
    pub fn transfer_leader(&mut self, to: i32) {
        self.raw.transfer_leader(raft_id(to));
    }

    /// Runs one round of raft-rs's Ready loop: persists what must be durable, applies what
    /// is committed, returns the messages to send.
    pub async fn ready(&mut self) -> Result<Output, NodeError> {
        let mut out = Output::default();
        if !self.raw.has_ready() {
            return Ok(out);
        }
        let mut rd = self.raw.ready();
        out.messages.extend(rd.take_messages());
        if !rd.snapshot().is_empty() {
            let snap = rd.snapshot().clone();
            self.install_snapshot(snap, &mut out).await?;
        }
        let committed = rd.take_committed_entries();
        self.apply_entries(committed, &mut out);
        let entries = rd.take_entries();
        let hs: Option<HardState> = rd.hs().cloned();
        if !entries.is_empty() || hs.is_some() {
            self.store.save(&entries, hs.as_ref()).await?;
            let mut core = self.raw.mut_store().mem.wl();
            core.append(&entries)?;
            if let Some(hs) = hs {
                core.set_hardstate(hs);
            }
        }
        out.messages.extend(rd.take_persisted_messages());
        let mut light = self.raw.advance(rd);
        if let Some(commit) = light.commit_index() {
            self.raw
                .mut_store()
                .mem
                .wl()
                .mut_hard_state()
                .set_commit(commit);
        }
        out.messages.extend(light.take_messages());
        let committed = light.take_committed_entries();
        self.apply_entries(committed, &mut out);
        self.raw.advance_apply();
        self.maybe_snapshot().await?;
        Ok(out)
    }

    async fn install_snapshot(
        &mut self,
        snap: Snapshot,
        out: &mut Output,
    ) -> Result<(), NodeError> {
        let index = snap.get_metadata().index;
        if index <= self.applied {
            return Ok(());
        }
        let image: Image = match serde_json::from_slice(snap.get_data()) {
            Ok(i) => i,
            Err(e) => {
                tracing::error!("controller: a snapshot at {index} does not parse ({e}); ignored");
                return Ok(());
            }
        };
        self.store.save_snapshot(&snap).await?;
        self.raw.mut_store().mem.wl().apply_snapshot(snap.clone())?;
        self.raw.mut_store().snapshot = snap;
        self.image = image;
        self.applied = index;
        self.installed += 1;
        tracing::info!("controller: installed the leader's snapshot at {index}");
        out.changed = true;
        Ok(())
    }

    fn apply_entries(&mut self, entries: Vec<Entry>, out: &mut Output) {
        for e in entries {
            if e.index <= self.applied {
                continue;
            }
            self.applied = e.index;
            // Empty entries (a new leader's first) and configuration changes (the voters are
            // fixed by configuration) carry no command.
            if e.get_entry_type() != EntryType::EntryNormal || e.data.is_empty() {
                continue;
            }
            let p: Proposal = match serde_json::from_slice(&e.data) {
                Ok(p) => p,
                Err(err) => {
                    tracing::error!(
                        "controller: entry {} is not a command ({err}); skipped",
                        e.index
                    );
                    continue;
                }
            };
            let outcome = self.image.apply(p.cmd.clone());
            out.changed = true;
            out.applied.push(Applied {
                index: e.index,
                from: p.from,
                seq: p.seq,
                cmd: p.cmd,
                outcome,
            });
        }
    }

    /// Every [`SNAPSHOT_EVERY`] applied entries (by default): the image becomes the snapshot, and the log
    /// below it is dropped from memory and from disk.
    async fn maybe_snapshot(&mut self) -> Result<(), NodeError> {
        let last = self.raw.store().snapshot.get_metadata().index;
        if self.applied < last.saturating_add(self.snapshot_every) {
            return Ok(());
        }
        let index = self.applied;
        let term = raft::Storage::term(self.raw.store(), index)?;
        let data = serde_json::to_vec(&self.image).map_err(|e| NodeError::Encode(e.to_string()))?;
        let mut snap = Snapshot::default();
        snap.set_data(data.into());
        let meta = snap.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(self.raw.raft.prs().conf().to_conf_state());
        self.store.save_snapshot(&snap).await?;
        self.raw.mut_store().mem.wl().compact(index)?;
        self.raw.mut_store().snapshot = snap;
        self.store.compact(index).await?;
        tracing::debug!(target: "raft", "controller {}: snapshot at {index}", self.id);
        Ok(())
    }
}

/// Encodes a Raft message for the wire.
pub fn encode_message(m: &Message) -> Option<Vec<u8>> {
    m.write_to_bytes().ok()
}

/// Decodes a Raft message from a peer (untrusted bytes: a parse error is `None`).
pub fn decode_message(b: &[u8]) -> Option<Message> {
    Message::parse_from_bytes(b).ok()
}
