//! The coordinator as a pure state machine: rebalances, session expiry, static membership,
//! commits and their appends, offset expiry and loading, driven by a fake clock and no IO.

use super::records::{LoggedRecord, parse_batches};
use super::state::State;
use super::*;
use crate::config::GroupConfig;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;
use rand::SeedableRng;
use std::collections::HashMap;

const G: &str = "g";
const SESSION_MS: i32 = 10_000;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A coordinator with a fake clock; answers and appends are collected as they come.
struct Harness {
    c: GroupCoordinator,
    now: i64,
    next: Token,
    replies: HashMap<Token, GroupReply>,
    appends: Vec<Append>,
    log_end: i64,
}

impl Harness {
    fn new(delay_ms: u64) -> Harness {
        let config = GroupConfig {
            initial_rebalance_delay_ms: delay_ms,
            offsets_retention_ms: 60_000,
            offsets_retention_check_interval_ms: 1_000,
            ..GroupConfig::default()
        };
        let mut c = GroupCoordinator::new(config, 1 << 20, rand::rngs::StdRng::seed_from_u64(1));
        c.finish_load();
        Harness {
            c,
            now: 1_000_000,
            next: 0,
            replies: HashMap::new(),
            appends: Vec::new(),
            log_end: 0,
        }
    }

    fn absorb(&mut self, fx: Effects) {
        for (t, r) in fx.replies {
            assert!(
                self.replies.insert(t, r).is_none(),
                "token {t} answered twice"
            );
        }
        self.appends.extend(fx.appends);
    }

    fn op(&mut self, op: GroupOp) -> Token {
        let t = self.next;
        self.next += 1;
        let topics = |name: &str| if name == "t" { 4 } else { 0 };
        let fx = self.c.handle(t, op, self.now, &topics);
        self.absorb(fx);
        t
    }

    fn tick(&mut self, advance_ms: i64) {
        self.now += advance_ms;
        let fx = self.c.tick(self.now);
        self.absorb(fx);
    }

    /// Completes every append asked for so far, in order, with `ok`; returns their
    /// records as the log would hold them.
    fn finish_appends(&mut self, ok: bool) -> Vec<LoggedRecord> {
        let mut logged = Vec::new();
        for a in std::mem::take(&mut self.appends) {
            let base = self.log_end;
            self.log_end += a.records.len() as i64;
            if let Some(batch) = records::build_batch(&a.records, self.now) {
                let mut b = batch.to_vec();
                crate::protocol::batch::set_base_offset(&mut b, base);
                logged.extend(parse_batches(&b).0);
            }
            if let Some(id) = a.then {
                let result = if ok {
                    Ok(base)
                } else {
                    Err(GroupError::Storage(crate::storage::StorageError::Io(
                        std::io::Error::other("disk"),
                    )))
                };
                let fx = self.c.appended(id, result, self.now);
                self.absorb(fx);
            }
        }
        logged
    }

    fn take(&mut self, t: Token) -> Option<GroupReply> {
        self.replies.remove(&t)
    }

    fn join(&mut self, member: &str, instance: Option<&str>, version: i16) -> Token {
        let req = JoinGroupRequest::default()
            .with_group_id(GroupId(s(G)))
            .with_session_timeout_ms(SESSION_MS)
            .with_rebalance_timeout_ms(SESSION_MS)
            .with_member_id(s(member))
            .with_group_instance_id(instance.map(s))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(vec![0, 1].into()),
            ]);
        self.op(GroupOp::Join {
            req,
            version,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
        })
    }

    fn joined(&mut self, t: Token) -> kafka_protocol::messages::JoinGroupResponse {
        match self.take(t) {
            Some(GroupReply::Join(r)) => r,
            other => panic!("join {t}: {}", describe(&other)),
        }
    }

    fn sync(&mut self, member: &str, generation: i32, assign: &[(&str, &[u8])]) -> Token {
        let req = SyncGroupRequest::default()
            .with_group_id(GroupId(s(G)))
            .with_generation_id(generation)
            .with_member_id(s(member))
            .with_assignments(
                assign
                    .iter()
                    .map(|(m, a)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(s(m))
                            .with_assignment(a.to_vec().into())
                    })
                    .collect(),
            );
        self.op(GroupOp::Sync { req })
    }

    fn synced(&mut self, t: Token) -> kafka_protocol::messages::SyncGroupResponse {
        match self.take(t) {
            Some(GroupReply::Sync(r)) => r,
            other => panic!("sync {t}: {}", describe(&other)),
        }
    }

    fn heartbeat(&mut self, member: &str, generation: i32) -> i16 {
        let t = self.op(GroupOp::Heartbeat {
            group: G.into(),
            generation,
            member_id: member.into(),
            instance_id: None,
        });
        match self.take(t) {
            Some(GroupReply::Heartbeat(c)) => c,
            other => panic!("heartbeat: {}", describe(&other)),
        }
    }

    fn commit(&mut self, member: &str, generation: i32, offset: i64) -> Token {
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(G)))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(s(member))
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(1)
                            .with_committed_offset(offset),
                    ]),
            ]);
        self.op(GroupOp::Commit { req })
    }

    fn committed_code(&mut self, t: Token) -> i16 {
        match self.take(t) {
            Some(GroupReply::Commit(r)) => r.topics[0].partitions[0].error_code,
            other => panic!("commit: {}", describe(&other)),
        }
    }

    fn fetched(&mut self) -> i64 {
        let t = self.op(GroupOp::Fetch {
            group: G.into(),
            topics: Some(vec![("t".into(), vec![1])]),
            require_stable: false,
        });
        match self.take(t) {
            Some(GroupReply::Fetch(f)) => f.topics[0].1[0].offset,
            other => panic!("fetch: {}", describe(&other)),
        }
    }

    fn state(&self) -> State {
        self.c.group(G).map(|g| g.state).unwrap_or(State::Dead)
    }
}

fn describe(r: &Option<GroupReply>) -> &'static str {
    match r {
        None => "no answer",
        Some(GroupReply::Join(_)) => "a join answer",
        Some(GroupReply::Sync(_)) => "a sync answer",
        Some(_) => "another answer",
    }
}

#[test]
fn members_join_rebalance_and_sync() {
    let mut h = Harness::new(3_000);
    let a = h.join("", None, 3);
    assert!(h.take(a).is_none(), "a new group waits the initial delay");
    h.tick(3_000);
    let ja = h.joined(a);
    assert_eq!((ja.error_code, ja.generation_id), (0, 1));
    let ida = ja.member_id.to_string();
    assert_eq!(ja.leader.as_str(), ida, "the only member leads");
    assert_eq!(h.state(), State::CompletingRebalance);
    let sa = h.sync(&ida, 1, &[(&ida, b"p0-3")]);
    assert_eq!(&h.synced(sa).assignment[..], b"p0-3");
    assert_eq!(h.state(), State::Stable);
    assert!(!h.appends.is_empty(), "the group's metadata is appended");

    // A second member: the group rebalances, and the first learns it by heartbeat.
    let b = h.join("", None, 3);
    assert_eq!(h.state(), State::PreparingRebalance);
    assert_eq!(h.heartbeat(&ida, 1), code::REBALANCE_IN_PROGRESS);
    let a2 = h.join(&ida, None, 3);
    let (ja, jb) = (h.joined(a2), h.joined(b));
    assert_eq!((ja.generation_id, jb.generation_id), (2, 2));
    assert_eq!(ja.members.len(), 2, "the leader gets every member");
    assert!(jb.members.is_empty(), "a follower does not");
    let idb = jb.member_id.to_string();
    // The follower's sync waits for the leader's assignment.
    let sb = h.sync(&idb, 2, &[]);
    assert!(h.take(sb).is_none());
    let sa = h.sync(&ida, 2, &[(&ida, b"p0-1"), (&idb, b"p2-3")]);
    assert_eq!(&h.synced(sb).assignment[..], b"p2-3");
    assert_eq!(&h.synced(sa).assignment[..], b"p0-1");
    assert_eq!(h.heartbeat(&idb, 2), 0);
    assert_eq!(h.heartbeat(&idb, 1), code::ILLEGAL_GENERATION);
}

/// A group of two stable members (the harness needs an initial delay, so both land in
/// the first generation), returned as their member ids.
fn stable_pair(h: &mut Harness) -> (String, String) {
    let a = h.join("", None, 3);
    let b = h.join("", None, 3);
    h.tick(3_000);
    let (ja, jb) = (h.joined(a), h.joined(b));
    let (ida, idb) = (ja.member_id.to_string(), jb.member_id.to_string());
    let leader = ja.leader.to_string();
    let follower = if leader == ida { &idb } else { &ida };
    // The follower's sync waits; the leader's carries the assignment and completes both.
    let sf = h.sync(follower, ja.generation_id, &[]);
    let sl = h.sync(&leader, ja.generation_id, &[(&ida, b"a"), (&idb, b"b")]);
    h.synced(sf);
    h.synced(sl);
    assert_eq!(h.state(), State::Stable);
    (ida, idb)
}

#[test]
fn a_silent_member_expires_and_the_rest_rebalance() {
    let mut h = Harness::new(3_000);
    let (a, b) = stable_pair(&mut h);
    let generation = h.c.group(G).map(|g| g.generation).unwrap_or(-1);
    // `a` heartbeats every 3 s; `b` has gone quiet.
    for _ in 0..4 {
        h.tick(3_000);
        let _ = h.heartbeat(&a, generation);
    }
    assert!(
        h.c.group(G).is_some_and(|g| !g.members.contains_key(&b)),
        "b expired"
    );
    assert_eq!(h.heartbeat(&a, generation), code::REBALANCE_IN_PROGRESS);
    let ja = h.join(&a, None, 3);
    let r = h.joined(ja);
    assert_eq!(r.generation_id, generation + 1);
    assert_eq!(r.members.len(), 1);
    assert_eq!(h.heartbeat(&b, generation), code::UNKNOWN_MEMBER_ID);
}

#[test]
fn new_members_must_rejoin_with_their_id_and_ghosts_expire() {
    let mut h = Harness::new(0);
    let first = h.join("", None, 4);
    let r = h.joined(first);
    assert_eq!(r.error_code, code::MEMBER_ID_REQUIRED);
    let id = r.member_id.to_string();
    assert!(!id.is_empty());
    let again = h.join(&id, None, 4);
    assert_eq!(h.joined(again).error_code, 0);
    // A second id handed out but never used is dropped after the session timeout.
    let ghost = h.join("", None, 4);
    let ghost_id = h.joined(ghost).member_id.to_string();
    h.tick(i64::from(SESSION_MS) + 1);
    let late = h.join(&ghost_id, None, 4);
    assert_eq!(h.joined(late).error_code, code::UNKNOWN_MEMBER_ID);
}

#[test]
fn a_static_member_that_restarts_keeps_its_assignment_without_a_rebalance() {
    let mut h = Harness::new(0);
    let j = h.join("", Some("host-1"), 5);
    let r = h.joined(j);
    let old = r.member_id.to_string();
    let leader_sync = h.sync(&old, r.generation_id, &[(&old, b"mine")]);
    h.synced(leader_sync);
    // A second static member, so the first is a follower after it comes back.
    let j2 = h.join("", Some("host-2"), 5);
    assert_eq!(h.state(), State::PreparingRebalance);
    let j1 = h.join(&old, Some("host-1"), 5);
    let (r1, r2) = (h.joined(j1), h.joined(j2));
    let id2 = r2.member_id.to_string();
    let generation = r1.generation_id;
    assert_eq!(r1.leader.as_str(), old, "the first member still leads");
    let s2 = h.sync(&id2, generation, &[]);
    let s1 = h.sync(&old, generation, &[(&old, b"one"), (&id2, b"two")]);
    h.synced(s1);
    h.synced(s2);
    assert_eq!(h.state(), State::Stable);
    // host-2 (a follower) restarts: new member id, same generation, no rebalance.
    let back = h.join("", Some("host-2"), 5);
    let r = h.joined(back);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.generation_id, generation, "no rebalance");
    assert_ne!(r.member_id.to_string(), id2);
    assert_eq!(h.state(), State::Stable);
    let new_id = r.member_id.to_string();
    let s = h.sync(&new_id, generation, &[]);
    assert_eq!(&h.synced(s).assignment[..], b"two", "the assignment stays");
    // The old incarnation is fenced.
    let hb = h.op(GroupOp::Heartbeat {
        group: G.into(),
        generation,
        member_id: id2,
        instance_id: Some("host-2".into()),
    });
    assert!(matches!(h.take(hb), Some(GroupReply::Heartbeat(c)) if c == code::FENCED_INSTANCE_ID));
}

#[test]
fn a_commit_is_answered_and_applied_only_when_its_append_lands() {
    let mut h = Harness::new(0);
    let t = h.commit("", -1, 42);
    assert!(h.take(t).is_none(), "waits for the append");
    assert_eq!(h.fetched(), -1, "not visible before the append");
    h.finish_appends(true);
    assert_eq!(h.committed_code(t), 0);
    assert_eq!(h.fetched(), 42);
    // A failed append: the client gets the storage error, the offset stays.
    let t = h.commit("", -1, 50);
    h.finish_appends(false);
    assert_eq!(h.committed_code(t), code::KAFKA_STORAGE_ERROR);
    assert_eq!(h.fetched(), 42);
    // An unknown partition is refused without an append.
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(G)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(s("nope")))
                .with_partitions(vec![OffsetCommitRequestPartition::default()]),
        ]);
    let t = h.op(GroupOp::Commit { req });
    assert!(h.appends.is_empty());
    assert_eq!(h.committed_code(t), code::UNKNOWN_TOPIC_OR_PARTITION);
}

#[test]
fn the_log_rebuilds_groups_and_expiry_forgets_them() {
    let mut h = Harness::new(0);
    let t = h.commit("", -1, 7);
    let logged = h.finish_appends(true);
    h.committed_code(t);
    // A new coordinator loading those records answers the same offset.
    let mut fresh = Harness::new(0);
    let mut c = GroupCoordinator::new(
        GroupConfig::default(),
        1 << 20,
        rand::rngs::StdRng::seed_from_u64(2),
    );
    c.load(logged, fresh.now);
    c.finish_load();
    fresh.c = c;
    assert_eq!(fresh.fetched(), 7);
    // Offsets of an empty group expire after the retention: tombstones, then gone.
    h.tick(61_000);
    let tombstones = h.finish_appends(true);
    assert!(!tombstones.is_empty() && tombstones.iter().all(|r| r.value.is_none()));
    assert_eq!(h.fetched(), -1);
    assert!(h.c.group(G).is_none());
}

#[test]
fn only_empty_groups_are_deleted_and_only_once_their_tombstones_land() {
    let mut h = Harness::new(3_000);
    let t = h.commit("", -1, 1);
    h.finish_appends(true);
    h.committed_code(t);
    let d = h.op(GroupOp::Delete(vec![G.into(), "unknown".into()]));
    assert!(h.take(d).is_none());
    assert_eq!(h.state(), State::Dead, "joins are held off meanwhile");
    h.finish_appends(true);
    match h.take(d) {
        Some(GroupReply::Delete(r)) => assert_eq!(
            r,
            vec![
                (G.to_string(), 0),
                ("unknown".to_string(), code::GROUP_ID_NOT_FOUND)
            ]
        ),
        other => panic!("delete: {}", describe(&other)),
    }
    assert!(h.c.group(G).is_none());
    let (_a, _b) = stable_pair(&mut h);
    let d = h.op(GroupOp::Delete(vec![G.into()]));
    assert!(matches!(h.take(d), Some(GroupReply::Delete(r)) if r[0].1 == code::NON_EMPTY_GROUP));
}

#[test]
fn a_leave_rebalances_the_others_and_nothing_is_served_before_the_load() {
    let mut h = Harness::new(3_000);
    let (a, b) = stable_pair(&mut h);
    let req = LeaveGroupRequest::default()
        .with_group_id(GroupId(s(G)))
        .with_member_id(s(&b));
    let t = h.op(GroupOp::Leave { req, version: 1 });
    assert!(matches!(h.take(t), Some(GroupReply::Leave(r)) if r.error_code == 0));
    assert_eq!(h.state(), State::PreparingRebalance);
    let j = h.join(&a, None, 3);
    assert_eq!(h.joined(j).members.len(), 1);

    let mut unloaded = GroupCoordinator::new(
        GroupConfig::default(),
        1 << 20,
        rand::rngs::StdRng::seed_from_u64(3),
    );
    let fx = unloaded.handle(0, GroupOp::Describe(vec![G.into()]), 0, &|_| 0);
    match &fx.replies[..] {
        [(0, GroupReply::Describe(d))] => {
            assert_eq!(d[0].error_code, code::COORDINATOR_LOAD_IN_PROGRESS)
        }
        _ => panic!("one describe answer"),
    }
}

use crate::protocol::code;

#[test]
fn the_group_record_names_its_members_as_kafka_writes_them() {
    let mut h = Harness::new(3_000);
    let (a, b) = stable_pair(&mut h);
    let logged = h.finish_appends(true);
    let key = records::Key::Group { group: G.into() }.encode().unwrap();
    let value = logged
        .iter()
        .rev()
        .find(|r| r.key == key)
        .and_then(|r| r.value.clone())
        .expect("the sync that completes the rebalance writes the group");
    assert_eq!(value[..2], [0, 3], "GroupMetadataValue v3");
    let v = records::GroupValue::decode(&value).unwrap();
    assert_eq!(
        (v.protocol_type.as_str(), v.protocol.as_deref()),
        ("consumer", Some("range"))
    );
    assert!(v.leader == Some(a.clone()) || v.leader == Some(b.clone()));
    let members: Vec<_> = v
        .members
        .iter()
        .map(|m| {
            (
                m.member_id.clone(),
                m.assignment.to_vec(),
                m.subscription.to_vec(),
            )
        })
        .collect();
    let mut want = vec![
        (a, b"a".to_vec(), vec![0, 1]),
        (b, b"b".to_vec(), vec![0, 1]),
    ];
    want.sort();
    assert_eq!(members, want);
    for m in &v.members {
        assert_eq!(
            (m.client_id.as_str(), m.client_host.as_str()),
            ("client", "/127.0.0.1")
        );
        assert_eq!(
            (m.session_timeout_ms, m.rebalance_timeout_ms),
            (SESSION_MS, SESSION_MS)
        );
    }
}

#[test]
fn a_group_record_too_large_for_the_log_is_written_without_its_members() {
    let mut h = Harness::new(3_000);
    let config = GroupConfig {
        initial_rebalance_delay_ms: 3_000,
        ..GroupConfig::default()
    };
    // Room for the group's own fields, not for two members' as well.
    h.c = GroupCoordinator::new(config, 300, rand::rngs::StdRng::seed_from_u64(1));
    h.c.finish_load();
    stable_pair(&mut h);
    let key = records::Key::Group { group: G.into() }.encode().unwrap();
    let logged = h.finish_appends(true);
    let value = logged.iter().rev().find(|r| r.key == key);
    let value = value.and_then(|r| r.value.clone()).expect("a group record");
    let v = records::GroupValue::decode(&value).unwrap();
    assert!(v.members.is_empty() && v.generation >= 1, "{v:?}");
    assert!(value.len() + key.len() + 128 <= 300);
}
