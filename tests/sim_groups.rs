//! Deterministic simulation of what a shard runs for consumer groups: the group
//! coordinator's host (`GroupHost`) on a partition log of `__consumer_offsets`, on the
//! fault-injecting disk, driven by consumer tasks, all single-threaded under
//! `ringbroker::rt::sim` from a seed.
//!
//! Each run: members join, sync, heartbeat and commit; some crash (go silent) or leave
//! and come back; at a random moment an fdatasync fails and the "process" dies, and the
//! coordinator restarts on the disk a crash leaves behind. Checked:
//! - every commit the coordinator acknowledged (`log.flush=fsync`) is in the recovered
//!   log, and after the restart OffsetFetch answers the last value the log holds;
//! - a member that completed SyncGroup got exactly what the leader assigned it for that
//!   generation;
//! - once faults stop, the live members end in one Stable generation;
//! - the same seed replays the same run (the scheduler's trace and the outcome).
//!
//! `SIM_SEEDS=N cargo test --release --test sim_groups` runs N seeds (default 12).

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    GroupId, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rand::SeedableRng;
use ringbroker::config::{FlushMode, GroupConfig, LogConfig};
use ringbroker::group::records::{Key, LoggedRecord, OffsetValue, parse_batches};
use ringbroker::group::{GroupCoordinator, GroupError, GroupHost, GroupOp, GroupReply, OffsetsLog};
use ringbroker::rt::sim::{Sim, SimRuntime, clock_ms};
use ringbroker::rt::{LocalBoxFuture, Runtime};
use ringbroker::storage::PartitionLog;
use ringbroker::storage::sim::SimStorage;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

const GROUP: &str = "sim-group";
const TOPIC: &str = "t";
const PARTITIONS: i32 = 6;
const MEMBERS: usize = 3;
const SESSION_MS: i32 = 6_000;

type Log = PartitionLog<SimStorage>;
type Host = GroupHost<SimOffsets, SimRuntime>;

/// The one offsets partition of the simulation (every group lives on it).
struct SimOffsets {
    log: Log,
}

impl OffsetsLog for SimOffsets {
    fn append(
        &self,
        _group: &str,
        batch: Bytes,
    ) -> LocalBoxFuture<'static, Result<i64, GroupError>> {
        let append = self.log.append(batch);
        Box::pin(async move {
            append
                .await
                .map(|i| i.base_offset)
                .map_err(GroupError::from)
        })
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn log_config() -> LogConfig {
    LogConfig {
        flush: FlushMode::Fsync,
        segment_bytes: 64 * 1024,
        retention_ms: None,
        ..LogConfig::default()
    }
}

/// What the run saw, to check against what the log and the coordinator say.
#[derive(Default)]
struct Model {
    /// Per partition: the next offset value to commit (values only grow).
    next_value: BTreeMap<i32, i64>,
    /// Commit values the coordinator acknowledged.
    acked: BTreeSet<(i32, i64)>,
    /// (generation, member) -> what the leader assigned.
    assigned: BTreeMap<(i32, String), Vec<u8>>,
    /// Assignments members received: (generation, member, bytes).
    received: Vec<(i32, String, Vec<u8>)>,
    events: Vec<String>,
}

struct World {
    rt: SimRuntime,
    host: RefCell<Rc<Host>>,
    model: RefCell<Model>,
    faults: Cell<bool>,
    stop: Cell<bool>,
    /// Members currently meant to be in the group (not crashed or left).
    live: RefCell<BTreeSet<usize>>,
}

impl World {
    async fn call(&self, op: GroupOp) -> Option<GroupReply> {
        let host = self.host.borrow().clone();
        let topics = |t: &str| if t == TOPIC { PARTITIONS } else { 0 };
        host.handle(op, &topics).await
    }

    async fn sleep_ms(&self, ms: u64) {
        self.rt.sleep(Duration::from_millis(ms)).await;
    }
}

fn new_host(rt: &SimRuntime, log: Log, seed: u64, records: Vec<LoggedRecord>) -> Rc<Host> {
    let config = GroupConfig {
        initial_rebalance_delay_ms: 500,
        ..GroupConfig::default()
    };
    let c = GroupCoordinator::new(config, 1 << 20, rand::rngs::StdRng::seed_from_u64(seed));
    let host = GroupHost::new(c, SimOffsets { log }, rt.clone());
    host.load(records);
    host
}

/// Every record of the log, in order.
async fn all_records(log: &Log) -> Vec<LoggedRecord> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.high_watermark() {
        let slice = log.read(offset, 1 << 20).await.expect("read");
        let mut bytes = Vec::new();
        for r in &slice.regions {
            bytes.extend_from_slice(&r.read().await.expect("region"));
        }
        let (records, next) = parse_batches(&bytes);
        out.extend(records.into_iter().filter(|r| r.offset >= offset));
        match next {
            Some(n) if n > offset => offset = n,
            _ => break,
        }
    }
    out
}

fn assignment_for(members: &[String], me: &str) -> Vec<u8> {
    let i = members.iter().position(|m| m == me).unwrap_or(0);
    (0..PARTITIONS)
        .filter(|p| *p as usize % members.len().max(1) == i)
        .map(|p| p as u8)
        .collect()
}

/// One consumer: join, sync, then heartbeat and commit until told to stop; may crash or
/// leave and come back while faults are on.
async fn member(world: Rc<World>, n: usize, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    use rand::RngExt;
    let mut member_id = String::new();
    'membership: while !world.stop.get() {
        // Join until a generation is assigned.
        let join = loop {
            if world.stop.get() {
                return;
            }
            let req = JoinGroupRequest::default()
                .with_group_id(GroupId(s(GROUP)))
                .with_session_timeout_ms(SESSION_MS)
                .with_rebalance_timeout_ms(SESSION_MS)
                .with_member_id(s(&member_id))
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![
                    JoinGroupRequestProtocol::default()
                        .with_name(s("rr"))
                        .with_metadata(Bytes::from_static(b"sub")),
                ]);
            let op = GroupOp::Join {
                req,
                version: 5,
                client_id: format!("m{n}"),
                client_host: "/sim".into(),
            };
            match world.call(op).await {
                Some(GroupReply::Join(r)) if r.error_code == 0 => break r,
                Some(GroupReply::Join(r)) if r.error_code == 79 => {
                    member_id = r.member_id.to_string()
                }
                Some(GroupReply::Join(r)) if r.error_code == 25 => member_id.clear(),
                _ => world.sleep_ms(100).await,
            }
        };
        member_id = join.member_id.to_string();
        let generation = join.generation_id;
        let mut assignments = Vec::new();
        if join.leader.as_str() == member_id {
            let mut ids: Vec<String> = join
                .members
                .iter()
                .map(|m| m.member_id.to_string())
                .collect();
            ids.sort();
            let mut model = world.model.borrow_mut();
            for id in &ids {
                let a = assignment_for(&ids, id);
                model.assigned.insert((generation, id.clone()), a.clone());
                assignments.push(
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(id))
                        .with_assignment(a.into()),
                );
            }
        }
        let sync = SyncGroupRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_generation_id(generation)
            .with_member_id(s(&member_id))
            .with_assignments(assignments);
        let mine = match world.call(GroupOp::Sync { req: sync }).await {
            Some(GroupReply::Sync(r)) if r.error_code == 0 => r.assignment.to_vec(),
            Some(GroupReply::Sync(r)) if r.error_code == 25 => {
                member_id.clear();
                continue;
            }
            _ => continue,
        };
        world
            .model
            .borrow_mut()
            .received
            .push((generation, member_id.clone(), mine.clone()));
        // Work: heartbeat and commit until the group moves on.
        loop {
            world.sleep_ms(rng.random_range(200..1_500)).await;
            if world.stop.get() {
                return;
            }
            if world.faults.get() && rng.random_range(0..100) < 3 {
                // Crash: go silent past the session timeout, come back as a new member.
                world.live.borrow_mut().remove(&n);
                world
                    .model
                    .borrow_mut()
                    .events
                    .push(format!("m{n} crashes"));
                world.sleep_ms(SESSION_MS as u64 + 2_000).await;
                member_id.clear();
                world.live.borrow_mut().insert(n);
                continue 'membership;
            }
            if world.faults.get() && rng.random_range(0..100) < 2 {
                let req = LeaveGroupRequest::default()
                    .with_group_id(GroupId(s(GROUP)))
                    .with_member_id(s(&member_id));
                let _ = world.call(GroupOp::Leave { req, version: 1 }).await;
                world.model.borrow_mut().events.push(format!("m{n} leaves"));
                member_id.clear();
                world.sleep_ms(rng.random_range(100..3_000)).await;
                continue 'membership;
            }
            let hb = GroupOp::Heartbeat {
                group: GROUP.into(),
                generation,
                member_id: member_id.clone(),
                instance_id: None,
            };
            match world.call(hb).await {
                Some(GroupReply::Heartbeat(0)) => {}
                Some(GroupReply::Heartbeat(27)) => continue 'membership,
                Some(GroupReply::Heartbeat(_)) => {
                    member_id.clear();
                    continue 'membership;
                }
                _ => continue 'membership,
            }
            commit(&world, &member_id, generation, &mine).await;
        }
    }
}

async fn commit(world: &World, member_id: &str, generation: i32, mine: &[u8]) {
    if mine.is_empty() {
        return;
    }
    let mut parts = Vec::new();
    {
        let mut model = world.model.borrow_mut();
        for p in mine {
            let p = i32::from(*p);
            let v = model.next_value.entry(p).or_insert(0);
            *v += 1;
            parts.push((p, *v));
        }
    }
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member_id))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(TOPIC)))
                .with_partitions(
                    parts
                        .iter()
                        .map(|(p, v)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(*v)
                        })
                        .collect(),
                ),
        ]);
    if let Some(GroupReply::Commit(r)) = world.call(GroupOp::Commit { req }).await {
        let mut model = world.model.borrow_mut();
        for (rp, (p, v)) in r.topics[0].partitions.iter().zip(&parts) {
            if rp.error_code == 0 {
                model.acked.insert((*p, *v));
            }
        }
    }
}

/// The outcome of one seed: the scheduler's trace and a digest of what happened.
fn run(seed: u64) -> (u64, String) {
    let sim = Sim::new(seed, 1_700_000_000_000);
    let rt = sim.runtime();
    let disk = SimStorage::new(seed);
    let dir = PathBuf::from("/data/__consumer_offsets-0");
    let crash_after_ms = 20_000 + sim.random(40_000);
    let image_seed = sim.random(1 << 30);
    let outcome = sim.run(
        {
            let rt = rt.clone();
            async move {
                let log = PartitionLog::open_with_clock(
                    disk.clone(),
                    dir.clone(),
                    log_config(),
                    clock_ms,
                )
                .await
                .expect("open");
                let world = Rc::new(World {
                    rt: rt.clone(),
                    host: RefCell::new(new_host(&rt, log, seed, Vec::new())),
                    model: RefCell::new(Model::default()),
                    faults: Cell::new(true),
                    stop: Cell::new(false),
                    live: RefCell::new((0..MEMBERS).collect()),
                });
                let ticker = world.clone();
                rt.spawn(Box::pin(async move {
                    while !ticker.stop.get() {
                        ticker.sleep_ms(100).await;
                        ticker.host.borrow().clone().tick();
                    }
                }));
                for n in 0..MEMBERS {
                    rt.spawn(Box::pin(member(world.clone(), n, seed * 31 + n as u64)));
                }
                // The disk fails under the coordinator; the process dies and restarts on
                // what a crash leaves.
                world.sleep_ms(crash_after_ms).await;
                disk.fail_sync_at(1);
                world.sleep_ms(1_000).await;
                disk.crash_now();
                let image = disk.crash_image(image_seed);
                let log = PartitionLog::open_with_clock(image, dir.clone(), log_config(), clock_ms)
                    .await
                    .expect("recovery");
                let records = all_records(&log).await;
                // Every committed value the recovered log holds, in log order.
                let values: Vec<(i32, i64)> = records
                    .iter()
                    .filter_map(|r| match (Key::decode(&r.key), &r.value) {
                        (Some(Key::Offset { partition, .. }), Some(v)) => {
                            OffsetValue::decode(v).map(|v| (partition, v.offset))
                        }
                        _ => None,
                    })
                    .collect();
                let durable: BTreeSet<(i32, i64)> = values.iter().copied().collect();
                // The last value per partition: later records overwrite earlier ones.
                let last: BTreeMap<i32, i64> = values.iter().copied().collect();
                let acked_before: BTreeSet<(i32, i64)> = world.model.borrow().acked.clone();
                let lost: Vec<_> = acked_before.difference(&durable).collect();
                assert!(
                    lost.is_empty(),
                    "seed {seed}: acknowledged commits lost: {lost:?}"
                );
                // The old process is gone: its parked requests end with it.
                let old = std::mem::replace(
                    &mut *world.host.borrow_mut(),
                    new_host(&rt, log, seed + 1, records),
                );
                old.unload();
                // Recovered offsets are what the log says last.
                let fetched = match world
                    .call(GroupOp::Fetch {
                        group: GROUP.into(),
                        topics: Some(vec![(TOPIC.into(), (0..PARTITIONS).collect())]),
                        require_stable: false,
                    })
                    .await
                {
                    Some(GroupReply::Fetch(f)) => f,
                    _ => panic!("seed {seed}: fetch after restart"),
                };
                for o in &fetched.topics[0].1 {
                    let want = last.get(&o.partition).copied().unwrap_or(-1);
                    assert_eq!(o.offset, want, "seed {seed}: partition {}", o.partition);
                }
                // Faults stop; the members settle into one stable generation.
                world.sleep_ms(15_000).await;
                world.faults.set(false);
                world.sleep_ms(40_000).await;
                let summary = world.host.borrow().with(|c| {
                    let g = c.group(GROUP).expect("the group exists");
                    (format!("{:?}", g.state), g.generation, g.members.len())
                });
                world.stop.set(true);
                let model = world.model.borrow();
                for (generation, member, got) in &model.received {
                    if let Some(want) = model.assigned.get(&(*generation, member.clone())) {
                        assert_eq!(
                            got, want,
                            "seed {seed}: {member} in generation {generation}"
                        );
                    }
                }
                assert_eq!(summary.0, "Stable", "seed {seed}: {:?}", model.events);
                assert_eq!(summary.2, world.live.borrow().len(), "seed {seed}: members");
                format!(
                    "{summary:?} acked={} durable={} events={:?}",
                    model.acked.len(),
                    durable.len(),
                    model.events
                )
            }
        },
        20_000_000,
    );
    match outcome {
        Ok(summary) => (sim.trace(), summary),
        Err(e) => panic!("seed {seed}: {e}"),
    }
}

#[test]
fn groups_and_commits_survive_faults_and_replay_exactly() {
    let seeds: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let mut traces = BTreeSet::new();
    for seed in 0..seeds {
        let (trace, summary) = run(seed);
        eprintln!("seed {seed}: {summary}");
        traces.insert(trace);
        if seed < 2 {
            assert_eq!(run(seed), (trace, summary), "seed {seed} replays exactly");
        }
    }
    assert_eq!(traces.len() as u64, seeds, "every seed is a different run");
}
