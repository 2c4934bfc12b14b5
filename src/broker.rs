//! The process: lock the data directory, load metadata, start one executor per shard, wait
//! for SIGTERM/SIGINT, then stop gracefully.
//!
//! Shutdown, in phases every shard goes through together:
//! 1. stop accepting and stop reading requests; answer those already read;
//! 2. wait until every shard has drained (other shards may still route work here);
//! 3. flush and close every log; the executors end and the process exits 0.

use crate::config::BrokerConfig;
use crate::config::security::Listener;
use crate::server::admission::ConnectionLimits;
use crate::server::fetch_sessions::FetchSessions;
use crate::server::listener::{self, Connections, Frontend};
use crate::server::pool::MemoryPool;
use crate::shard::Shard;
use crate::shard::messages::MeshMsg;
use crate::shard::meta::{self, Metadata};
use anyhow::{Context, bail};
use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorBuilder, Placement};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Depth of each shard-to-shard queue; a full queue makes the sender wait (backpressure).
mod cluster_links;
mod ports;

const MESH_QUEUE_DEPTH: usize = 1024;
const TICK: Duration = Duration::from_millis(100);
/// Ticks between two sweeps of the connections for idle and stalled ones.
const SWEEP_EVERY_TICKS: u64 = 10;
/// How long stopping waits for connections to finish their in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping broker of a cluster waits for its controlled shutdown.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(8);

/// Threads of each shard's blocking pool.
const BLOCKING_THREADS: usize = 4;

const IO_MEMORY_MIN: usize = 256 << 10;
const IO_MEMORY_MAX: usize = 8 << 20;

/// io_uring registers each shard's io_memory as locked memory: all shards together must
/// fit `ulimit -l`, with room left for the rings themselves.
pub fn io_memory_per_shard(memlock_bytes: Option<u64>, shards: usize) -> usize {
    let limit = memlock_bytes.unwrap_or(IO_MEMORY_MAX as u64 * 4 * shards as u64);
    let per = limit / (4 * shards.max(1) as u64);
    (per as usize).clamp(IO_MEMORY_MIN, IO_MEMORY_MAX)
}

/// Takes an exclusive lock on `<data>/.lock` so two brokers never share a data directory
/// (and `ringbroker repair` never runs under a broker).
pub fn lock_data_dir(config: &BrokerConfig) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let path = config.data_dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        bail!(
            "data dir {} is in use by another ringbroker process",
            config.data_dir.display()
        );
    }
    Ok(file)
}

/// `ringbroker users add`: adds or replaces a user's credential for one mechanism in the
/// data dir, which must not be in use by a running broker (it takes the same lock).
pub fn add_user(
    data_dir: &std::path::Path,
    mechanism: crate::config::security::Mechanism,
    user: &str,
    password: &str,
    iterations: u32,
) -> anyhow::Result<()> {
    let config = BrokerConfig {
        data_dir: data_dir.to_path_buf(),
        ..Default::default()
    };
    let _lock = lock_data_dir(&config)?;
    let mut users = crate::security::credentials::Users::load(data_dir)?;
    users.set(user, mechanism, password, iterations)?;
    users.save(data_dir)?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
#[error("stopped by signal {0}")]
struct StoppedBySignal(libc::c_int);

struct Shared {
    /// In a cluster: where clients reach this broker (told to the controller).
    /// In a cluster: this broker's listeners as it registers them.
    clustered: Option<Vec<crate::cluster::image::Endpoint>>,
    inter_broker: Option<Arc<crate::shard::replica::InterBrokerClient>>,
    controller_tls: Option<crate::cluster::transport::PeerTls>,
    /// Stopping begins: shard 0 has the controller move leadership off this broker.
    leaving: AtomicBool,
    /// Shard 0 is done leaving the cluster (or there is none).
    left: AtomicBool,
    producer_ids: Arc<crate::producer::ProducerIdAllocator>,
    frontend: Arc<Frontend>,
    stopping: AtomicBool,
    drained: AtomicUsize,
    /// Shards whose logs and groups are loaded. No shard listens before all are: the
    /// kernel may hand a first connection to any shard, and its requests reach every
    /// other shard over the mesh.
    loaded: AtomicUsize,
}

enum Startup {
    Ready,
    Failed(String),
}

pub fn run(mut config: BrokerConfig) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if config.shards == 0 {
        config.shards = cores;
    }
    let shards = config.shards;
    let mut listeners: Vec<(Listener, SocketAddr)> = Vec::new();
    for l in config.listeners()? {
        let addr: SocketAddr = l
            .bind
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve listener address {}", l.bind))?
            .next()
            .with_context(|| format!("listener address {} resolves to nothing", l.bind))?;
        listeners.push((l, addr));
    }
    if listeners.is_empty() {
        bail!("no listener configured");
    }
    let tls = if listeners.iter().any(|(l, _)| l.protocol.tls()) {
        Some(crate::security::tls::TlsStore::start(&config.security)?)
    } else {
        None
    };
    let _lock = lock_data_dir(&config)?;
    // The shards bind with SO_REUSEPORT, which would let a second broker share the port and
    // take half its clients: each address is claimed and checked first (`ports`). The
    // claims are held until this function returns, when the broker has stopped.
    let mut claims = ports::Claims::default();
    for (l, addr) in &listeners {
        claims.ensure_port_free(&addr.to_string(), &format!("listener {}", l.name))?;
    }
    if let Some(addr) = &config.metrics_listen {
        claims.ensure_port_free(addr, "metrics.listen")?;
    }
    if config.cluster.node_id.is_some()
        && let Some(addr) = config.cluster.controller_listen_addr()
    {
        claims.ensure_port_free(&addr, "controller.listen")?;
    }
    // Absolute from here on: io_uring opens of relative paths fail (glommio passes no
    // working-directory descriptor), and the default data dir is the relative ./data.
    config.data_dir = std::fs::canonicalize(&config.data_dir)
        .with_context(|| format!("cannot resolve data dir {}", config.data_dir.display()))?;
    // In a cluster the metadata is the controller quorum's log (under `<data>/__cluster`),
    // applied once the node runs; a broker alone keeps it in `__ringbroker_meta.toml`.
    let links = cluster_links::prepare(&config, &listeners)?;
    let clustered = links.as_ref().map(|l| l.endpoints.clone());
    let inter_broker = links.as_ref().map(|l| l.inter_broker.clone());
    let controller_tls = links.and_then(|l| l.controller_tls);
    let users = crate::security::credentials::Users::load(&config.data_dir)?;
    let acls =
        crate::security::acl::AclSet::load(&config.data_dir).map_err(|e| anyhow::anyhow!(e))?;
    if clustered.is_some() && !acls.acls.is_empty() {
        tracing::warn!(
            "{} ACL bindings in {} are not used: a broker of a cluster uses the cluster's",
            acls.acls.len(),
            crate::security::acl::ACLS_FILE
        );
    }
    if listeners.iter().any(|(l, _)| l.protocol.sasl()) && users.users.is_empty() {
        tracing::warn!(
            "a SASL listener is configured but no user exists: add them with `ringbroker users add`"
        );
    }
    let metadata = match clustered {
        Some(_) => Metadata {
            cluster: Some(meta::ClusterView {
                node: config.cluster.node_id.unwrap_or(0),
                ..Default::default()
            }),
            ..Default::default()
        },
        None => {
            let (metadata, added) =
                meta::ensure_offsets_topic(meta::load(&config.data_dir)?, &config);
            if added {
                meta::persist_blocking(&config.data_dir, &metadata)?;
            }
            metadata
        }
    };
    let metadata = Arc::new(metadata);
    let io_memory = config
        .io_memory_bytes
        .unwrap_or_else(|| io_memory_per_shard(crate::os::limits::memlock_limit(), shards));
    let signals = crate::os::signals::block_stop_signals();
    // A panic in a request's own handling closes its connection; anywhere else it stops
    // the whole process (see `crate::fatal`).
    crate::fatal::install_hook();
    crate::fatal::faults();
    let nofile = crate::os::limits::raise_nofile_limit();
    let max_connections = config.limits.effective_max_connections(nofile);
    tracing::info!(
        "file descriptors: {nofile}; up to {max_connections} client connections (two \
         descriptors each), the rest for segment files; request memory pool {} bytes",
        config.limits.queued_max_request_bytes
    );
    let frontend = Arc::new(Frontend {
        pool: MemoryPool::new(config.limits.queued_max_request_bytes),
        connections: ConnectionLimits::new(max_connections, config.limits.max_connections_per_ip),
        tls,
        users: Arc::new(crate::server::durable::Durable::new(
            users,
            config
                .data_dir
                .join(crate::security::credentials::USERS_FILE),
        )),
        authorizer: Arc::new(crate::server::authorizer::Authorizer::new(
            &config.security,
            acls,
            &config.data_dir,
        )),
    });

    let config = Arc::new(config);
    let producer_ids = match clustered {
        Some(_) => crate::producer::ProducerIdAllocator::for_cluster(),
        None => crate::producer::ProducerIdAllocator::open(&config.data_dir)
            .context("cannot open the producer id allocator")?,
    };
    let shared = Arc::new(Shared {
        clustered: clustered.clone(),
        inter_broker,
        controller_tls,
        leaving: AtomicBool::new(false),
        left: AtomicBool::new(false),
        producer_ids: Arc::new(producer_ids),
        frontend,
        stopping: AtomicBool::new(false),
        drained: AtomicUsize::new(0),
        loaded: AtomicUsize::new(0),
    });
    let mesh = MeshBuilder::<MeshMsg, _>::full(shards, MESH_QUEUE_DEPTH);
    let (startup_tx, startup_rx) = mpsc::channel::<(usize, Startup)>();
    let mut go_senders = Vec::with_capacity(shards);
    let mut threads = Vec::with_capacity(shards);

    for i in 0..shards {
        let placement = if i < cores {
            Placement::Fixed(i)
        } else {
            Placement::Unbound
        };
        let builder = LocalExecutorBuilder::new(placement)
            // Work moved off the reactor (buffered writes, warming cold reads, unlinks,
            // walking large compressed batches) runs on threads the kernel may place on
            // any core; several, so a cold read being warmed does not hold up the writes.
            .blocking_thread_pool_placement(glommio::PoolPlacement::Unbound(BLOCKING_THREADS))
            .name(&format!("shard-{i}"))
            .io_memory(io_memory);
        let (go_tx, go_rx) = mpsc::channel::<bool>();
        go_senders.push(go_tx);
        let startup_tx = startup_tx.clone();
        let (config, shared, mesh, metadata, listeners) = (
            config.clone(),
            shared.clone(),
            mesh.clone(),
            metadata.clone(),
            listeners.clone(),
        );
        let thread = std::thread::Builder::new()
            .name(format!("shard-{i}"))
            .spawn(move || {
                // Blocking file calls made on this thread are counted (see os::pagecache).
                crate::os::pagecache::on_reactor();
                let executor = match builder.make() {
                    Ok(e) => e,
                    Err(e) => {
                        let msg = format!(
                            "cannot start shard {i}: {e}. io_uring needs {io_memory} bytes of \
                             locked memory per shard: raise `ulimit -l`, or lower \
                             io.memory.bytes or shards"
                        );
                        let _ = startup_tx.send((i, Startup::Failed(msg)));
                        return;
                    }
                };
                let _ = startup_tx.send((i, Startup::Ready));
                // Every executor must exist before any joins the mesh, which waits for
                // all of them.
                if go_rx.recv() != Ok(true) {
                    return;
                }
                executor.run(shard_main(
                    config, shared, mesh, metadata, listeners, shards, startup_tx,
                ));
            })
            .context("cannot spawn a shard thread")?;
        threads.push(thread);
    }

    // Startup (recovery of many logs) can take long: a stop signal meanwhile is honoured
    // instead of staying pending until every shard is up.
    let wait_for = |what: &str| -> anyhow::Result<()> {
        let mut ready = 0;
        while ready < shards {
            match startup_rx.recv_timeout(Duration::from_millis(100)) {
                Ok((_, Startup::Ready)) => ready += 1,
                Ok((_, Startup::Failed(msg))) => bail!("{msg}"),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(sig) = crate::os::signals::take_signal(&signals, Duration::ZERO) {
                        return Err(StoppedBySignal(sig).into());
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("a shard thread ended while {what}")
                }
            }
        }
        Ok(())
    };
    let built = wait_for("creating its executor");
    for go in &go_senders {
        let _ = go.send(built.is_ok());
    }
    let started = built.and_then(|()| wait_for("starting"));
    if let Err(e) = started {
        shared.stopping.store(true, Ordering::SeqCst);
        for t in threads {
            let _ = t.join();
        }
        // A stop request during startup is a clean stop, not a failure.
        return match e.downcast_ref::<StoppedBySignal>() {
            Some(StoppedBySignal(sig)) => {
                tracing::info!("signal {sig} during startup: stopped");
                Ok(())
            }
            None => Err(e),
        };
    }
    let names: Vec<String> = listeners
        .iter()
        .map(|(l, addr)| format!("{}://{addr} ({})", l.name, l.protocol.name()))
        .collect();
    tracing::info!(
        "ringbroker listening on {} with {shards} shards",
        names.join(", ")
    );

    let sig = loop {
        if let Some(sig) = crate::os::signals::take_signal(&signals, Duration::from_secs(3600)) {
            break sig;
        }
    };
    tracing::info!("signal {sig}: stopping");
    // A broker of a cluster first hands its partitions' leadership to others (Kafka's
    // controlled shutdown), while it still serves.
    shared.leaving.store(true, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + LEAVE_TIMEOUT;
    while !shared.left.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    shared.stopping.store(true, Ordering::SeqCst);
    for t in threads {
        let _ = t.join();
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shard_main(
    config: Arc<BrokerConfig>,
    shared: Arc<Shared>,
    mesh: MeshBuilder<MeshMsg, glommio::channels::channel_mesh::Full>,
    metadata: Arc<Metadata>,
    listeners: Vec<(Listener, SocketAddr)>,
    shards: usize,
    startup: mpsc::Sender<(usize, Startup)>,
) {
    let (senders, receivers) = match mesh.join().await {
        Ok(m) => m,
        Err(e) => {
            let _ = startup.send((
                0,
                Startup::Failed(format!("cannot join the shard mesh: {e}")),
            ));
            return;
        }
    };
    let shard = Shard::new(
        config,
        senders,
        shards,
        metadata.clone(),
        shared.producer_ids.clone(),
    );
    let id = shard.id;
    *shard.inter_broker.borrow_mut() = shared.inter_broker.clone();
    shard.serve_mesh(receivers);
    shard.apply_metadata(metadata).await;
    if id == 0
        && let Some(endpoints) = shared.clustered.clone()
    {
        let tls = shared.controller_tls.clone();
        match crate::shard::controller::Controller::start(shard.clone(), endpoints, tls).await {
            Ok(c) => *shard.controller.borrow_mut() = Some(c),
            Err(e) => {
                let _ = startup.send((0, Startup::Failed(format!("{e:#}"))));
                return;
            }
        }
    }
    // Before the listener opens, so this shard's groups are there for its first requests.
    shard.load_groups().await;
    shared.loaded.fetch_add(1, Ordering::SeqCst);
    while shared.loaded.load(Ordering::SeqCst) < shards && !shared.stopping.load(Ordering::SeqCst) {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }

    let conns = Rc::new(Connections::default());
    let limits = &shard.config.limits;
    let fetch_sessions = Rc::new(FetchSessions::new(
        id,
        shards,
        limits.fetch_session_cache_slots,
        Duration::from_millis(limits.fetch_session_eviction_ms),
        usize::try_from(limits.broker_partitions_max).unwrap_or(usize::MAX),
    ));
    // A shard that cannot listen reports it and still takes part in the shutdown below,
    // which the main thread starts at once.
    // The Prometheus endpoint, on shard 0 only: a scrape gathers every shard over the mesh.
    let metrics_listener = match &shard.config.metrics_listen {
        Some(addr) if id == 0 => glommio::net::TcpListener::bind(addr.as_str())
            .map(Some)
            .map_err(|e| format!("shard 0: cannot listen on metrics.listen {addr}: {e}")),
        _ => Ok(None),
    };
    let mut metrics = None;
    let mut sockets = Vec::new();
    let mut failed = metrics_listener.as_ref().err().cloned();
    for (l, addr) in &listeners {
        if failed.is_some() {
            break;
        }
        match glommio::net::TcpListener::bind(addr) {
            Ok(socket) => sockets.push((l.clone(), socket)),
            Err(e) => {
                failed = Some(format!(
                    "shard {id}: cannot listen on {addr} ({}): {e}",
                    l.name
                ))
            }
        }
    }
    let mut accept = Vec::new();
    match failed {
        Some(msg) => {
            let _ = startup.send((id, Startup::Failed(msg)));
        }
        None => {
            if let Ok(Some(l)) = metrics_listener {
                metrics = Some(glommio::spawn_local(crate::server::metrics::serve(
                    shard.clone(),
                    l,
                )));
            }
            for (l, socket) in sockets {
                accept.push(glommio::spawn_local(listener::accept_loop(
                    shard.clone(),
                    socket,
                    l,
                    conns.clone(),
                    shared.frontend.clone(),
                    fetch_sessions.clone(),
                )));
            }
            let _ = startup.send((id, Startup::Ready));
        }
    }

    // The log cleaner (compaction), in its own low-share task queue.
    let cleaner = crate::shard::cleaner::start(shard.clone());
    // Sealed segments checked again in the background (`log.scrub.interval.ms`).
    let scrubber = crate::shard::scrub::start(shard.clone());
    // In a cluster: leaders' high watermarks and ISRs, followers' fetchers.
    let replication = crate::shard::replica::start(shard.clone());
    let limits = &shard.config.limits;
    let idle = Duration::from_millis(limits.connections_max_idle_ms);
    let frame_timeout = Duration::from_millis(limits.socket_frame_timeout_ms);
    let mut ticks: u64 = 0;
    while !shared.stopping.load(Ordering::SeqCst) {
        glommio::timer::sleep(TICK).await;
        if id == 0 && shared.leaving.load(Ordering::SeqCst) && !shared.left.load(Ordering::SeqCst) {
            let controller = shard.controller.borrow().clone();
            if let Some(c) = controller {
                c.leave().await;
            }
            shared.left.store(true, Ordering::SeqCst);
        }
        shard.tick().await;
        ticks += 1;
        // About once a second: the connections' timeouts need no finer grain.
        if ticks.is_multiple_of(SWEEP_EVERY_TICKS) {
            conns.sweep(idle, frame_timeout);
        }
    }

    // Phase 1: no new connections or requests; finish those already read.
    drop(accept);
    drop(metrics);
    drop(cleaner);
    drop(scrubber);
    drop(replication);
    conns.stop_reading();
    let deadline = std::time::Instant::now() + DRAIN_TIMEOUT;
    while !conns.is_empty() && std::time::Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    if !conns.is_empty() {
        tracing::warn!(
            "shard {id}: {} connections did not finish in time",
            conns.len()
        );
    }
    // Phase 2: other shards may still route requests here until they have drained too.
    shared.drained.fetch_add(1, Ordering::SeqCst);
    while shared.drained.load(Ordering::SeqCst) < shards {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    // Phase 3: make everything durable and release the files.
    shard.log_fetch_stats(true);
    shard.close_logs().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_memory_fits_the_memlock_limit() {
        assert_eq!(io_memory_per_shard(Some(8 << 20), 2), 1 << 20);
        assert_eq!(io_memory_per_shard(Some(8 << 20), 64), 256 << 10);
        assert_eq!(io_memory_per_shard(Some(1 << 40), 2), 8 << 20);
        assert_eq!(io_memory_per_shard(None, 4), 8 << 20);
    }
}
