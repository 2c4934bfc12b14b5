//! Incremental fetch sessions (KIP-227): the partitions a client fetches, kept between its
//! fetches, so that it names only the partitions whose position changed and the answer
//! names only the partitions with something to say.
//!
//! Each shard keeps its own cache, for the connections it serves (Redpanda keeps a
//! core-local cache the same way): a session lives on the shard of the connection that
//! created it, and its id encodes that shard (`id % shards`), so ids are unique across the
//! broker and a fetch that names a session from another shard (a client that reconnected
//! and landed elsewhere) is answered FETCH_SESSION_ID_NOT_FOUND like any unknown id, after
//! which the client sends a full fetch that creates a session here. The broker's
//! `max.incremental.fetch.session.cache.slots` is split evenly over the shards.
//!
//! Every client is untrusted: the cache holds at most its slots, its sessions together at
//! most `broker.partitions.max` partitions (a shard never leads more; consumers sharing
//! partitions fall back to full fetches past it), and only topic names that can exist.
//!
//! This is bookkeeping only: the Fetch handler reads the partitions and asks the cache
//! what to create, what to read and what to answer.

use crate::protocol::code;
use crate::shard::meta::TOPIC_NAME_MAX;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// A partition of a session: topic and index.
pub type Key = (String, i32);

/// What a client asked of one partition: where to read and how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRequest {
    pub fetch_offset: i64,
    /// The fetcher's own log start (a follower's); kept as Kafka keeps it.
    pub log_start_offset: i64,
    pub max_bytes: u64,
    pub current_leader_epoch: i32,
    pub last_fetched_epoch: i32,
}

/// What the last answer told the client of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartAnswer {
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
}

impl PartAnswer {
    /// Nothing sent yet (or an error was): the next answer differs and is sent.
    pub const UNSENT: PartAnswer = PartAnswer {
        high_watermark: -1,
        last_stable_offset: -1,
        log_start_offset: -1,
    };
}

/// One partition's outcome of a read, as the answer will carry it.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub answer: PartAnswer,
    /// Records are sent, or an error, or a diverging epoch: always answered.
    pub must_answer: bool,
    pub has_records: bool,
    pub failed: bool,
}

impl Outcome {
    /// What the session remembers as told: after an error, nothing (so the partition is
    /// answered again once the error clears).
    pub fn remembered(&self) -> PartAnswer {
        if self.failed {
            PartAnswer::UNSENT
        } else {
            self.answer
        }
    }
}

struct Cached {
    /// Place in the session's read order.
    seq: u64,
    request: PartRequest,
    sent: PartAnswer,
}

struct Session {
    /// The epoch the next incremental fetch must carry.
    epoch: i32,
    /// A follower's: may evict consumers' sessions of its size.
    follower: bool,
    created: Instant,
    last_used: Instant,
    parts: HashMap<Key, Cached>,
    /// Read order: partitions that returned records move to the end, so that a response
    /// filled to max_bytes serves the others first next time (as Kafka does).
    order: BTreeMap<u64, Key>,
    next_seq: u64,
}

impl Session {
    fn push(&mut self, key: Key, request: PartRequest, sent: PartAnswer) {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        if let Some(old) = self
            .parts
            .insert(key.clone(), Cached { seq, request, sent })
        {
            self.order.remove(&old.seq);
        }
        self.order.insert(seq, key);
    }

    fn forget(&mut self, key: &Key) {
        if let Some(old) = self.parts.remove(key) {
            self.order.remove(&old.seq);
        }
    }

    fn len(&self) -> usize {
        self.parts.len()
    }
}

/// What a fetch is, once its session fields are read.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// A full fetch: read and answer every partition of the request; with `create`, try
    /// to make a session of them once answered ([`FetchSessions::create`]).
    Full { create: bool },
    /// An incremental fetch of session `id`: read these partitions (the session's, in its
    /// order) and answer those [`FetchSessions::answered`] selects.
    Incremental {
        id: i32,
        parts: Vec<(Key, PartRequest)>,
    },
    /// The incremental fetch emptied its session, which is closed: answer nothing, with
    /// session id 0.
    Closed,
    /// Answer only this top-level error.
    Error(i16),
}

/// Partitions held by all `sessions`.
fn total(sessions: &HashMap<i32, Session>) -> usize {
    sessions.values().map(Session::len).sum()
}

/// The epoch after `epoch`: wraps to 1 (0 is the creating fetch's).
fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX { 1 } else { epoch + 1 }
}

/// One shard's fetch sessions.
pub struct FetchSessions {
    shard: u32,
    shards: u32,
    slots: usize,
    eviction: Duration,
    /// Most partitions the sessions hold together.
    parts_max: usize,
    sessions: RefCell<HashMap<i32, Session>>,
}

/// What a change did to the cache, for the metrics.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Created {
    /// The new session's id; 0 when none was made.
    pub id: i32,
    /// A session was evicted to make room.
    pub evicted: bool,
}

impl FetchSessions {
    /// Shard `shard` of `shards`' share of `slots`, sessions of at most `parts_max`
    /// partitions in all.
    pub fn new(
        shard: usize,
        shards: usize,
        slots: usize,
        eviction: Duration,
        parts_max: usize,
    ) -> FetchSessions {
        let shards = shards.max(1);
        let share = slots / shards + usize::from(shard < slots % shards);
        FetchSessions {
            shard: u32::try_from(shard).unwrap_or(0),
            shards: u32::try_from(shards).unwrap_or(1),
            slots: share,
            eviction,
            parts_max,
            sessions: RefCell::default(),
        }
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.sessions.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads the session fields of a fetch (v7+) and applies an incremental one's changes:
    /// `asked` are the request's partitions (each once), `forgotten` those it drops.
    pub fn begin(
        &self,
        id: i32,
        epoch: i32,
        asked: &[(Key, PartRequest)],
        forgotten: &[Key],
        now: Instant,
    ) -> Plan {
        let mut sessions = self.sessions.borrow_mut();
        // Epoch 0 closes the named session and makes a new one; -1 closes it and fetches
        // without one.
        if epoch == 0 || epoch == -1 {
            if id != 0 {
                sessions.remove(&id);
            }
            return Plan::Full { create: epoch == 0 };
        }
        let Some(session) = sessions.get(&id) else {
            return Plan::Error(code::FETCH_SESSION_ID_NOT_FOUND);
        };
        if session.epoch != epoch {
            return Plan::Error(code::INVALID_FETCH_SESSION_EPOCH);
        }
        let before = session.len();
        let others = if asked.iter().any(|(k, _)| !session.parts.contains_key(k)) {
            total(&sessions) - before
        } else {
            0
        };
        let Some(session) = sessions.get_mut(&id) else {
            return Plan::Error(code::FETCH_SESSION_ID_NOT_FOUND);
        };
        for (key, request) in asked {
            match session.parts.get_mut(key) {
                Some(cached) => cached.request = request.clone(),
                None => session.push(key.clone(), request.clone(), PartAnswer::UNSENT),
            }
        }
        for key in forgotten {
            session.forget(key);
        }
        let too_big = session.len() > before && others + session.len() > self.parts_max;
        let bad_name = asked.iter().any(|((t, _), _)| t.len() > TOPIC_NAME_MAX);
        if too_big || bad_name {
            // Past what the sessions may hold: the client starts over with a full fetch,
            // which is answered without a session unless there is room again.
            sessions.remove(&id);
            return Plan::Error(code::FETCH_SESSION_ID_NOT_FOUND);
        }
        if session.len() == 0 {
            sessions.remove(&id);
            return Plan::Closed;
        }
        session.epoch = next_epoch(session.epoch);
        session.last_used = now;
        let parts = session
            .order
            .values()
            .filter_map(|k| Some((k.clone(), session.parts.get(k)?.request.clone())))
            .collect();
        Plan::Incremental { id, parts }
    }

    /// Makes a session of a full fetch's partitions and what it answered, evicting one
    /// when the cache is full and Kafka's rules allow; id 0 when there is no room.
    pub fn create(
        &self,
        follower: bool,
        parts: Vec<(Key, PartRequest, PartAnswer)>,
        now: Instant,
    ) -> Created {
        if self.slots == 0
            || parts.len() > self.parts_max
            || parts.iter().any(|((t, _), _, _)| t.len() > TOPIC_NAME_MAX)
        {
            return Created::default();
        }
        let mut sessions = self.sessions.borrow_mut();
        let mut evicted = false;
        let size = parts.len();
        let held = total(&sessions);
        if sessions.len() >= self.slots || held + size > self.parts_max {
            // One session may make room, if the rules allow and it is enough.
            let victim = self.evictable(&sessions, follower, size, now).filter(|id| {
                let freed = sessions.get(id).map_or(0, Session::len);
                held - freed + size <= self.parts_max
            });
            match victim {
                Some(id) => {
                    sessions.remove(&id);
                    evicted = true;
                }
                None => return Created::default(),
            }
        }
        let id = self.new_id(&sessions);
        let mut session = Session {
            epoch: 1,
            follower,
            created: now,
            last_used: now,
            parts: HashMap::with_capacity(parts.len()),
            order: BTreeMap::new(),
            next_seq: 0,
        };
        for (key, request, sent) in parts {
            session.push(key, request, sent);
        }
        sessions.insert(id, session);
        Created { id, evicted }
    }

    /// Kafka's eviction: the least recently used session if it has been idle longer than
    /// the eviction time; else the smallest evictable one, if the new session is worth
    /// more (a follower's over a consumer's, then more partitions). A session younger than
    /// the eviction time may be evicted only by a follower's, and only if it is a
    /// consumer's.
    fn evictable(
        &self,
        sessions: &HashMap<i32, Session>,
        follower: bool,
        size: usize,
        now: Instant,
    ) -> Option<i32> {
        let idle = |s: &Session| now.saturating_duration_since(s.last_used);
        let (lru, oldest) = sessions.iter().max_by_key(|(_, s)| idle(s))?;
        if idle(oldest) > self.eviction {
            return Some(*lru);
        }
        let (id, smallest) = sessions
            .iter()
            .filter(|(_, s)| {
                let old = now.saturating_duration_since(s.created) > self.eviction;
                old || (follower && !s.follower)
            })
            .min_by_key(|(id, s)| (s.follower, s.len(), **id))?;
        ((follower, size) > (smallest.follower, smallest.len())).then_some(*id)
    }

    /// A random id not in use, `≡ shard (mod shards)`, positive.
    fn new_id(&self, sessions: &HashMap<i32, Session>) -> i32 {
        let shards = u64::from(self.shards);
        let shard = u64::from(self.shard);
        // Multipliers k with k * shards + shard in 1..=i32::MAX.
        let top = (i32::MAX as u64 - shard) / shards;
        loop {
            let k = rand::random_range(0..=top);
            let id = k.saturating_mul(shards).saturating_add(shard);
            if let Ok(id) = i32::try_from(id)
                && id > 0
                && !sessions.contains_key(&id)
            {
                return id;
            }
        }
    }

    /// After an incremental fetch of `id` read `outcomes` (in the order of its plan):
    /// which partitions the answer carries. A partition is answered when it has records,
    /// an error or a diverging epoch, or its high watermark, last stable offset or log
    /// start moved since the client last heard; the session remembers what it answers.
    /// A session gone meanwhile (evicted, closed by a pipelined fetch) answers all.
    pub fn answered<'a>(
        &self,
        id: i32,
        outcomes: impl ExactSizeIterator<Item = (&'a Key, Outcome)>,
    ) -> Vec<bool> {
        let mut sessions = self.sessions.borrow_mut();
        let Some(session) = sessions.get_mut(&id) else {
            return vec![true; outcomes.len()];
        };
        let mut to_end = Vec::new();
        let selected = outcomes
            .map(|(key, o)| {
                let Some(cached) = session.parts.get_mut(key) else {
                    return o.must_answer;
                };
                let include = o.must_answer || cached.sent != o.answer;
                cached.sent = o.remembered();
                if o.has_records {
                    to_end.push(key);
                }
                include
            })
            .collect();
        for key in to_end {
            if let Some(cached) = session.parts.remove(key) {
                session.order.remove(&cached.seq);
                session.push(key.clone(), cached.request, cached.sent);
            }
        }
        selected
    }
}

#[cfg(test)]
#[path = "fetch_sessions_tests.rs"]
mod tests;
