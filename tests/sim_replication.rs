//! Deterministic simulation of data replication: three replicas of one partition, each a
//! real `PartitionLog` on its own simulated disk (`storage::sim`), a controller that is the
//! real metadata image (`cluster::image`: fencing, registration, AlterPartition, elections
//! from the ISR), leaders driving the real `replication::LeaderState` (follower progress,
//! high watermark, wanted ISR) and followers cutting diverged tails with the real
//! `replication::truncation_for` and `PartitionLog::diverging`. The simulation supplies only
//! the network (each fetch and its answer may be lost), the clock and the faults: replicas
//! killed (their disk keeps everything, as after SIGKILL) or, under `log.flush=fsync`, cut
//! from power (their disk keeps what was synced, a random part of the rest, torn writes
//! included), and restarted later.
//!
//! Producers write with `acks=all` and `min.insync.replicas=2`: a batch is acknowledged
//! when the leader that appended it still leads and its high watermark passed it. Checked
//! after every step and at the end, once every replica is back and caught up:
//!
//! - every acknowledged batch is in the current leader's log, at its offset (compared by
//!   CRC, which covers everything but the offset and the leader epoch);
//! - a leader's high watermark never moves back within its leadership;
//! - in the end every replica's log is byte-identical to the leader's.
//!
//! `SIM_REPLICATION_SEEDS=1-2000 cargo test --release --test sim_replication -- --nocapture`
//! is the long run; the suite runs a few seeds per flush mode. A failure names its seed.

use bytes::Bytes;
use futures_lite::future::block_on;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use ringbroker::cluster::image::{Command, Image, NewTopic};
use ringbroker::config::{FlushMode, LogConfig};
use ringbroker::protocol::batch;
use ringbroker::replication::{self, LeaderState};
use ringbroker::storage::PartitionLog;
use ringbroker::storage::log::truncate_closed;
use ringbroker::storage::sim::SimStorage;
use std::collections::BTreeMap;
use std::path::PathBuf;

const IDS: [i32; 3] = [1, 2, 3];
const TOPIC: &str = "t";
const STEPS: usize = 1_500;
const LAG_MS: u64 = 1_000;
const MIN_ISR: usize = 2;

type Log = PartitionLog<SimStorage>;

struct Replica {
    id: i32,
    disk: SimStorage,
    log: Option<Log>,
    /// Set while this replica acts as leader, in the state's epoch.
    leading: Option<LeaderState>,
    /// The high watermark it last showed as leader (must not move back).
    shown_hw: i64,
    incarnation: u64,
}

struct Sim {
    rng: StdRng,
    flush: FlushMode,
    replicas: Vec<Replica>,
    image: Image,
    now: u64,
    /// Offset → CRC of every acknowledged batch.
    acked: BTreeMap<i64, u32>,
    /// Appended, not yet answered: (leader, epoch, base offset, last offset, crc).
    pending: Vec<(i32, i32, i64, i64, u32)>,
    next_value: u64,
    stats: Stats,
}

#[derive(Default, Debug)]
struct Stats {
    appended: u64,
    acked: u64,
    kills: u64,
    power_cuts: u64,
    truncations: u64,
    isr_changes: u64,
    elections: u64,
}

fn dir() -> PathBuf {
    PathBuf::from(format!("/data/{TOPIC}-0"))
}

fn config(flush: FlushMode) -> LogConfig {
    LogConfig {
        flush,
        segment_bytes: 2048,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

fn crc_of(b: &[u8]) -> u32 {
    batch::BatchHeader::parse(b).map(|h| h.crc).unwrap_or(0)
}

/// Every batch of `log` (up to its own end): (base offset, bytes).
fn batches(log: &Log) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    loop {
        let slice = block_on(log.read_for_replica(next, 1 << 20)).expect("read");
        if slice.regions.is_empty() {
            return out;
        }
        for r in &slice.regions {
            let bytes = block_on(r.read()).expect("region");
            for (h, range) in batch::validate_batches(&bytes).expect("whole batches") {
                out.push((h.base_offset, bytes[range].to_vec()));
                next = h.last_offset() + 1;
            }
        }
    }
}

impl Sim {
    fn new(seed: u64, flush: FlushMode) -> Sim {
        let mut image = Image::default();
        let replicas = IDS
            .iter()
            .map(|&id| {
                image.apply(Command::Register {
                    id,
                    host: "h".into(),
                    port: 1,
                    incarnation: 1,
                    endpoints: Vec::new(),
                });
                let disk = SimStorage::new(seed.wrapping_mul(31).wrapping_add(id as u64));
                let log = block_on(Log::open(disk.clone(), dir(), config(flush))).expect("open");
                Replica {
                    id,
                    disk,
                    log: Some(log),
                    leading: None,
                    shown_hw: 0,
                    incarnation: 1,
                }
            })
            .collect();
        image.apply(Command::CreateTopics {
            topics: vec![NewTopic {
                name: TOPIC.into(),
                id: "0".repeat(32),
                partitions: 1,
                replication_factor: 3,
                configs: BTreeMap::new(),
                assignments: None,
            }],
        });
        Sim {
            rng: StdRng::seed_from_u64(seed),
            flush,
            replicas,
            image,
            now: 0,
            acked: BTreeMap::new(),
            pending: Vec::new(),
            next_value: 0,
            stats: Stats::default(),
        }
    }

    fn part(&self) -> ringbroker::cluster::image::PartitionImage {
        self.image.topics[TOPIC].partitions[0].clone()
    }

    fn replica(&mut self, id: i32) -> &mut Replica {
        let i = IDS.iter().position(|r| *r == id).expect("known replica");
        &mut self.replicas[i]
    }

    /// Every live replica takes the role the image gives it, as the shards' role check does.
    fn roles(&mut self) {
        let p = self.part();
        let now = self.now;
        for r in &mut self.replicas {
            let Some(log) = &r.log else {
                r.leading = None;
                continue;
            };
            if p.leader == r.id {
                replication::isr_seen(log, &p.isr);
                if r.leading.as_ref().is_none_or(|s| s.epoch != p.leader_epoch) {
                    r.leading = Some(replication::lead(
                        log,
                        r.id,
                        p.leader_epoch,
                        &p.replicas,
                        &p.isr,
                        now,
                    ));
                    r.shown_hw = log.high_watermark();
                    self.stats.elections += 1;
                }
            } else {
                r.leading = None;
                log.set_leader_epoch(None);
            }
        }
    }

    fn produce(&mut self) {
        let p = self.part();
        if p.isr.len() < MIN_ISR {
            return; // NOT_ENOUGH_REPLICAS: nothing appended
        }
        let leader = p.leader;
        if leader < 0 {
            return;
        }
        let value = format!("v{}", self.next_value);
        self.next_value += 1;
        let n = self.rng.random_range(1..4usize);
        let vals: Vec<&[u8]> = (0..n).map(|_| value.as_bytes()).collect();
        let b = Bytes::from(batch::testing::build_batch(&vals, 1_000));
        let crc = crc_of(&b);
        let r = self.replica(leader);
        let (Some(log), Some(_)) = (&r.log, &r.leading) else {
            return;
        };
        let info = block_on(log.append(b)).expect("append");
        self.stats.appended += 1;
        self.pending.push((
            leader,
            p.leader_epoch,
            info.base_offset,
            info.last_offset,
            crc,
        ));
    }

    /// One follower fetch round trip; either direction may be lost.
    fn fetch(&mut self, follower: i32) {
        let p = self.part();
        let leader = p.leader;
        if leader < 0 || leader == follower || !p.replicas.contains(&follower) {
            return;
        }
        let (offset, last_epoch) = match &self.replica(follower).log {
            Some(log) => (log.log_end_offset(), log.latest_epoch().unwrap_or(-1)),
            None => return,
        };
        if self.rng.random_bool(0.1) {
            return; // request lost
        }
        let now = self.now;
        let isr = p.isr.clone();
        let l = self.replica(leader);
        let (Some(log), Some(state)) = (&l.log, l.leading.as_mut()) else {
            return;
        };
        let answer = match log.diverging(last_epoch, offset) {
            Some(d) => Err(d),
            None => {
                replication::follower_fetched(state, log, &isr, follower, offset, now);
                let slice = block_on(log.read_for_replica(offset, 700)).expect("leader read");
                let mut bytes = Vec::new();
                for r in &slice.regions {
                    bytes.extend(block_on(r.read()).expect("region"));
                }
                Ok((Bytes::from(bytes), log.high_watermark()))
            }
        };
        if self.rng.random_bool(0.1) {
            return; // answer lost
        }
        let flush = self.flush;
        let f = self.replica(follower);
        let Some(log) = f.log.clone() else {
            return;
        };
        match answer {
            Err(d) => {
                if let Some(to) = replication::truncation_for(&log, d) {
                    let hw = log.hw_limit();
                    block_on(log.close()).expect("close");
                    let end = block_on(truncate_closed(&f.disk, &dir(), to)).expect("truncate");
                    let log = block_on(Log::open(f.disk.clone(), dir(), config(flush)))
                        .expect("reopen after truncation");
                    assert_eq!(log.log_end_offset(), end);
                    log.set_hw_limit(hw.map(|h| h.min(end)));
                    f.log = Some(log);
                    self.stats.truncations += 1;
                    self.trace(|| format!("{follower} truncated to {to} ({d:?})"));
                }
            }
            Ok((bytes, hw)) => {
                if !bytes.is_empty() {
                    block_on(log.append_replica(bytes)).expect("follower append");
                }
                replication::learn_high_watermark(&log, hw);
            }
        }
    }

    /// The leader asks for the ISR it wants; the controller may not hear it.
    fn isr_check(&mut self) {
        let p = self.part();
        let now = self.now;
        let l = self.replica(p.leader.max(1));
        if l.id != p.leader {
            return;
        }
        let (Some(log), Some(state)) = (&l.log, &l.leading) else {
            return;
        };
        let hw = replication::move_high_watermark(state, log, &p.isr);
        let start = log
            .epoch_start(p.leader_epoch)
            .unwrap_or_else(|| log.log_end_offset());
        let Some(isr) = state.wanted_isr(&p.isr, hw, start, now, LAG_MS) else {
            return;
        };
        if self.rng.random_bool(0.2) {
            return; // lost on the way to the controller
        }
        self.image.apply(Command::AlterPartition {
            topic: TOPIC.into(),
            partition: 0,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr,
        });
        self.stats.isr_changes += 1;
        self.trace(|| "isr change".to_string());
    }

    /// Answers appended batches whose leader still leads and has them replicated.
    fn answer(&mut self) {
        let p = self.part();
        let pending = std::mem::take(&mut self.pending);
        for (leader, epoch, base, last, crc) in pending {
            if p.leader != leader || p.leader_epoch != epoch {
                continue; // NOT_LEADER_OR_FOLLOWER: never acknowledged
            }
            let hw = match &self.replica(leader).log {
                Some(log) => log.high_watermark(),
                None => continue,
            };
            if hw > last && p.isr.len() >= MIN_ISR {
                self.trace(|| format!("acked {base}..={last} by {leader}"));
                self.acked.insert(base, crc);
                self.stats.acked += 1;
            } else if hw > last {
                continue; // NOT_ENOUGH_REPLICAS_AFTER_APPEND
            } else {
                self.pending.push((leader, epoch, base, last, crc));
            }
        }
    }

    fn trace(&self, what: impl FnOnce() -> String) {
        if std::env::var_os("SIM_TRACE").is_some() {
            let ends: Vec<String> = self
                .replicas
                .iter()
                .map(|r| match &r.log {
                    Some(l) => format!("{}:{}/{}", r.id, l.log_end_offset(), l.high_watermark()),
                    None => format!("{}:down", r.id),
                })
                .collect();
            eprintln!(
                "t={} {} | {:?} | {}",
                self.now,
                ends.join(" "),
                self.part(),
                what()
            );
        }
    }

    fn crash(&mut self, id: i32) {
        let power = self.flush == FlushMode::Fsync && self.rng.random_bool(0.5);
        self.trace(|| format!("crash {id} power={power}"));
        let seed = self.rng.random::<u64>();
        let r = self.replica(id);
        if r.log.take().is_none() {
            return;
        }
        r.leading = None;
        if power {
            r.disk = r.disk.crash_image(seed);
            self.stats.power_cuts += 1;
        } else {
            self.stats.kills += 1;
        }
        // The controller notices after its session timeout; the dead replica acts on
        // nothing meanwhile.
        self.image.apply(Command::Fence { id });
    }

    fn restart(&mut self, id: i32) {
        let flush = self.flush;
        let r = self.replica(id);
        if r.log.is_some() {
            return;
        }
        let log = block_on(Log::open(r.disk.clone(), dir(), config(flush)))
            .unwrap_or_else(|e| panic!("replica {id} must open on what its disk kept: {e}"));
        r.log = Some(log);
        r.incarnation += 1;
        let incarnation = r.incarnation;
        self.image.apply(Command::Register {
            id,
            host: "h".into(),
            port: 1,
            incarnation,
            endpoints: Vec::new(),
        });
        self.trace(|| format!("restarted {id}"));
    }

    /// Every acknowledged batch is in the leader's log at its offset; the leader's high
    /// watermark never moved back.
    fn check(&mut self, seed: u64, step: usize) {
        let p = self.part();
        if p.leader < 0 {
            return;
        }
        let acked = self.acked.clone();
        let r = self.replica(p.leader);
        let Some(log) = r.log.clone() else {
            return;
        };
        let hw = log.high_watermark();
        assert!(
            hw >= r.shown_hw || r.leading.is_none(),
            "seed {seed} step {step}: leader {} high watermark moved back {} -> {hw}",
            p.leader,
            r.shown_hw
        );
        r.shown_hw = hw;
        if !step.is_multiple_of(50) && step != usize::MAX {
            return;
        }
        let stored: BTreeMap<i64, u32> = batches(&log)
            .into_iter()
            .map(|(o, b)| (o, crc_of(&b)))
            .collect();
        for (offset, crc) in &acked {
            assert_eq!(
                stored.get(offset),
                Some(crc),
                "seed {seed} step {step}: acknowledged batch at {offset} missing from leader {}",
                p.leader
            );
        }
    }

    fn step(&mut self, seed: u64, step: usize) {
        self.now += self.rng.random_range(0..80u64);
        self.roles();
        let down: Vec<i32> = self
            .replicas
            .iter()
            .filter(|r| r.log.is_none())
            .map(|r| r.id)
            .collect();
        match self.rng.random_range(0..100u32) {
            0..=29 => self.produce(),
            30..=79 => {
                let f = IDS[self.rng.random_range(0..IDS.len())];
                self.fetch(f);
            }
            80..=91 => self.isr_check(),
            92..=94 if down.is_empty() => {
                let id = IDS[self.rng.random_range(0..IDS.len())];
                self.crash(id);
            }
            _ => {
                if let Some(&id) = down.first() {
                    self.restart(id);
                }
            }
        }
        self.roles();
        self.answer();
        self.check(seed, step);
    }

    /// Everything back, no more faults or losses of consequence: replicas catch up.
    fn settle(&mut self, seed: u64) {
        for id in IDS {
            self.restart(id);
        }
        for round in 0..4_000 {
            self.now += 50;
            self.roles();
            for f in IDS {
                self.fetch(f);
            }
            self.isr_check();
            self.answer();
            let p = self.part();
            if p.isr.len() == IDS.len() && round > 50 {
                let ends: Vec<i64> = self
                    .replicas
                    .iter()
                    .filter_map(|r| r.log.as_ref().map(|l| l.log_end_offset()))
                    .collect();
                if ends.windows(2).all(|w| w[0] == w[1]) {
                    break;
                }
            }
        }
        self.check(seed, usize::MAX);
        let p = self.part();
        assert!(p.leader > 0, "seed {seed}: no leader after settling: {p:?}");
        let leader = self.replica(p.leader).log.clone().expect("leader up");
        let want = batches(&leader);
        for r in &self.replicas {
            let log = r.log.as_ref().expect("up");
            assert_eq!(
                batches(log),
                want,
                "seed {seed}: replica {} differs from leader {} ({p:?})",
                r.id,
                p.leader
            );
        }
    }
}

fn seeds() -> Vec<u64> {
    let spec = std::env::var("SIM_REPLICATION_SEEDS").unwrap_or_else(|_| "1-6".into());
    let mut out = Vec::new();
    for part in spec.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u64, u64) = (
                    a.trim().parse().expect("seed"),
                    b.trim().parse().expect("seed"),
                );
                out.extend(a..=b);
            }
            None => out.push(part.trim().parse().expect("seed")),
        }
    }
    out
}

fn run(flush: FlushMode) {
    let mut total = Stats::default();
    for seed in seeds() {
        let mut sim = Sim::new(seed, flush);
        for step in 0..STEPS {
            sim.step(seed, step);
        }
        sim.settle(seed);
        let s = &sim.stats;
        total.appended += s.appended;
        total.acked += s.acked;
        total.kills += s.kills;
        total.power_cuts += s.power_cuts;
        total.truncations += s.truncations;
        total.isr_changes += s.isr_changes;
        total.elections += s.elections;
    }
    println!("{flush:?}: {} seeds, {total:?}", seeds().len());
    assert!(total.acked > 0, "nothing was ever acknowledged: {total:?}");
    assert!(
        total.kills + total.power_cuts > 0,
        "no fault was injected: {total:?}"
    );
}

#[test]
fn replicas_keep_every_acknowledged_batch_when_killed() {
    run(FlushMode::None);
}

#[test]
fn replicas_keep_every_acknowledged_batch_through_power_cuts_under_fsync() {
    run(FlushMode::Fsync);
}
