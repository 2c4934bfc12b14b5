//! Framed TCP between the voters, on glommio.
//!
//! A node receives only on its `controller.listen` address and sends only on connections it
//! opens to the other voters' addresses, one per peer. A frame is `[u32 length][u8 kind]
//! [payload]`: a Raft message (protobuf), a broker heartbeat, or its answer. Raft tolerates
//! lost messages, so a peer that cannot be reached costs its queued frames, not a wait: the
//! queue is bounded and a full one drops.
//!
//! Every peer is untrusted input: lengths are bounded before anything is allocated, and a
//! frame that does not parse closes its connection. With `PeerTls` (the controller
//! listener is SSL) every connection is mutual TLS: a peer without a certificate that
//! chains to the truststore never gets a frame read.

use super::node::{decode_message, encode_message};
use crate::config::cluster::Voter;
use crate::security::tls_client::{Link, TlsStream};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::{TcpListener, TcpStream};
use raft::eraftpb::Message;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::Duration;

/// The largest frame (a snapshot of the metadata travels in one).
pub const FRAME_MAX: usize = 64 << 20;
const QUEUE_DEPTH: usize = 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);
/// A TLS handshake that takes longer is abandoned.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Mutual TLS between the voters: the server side requires a client certificate.
#[derive(Clone)]
pub struct PeerTls {
    pub server: std::sync::Arc<rustls::ServerConfig>,
    pub client: std::sync::Arc<rustls::ClientConfig>,
}

/// `fut`, or `None` after `limit`.
async fn within<T>(limit: Duration, fut: impl std::future::Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(fut.await) }, async {
        glommio::timer::sleep(limit).await;
        None
    })
    .await
}

const KIND_RAFT: u8 = 1;
const KIND_HEARTBEAT: u8 = 2;
const KIND_ACK: u8 = 3;

/// A broker telling the controller it is alive, and where clients reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub id: i32,
    pub host: String,
    pub port: u16,
    pub incarnation: u64,
    /// The broker is stopping: do not register it again.
    pub shutting_down: bool,
    /// Every listener of the broker (absent from older brokers).
    #[serde(default)]
    pub endpoints: Vec<super::image::Endpoint>,
}

/// The controller's answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAck {
    pub controller: i32,
    pub term: u64,
}

#[derive(Debug, Clone)]
pub enum Wire {
    Raft(Message),
    Heartbeat(Heartbeat),
    Ack(HeartbeatAck),
}

impl Wire {
    fn encode(&self) -> Option<Vec<u8>> {
        let (kind, body) = match self {
            Wire::Raft(m) => (KIND_RAFT, encode_message(m)?),
            Wire::Heartbeat(h) => (KIND_HEARTBEAT, serde_json::to_vec(h).ok()?),
            Wire::Ack(a) => (KIND_ACK, serde_json::to_vec(a).ok()?),
        };
        let len = u32::try_from(body.len().checked_add(1)?).ok()?;
        let mut out = Vec::with_capacity(body.len() + 5);
        out.extend_from_slice(&len.to_be_bytes());
        out.push(kind);
        out.extend_from_slice(&body);
        Some(out)
    }

    /// Parses one frame's body (kind and payload); `None` for anything malformed.
    pub fn decode(frame: &[u8]) -> Option<Wire> {
        let (kind, body) = frame.split_first()?;
        match *kind {
            KIND_RAFT => decode_message(body).map(Wire::Raft),
            KIND_HEARTBEAT => serde_json::from_slice(body).ok().map(Wire::Heartbeat),
            KIND_ACK => serde_json::from_slice(body).ok().map(Wire::Ack),
            _ => None,
        }
    }
}

/// The sending side: one queue per peer, drained by a task that keeps a connection open.
pub struct Transport {
    peers: HashMap<i32, LocalSender<Vec<u8>>>,
}

impl Transport {
    /// Listens on `listen` (frames go to `inbound`, each wrapped by `wrap`) and starts a
    /// sender per other voter.
    pub fn start<E: 'static>(
        me: i32,
        voters: &[Voter],
        listen: &str,
        tls: Option<PeerTls>,
        inbound: Rc<LocalSender<E>>,
        wrap: fn(Wire) -> E,
    ) -> std::io::Result<Transport> {
        let addr = resolve(listen).ok_or_else(|| {
            std::io::Error::other(format!("controller.listen {listen} resolves to nothing"))
        })?;
        let listener = TcpListener::bind(addr)?;
        let server = tls.as_ref().map(|t| t.server.clone());
        glommio::spawn_local(accept_loop(listener, server, inbound, wrap)).detach();
        let mut peers = HashMap::new();
        for v in voters.iter().filter(|v| v.id != me) {
            let (tx, rx) = local_channel::new_bounded(QUEUE_DEPTH);
            let client = tls.as_ref().map(|t| t.client.clone());
            glommio::spawn_local(send_loop(v.addr(), client, rx)).detach();
            peers.insert(v.id, tx);
        }
        Ok(Transport { peers })
    }

    /// Queues `w` for `to`; dropped when the queue is full or `to` is not a voter.
    pub fn send(&self, to: i32, w: &Wire) {
        let (Some(tx), Some(frame)) = (self.peers.get(&to), w.encode()) else {
            return;
        };
        let _ = tx.try_send(frame);
    }
}

fn resolve(addr: &str) -> Option<SocketAddr> {
    addr.to_socket_addrs().ok()?.next()
}

/// A connection to `addr`, under TLS when `client` is given (the peer's certificate must
/// name the host of `addr`).
async fn dial(
    addr: &str,
    client: Option<&std::sync::Arc<rustls::ClientConfig>>,
) -> Option<Link<TcpStream>> {
    let tcp = TcpStream::connect_timeout(resolve(addr)?, CONNECT_TIMEOUT)
        .await
        .ok()?;
    let _ = tcp.set_nodelay(true);
    let Some(config) = client else {
        return Some(Link::Plain(tcp));
    };
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match within(
        HANDSHAKE_TIMEOUT,
        TlsStream::connect(tcp, config.clone(), host),
    )
    .await
    {
        Some(Ok(s)) => Some(Link::Tls(Box::new(s))),
        Some(Err(e)) => {
            tracing::warn!("controller connection to {addr}: TLS handshake failed: {e}");
            None
        }
        None => None,
    }
}

async fn send_loop(
    addr: String,
    client: Option<std::sync::Arc<rustls::ClientConfig>>,
    rx: LocalReceiver<Vec<u8>>,
) {
    let mut conn: Option<Link<TcpStream>> = None;
    // After a failed connect, frames are dropped until this instant instead of each
    // waiting for a connect of its own: they would be stale by the time they arrived.
    let mut down_until: Option<std::time::Instant> = None;
    while let Some(frame) = rx.recv().await {
        if conn.is_none() {
            if down_until.is_some_and(|t| std::time::Instant::now() < t) {
                continue;
            }
            conn = dial(&addr, client.as_ref()).await;
            match &conn {
                Some(_) => down_until = None,
                None => {
                    down_until = Some(std::time::Instant::now() + RECONNECT_PAUSE);
                    continue;
                }
            }
        }
        if let Some(c) = conn.as_mut()
            && c.write_all(&frame).await.is_err()
        {
            conn = None;
        }
    }
}

async fn accept_loop<E: 'static>(
    listener: TcpListener,
    server: Option<std::sync::Arc<rustls::ServerConfig>>,
    inbound: Rc<LocalSender<E>>,
    wrap: fn(Wire) -> E,
) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                let (server, inbound) = (server.clone(), inbound.clone());
                glommio::spawn_local(async move {
                    let link = match server {
                        None => Link::Plain(stream),
                        Some(config) => {
                            match within(HANDSHAKE_TIMEOUT, TlsStream::accept(stream, config)).await
                            {
                                Some(Ok(s)) => Link::Tls(Box::new(s)),
                                Some(Err(e)) => {
                                    tracing::warn!(
                                        "controller listener: TLS handshake refused: {e}"
                                    );
                                    return;
                                }
                                None => return,
                            }
                        }
                    };
                    read_loop(link, inbound, wrap).await;
                })
                .detach();
            }
            Err(e) => {
                tracing::warn!("controller listener: {e}");
                glommio::timer::sleep(RECONNECT_PAUSE).await;
            }
        }
    }
}

async fn read_loop<E: 'static>(
    mut stream: Link<TcpStream>,
    inbound: Rc<LocalSender<E>>,
    wrap: fn(Wire) -> E,
) {
    let mut len = [0u8; 4];
    loop {
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let n = u32::from_be_bytes(len) as usize;
        if n == 0 || n > FRAME_MAX {
            tracing::warn!("controller connection: frame of {n} bytes; closed");
            return;
        }
        let mut frame = vec![0u8; n];
        if stream.read_exact(&mut frame).await.is_err() {
            return;
        }
        let Some(w) = Wire::decode(&frame) else {
            tracing::warn!("controller connection: a frame does not parse; closed");
            return;
        };
        if inbound.send(wrap(w)).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_garbage_is_refused() {
        let hb = Wire::Heartbeat(Heartbeat {
            id: 2,
            host: "h".into(),
            port: 9,
            incarnation: 5,
            shutting_down: false,
            endpoints: Vec::new(),
        });
        let bytes = hb.encode().expect("encodes");
        let len = u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
        assert_eq!(len, bytes.len() - 4);
        match Wire::decode(&bytes[4..]) {
            Some(Wire::Heartbeat(h)) => assert_eq!(h.incarnation, 5),
            other => panic!("{other:?}"),
        }
        let m = Message {
            from: 3,
            to: 1,
            term: 9,
            ..Default::default()
        };
        let bytes = Wire::Raft(m).encode().expect("encodes");
        match Wire::decode(&bytes[4..]) {
            Some(Wire::Raft(m)) => assert_eq!((m.from, m.to, m.term), (3, 1, 9)),
            other => panic!("{other:?}"),
        }
        for bad in [
            &[][..],
            &[9, 1, 2],
            &[KIND_HEARTBEAT, b'{'],
            &[KIND_RAFT, 0xff, 0xff],
        ] {
            assert!(Wire::decode(bad).is_none(), "{bad:?}");
        }
    }
}
