//! The Kafka listener of one shard. Every shard binds the same port with SO_REUSEPORT
//! (glommio's `TcpListener::bind` sets it), and the kernel spreads connections over them.

use super::admission::ConnectionLimits;
use super::connection::{self, Activity, SaslSetup, Security};
use super::fetch_sessions::FetchSessions;
use super::handlers::Ctx;
use super::pool::MemoryPool;
use crate::config::security::{Listener, SecurityProtocol};
use crate::fatal::Contained;
use crate::shard::Shard;
use glommio::net::TcpListener;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// What every shard's listener shares: the request memory pool, the connection limits,
/// and what the secured listeners need (TLS configuration, SASL users).
pub struct Frontend {
    pub pool: Arc<MemoryPool>,
    pub connections: Arc<ConnectionLimits>,
    /// Loaded at start when a listener uses TLS, replaced when its files change.
    pub tls: Option<Arc<crate::security::tls::TlsStore>>,
    /// The SASL users: read from the data dir at start, changed by
    /// AlterUserScramCredentials.
    pub users: Arc<crate::server::durable::Durable<crate::security::credentials::Users>>,
    /// ACLs and the authorizer settings.
    pub authorizer: Arc<super::authorizer::Authorizer>,
}

impl Frontend {
    /// How connections of `listener` are secured.
    pub fn security(&self, config: &crate::config::BrokerConfig, listener: &Listener) -> Security {
        let sec = &config.security;
        Security {
            tls: if listener.protocol.tls() {
                self.tls.clone()
            } else {
                None
            },
            // On SSL the certificate names the client; on SASL_SSL the SASL user does.
            cert_principal: (listener.protocol == SecurityProtocol::Ssl)
                .then(|| sec.tls.principal_rules.clone()),
            sasl: listener.protocol.sasl().then(|| SaslSetup {
                users: self.users.clone(),
                mechanisms: sec.sasl_enabled_mechanisms.clone(),
                frame_max_bytes: usize::try_from(sec.sasl_max_receive_bytes).unwrap_or(usize::MAX),
                failure_delay: Duration::from_millis(sec.failed_authentication_delay_ms),
                session_max: (sec.connections_max_reauth_ms > 0)
                    .then(|| Duration::from_millis(sec.connections_max_reauth_ms)),
            }),
        }
    }
}

/// The open connections of a shard, so shutdown can stop their readers and the sweep can
/// close the idle and the stalled ones.
#[derive(Default)]
pub struct Connections {
    open: RefCell<HashMap<u64, (RawFd, Rc<Activity>)>>,
    next_id: Cell<u64>,
}

impl Connections {
    pub fn len(&self) -> usize {
        self.open.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shuts down the read side of every connection: readers see end of stream, writers
    /// still send the responses of requests already read.
    pub fn stop_reading(&self) {
        for (fd, _) in self.open.borrow().values() {
            // SAFETY: the descriptor stays open while it is registered here.
            unsafe { libc::shutdown(*fd, libc::SHUT_RD) };
        }
    }
}

impl Connections {
    /// Closes connections idle for `idle` and frames arriving for longer than
    /// `frame_timeout` (`connections.max.idle.ms`, `socket.frame.timeout.ms`).
    pub fn sweep(&self, idle: Duration, frame_timeout: Duration) {
        for (_, activity) in self.open.borrow().values() {
            activity.sweep(idle, frame_timeout);
        }
    }
}

/// Host and port clients are told to connect to: the listener's advertised address, else
/// the address this connection reached (right for clients on this host and on the same
/// network).
fn advertised(listener: &Listener, local: Option<SocketAddr>) -> (String, i32) {
    if let Some(a) = &listener.advertised
        && let Some((host, port)) = a.rsplit_once(':')
        && let Ok(port) = port.parse::<u16>()
    {
        return (host.to_string(), port as i32);
    }
    match local {
        Some(addr) => (addr.ip().to_string(), addr.port() as i32),
        None => ("127.0.0.1".to_string(), 9092),
    }
}

pub async fn accept_loop(
    shard: Rc<Shard>,
    socket: TcpListener,
    listener: Listener,
    conns: Rc<Connections>,
    frontend: Arc<Frontend>,
    fetch_sessions: Rc<FetchSessions>,
) {
    let security = frontend.security(&shard.config, &listener);
    loop {
        let stream = match socket.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors or similar: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let peer = stream.peer_addr().ok();
        let admitted = match frontend.connections.admit(peer.map(|a| a.ip())) {
            Ok(a) => a,
            Err(refused) => {
                // Closed at once (dropping the stream); the open connections go on.
                tracing::debug!(
                    "refusing a connection from {}: {refused}",
                    peer.map(|a| a.to_string()).unwrap_or_default()
                );
                continue;
            }
        };
        let (host, port) = advertised(&listener, stream.local_addr().ok());
        let ctx = Rc::new(Ctx {
            shard: shard.clone(),
            pool: frontend.pool.clone(),
            listener: listener.name.clone(),
            advertised_host: host,
            advertised_port: port,
            client_host: peer.map(|a| format!("/{}", a.ip())).unwrap_or_default(),
            principal: std::cell::RefCell::new("User:ANONYMOUS".to_string()),
            authorizer: frontend.authorizer.clone(),
            users: frontend.users.clone(),
            fetch_sessions: fetch_sessions.clone(),
        });
        let id = conns.next_id.get();
        conns.next_id.set(id + 1);
        let activity = Rc::new(Activity::new(stream.as_raw_fd()));
        conns
            .open
            .borrow_mut()
            .insert(id, (stream.as_raw_fd(), activity.clone()));
        let conns = conns.clone();
        let pool = frontend.pool.clone();
        shard.metrics.connection_opened();
        let shard = shard.clone();
        let security = security.clone();
        glommio::spawn_local(async move {
            // A bug that panics in the connection's own code closes this connection only.
            if Contained::new(connection::serve(ctx, stream, pool, activity, security))
                .await
                .is_err()
            {
                tracing::error!("a connection's reader panicked; it is closed");
            }
            conns.open.borrow_mut().remove(&id);
            shard.metrics.connection_closed();
            drop(admitted);
        })
        .detach();
    }
}
