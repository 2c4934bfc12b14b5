//! The two halves of a client connection: plain TCP, or TLS driven by rustls over the
//! same glommio sockets.
//!
//! A connection reads and writes through two descriptors of one socket (see
//! `connection`). Over TLS both halves share one rustls `ServerConnection` (an
//! `Rc<RefCell<_>>`, never borrowed across an await): the reader feeds it ciphertext and
//! takes plaintext out, the writer puts plaintext in and sends the records it makes. Only
//! the writer writes to the socket, so records never interleave; what the reader's
//! processing queues for the peer (a KeyUpdate answer) leaves with the next response.
//!
//! A fetch over TLS cannot use sendfile (the kernel would send file bytes unencrypted):
//! file ranges are read with pread in pieces and encrypted in user space. Kernel TLS,
//! which would keep sendfile, is not done yet.

use super::response::{FetchStats, Response, pread_exact, write_response};
use crate::shard::stats::add;
use crate::storage::Chunk;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use rustls::ServerConnection;
use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::rc::Rc;

/// Ciphertext read from the socket per read.
const TLS_READ_CHUNK: usize = 32 * 1024;
/// Plaintext rustls holds before the writer must send it; also the size of a file piece
/// read for a TLS fetch.
const TLS_WRITE_CHUNK: usize = 256 * 1024;

pub enum ReadHalf {
    Plain(TcpStream),
    Tls(TlsRead),
}

pub enum WriteHalf {
    Plain(TcpStream),
    Tls(TlsWrite),
}

pub struct TlsRead {
    stream: TcpStream,
    conn: Rc<RefCell<ServerConnection>>,
    /// Ciphertext read and not yet taken by rustls.
    pending: Vec<u8>,
}

pub struct TlsWrite {
    stream: TcpStream,
    conn: Rc<RefCell<ServerConnection>>,
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Splits a connection whose TLS handshake is done into its halves.
pub fn tls_halves(
    read: TcpStream,
    write: TcpStream,
    conn: ServerConnection,
) -> (ReadHalf, WriteHalf) {
    let conn = Rc::new(RefCell::new(conn));
    (
        ReadHalf::Tls(TlsRead {
            stream: read,
            conn: conn.clone(),
            pending: Vec::new(),
        }),
        WriteHalf::Tls(TlsWrite {
            stream: write,
            conn,
        }),
    )
}

/// Sends everything rustls has queued for the peer.
async fn flush_tls(stream: &mut TcpStream, conn: &RefCell<ServerConnection>) -> io::Result<()> {
    loop {
        let mut out = Vec::new();
        {
            let mut c = conn.borrow_mut();
            while c.wants_write() {
                if c.write_tls(&mut out)? == 0 {
                    break;
                }
            }
        }
        if out.is_empty() {
            return Ok(());
        }
        stream.write_all(&out).await?;
    }
}

/// Runs a TLS handshake to its end on `stream`. Ciphertext that arrives with the client's
/// last handshake message (its first requests, often) stays inside `conn` for the reader.
/// The caller bounds the time it takes.
pub async fn handshake(
    stream: &mut TcpStream,
    conn: ServerConnection,
) -> io::Result<ServerConnection> {
    let conn = RefCell::new(conn);
    let mut buf = vec![0u8; TLS_READ_CHUNK];
    while conn.borrow().is_handshaking() {
        flush_tls(stream, &conn).await?;
        if !conn.borrow().is_handshaking() {
            break;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed during the TLS handshake",
            ));
        }
        let mut rest = buf.get(..n).unwrap_or_default();
        while !rest.is_empty() {
            let processed = {
                let mut c = conn.borrow_mut();
                c.read_tls(&mut rest)
                    .and_then(|_| c.process_new_packets().map_err(tls_error))
            };
            if let Err(e) = processed {
                // The alert rustls queued tells the client why, if it still listens.
                let _ = flush_tls(stream, &conn).await;
                return Err(e);
            }
        }
    }
    flush_tls(stream, &conn).await?;
    Ok(conn.into_inner())
}

impl ReadHalf {
    /// Reads plaintext; 0 at the end of the stream.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ReadHalf::Plain(s) => s.read(buf).await,
            ReadHalf::Tls(t) => t.read(buf).await,
        }
    }

    /// Waits until the first byte of something arrives; `false` at the end of the stream.
    /// Nothing is consumed (plain: a one-byte peek; TLS: ciphertext or plaintext waiting).
    pub async fn readable(&mut self) -> io::Result<bool> {
        match self {
            ReadHalf::Plain(s) => {
                let mut probe = [0u8; 1];
                Ok(s.peek(&mut probe).await? > 0)
            }
            ReadHalf::Tls(t) => {
                let waiting = t
                    .conn
                    .borrow_mut()
                    .process_new_packets()
                    .map_err(tls_error)?
                    .plaintext_bytes_to_read();
                if waiting > 0 || !t.pending.is_empty() {
                    return Ok(true);
                }
                let mut probe = [0u8; 1];
                Ok(t.stream.peek(&mut probe).await? > 0)
            }
        }
    }

    /// Reads at most `max` bytes onto the end of `buf` (whose capacity must allow them);
    /// 0 at the end of the stream. On plain TCP the bytes go straight from the socket into
    /// `buf`'s spare capacity, which is not zero-filled first: zeroing a produce request's
    /// frame before the read cost as much CPU as the kernel's copy of it.
    pub async fn read_into(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        let max = max.min(buf.capacity() - buf.len());
        let ReadHalf::Plain(s) = self else {
            let start = buf.len();
            buf.resize(start + max, 0);
            let n = self.read(&mut buf[start..]).await;
            buf.truncate(start + *n.as_ref().unwrap_or(&0));
            return n;
        };
        if max == 0 {
            return Ok(0);
        }
        loop {
            let spare = buf.spare_capacity_mut();
            // SAFETY: recv writes at most `max` bytes into the spare capacity, which has
            // room for them (checked above); the descriptor is the stream's, open while
            // `s` lives. No reference to uninitialized bytes is made.
            let n = unsafe {
                libc::recv(
                    s.as_raw_fd(),
                    spare.as_mut_ptr().cast::<libc::c_void>(),
                    max,
                    libc::MSG_DONTWAIT,
                )
            };
            if n >= 0 {
                let n = n as usize;
                // SAFETY: the kernel initialized these `n` bytes, within the capacity.
                unsafe { buf.set_len(buf.len() + n) };
                return Ok(n);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                // Nothing yet: wait until something arrives (or the end of the stream).
                io::ErrorKind::WouldBlock => {
                    let mut probe = [0u8; 1];
                    if s.peek(&mut probe).await? == 0 {
                        return Ok(0);
                    }
                }
                _ => return Err(e),
            }
        }
    }

    pub fn as_raw_fd(&self) -> std::os::fd::RawFd {
        match self {
            ReadHalf::Plain(s) => s.as_raw_fd(),
            ReadHalf::Tls(t) => t.stream.as_raw_fd(),
        }
    }
}

impl TlsRead {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.borrow_mut().reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed without close_notify: the end of the stream all the same.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if self.pending.is_empty() {
                self.pending.resize(TLS_READ_CHUNK, 0);
                let n = self.stream.read(&mut self.pending).await;
                let n = match n {
                    Ok(n) => n,
                    Err(e) => {
                        self.pending.clear();
                        return Err(e);
                    }
                };
                self.pending.truncate(n);
                if n == 0 {
                    return Ok(0);
                }
            }
            let mut c = self.conn.borrow_mut();
            let mut rest = &self.pending[..];
            let used = c.read_tls(&mut rest)?;
            self.pending.drain(..used);
            c.process_new_packets().map_err(tls_error)?;
            if used == 0
                && c.process_new_packets()
                    .map_err(tls_error)?
                    .plaintext_bytes_to_read()
                    == 0
            {
                return Err(io::Error::other("TLS input is stuck"));
            }
        }
    }
}

impl WriteHalf {
    /// Sends one response frame.
    pub async fn send(
        &mut self,
        response: Response,
        stats: &FetchStats,
        zero_copy: bool,
    ) -> io::Result<()> {
        match self {
            WriteHalf::Plain(s) => write_response(s, response, stats, zero_copy).await,
            WriteHalf::Tls(t) => t.send(response, stats).await,
        }
    }

    /// Ends the connection (a TLS connection says close_notify first).
    pub async fn shutdown(&mut self) {
        match self {
            WriteHalf::Plain(s) => {
                let _ = s.shutdown(Shutdown::Both).await;
            }
            WriteHalf::Tls(t) => {
                t.conn.borrow_mut().send_close_notify();
                let _ = flush_tls(&mut t.stream, &t.conn).await;
                let _ = t.stream.shutdown(Shutdown::Both).await;
            }
        }
    }
}

impl TlsWrite {
    async fn write_plain(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = self.conn.borrow_mut().writer().write(data)?;
            data = data.get(n..).unwrap_or_default();
            if !data.is_empty() || n == 0 {
                flush_tls(&mut self.stream, &self.conn).await?;
            }
        }
        Ok(())
    }

    async fn send(&mut self, response: Response, stats: &FetchStats) -> io::Result<()> {
        for chunk in response.chunks {
            match chunk {
                Chunk::Bytes(b) => self.write_plain(&b).await?,
                Chunk::File {
                    fd, position, len, ..
                } => {
                    super::response::warm(&fd, position, len, stats).await?;
                    let mut at = 0u64;
                    while at < len {
                        let piece = (len - at).min(TLS_WRITE_CHUNK as u64);
                        let bytes = pread_exact(fd.as_raw_fd(), position + at, piece as usize)?;
                        self.write_plain(&bytes).await?;
                        add(&stats.fallback_bytes, piece);
                        at += piece;
                    }
                }
            }
        }
        flush_tls(&mut self.stream, &self.conn).await
    }
}

/// Limits the plaintext rustls buffers for sending before the writer flushes it.
pub fn limit_buffers(conn: &mut ServerConnection) {
    conn.set_buffer_limit(Some(TLS_WRITE_CHUNK));
}
