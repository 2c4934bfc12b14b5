//! A TCP proxy the cluster tests own, to cut the controller traffic between brokers (a
//! network partition) and restore it.
//!
//! `Proxy::start(target)` listens on a free port of 127.0.0.1; every connection it accepts
//! is joined to a new connection to `target`, and two threads copy the bytes both ways.
//! `cut()` shuts down every live connection (both sides, so both peers see the loss at
//! once) and closes new ones as soon as they are accepted, until `heal()`.
//! `block_source(pid)` does the same to the connections process `pid` opens (found from
//! /proc: the process holding the socket at the client's end), so one proxy in front of a
//! broker's inter-broker listener can shut out one peer broker. Dropping the proxy stops it
//! and closes everything.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a proxy tries to reach its target before it gives up on that connection (the
/// client sees it closed, as it would a refused connection).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the accept loop looks for new connections and for its stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(10);

/// What a proxy has carried so far (for failure messages and sanity checks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections joined to the target.
    pub connections: u64,
    /// Connections closed at once because the proxy was cut (or the target refused).
    pub refused: u64,
    /// Bytes copied client → target.
    pub bytes_up: u64,
    /// Bytes copied target → client.
    pub bytes_down: u64,
}

#[derive(Default)]
struct Shared {
    cut: AtomicBool,
    stop: AtomicBool,
    next_id: AtomicU64,
    /// Live connections: (client side, target side), by id.
    live: Mutex<HashMap<u64, (TcpStream, TcpStream)>>,
    /// Processes whose connections are refused (`block_source`).
    blocked: Mutex<Vec<u32>>,
    /// Live connections closed by `block_source`: their copies stop before writing.
    severed: Mutex<std::collections::HashSet<u64>>,
    connections: AtomicU64,
    refused: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

impl Shared {
    fn close_all(&self) {
        let live: Vec<(TcpStream, TcpStream)> = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, pair)| pair)
            .collect();
        for (a, b) in live {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }
}

pub struct Proxy {
    /// Where clients connect (the address to put in a voter entry).
    pub addr: SocketAddr,
    /// Where the proxy forwards to.
    pub target: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `target`.
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = crate::common::bind_unclaimed();
        listener
            .set_nonblocking(true)
            .expect("non-blocking proxy listener");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name(format!("proxy-{}", addr.port()))
            .spawn(move || accept_loop(listener, target, s))
            .expect("spawn the proxy's accept thread");
        Proxy {
            addr,
            target,
            shared,
            accept: Some(accept),
        }
    }

    /// Closes every live connection and refuses new ones until `heal`.
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        self.shared.close_all();
    }

    /// Lets connections through again.
    pub fn heal(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }

    pub fn is_cut(&self) -> bool {
        self.shared.cut.load(Ordering::SeqCst)
    }

    /// Closes the connections process `pid` opened through the proxy and refuses its new
    /// ones until `unblock_source`.
    pub fn block_source(&self, pid: u32) {
        self.shared
            .blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(pid);
        let port = self.addr.port();
        let mut live = self.shared.live.lock().unwrap_or_else(|p| p.into_inner());
        let theirs: Vec<u64> = live
            .iter()
            .filter(|(_, (client, _))| {
                client
                    .peer_addr()
                    .is_ok_and(|peer| opened_by(peer.port(), port, &[pid]))
            })
            .map(|(id, _)| *id)
            .collect();
        let mut severed = self
            .shared
            .severed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for id in theirs {
            severed.insert(id);
            if let Some((a, b)) = live.remove(&id) {
                let _ = a.shutdown(Shutdown::Both);
                let _ = b.shutdown(Shutdown::Both);
            }
        }
    }

    pub fn unblock_source(&self, pid: u32) {
        self.shared
            .blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|p| *p != pid);
    }

    /// Connections now open through the proxy.
    pub fn live_connections(&self) -> usize {
        self.shared
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub fn stats(&self) -> ProxyStats {
        let s = &self.shared;
        ProxyStats {
            connections: s.connections.load(Ordering::SeqCst),
            refused: s.refused.load(Ordering::SeqCst),
            bytes_up: s.bytes_up.load(Ordering::SeqCst),
            bytes_down: s.bytes_down.load(Ordering::SeqCst),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.cut.store(true, Ordering::SeqCst);
        self.shared.close_all();
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// The socket inode of the connection whose client end is local port `client_port` and
/// whose server end is local port `server_port` (from /proc/net/tcp).
fn client_inode(client_port: u16, server_port: u16) -> Option<String> {
    let port_of = |field: &str| {
        field
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    let text = std::fs::read_to_string("/proc/net/tcp").ok()?;
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (port_of(f.get(1)?) == Some(client_port) && port_of(f.get(2)?) == Some(server_port))
            .then(|| f.get(9).map(|s| s.to_string()))
            .flatten()
    })
}

/// Whether one of `pids` holds the client end of the connection from local port
/// `client_port` to the proxy's `server_port`.
fn opened_by(client_port: u16, server_port: u16, pids: &[u32]) -> bool {
    let Some(inode) = client_inode(client_port, server_port) else {
        return false;
    };
    let want = format!("socket:[{inode}]");
    pids.iter().any(|pid| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|fds| {
                fds.flatten().any(|e| {
                    std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy() == want)
                })
            })
            .unwrap_or(false)
    })
}

fn accept_loop(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    while !shared.stop.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((client, peer)) => {
                let blocked = shared
                    .blocked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                if !blocked.is_empty() && opened_by(peer.port(), port, &blocked) {
                    shared.refused.fetch_add(1, Ordering::SeqCst);
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                client
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
            Err(_) => {
                // EMFILE and the like: back off, keep serving.
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
        };
        if shared.cut.load(Ordering::SeqCst) {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        // The connect may take up to CONNECT_TIMEOUT; do it off the accept loop.
        let s = shared.clone();
        let _ = std::thread::Builder::new()
            .name("proxy-conn".into())
            .spawn(move || join(client, target, s));
    }
}

/// Connects `client` to `target` and copies both ways until either side closes or the
/// proxy is cut.
fn join(client: TcpStream, target: SocketAddr, shared: Arc<Shared>) {
    let _ = client.set_nonblocking(false);
    let _ = client.set_nodelay(true);
    let upstream = match TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) {
        Ok(u) => u,
        Err(_) => {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let clones = (
        client.try_clone(),
        upstream.try_clone(),
        client.try_clone(),
        upstream.try_clone(),
    );
    let (Ok(client_down), Ok(upstream_down), Ok(client_reg), Ok(upstream_reg)) = clones else {
        shared.refused.fetch_add(1, Ordering::SeqCst);
        let _ = client.shutdown(Shutdown::Both);
        let _ = upstream.shutdown(Shutdown::Both);
        return;
    };
    {
        let mut live = shared.live.lock().unwrap_or_else(|p| p.into_inner());
        // Cut while we were connecting: close instead of registering. (`cut` sets its flag
        // before it takes this lock, so a connection is either seen cut here or closed by
        // `cut`.)
        // Likewise for a source blocked meanwhile (`block_source` holds this lock while it
        // closes that source's registered connections).
        let blocked = shared
            .blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let from_blocked = !blocked.is_empty()
            && match (client.peer_addr(), client.local_addr()) {
                (Ok(peer), Ok(local)) => opened_by(peer.port(), local.port(), &blocked),
                _ => false,
            };
        if shared.cut.load(Ordering::SeqCst) || from_blocked {
            drop(live);
            shared.refused.fetch_add(1, Ordering::SeqCst);
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
            return;
        }
        live.insert(id, (client_reg, upstream_reg));
    }
    shared.connections.fetch_add(1, Ordering::SeqCst);
    let s = shared.clone();
    let up = std::thread::Builder::new()
        .name("proxy-up".into())
        .spawn(move || copy(client, upstream, id, &s, true));
    copy(upstream_down, client_down, id, &shared, false);
    if let Ok(t) = up {
        let _ = t.join();
    }
}

/// Copies `from` → `to` until EOF or an error, then shuts both down (so the other
/// direction ends too) and forgets the connection.
fn copy(mut from: TcpStream, mut to: TcpStream, id: u64, shared: &Shared, up: bool) {
    let counter = if up {
        &shared.bytes_up
    } else {
        &shared.bytes_down
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // A cut between the read and the write must not deliver these bytes.
        let severed = shared
            .severed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&id);
        if shared.cut.load(Ordering::SeqCst) || severed || to.write_all(&buf[..n]).is_err() {
            break;
        }
        counter.fetch_add(n as u64, Ordering::SeqCst);
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
    shared
        .live
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
}

/// The proxy itself, against an echo server: bytes go both ways, `cut` closes live
/// connections and refuses new ones, `heal` lets them through again.
#[test]
fn proxy_forwards_cuts_and_heals() {
    use std::io::BufRead;
    let echo = TcpListener::bind("127.0.0.1:0").expect("bind echo server");
    let target = echo.local_addr().expect("echo address");
    std::thread::spawn(move || {
        for conn in echo.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = conn.try_clone().expect("clone");
                for line in std::io::BufReader::new(conn).lines() {
                    let Ok(line) = line else { break };
                    if writeln!(w, "{line}").is_err() {
                        break;
                    }
                }
            });
        }
    });
    let proxy = Proxy::start(target);
    let talk = |s: &mut TcpStream, msg: &str| -> std::io::Result<String> {
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        writeln!(s, "{msg}")?;
        let mut line = String::new();
        std::io::BufReader::new(s.try_clone()?).read_line(&mut line)?;
        Ok(line.trim_end().to_string())
    };
    let mut a = TcpStream::connect(proxy.addr).expect("connect through the proxy");
    assert_eq!(talk(&mut a, "hello").expect("echo"), "hello");
    assert_eq!(proxy.live_connections(), 1);

    proxy.cut();
    // The live connection is gone: EOF or an error, never an echo.
    assert_ne!(talk(&mut a, "after cut").ok().as_deref(), Some("after cut"));
    let mut b = TcpStream::connect(proxy.addr).expect("the listener still accepts");
    assert_ne!(talk(&mut b, "while cut").ok().as_deref(), Some("while cut"));
    assert_eq!(proxy.live_connections(), 0);

    proxy.heal();
    let mut c = TcpStream::connect(proxy.addr).expect("connect after heal");
    assert_eq!(talk(&mut c, "healed").expect("echo after heal"), "healed");
    // The proxy's threads count a connection after the client's connect returns: wait for
    // the counts to settle (a loaded machine delays them).
    let settled = |s: &ProxyStats| {
        (s.connections, s.refused) == (2, 1) && s.bytes_up >= 13 && s.bytes_down >= 13
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !settled(&proxy.stats()) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = proxy.stats();
    assert!(
        settled(&s),
        "two connections forwarded and one refused: {s:?}"
    );
}
