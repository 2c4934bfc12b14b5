//! Response frames as a list of chunks, and the writer that sends them.
//!
//! Most responses are one encoded buffer. A Fetch response is its framing in small buffers
//! with the record bytes between them, either in memory (the direct-IO batch cache) or as
//! ranges of segment files. File ranges go from the page cache to the socket with
//! sendfile(2), never through user space. The socket is non-blocking (the connection sets
//! O_NONBLOCK; glommio accepts blocking sockets): when sendfile or writev meets a full
//! socket, the next piece is sent with a copying write through glommio, which waits for
//! room without blocking the reactor, and then the zero-copy path resumes. Every path
//! counts its bytes in [`FetchStats`].
//!
//! sendfile and pread wait for the disk when the range is not in the page cache, and the
//! whole shard with them. So a file range is first checked with cachestat(2); one with
//! pages missing is read into the page cache on the blocking thread pool ([`warm`]) while
//! the reactor serves other connections, then sent as a hot one.

pub use crate::shard::stats::FetchStats;
use crate::shard::stats::add;
pub use crate::storage::Chunk;
use bytes::Bytes;
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

/// One response frame, length prefix included.
pub struct Response {
    pub chunks: Vec<Chunk>,
}

impl From<Bytes> for Response {
    fn from(b: Bytes) -> Self {
        Response {
            chunks: vec![Chunk::Bytes(b)],
        }
    }
}

impl Response {
    pub fn len(&self) -> u64 {
        self.chunks.iter().map(Chunk::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole frame in memory (tests and the copying path).
    pub fn to_vec(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.len() as usize);
        for c in &self.chunks {
            match c {
                Chunk::Bytes(b) => out.extend_from_slice(b),
                Chunk::File {
                    fd, position, len, ..
                } => out.extend(pread_exact(fd.as_raw_fd(), *position, *len as usize)?),
            }
        }
        Ok(out)
    }
}

/// Makes sure `len` bytes at `position` of `fd` are in the page cache before the reactor
/// sends them: a range with pages missing is read on the blocking thread pool (through a
/// duplicate descriptor, so the read never outlives the file it reads), counted in
/// `cold_fill_bytes`. A range still not all cached after that (evicted meanwhile, or no
/// cachestat) is counted as a blocking read on the reactor and sent anyway.
pub(super) async fn warm(
    fd: &std::os::fd::OwnedFd,
    position: u64,
    len: u64,
    stats: &FetchStats,
) -> io::Result<()> {
    use crate::os::pagecache::{fill, note_cold_read_on_reactor, uncached_pages};
    // Without cachestat (Linux before 6.5) nothing tells a hot range from a cold one:
    // every range is read on the pool first, correct but a thread hop per range.
    let known = match uncached_pages(fd.as_raw_fd(), position, len) {
        Some(0) => return Ok(()),
        Some(_) => true,
        None => false,
    };
    let own = fd.try_clone()?;
    let filled = glommio::executor()
        .spawn_blocking(move || fill(own.as_raw_fd(), position, len))
        .await;
    filled?;
    add(&stats.cold_fill_bytes, len);
    if known && uncached_pages(fd.as_raw_fd(), position, len) != Some(0) {
        note_cold_read_on_reactor();
    }
    Ok(())
}

pub(super) fn pread_exact(fd: RawFd, position: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut out = vec![0u8; len];
    let mut done = 0usize;
    while done < len {
        // SAFETY: the buffer has `len - done` writable bytes from `done`.
        let n = unsafe {
            libc::pread(
                fd,
                out[done..].as_mut_ptr().cast(),
                len - done,
                (position + done as u64) as libc::off_t,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "segment shorter than the range being sent",
            ));
        }
        done += n as usize;
    }
    Ok(out)
}

/// Largest piece sent by a copying write before zero-copy is tried again.
const FALLBACK_PIECE_BYTES: usize = 256 * 1024;

/// Sends a frame. `zero_copy = false` forces copying writes (for comparison benchmarks).
pub async fn write_response(
    stream: &mut TcpStream,
    response: Response,
    stats: &FetchStats,
    zero_copy: bool,
) -> io::Result<()> {
    let sock = stream.as_raw_fd();
    let cork = response.len() >= CORK_MIN_BYTES;
    if cork {
        set_cork(sock, true);
    }
    let sent = write_chunks(stream, sock, response, stats, zero_copy).await;
    if cork {
        // Uncorking sends the last partial segment at once.
        set_cork(sock, false);
    }
    sent
}

/// Responses at least this large are sent corked (TCP_CORK), so that only full segments
/// leave until the whole frame is queued. The socket has TCP_NODELAY, and without the cork
/// every ACK that arrives between two sends pushes out the partial segment left at the
/// tail of the queue: sendfile moves 64 KiB per internal round and a loopback segment
/// carries 65483 bytes, so a large fetch went out as a full segment plus a 53-byte one
/// per round (measured with the `net:net_dev_xmit` tracepoint: 34 KB per packet on
/// average, against 52 KB for copying writes of 256 KiB, and more CPU per GiB).
const CORK_MIN_BYTES: u64 = 128 * 1024;

fn set_cork(sock: RawFd, on: bool) {
    if let Err(e) = crate::os::sockopt::set_cork(sock, on) {
        // Only the segment sizes change; the bytes still go out.
        tracing::debug!("TCP_CORK={on}: {e}");
    }
}

async fn write_chunks(
    stream: &mut TcpStream,
    sock: RawFd,
    response: Response,
    stats: &FetchStats,
    zero_copy: bool,
) -> io::Result<()> {
    let mut chunks = response.chunks.into_iter().peekable();
    while let Some(chunk) = chunks.next() {
        match chunk {
            Chunk::Bytes(first) => {
                // Gather this and the following memory chunks into one writev.
                let mut bufs = vec![first];
                while let Some(Chunk::Bytes(_)) = chunks.peek() {
                    if let Some(Chunk::Bytes(b)) = chunks.next() {
                        bufs.push(b);
                    }
                }
                send_memory(stream, sock, bufs, stats, zero_copy).await?;
            }
            Chunk::File {
                fd, position, len, ..
            } => {
                warm(&fd, position, len, stats).await?;
                send_file(
                    stream,
                    sock,
                    fd.as_raw_fd(),
                    position,
                    len,
                    stats,
                    zero_copy,
                )
                .await?;
            }
        }
    }
    Ok(())
}

async fn send_memory(
    stream: &mut TcpStream,
    sock: RawFd,
    mut bufs: Vec<Bytes>,
    stats: &FetchStats,
    zero_copy: bool,
) -> io::Result<()> {
    bufs.retain(|b| !b.is_empty());
    while !bufs.is_empty() {
        let sent = if zero_copy {
            let iov: Vec<libc::iovec> = bufs
                .iter()
                .take(64)
                .map(|b| libc::iovec {
                    iov_base: b.as_ptr() as *mut libc::c_void,
                    iov_len: b.len(),
                })
                .collect();
            // SAFETY: every iovec points into a live `Bytes` of at least `iov_len` bytes.
            let n = unsafe { libc::writev(sock, iov.as_ptr(), iov.len() as libc::c_int) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => 0,
                    _ => return Err(e),
                }
            } else {
                n as usize
            }
        } else {
            0
        };
        add(&stats.writev_bytes, sent as u64);
        consume(&mut bufs, sent);
        if bufs.is_empty() {
            break;
        }
        if sent == 0 {
            // The socket is full: glommio's write waits for room (one byte, then writev
            // again), or, without zero-copy, takes a whole piece.
            let b = bufs.remove(0);
            let piece = if zero_copy {
                1
            } else {
                b.len().min(FALLBACK_PIECE_BYTES)
            };
            stream.write_all(&b[..piece]).await?;
            add(&stats.fallback_bytes, piece as u64);
            add(&stats.fallback_count, 1);
            if piece < b.len() {
                bufs.insert(0, b.slice(piece..));
            }
        }
    }
    Ok(())
}

fn consume(bufs: &mut Vec<Bytes>, mut n: usize) {
    while n > 0 && !bufs.is_empty() {
        if bufs[0].len() <= n {
            n -= bufs[0].len();
            bufs.remove(0);
        } else {
            bufs[0] = bufs[0].slice(n..);
            n = 0;
        }
    }
}

async fn send_file(
    stream: &mut TcpStream,
    sock: RawFd,
    fd: RawFd,
    position: u64,
    len: u64,
    stats: &FetchStats,
    zero_copy: bool,
) -> io::Result<()> {
    let end = position + len;
    let mut at = position;
    while at < end {
        let mut sent = 0u64;
        if zero_copy {
            let mut off = at as libc::off_t;
            let want = (end - at).min(1 << 30) as usize;
            // SAFETY: plain syscall on descriptors this function was given; `off` is a
            // valid pointer for the kernel to update.
            let n = unsafe { libc::sendfile(sock, fd, &mut off, want) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => {}
                    // Some descriptors cannot be spliced: copy instead.
                    _ if e.raw_os_error() == Some(libc::EINVAL) => {}
                    _ => return Err(e),
                }
            } else if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment shorter than the range being sent",
                ));
            } else {
                sent = n as u64;
                add(&stats.sendfile_bytes, sent);
            }
        }
        at += sent;
        if at < end && sent == 0 {
            // The socket is full. glommio has no public "wait until writable", but its write
            // waits for room: send a single copied byte through it, then go back to
            // sendfile for the rest. Without zero-copy the copying write takes it all.
            let piece = if zero_copy {
                1
            } else {
                ((end - at) as usize).min(FALLBACK_PIECE_BYTES)
            };
            let bytes = pread_exact(fd, at, piece)?;
            stream.write_all(&bytes).await?;
            add(&stats.fallback_bytes, piece as u64);
            add(&stats.fallback_count, 1);
            at += piece as u64;
        }
    }
    Ok(())
}
