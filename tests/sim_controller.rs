//! Deterministic simulation of the controller quorum: three voters (raft-rs driven by
//! `cluster::node::Node`, each on its own fault-injecting disk) exchange messages through a
//! network that loses, duplicates and reorders them, while nodes crash (restarting from what
//! their disk kept) and commands are proposed everywhere. After every step:
//!
//! - every node that applied index i applied the same command there (the replicated
//!   metadata log never diverges);
//! - no two nodes ever saw different leaders for one partition in one leader epoch;
//! - no producer id was handed out twice (blocks of different entries never overlap).
//!
//! and once the network is quiet and every voter is up again, commands commit again.
//!
//! `SIM_SEEDS=500 cargo test --test sim_controller -- --nocapture` runs the long version;
//! the suite runs a few seeds. A failure prints its seed; `SIM_SEED=N` replays its network,
//! crash and proposal schedule (raft-rs draws its election timeouts from its own thread
//! RNG, so the replay is close but not exact).

use futures_lite::future::block_on;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use ringbroker::cluster::image::{Command, NewTopic, Outcome};
use ringbroker::cluster::node::{Node, Proposal, node_of};
use ringbroker::storage::sim::SimStorage;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

const VOTERS: [i32; 3] = [1, 2, 3];
const STEPS: usize = 3_000;

struct Voter {
    id: i32,
    disk: SimStorage,
    node: Option<Node<SimStorage>>,
}

#[derive(Default)]
struct Checks {
    /// index → the command applied there (as first seen).
    log: HashMap<u64, String>,
    /// (topic, partition, epoch) → leader.
    leaders: HashMap<(String, usize, i32), i32>,
    /// index → producer id block handed out by that entry.
    blocks: BTreeMap<u64, (i64, i64)>,
    applied: usize,
    /// Entries applied on the quiet network at the end (the quorum recovered).
    applied_calm: usize,
    /// Snapshots voters received from a leader.
    installed: u64,
}

fn open(id: i32, disk: SimStorage) -> Node<SimStorage> {
    let logger = ringbroker::cluster::logging::logger();
    let dir = PathBuf::from("/raft");
    let mut node = block_on(Node::open(disk, dir, id, &VOTERS, &logger))
        .unwrap_or_else(|e| panic!("node {id} must open on what its disk kept: {e}"));
    // Snapshots and log compaction often, so crashes land in them and lagging voters get
    // snapshots from the leader.
    node.set_snapshot_every(8, 2 << 10);
    node
}

fn command(rng: &mut StdRng, n: u64) -> Command {
    match rng.random_range(0..5) {
        0 => Command::Register {
            id: VOTERS[rng.random_range(0..3)],
            host: "h".into(),
            port: 9092,
            incarnation: rng.random_range(0..3),
            endpoints: Vec::new(),
        },
        1 => Command::Fence {
            id: VOTERS[rng.random_range(0..3)],
        },
        2 => Command::CreateTopics {
            topics: vec![NewTopic {
                name: format!("t{}", rng.random_range(0..4)),
                id: format!("{n:032x}"),
                partitions: rng.random_range(1..4),
                replication_factor: rng.random_range(1..4),
                configs: BTreeMap::new(),
                assignments: None,
            }],
        },
        3 => Command::DeleteTopics {
            names: vec![format!("t{}", rng.random_range(0..4))],
        },
        _ => Command::AllocateProducerIds {
            broker: VOTERS[rng.random_range(0..3)],
        },
    }
}

fn check(
    checks: &mut Checks,
    node: &Node<SimStorage>,
    applied: Vec<ringbroker::cluster::node::Applied>,
    calm: bool,
) {
    for a in applied {
        checks.applied += 1;
        checks.applied_calm += usize::from(calm);
        let text = format!("{:?}", a.cmd);
        let first = checks.log.entry(a.index).or_insert_with(|| text.clone());
        assert_eq!(
            *first,
            text,
            "node {} applied a different command at index {}",
            node.id(),
            a.index
        );
        if let Outcome::ProducerIds { start, end } = a.outcome {
            match checks.blocks.get(&a.index) {
                Some(b) => assert_eq!(*b, (start, end), "index {} answered two blocks", a.index),
                None => {
                    for (i, (s, e)) in &checks.blocks {
                        assert!(
                            end <= *s || start >= *e,
                            "ids {start}..{end} (entry {}) overlap {s}..{e} (entry {i})",
                            a.index
                        );
                    }
                    checks.blocks.insert(a.index, (start, end));
                }
            }
        }
    }
    for (name, t) in &node.image().topics {
        for (p, part) in t.partitions.iter().enumerate() {
            if part.leader < 0 {
                continue;
            }
            let key = (format!("{name}/{}", t.id), p, part.leader_epoch);
            let seen = checks.leaders.entry(key).or_insert(part.leader);
            assert_eq!(
                *seen, part.leader,
                "{name}-{p} had two leaders in epoch {}",
                part.leader_epoch
            );
        }
    }
}

fn run(seed: u64) -> Checks {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut voters: Vec<Voter> = VOTERS
        .iter()
        .map(|id| {
            let disk = SimStorage::new(seed ^ (*id as u64));
            Voter {
                id: *id,
                node: Some(open(*id, disk.clone())),
                disk,
            }
        })
        .collect();
    let mut net: Vec<(i32, raft::eraftpb::Message)> = Vec::new();
    let mut checks = Checks::default();
    let mut seq = 0u64;
    let loss = rng.random_range(0.0..0.3);
    for step in 0..STEPS {
        // The last third runs on a quiet network with every voter up, so the quorum must
        // make progress again.
        let calm = step > STEPS * 2 / 3;
        if step == STEPS * 2 / 3 + 1 {
            for voter in voters.iter_mut().filter(|v| v.node.is_none()) {
                voter.node = Some(open(voter.id, voter.disk.clone()));
            }
        }
        let v = rng.random_range(0..voters.len());
        match rng.random_range(0..100) {
            0..=14 => {
                if let Some(n) = voters[v].node.as_mut() {
                    n.tick();
                }
            }
            // A few messages arrive, in any order; some twice.
            15..=69 => {
                for _ in 0..rng.random_range(1..6) {
                    if net.is_empty() {
                        break;
                    }
                    let i = rng.random_range(0..net.len());
                    let (to, m) = net.swap_remove(i);
                    if !calm && rng.random_bool(0.05) {
                        net.push((to, m.clone()));
                    }
                    if let Some(n) = voters
                        .iter_mut()
                        .find(|x| x.id == to)
                        .and_then(|x| x.node.as_mut())
                    {
                        let _ = n.step(m);
                    }
                }
            }
            70..=84 => {
                seq += 1;
                let cmd = command(&mut rng, seq);
                if let Some(n) = voters[v].node.as_mut() {
                    let p = Proposal {
                        from: n.id(),
                        seq,
                        cmd,
                    };
                    let _ = n.propose(&p);
                }
            }
            // A crash: the node is gone; its disk keeps what was durable.
            85..=86 if !calm && voters[v].node.take().is_some() => {
                voters[v].disk = voters[v].disk.crash_image(rng.random());
            }
            87 if voters[v].node.is_none() => {
                let disk = voters[v].disk.clone();
                voters[v].node = Some(open(voters[v].id, disk));
            }
            _ => {}
        }
        for voter in &mut voters {
            let Some(n) = voter.node.as_mut() else {
                continue;
            };
            let before = n.installed_snapshots();
            let out = block_on(n.ready()).expect("the simulated disk does not fail here");
            checks.installed += n.installed_snapshots() - before;
            for m in out.messages {
                if !calm && rng.random_bool(loss) {
                    continue;
                }
                if let Some(to) = node_of(m.to) {
                    net.push((to, m));
                }
            }
            check(&mut checks, n, out.applied, calm);
        }
    }
    checks
}

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("SIM_SEED") {
        return vec![s.parse().expect("SIM_SEED is a number")];
    }
    let n: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    (1..=n).collect()
}

#[test]
fn the_metadata_log_never_diverges_and_ids_never_repeat() {
    let (mut total, mut installed) = (0, 0);
    for seed in seeds() {
        let checks = std::panic::catch_unwind(|| run(seed))
            .unwrap_or_else(|_| panic!("seed {seed} failed (replay: SIM_SEED={seed})"));
        total += checks.applied;
        installed += checks.installed;
        assert!(
            checks.applied_calm > 0,
            "seed {seed}: nothing committed once the network was quiet and every voter up"
        );
    }
    eprintln!("{total} applied entries checked; {installed} snapshots sent by leaders installed");
    assert!(installed > 0, "no voter ever caught up from a snapshot");
}
