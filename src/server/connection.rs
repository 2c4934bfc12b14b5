//! One client connection: framing, pipelining and in-order responses.
//!
//! The socket is used through two descriptors (the accepted one and a `dup` of it) so a
//! reader task and a writer task can use it at the same time without a lock. The reader
//! cuts frames and starts one task per request, handing the tasks in arrival order to the
//! writer through a queue of `max.inflight.requests` slots; the writer awaits them in that
//! order. So requests run concurrently, responses leave in request order (Kafka requires
//! it), and a client that does not read its responses stops being read.
//!
//! What one connection may hold is bounded (DESIGN §8): a frame's memory comes from the
//! broker's [`MemoryPool`] before it is allocated, and is only touched as its bytes arrive;
//! a frame must arrive within `socket.frame.timeout.ms`; a connection with nothing to do
//! for `connections.max.idle.ms` is closed. The two timeouts are enforced by a sweep of the
//! shard's connections ([`Activity::sweep`], about once a second), not by a timer per read. Each request runs [`Contained`]: a bug that
//! panics while handling it closes this connection and nothing else.

use super::handlers::{self, Ctx};
use super::pool::{MemoryPool, Overdraft, Reservation, pooled};
use crate::fatal::{Contained, Panicked};
use crate::os::sockopt;
use crate::security::sasl::Authenticator;
use crate::server::response::Response;
use crate::server::sasl_gate::{SaslGate, Verdict};
use crate::server::transport::{self, ReadHalf, WriteHalf};
use bytes::{Buf, Bytes, BytesMut};
use glommio::channels::local_channel;
use glommio::net::TcpStream;
use std::cell::Cell;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Frames up to this size are read into the connection's buffer; larger ones into a
/// buffer of their own.
const READ_CHUNK: usize = 64 * 1024;
/// Bytes asked of the socket by the first read of a frame, before its length is known:
/// enough for several small requests at once, little to copy when the frame turns out
/// large (its first bytes are copied into the frame's own buffer).
const FIRST_READ: usize = 16 * 1024;
/// A large frame's buffer grows (and is zero-filled) at most this far ahead of the bytes
/// that arrived, starting from `READ_CHUNK`, so a declared-but-unsent frame costs little.
const LARGE_READ_STEP: usize = 1 << 20;

#[derive(Debug, Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds socket.request.max.bytes = {max}")]
    TooLarge { len: i64, max: usize },
    #[error("negative frame length {0}")]
    Negative(i32),
    #[error("connection closed inside a frame")]
    Truncated,
    #[error("frame not complete within socket.frame.timeout.ms")]
    Stalled,
    #[error("idle for connections.max.idle.ms")]
    Idle,
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// Checks a frame length read from the wire before anything is allocated for it.
pub fn check_frame_len(len: i32, max: usize) -> Result<usize, FrameError> {
    let Ok(len) = usize::try_from(len) else {
        return Err(FrameError::Negative(len));
    };
    if len > max {
        return Err(FrameError::TooLarge {
            len: len as i64,
            max,
        });
    }
    Ok(len)
}

/// What the reader and the writer of one connection tell each other and the shard's sweep:
/// requests in flight, the last traffic, and since when a frame has been arriving.
pub struct Activity {
    /// The connection's socket, shut down by the sweep.
    fd: RawFd,
    /// Requests read and not yet answered.
    in_flight: Cell<usize>,
    /// The last time a byte was read or a response sent.
    last: Cell<Instant>,
    /// When the frame being read started (its wait for memory not counted); `None`
    /// between frames.
    frame_since: Cell<Option<Instant>>,
    /// Why the sweep shut the connection down, if it did.
    swept: Cell<Option<Swept>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Swept {
    Idle,
    Stalled,
}

impl Activity {
    pub fn new(fd: RawFd) -> Activity {
        Activity {
            fd,
            in_flight: Cell::new(0),
            last: Cell::new(Instant::now()),
            frame_since: Cell::new(None),
            swept: Cell::new(None),
        }
    }

    fn touch(&self) {
        self.last.set(Instant::now());
    }

    /// The reader is about to wait for the broker (request memory): the time does not
    /// count against the client. Returns what the frame has used so far.
    fn pause_frame(&self) -> Option<Duration> {
        self.frame_since.take().map(|t| t.elapsed())
    }

    fn resume_frame(&self, spent: Option<Duration>) {
        if let Some(spent) = spent {
            let now = Instant::now();
            self.frame_since
                .set(Some(now.checked_sub(spent).unwrap_or(now)));
        }
    }

    /// Shuts the connection down if its frame has been arriving longer than
    /// `frame_timeout`, or it has had nothing in flight and no traffic for `idle`. The
    /// reader then finds the end of the stream and reports why.
    pub fn sweep(&self, idle: Duration, frame_timeout: Duration) {
        let why = match self.frame_since.get() {
            Some(t) if t.elapsed() > frame_timeout => Swept::Stalled,
            None if self.in_flight.get() == 0 && self.last.get().elapsed() > idle => Swept::Idle,
            _ => return,
        };
        if self.swept.replace(Some(why)).is_none() {
            // SAFETY: the descriptor stays open while the connection is registered.
            unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
        }
    }

    /// The error a read that ended early stands for: the sweep's reason, or `otherwise`.
    fn ended(&self, otherwise: FrameError) -> FrameError {
        match self.swept.get() {
            Some(Swept::Idle) => FrameError::Idle,
            Some(Swept::Stalled) => FrameError::Stalled,
            None => otherwise,
        }
    }
}

/// The limits one connection's reader works under.
pub struct ReadLimits {
    pub frame_max_bytes: usize,
}

/// Cuts frames off a socket with the limits above.
pub struct FrameReader {
    buf: BytesMut,
    limits: ReadLimits,
    pool: Arc<MemoryPool>,
}

/// Reads up to `room` more bytes into `buf`; returns how many (0 at end of stream). Only
/// `room` bytes are zero-filled for the read.
async fn fill(stream: &mut ReadHalf, buf: &mut BytesMut, room: usize) -> std::io::Result<usize> {
    let start = buf.len();
    buf.resize(start + room.max(1), 0);
    let n = stream.read(&mut buf[start..]).await;
    buf.truncate(start + *n.as_ref().unwrap_or(&0));
    n
}

impl FrameReader {
    pub fn new(limits: ReadLimits, pool: Arc<MemoryPool>) -> FrameReader {
        FrameReader {
            buf: BytesMut::new(),
            limits,
            pool,
        }
    }

    /// Changes the largest frame accepted from the next frame on (a SASL listener reads
    /// small frames until the client has authenticated).
    pub fn set_frame_max_bytes(&mut self, max: usize) {
        self.limits.frame_max_bytes = max;
    }

    /// Waits for the first bytes of the next frame; `false` at the end of the stream. An
    /// idle connection keeps no read buffer: it waits for a byte with a one-byte peek, and
    /// only then reads into a buffer of its own.
    async fn await_frame_start(
        &mut self,
        stream: &mut ReadHalf,
        activity: &Activity,
    ) -> Result<bool, FrameError> {
        self.buf = BytesMut::new();
        if !stream.readable().await? {
            return match activity.swept.get() {
                Some(_) => Err(activity.ended(FrameError::Truncated)),
                None => Ok(false),
            };
        }
        let n = fill(stream, &mut self.buf, FIRST_READ).await?;
        activity.touch();
        Ok(n > 0)
    }

    /// Reads until `buf` holds `want` bytes.
    async fn fill_to(
        &mut self,
        stream: &mut ReadHalf,
        want: usize,
        activity: &Activity,
    ) -> Result<(), FrameError> {
        while self.buf.len() < want {
            let room = want - self.buf.len();
            if fill(stream, &mut self.buf, room).await? == 0 {
                return Err(activity.ended(FrameError::Truncated));
            }
            activity.touch();
        }
        Ok(())
    }

    /// Reads the next frame (without its length prefix). `None` at a clean end of stream.
    pub async fn next(
        &mut self,
        stream: &mut ReadHalf,
        activity: &Activity,
    ) -> Result<Option<Bytes>, FrameError> {
        if self.buf.is_empty() && !self.await_frame_start(stream, activity).await? {
            return Ok(None);
        }
        activity.frame_since.set(Some(Instant::now()));
        let frame = self.read_frame(stream, activity).await;
        activity.frame_since.set(None);
        frame.map(Some)
    }

    async fn read_frame(
        &mut self,
        stream: &mut ReadHalf,
        activity: &Activity,
    ) -> Result<Bytes, FrameError> {
        self.fill_to(stream, 4, activity).await?;
        let len = check_frame_len(
            i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]),
            self.limits.frame_max_bytes,
        )?;
        self.buf.advance(4);
        if len <= READ_CHUNK {
            // Memory first: while the pool is spent this connection is not read at all.
            // The wait is the broker's, so it does not count against the client's frame.
            let spent = activity.pause_frame();
            let reservation = self.pool.reserve(len as u64, None).await;
            activity.resume_frame(spent);
            self.fill_to(stream, len, activity).await?;
            let frame = self.buf.split_to(len).freeze();
            return Ok(pooled(frame, reservation));
        }
        // A large frame is read into its own buffer, which grows (and is reserved from the
        // pool) a step at a time as bytes arrive; see `pool` for why, and for the overdraft
        // that keeps partly read frames from waiting on each other forever.
        let mut reservation = Reservation::empty(&self.pool);
        let mut overdraft: Option<Overdraft> = None;
        let mut frame: Vec<u8> = Vec::new();
        frame.try_reserve_exact(len).map_err(|_| {
            FrameError::Io(std::io::Error::new(
                std::io::ErrorKind::OutOfMemory,
                "cannot allocate a frame",
            ))
        })?;
        let have = self.buf.len().min(len);
        if have > 0 {
            let spent = activity.pause_frame();
            reservation.merge(self.pool.reserve(have as u64, Some(&mut overdraft)).await);
            activity.resume_frame(spent);
        }
        frame.extend_from_slice(&self.buf[..have]);
        self.buf.advance(have);
        // `reserved` runs at most one step ahead of the bytes that arrived; the step starts
        // small and doubles as bytes keep coming, so a frame whose bytes never come holds
        // one small step, and one that streams in is read in large ones.
        let mut reserved = have;
        let mut step = READ_CHUNK;
        while frame.len() < len {
            let start = frame.len();
            let target = len.min(start + step);
            step = (step * 2).min(LARGE_READ_STEP);
            if target > reserved {
                let spent = activity.pause_frame();
                let more = self
                    .pool
                    .reserve((target - reserved) as u64, Some(&mut overdraft));
                reservation.merge(more.await);
                activity.resume_frame(spent);
                reserved = target;
            }
            let n = stream.read_into(&mut frame, target - start).await?;
            if n == 0 {
                return Err(activity.ended(FrameError::Truncated));
            }
            activity.touch();
        }
        drop(overdraft);
        Ok(pooled(frame, reservation))
    }
}

type RequestTask =
    glommio::Task<Result<Result<Option<Response>, handlers::RequestError>, Panicked>>;

/// How a listener secures its connections.
#[derive(Clone)]
pub struct Security {
    /// SSL and SASL_SSL listeners: the TLS configuration new connections take.
    pub tls: Option<Arc<crate::security::tls::TlsStore>>,
    /// SSL listeners: the client certificate's subject, mapped by these rules, is the
    /// principal.
    pub cert_principal: Option<crate::config::tls::PrincipalRules>,
    /// SASL_PLAINTEXT and SASL_SSL listeners: the users and mechanisms.
    pub sasl: Option<SaslSetup>,
}

#[derive(Clone)]
pub struct SaslSetup {
    pub users: Arc<crate::server::durable::Durable<crate::security::credentials::Users>>,
    pub mechanisms: Vec<crate::config::security::Mechanism>,
    /// Largest frame before authentication.
    pub frame_max_bytes: usize,
    pub failure_delay: Duration,
    /// `connections.max.reauth.ms`, when set.
    pub session_max: Option<Duration>,
}

/// A task whose answer is already known (the SASL gate's).
fn answered(bytes: Bytes) -> RequestTask {
    glommio::spawn_local(Contained::new(async move {
        Ok::<_, handlers::RequestError>(Some(Response::from(bytes)))
    }))
}

/// Serves one connection until the client closes it, a request cannot be answered, a
/// limit closes it, or the broker stops (which shuts the read side down).
pub async fn serve(
    ctx: Rc<Ctx>,
    mut stream: TcpStream,
    pool: Arc<MemoryPool>,
    activity: Rc<Activity>,
    security: Security,
) {
    let shard = ctx.shard.clone();
    let _ = stream.set_nodelay(true);
    // glommio accepts blocking sockets: its own reads and writes go through io_uring and
    // MSG_DONTWAIT, but the writer's sendfile and writev are plain syscalls and would put
    // the whole shard to sleep on a full socket. The flag belongs to the open file, so it
    // covers the dup below too.
    if let Err(e) = sockopt::set_nonblocking(stream.as_raw_fd()) {
        tracing::warn!("could not make a client socket non-blocking: {e}");
        return;
    }
    if let Some(algorithm) = &shard.config.socket_tcp_congestion
        && let Err(e) = sockopt::set_congestion(stream.as_raw_fd(), algorithm)
    {
        // Checked at startup; only the connection's congestion control differs.
        tracing::debug!("TCP_CONGESTION={algorithm} on a client socket: {e}");
    }
    // SAFETY: dup returns a new descriptor we own; it is handed to exactly one TcpStream.
    let write_fd = unsafe { libc::dup(stream.as_raw_fd()) };
    if write_fd < 0 {
        tracing::warn!(
            "dup of a client socket failed: {}",
            std::io::Error::last_os_error()
        );
        return;
    }
    // SAFETY: `write_fd` is a valid, owned socket descriptor (checked above).
    let writer = unsafe { TcpStream::from_raw_fd(write_fd) };
    let (mut reader_half, mut writer) = match &security.tls {
        None => (ReadHalf::Plain(stream), WriteHalf::Plain(writer)),
        Some(store) => {
            let mut conn = match rustls::ServerConnection::new(store.current()) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("cannot start a TLS connection: {e}");
                    return;
                }
            };
            transport::limit_buffers(&mut conn);
            // The handshake counts as a frame: the sweep closes one that stalls.
            activity.frame_since.set(Some(Instant::now()));
            let done = transport::handshake(&mut stream, conn).await;
            activity.frame_since.set(None);
            match done {
                Ok(conn) => {
                    if let Some(rules) = &security.cert_principal {
                        let chain = conn.peer_certificates();
                        match crate::security::certificate::principal(chain, rules) {
                            Ok(p) => *ctx.principal.borrow_mut() = p,
                            Err(e) => {
                                tracing::info!(
                                    "closing connection from {}: client certificate: {e}",
                                    ctx.client_host
                                );
                                return;
                            }
                        }
                    }
                    transport::tls_halves(stream, writer, conn)
                }
                Err(e) => {
                    tracing::info!(
                        "closing connection from {}: TLS handshake failed: {}",
                        ctx.client_host,
                        activity.ended(FrameError::Io(e))
                    );
                    return;
                }
            }
        }
    };
    let (tx, rx) = local_channel::new_bounded::<RequestTask>(shard.config.max_inflight_requests);

    let writer_shard = shard.clone();
    let writer_activity = activity.clone();
    let write_loop = glommio::spawn_local(Contained::new(async move {
        while let Some(task) = rx.recv().await {
            let result = task.await;
            writer_activity
                .in_flight
                .set(writer_activity.in_flight.get().saturating_sub(1));
            match result {
                Ok(Ok(Some(response))) => {
                    let zero_copy = writer_shard.config.fetch_zero_copy;
                    let sent = writer
                        .send(response, &writer_shard.fetch_stats, zero_copy)
                        .await;
                    writer_activity.touch();
                    if sent.is_err() {
                        break;
                    }
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    tracing::info!("closing connection: {e}");
                    break;
                }
                Err(Panicked) => break,
            }
        }
        // Wakes the reader if it is still waiting for bytes.
        writer.shutdown().await;
    }));

    let frame_max_bytes =
        usize::try_from(shard.config.socket_request_max_bytes).unwrap_or(usize::MAX);
    let mut reader = FrameReader::new(ReadLimits { frame_max_bytes }, pool);
    let mut gate = security.sasl.map(|sasl| {
        reader.set_frame_max_bytes(sasl.frame_max_bytes.min(frame_max_bytes));
        SaslGate::new(
            Authenticator::new(sasl.mechanisms),
            sasl.failure_delay,
            sasl.session_max,
        )
    });
    let mut authenticated = false;
    loop {
        match reader.next(&mut reader_half, &activity).await {
            Ok(Some(frame)) => {
                let verdict = match gate.as_mut() {
                    None => Verdict::Pass,
                    Some(g) if authenticated => g.after_authentication(&ctx, frame.clone()).await,
                    Some(g) => g.admit(&ctx, frame.clone()).await,
                };
                let task = match verdict {
                    Verdict::Pass => {
                        let ctx = ctx.clone();
                        glommio::spawn_local(Contained::new(async move {
                            handlers::handle(&ctx, frame).await
                        }))
                    }
                    Verdict::Answer(answer) => answered(answer),
                    Verdict::Authenticated(answer) => {
                        authenticated = true;
                        // Without sessions that end, the gate has nothing more to do.
                        if gate.as_ref().is_some_and(|g| !g.sessions_expire()) {
                            gate = None;
                        }
                        reader.set_frame_max_bytes(frame_max_bytes);
                        answered(answer)
                    }
                    Verdict::Close(answer, why) => {
                        tracing::info!("closing connection from {}: {why}", ctx.client_host);
                        if let Some(answer) = answer {
                            activity.in_flight.set(activity.in_flight.get() + 1);
                            let _ = tx.send(answered(answer)).await;
                        }
                        break;
                    }
                };
                activity.in_flight.set(activity.in_flight.get() + 1);
                if tx.send(task).await.is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::info!("closing connection: {e}");
                break;
            }
        }
    }
    // The writer answers what was read so far, then closes.
    drop(tx);
    if write_loop.await.is_err() {
        tracing::error!("closing connection: its writer panicked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_limits_are_checked_before_allocation() {
        assert_eq!(check_frame_len(10, 100).unwrap(), 10);
        assert_eq!(check_frame_len(100, 100).unwrap(), 100);
        assert!(matches!(
            check_frame_len(101, 100),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(matches!(
            check_frame_len(-1, 100),
            Err(FrameError::Negative(-1))
        ));
        assert!(matches!(
            check_frame_len(i32::MAX, 104_857_600),
            Err(FrameError::TooLarge { .. })
        ));
    }
}
