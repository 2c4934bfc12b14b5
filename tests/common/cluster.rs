//! A cluster of real `ringbroker` processes for the cluster tests: N brokers, each a voter
//! of the controller quorum (combined mode), started together on free ports of 127.0.0.1,
//! with optional TCP proxies on the controller traffic between every two of them and in
//! front of every broker's inter-broker listener.
//!
//! Include with `mod common; #[path = "common/cluster.rs"] mod cluster;` (it uses
//! `crate::common`); its submodules are the Kafka requests it sends
//! (`cluster_requests.rs`) and the TCP proxy (`proxy.rs`).
//!
//! Wiring. Node `i` (ids 1..=N) listens for Kafka clients on its own free port and for
//! controller traffic on `controller.listen=127.0.0.1:C_i`. A node only connects out to the
//! addresses in its own `controller.quorum.voters`. Without proxies every node gets the same
//! voters, `j@127.0.0.1:C_j`. With proxies there is one proxy per ordered pair (i → j),
//! forwarding to C_j, and node i's voters name, for every peer j, the proxy (i → j)
//! (its own entry stays C_i). So everything i sends goes through the proxies (i → *), and
//! everything it receives through (* → i): `isolate(i)` cuts exactly those, whichever side
//! opened a connection, and `heal(i)` restores them.
//!
//! With proxies each node also has a second listener, BROKER (`inter.broker.listener.name`):
//! the replica fetches, transaction markers and verifications between brokers. Node j
//! advertises it at a proxy D_j in front of it, so every broker reaches j's data through
//! D_j. `isolate(i)` also cuts D_i (nobody fetches from i) and, in every other D_j, the
//! connections node i's process opens (i fetches from nobody): the data links are
//! partitioned with the controller links.
//!
//! Every wait has a timeout and fails naming what it waited for and what each broker said
//! last; when a test fails, the cluster prints its wiring and each broker its log tail.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use crate::common::{Broker, heavy_lock};

#[path = "proxy.rs"]
pub mod proxy;
#[path = "cluster_requests.rs"]
mod requests;
use proxy::Proxy;
#[allow(unused_imports)] // Part: for tests that name it
pub use requests::{Part, View};

/// Kafka's error codes the cluster tests look for.
pub const NONE: i16 = 0;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const LEADER_NOT_AVAILABLE: i16 = 5;
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
pub const INVALID_REPLICATION_FACTOR: i16 = 38;

/// Liveness settings of the test clusters: short, so fencing takes seconds.
pub const SESSION_TIMEOUT_MS: u64 = 3000;
pub const HEARTBEAT_INTERVAL_MS: u64 = 500;
/// `offsets.topic.num.partitions` of the test clusters.
pub const OFFSETS_PARTITIONS: i32 = 6;
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Every broker lists all the others and they agree on a controller.
pub const FORM_TIMEOUT: Duration = Duration::from_secs(60);
/// A created topic shows up with leaders on every broker.
pub const TOPIC_TIMEOUT: Duration = Duration::from_secs(30);
/// A dead or cut-off broker is fenced and its partitions have new leaders: the session
/// timeout, a Raft election, metadata reaching every broker, and slack for a loaded
/// 2-core machine.
pub const FAILOVER_TIMEOUT: Duration = Duration::from_secs(SESSION_TIMEOUT_MS / 1000 + 27);
/// Socket timeout of the harness's own requests (a CreateTopics goes through the quorum).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Polls `probe` every 100 ms until it returns `Ok`, and returns that value; after `timeout`
/// fails the test with `what` and the last `Err` (which should say what was seen).
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        let seen = match probe() {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}; last seen:\n{seen}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How a cluster is started.
#[derive(Debug, Clone)]
pub struct Options {
    pub nodes: usize,
    /// Route the controller traffic through proxies (needed for `isolate`).
    pub proxies: bool,
    /// More `--set KEY=VALUE` for every broker (after the harness's own, so they win).
    pub sets: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nodes: 3,
            proxies: false,
            sets: Vec::new(),
        }
    }
}

pub struct Node {
    pub id: i32,
    pub broker: Broker,
    pub controller_port: u16,
}

pub struct Cluster {
    nodes: Vec<Node>,
    /// (from, to) → the proxy `from` reaches `to`'s controller port through.
    proxies: BTreeMap<(i32, i32), Proxy>,
    /// node → the proxy every other broker reaches its inter-broker listener through.
    data_proxies: BTreeMap<i32, Proxy>,
    /// Nodes the test stopped or killed (and has not restarted).
    down: BTreeSet<i32>,
    isolated: BTreeSet<i32>,
    /// The process each isolated node had when it was cut off (its connections stay blocked
    /// in the other nodes' data proxies until healed).
    cut_pids: BTreeMap<i32, Option<u32>>,
    /// One cluster at a time per test binary (three brokers each on a 2-core machine).
    _serial: MutexGuard<'static, ()>,
}

/// `n` distinct ports that nothing listens on, each held by a listener until the caller
/// drops them (so nothing else the harness binds meanwhile, such as a proxy, gets one).
fn reserve_ports(n: usize) -> Vec<TcpListener> {
    (0..n).map(|_| crate::common::bind_unclaimed()).collect()
}

/// Other listeners on `port` than those of process `pid`. The broker binds its port with
/// SO_REUSEPORT, so a second process on the same port goes unnoticed (clients reach either
/// at random); this finds one, from /proc/net/tcp and the sockets among `pid`'s descriptors.
fn port_shared(port: u16, pid: u32) -> Option<String> {
    let mine: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|t| {
            let t = t.to_string_lossy().into_owned();
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let mut others = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let listening = f.get(3) == Some(&"0A");
            let on_port = f
                .get(1)
                .and_then(|a| a.rsplit_once(':'))
                .is_some_and(|(_, p)| u16::from_str_radix(p, 16) == Ok(port));
            if listening && on_port && f.get(9).is_some_and(|inode| !mine.contains(*inode)) {
                others.push(line.trim().to_string());
            }
        }
    }
    (!others.is_empty()).then(|| others.join("\n"))
}

impl Cluster {
    /// Three brokers, no proxies, the harness's settings.
    pub fn start3() -> Cluster {
        Cluster::start(Options::default())
    }

    /// Starts the brokers together, waits until each answers, then until they form a
    /// cluster (every broker lists all of them and they agree on a controller).
    pub fn start(opts: Options) -> Cluster {
        let serial = heavy_lock();
        let n = opts.nodes;
        let reserved = reserve_ports(3 * n);
        let ports: Vec<u16> = reserved
            .iter()
            .map(|l| l.local_addr().expect("local addr").port())
            .collect();
        let (kafka_ports, rest) = ports.split_at(n);
        let (controller_ports, data_ports) = rest.split_at(n);
        let ids: Vec<i32> = (1..=n as i32).collect();
        let ctrl_addr =
            |id: i32| SocketAddr::from(([127, 0, 0, 1], controller_ports[id as usize - 1]));
        let data_addr = |id: i32| SocketAddr::from(([127, 0, 0, 1], data_ports[id as usize - 1]));
        let mut proxies = BTreeMap::new();
        let mut data_proxies = BTreeMap::new();
        if opts.proxies {
            for &from in &ids {
                for &to in ids.iter().filter(|&&to| to != from) {
                    proxies.insert((from, to), Proxy::start(ctrl_addr(to)));
                }
                data_proxies.insert(from, Proxy::start(data_addr(from)));
            }
        }
        // The brokers bind them now.
        drop(reserved);
        let mut nodes = Vec::new();
        for &id in &ids {
            let voters: Vec<String> = ids
                .iter()
                .map(|&peer| match proxies.get(&(id, peer)) {
                    Some(p) => format!("{peer}@{}", p.addr),
                    None => format!("{peer}@{}", ctrl_addr(peer)),
                })
                .collect();
            let mut sets = vec![
                format!("node.id={id}"),
                format!("controller.quorum.voters={}", voters.join(",")),
                format!("controller.listen={}", ctrl_addr(id)),
                format!("broker.session.timeout.ms={SESSION_TIMEOUT_MS}"),
                format!("broker.heartbeat.interval.ms={HEARTBEAT_INTERVAL_MS}"),
                format!("offsets.topic.num.partitions={OFFSETS_PARTITIONS}"),
                "group.initial.rebalance.delay.ms=300".to_string(),
                "group.min.session.timeout.ms=500".to_string(),
            ];
            let kafka = kafka_ports[id as usize - 1];
            if let Some(d) = data_proxies.get(&id) {
                sets.push(format!(
                    "listeners=PLAINTEXT://127.0.0.1:{kafka},BROKER://{}",
                    data_addr(id)
                ));
                sets.push(format!(
                    "advertised.listeners=PLAINTEXT://127.0.0.1:{kafka},BROKER://{}",
                    d.addr
                ));
                sets.push(
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT".into(),
                );
                sets.push("inter.broker.listener.name=BROKER".into());
            }
            sets.extend(opts.sets.iter().cloned());
            let mut extra = vec!["--shards".to_string(), "1".to_string()];
            for s in sets {
                extra.push("--set".to_string());
                extra.push(s);
            }
            let label = format!("node {id}");
            let broker = if opts.proxies {
                Broker::launch_listeners(kafka, extra, &label)
            } else {
                Broker::launch(kafka, extra, &label)
            };
            nodes.push(Node {
                id,
                broker,
                controller_port: ctrl_addr(id).port(),
            });
        }
        let mut cluster = Cluster {
            nodes,
            proxies,
            data_proxies,
            down: BTreeSet::new(),
            isolated: BTreeSet::new(),
            cut_pids: BTreeMap::new(),
            _serial: serial,
        };
        for &id in &ids {
            cluster.node_mut(id).broker.wait_ready();
            cluster.check_port(id);
        }
        cluster.wait_formed(&ids);
        cluster
    }

    /// Fails the test if another process listens on node `id`'s Kafka or controller port.
    fn check_port(&self, id: i32) {
        let node = self.node(id);
        for (what, port) in [
            ("Kafka", node.broker.port),
            ("controller", node.controller_port),
        ] {
            if let Some(others) = node.broker.pid().and_then(|pid| port_shared(port, pid)) {
                panic!(
                    "node {id}'s {what} port {port} is also listened on by another process \
                     (a port picked twice?):\n{others}"
                );
            }
        }
    }

    pub fn ids(&self) -> Vec<i32> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Nodes running and not isolated: the ones whose Metadata must agree.
    pub fn live(&self) -> Vec<i32> {
        self.ids()
            .into_iter()
            .filter(|id| !self.down.contains(id) && !self.isolated.contains(id))
            .collect()
    }

    pub fn node(&self, id: i32) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id} in this cluster"))
    }

    fn node_mut(&mut self, id: i32) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id} in this cluster"))
    }

    pub fn broker(&self, id: i32) -> &Broker {
        &self.node(id).broker
    }

    /// "127.0.0.1:PORT" of node `id`'s Kafka listener.
    pub fn bootstrap(&self, id: i32) -> String {
        self.broker(id).bootstrap()
    }

    pub fn bootstrap_all(&self) -> String {
        self.ids()
            .iter()
            .map(|id| self.bootstrap(*id))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until every node of `expected` lists exactly `expected` as its brokers and
    /// they all name the same controller, one of them; returns the controller's id.
    pub fn wait_formed(&self, expected: &[i32]) -> i32 {
        let what = format!(
            "nodes {expected:?} to list exactly brokers {expected:?} and agree on a controller"
        );
        self.wait(&what, FORM_TIMEOUT, || self.agreed(expected))
    }

    /// The controller every live node names (waiting until they agree on one of them).
    pub fn controller(&self) -> i32 {
        let live = self.live();
        self.wait(
            "the live nodes to agree on a controller",
            FORM_TIMEOUT,
            || self.agreed(&live),
        )
    }

    fn agreed(&self, expected: &[i32]) -> Result<i32, String> {
        let mut views = Vec::new();
        for &id in expected {
            views.push(self.try_view(id, &[])?);
        }
        let show = || {
            views
                .iter()
                .map(View::summary)
                .collect::<Vec<_>>()
                .join("\n")
        };
        let controllers: BTreeSet<i32> = views.iter().map(|v| v.controller).collect();
        let ok = views.iter().all(|v| v.broker_ids() == expected)
            && controllers.len() == 1
            && controllers.iter().all(|c| expected.contains(c));
        if ok {
            Ok(views[0].controller)
        } else {
            Err(show())
        }
    }

    /// Waits until every live node describes `topic` with `partitions` partitions, each led
    /// (error NONE) by a live broker among its replicas, with `rf` replicas; returns the
    /// first live node's view of it.
    pub fn wait_topic(&self, topic: &str, partitions: i32, rf: usize) -> View {
        let live = self.live();
        let what = format!(
            "{topic} ({partitions} partitions, {rf} replicas) led on every live node {live:?}"
        );
        self.wait(&what, TOPIC_TIMEOUT, || {
            let mut first = None;
            for &id in &live {
                let v = self.try_view(id, &[topic])?;
                let parts = v.topic(topic);
                let ok = parts.len() == partitions as usize
                    && parts.values().all(|p| {
                        p.error == NONE
                            && live.contains(&p.leader)
                            && p.replicas.contains(&p.leader)
                            && p.replicas.len() == rf
                    });
                if !ok {
                    return Err(v.summary());
                }
                first.get_or_insert(v);
            }
            first.ok_or_else(|| "no live node".to_string())
        })
    }

    /// `wait_for`, with the processes that died behind the test's back named on failure.
    pub fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut() -> Result<T, String>,
    ) -> T {
        wait_for(what, timeout, || {
            probe().map_err(|seen| {
                let dead = self.unexpectedly_dead();
                if dead.is_empty() {
                    seen
                } else {
                    format!("{seen}\n(processes exited on their own: nodes {dead:?})")
                }
            })
        })
    }

    /// Nodes the test did not stop whose process has exited (a zombie or gone).
    pub fn unexpectedly_dead(&self) -> Vec<i32> {
        self.nodes
            .iter()
            .filter(|n| !self.down.contains(&n.id))
            .filter(|n| match n.broker.pid() {
                None => true,
                Some(pid) => std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| {
                        s.rsplit(')')
                            .next()
                            .is_some_and(|r| r.trim_start().starts_with('Z'))
                    })
                    .unwrap_or(true),
            })
            .map(|n| n.id)
            .collect()
    }

    // -------------------------------------------------------------------------------------
    // Faults.
    // -------------------------------------------------------------------------------------

    /// SIGKILL node `id`.
    pub fn kill(&mut self, id: i32) {
        self.node_mut(id).broker.kill();
        self.down.insert(id);
    }

    /// SIGTERM node `id` and wait until it has exited (successfully).
    pub fn stop(&mut self, id: i32) {
        self.down.insert(id);
        self.node_mut(id).broker.stop();
    }

    /// Starts a stopped or killed node again on its data dir and ports; waits until it
    /// answers ApiVersions (not until it has rejoined: see `wait_formed`).
    pub fn restart(&mut self, id: i32) {
        assert!(self.down.contains(&id), "node {id} is running");
        let broker = &mut self.node_mut(id).broker;
        broker.launch_again();
        broker.wait_ready();
        self.down.remove(&id);
        self.check_port(id);
    }

    /// Cuts every controller connection to and from node `id` (the proxies (id → *) and
    /// (* → id)) and every inter-broker connection (to its BROKER listener, and those its
    /// process opens to the others'); its client listener stays reachable.
    pub fn isolate(&mut self, id: i32) {
        assert!(
            !self.proxies.is_empty(),
            "isolate needs a cluster started with proxies"
        );
        self.isolated.insert(id);
        for ((from, to), p) in &self.proxies {
            if *from == id || *to == id {
                p.cut();
            }
        }
        let pid = self.broker(id).pid();
        for (node, d) in &self.data_proxies {
            if *node == id {
                d.cut();
            } else if let Some(pid) = pid {
                d.block_source(pid);
            }
        }
        self.cut_pids.insert(id, pid);
    }

    /// Restores node `id`'s controller and inter-broker connections (except to nodes
    /// still isolated).
    pub fn heal(&mut self, id: i32) {
        self.isolated.remove(&id);
        for ((from, to), p) in &self.proxies {
            if !self.isolated.contains(from) && !self.isolated.contains(to) {
                p.heal();
            }
        }
        if let Some(Some(pid)) = self.cut_pids.remove(&id) {
            for d in self.data_proxies.values() {
                d.unblock_source(pid);
            }
        }
        if let Some(d) = self.data_proxies.get(&id) {
            d.heal();
        }
    }

    /// What the proxy in front of node `id`'s inter-broker listener has carried.
    pub fn data_proxy_stats(&self, id: i32) -> Option<proxy::ProxyStats> {
        self.data_proxies.get(&id).map(Proxy::stats)
    }

    /// Bytes the proxies carried from node `id` to others and from others to it.
    pub fn proxied_bytes(&self, id: i32) -> (u64, u64) {
        let mut out = (0, 0);
        for ((from, to), p) in &self.proxies {
            let s = p.stats();
            if *from == id {
                out.0 += s.bytes_up;
                out.1 += s.bytes_down;
            } else if *to == id {
                out.0 += s.bytes_down;
                out.1 += s.bytes_up;
            }
        }
        out
    }

    /// The wiring and state of every node and proxy.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for n in &self.nodes {
            let state = if self.down.contains(&n.id) {
                "down"
            } else if self.isolated.contains(&n.id) {
                "isolated"
            } else {
                "up"
            };
            let _ = writeln!(
                s,
                "node {}: kafka {} controller 127.0.0.1:{} pid {:?} ({state})",
                n.id,
                n.broker.bootstrap(),
                n.controller_port,
                n.broker.pid()
            );
        }
        for ((from, to), p) in &self.proxies {
            let _ = writeln!(
                s,
                "proxy {from} -> {to}: {} -> {}{} {:?}, {} live",
                p.addr,
                p.target,
                if p.is_cut() { " CUT" } else { "" },
                p.stats(),
                p.live_connections()
            );
        }
        for (to, p) in &self.data_proxies {
            let _ = writeln!(
                s,
                "data proxy -> {to}: {} -> {}{} {:?}, {} live",
                p.addr,
                p.target,
                if p.is_cut() { " CUT" } else { "" },
                p.stats(),
                p.live_connections()
            );
        }
        s
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut s = self.describe();
            // Panics and errors of every broker's whole log (the tails printed next may have
            // scrolled past them).
            for n in &self.nodes {
                let log = n.broker.log();
                let lines: Vec<&str> = log.lines().collect();
                let mut notable: Vec<String> = Vec::new();
                for (i, line) in lines.iter().enumerate() {
                    if line.contains("panicked at") {
                        // The panic message is on the next line.
                        let msg = lines.get(i + 1).copied().unwrap_or_default();
                        notable.push(format!("{line} {msg}"));
                    } else if line.contains(" ERROR ") || line.contains("harness: start") {
                        notable.push(line.to_string());
                    }
                }
                let from = notable.len().saturating_sub(12);
                let _ = writeln!(s, "node {} starts, panics and errors:", n.id);
                for l in &notable[from..] {
                    let _ = writeln!(s, "    {}", l.chars().take(400).collect::<String>());
                }
            }
            eprintln!("----- cluster at failure -----\n{s}-----");
        }
    }
}
