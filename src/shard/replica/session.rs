//! The follower's side of a fetch session (KIP-227), as Kafka's `FetchSessionHandler`
//! keeps it: the first fetch is full and asks for a session; the next ones name only the
//! partitions whose fetch position changed and forget those no longer followed; an error
//! about the session (FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH, a failed
//! exchange) starts over with a full fetch.

use crate::protocol::code;
use crate::protocol::strings::topic_name;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use std::collections::HashMap;

type Key = (String, i32);

/// The session with one leader, as this fetcher last heard of it.
#[derive(Debug, Default)]
pub struct FollowerSession {
    /// 0: none.
    id: i32,
    /// The epoch of the next fetch: 0 asks for a new session (closing `id` if set).
    epoch: i32,
    /// What the leader's session holds of each partition (what was sent last).
    held: HashMap<Key, FetchPartition>,
}

/// The session part of the next fetch.
pub struct NextFetch {
    pub session_id: i32,
    pub epoch: i32,
    pub topics: Vec<FetchTopic>,
    pub forgotten: Vec<ForgottenTopic>,
    /// What the leader's session will hold once it answers.
    pending: HashMap<Key, FetchPartition>,
}

impl FollowerSession {
    /// Whether the next fetch is incremental.
    pub fn incremental(&self) -> bool {
        self.id != 0 && self.epoch > 0
    }

    /// The next fetch of `parts` (sorted by topic and partition): all of them when it is a
    /// full fetch, else those that changed, with the partitions dropped since as forgotten.
    pub fn next(&self, parts: Vec<(String, FetchPartition)>) -> NextFetch {
        let incremental = self.incremental();
        let mut topics: Vec<FetchTopic> = Vec::new();
        let mut pending = HashMap::with_capacity(parts.len());
        for (topic, part) in parts {
            let key = (topic, part.partition);
            let unchanged = incremental && self.held.get(&key) == Some(&part);
            if !unchanged {
                match topics.last_mut() {
                    Some(t) if t.topic.0.as_str() == key.0 => t.partitions.push(part.clone()),
                    _ => topics.push(
                        FetchTopic::default()
                            .with_topic(topic_name(&key.0))
                            .with_partitions(vec![part.clone()]),
                    ),
                }
            }
            pending.insert(key, part);
        }
        let mut forgotten: Vec<ForgottenTopic> = Vec::new();
        if incremental {
            let mut gone: Vec<&Key> = self
                .held
                .keys()
                .filter(|k| !pending.contains_key(*k))
                .collect();
            gone.sort();
            for (topic, p) in gone {
                match forgotten.last_mut() {
                    Some(t) if t.topic.0.as_str() == topic => t.partitions.push(*p),
                    _ => forgotten.push(
                        ForgottenTopic::default()
                            .with_topic(topic_name(topic))
                            .with_partitions(vec![*p]),
                    ),
                }
            }
        }
        NextFetch {
            session_id: self.id,
            epoch: if self.id == 0 { 0 } else { self.epoch },
            topics,
            forgotten,
            pending,
        }
    }

    /// The leader answered `next` with this top-level error and session id. `false` when
    /// the answer carries no partitions to apply (a session error).
    pub fn answered(&mut self, next: NextFetch, error_code: i16, session_id: i32) -> bool {
        match error_code {
            code::NONE => {}
            code::FETCH_SESSION_ID_NOT_FOUND => {
                *self = FollowerSession::default();
                return false;
            }
            _ => {
                self.failed();
                return false;
            }
        }
        if session_id == 0 {
            // No session was made (the leader's cache is full), or it was closed.
            *self = FollowerSession::default();
            return true;
        }
        if !self.incremental() || session_id != self.id {
            self.id = session_id;
            self.epoch = 0;
        }
        self.epoch = if self.epoch == i32::MAX {
            1
        } else {
            self.epoch + 1
        };
        self.held = next.pending;
        true
    }

    /// The exchange failed (no answer, a broken connection): the next fetch is full, and
    /// closes this session at the leader if it still has it.
    pub fn failed(&mut self) {
        self.epoch = 0;
        self.held.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(p: i32, offset: i64) -> (String, FetchPartition) {
        (
            "t".to_string(),
            FetchPartition::default()
                .with_partition(p)
                .with_fetch_offset(offset),
        )
    }

    fn named(next: &NextFetch) -> Vec<i32> {
        next.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.partition))
            .collect()
    }

    #[test]
    fn full_then_incremental_then_back_to_full() {
        let mut s = FollowerSession::default();
        let next = s.next(vec![part(0, 5), part(1, 7)]);
        assert_eq!((next.session_id, next.epoch), (0, 0));
        assert_eq!(named(&next), vec![0, 1]);
        assert!(s.answered(next, code::NONE, 42));
        // Only the partition that moved, and the one dropped as forgotten.
        let next = s.next(vec![part(0, 6), part(2, 0)]);
        assert_eq!((next.session_id, next.epoch), (42, 1));
        assert_eq!(named(&next), vec![0, 2]);
        assert_eq!(next.forgotten.len(), 1);
        assert_eq!(next.forgotten[0].partitions, vec![1]);
        assert!(s.answered(next, code::NONE, 42));
        let next = s.next(vec![part(0, 6), part(2, 0)]);
        assert_eq!((next.session_id, next.epoch), (42, 2));
        assert!(named(&next).is_empty() && next.forgotten.is_empty());
        // A wrong epoch: close this session and make a new one with a full fetch.
        assert!(!s.answered(next, code::INVALID_FETCH_SESSION_EPOCH, 0));
        let next = s.next(vec![part(0, 6), part(2, 0)]);
        assert_eq!((next.session_id, next.epoch), (42, 0));
        assert_eq!(named(&next), vec![0, 2]);
        assert!(s.answered(next, code::NONE, 43));
        // An unknown session: a full fetch asking for a new one.
        let next = s.next(vec![part(0, 6)]);
        assert_eq!((next.session_id, next.epoch), (43, 1));
        assert!(!s.answered(next, code::FETCH_SESSION_ID_NOT_FOUND, 0));
        let next = s.next(vec![part(0, 6)]);
        assert_eq!((next.session_id, next.epoch), (0, 0));
        // No room at the leader: full fetches go on.
        assert!(s.answered(next, code::NONE, 0));
        let next = s.next(vec![part(0, 6)]);
        assert_eq!((next.session_id, next.epoch), (0, 0));
        assert_eq!(named(&next), vec![0]);
    }
}
