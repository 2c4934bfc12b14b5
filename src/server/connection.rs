//! One client connection: framing, pipelining and in-order responses.
//!
//! The socket is used through two descriptors (the accepted one and a `dup` of it) so a
//! reader task and a writer task can use it at the same time without a lock. The reader
//! cuts frames and starts one task per request, handing the tasks in arrival order to the
//! writer through a queue of `max.inflight.requests` slots; the writer awaits them in that
//! order. So requests run concurrently, responses leave in request order (Kafka requires
//! it), and a client that does not read its responses stops being read.

use super::handlers::{self, Ctx};
use crate::server::response::{Response, write_response};
use crate::server::sockopt;
use bytes::{Buf, Bytes, BytesMut};
use futures_lite::AsyncReadExt;
use glommio::channels::local_channel;
use glommio::net::TcpStream;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd};
use std::rc::Rc;
use thiserror::Error;

/// Bytes asked of the socket per read while looking for frame boundaries.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug, Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds socket.request.max.bytes = {max}")]
    TooLarge { len: i64, max: usize },
    #[error("negative frame length {0}")]
    Negative(i32),
    #[error("connection closed inside a frame")]
    Truncated,
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// Checks a frame length read from the wire before anything is allocated for it.
pub fn check_frame_len(len: i32, max: usize) -> Result<usize, FrameError> {
    if len < 0 {
        return Err(FrameError::Negative(len));
    }
    if len as usize > max {
        return Err(FrameError::TooLarge {
            len: len as i64,
            max,
        });
    }
    Ok(len as usize)
}

/// Reads more bytes into `buf`; returns how many (0 at end of stream).
async fn fill(stream: &mut TcpStream, buf: &mut BytesMut) -> std::io::Result<usize> {
    let start = buf.len();
    buf.resize(start + READ_CHUNK, 0);
    let n = stream.read(&mut buf[start..]).await;
    buf.truncate(start + *n.as_ref().unwrap_or(&0));
    n
}

/// Reads the next frame (without its length prefix). `None` at a clean end of stream.
pub async fn read_frame(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<Bytes>, FrameError> {
    while buf.len() < 4 {
        if fill(stream, buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(FrameError::Truncated)
            };
        }
    }
    let len = check_frame_len(i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]), max)?;
    buf.advance(4);
    if buf.len() >= len {
        return Ok(Some(buf.split_to(len).freeze()));
    }
    // A large frame is read straight into its own buffer of the exact size.
    let mut frame = BytesMut::with_capacity(len);
    frame.extend_from_slice(buf);
    buf.clear();
    let have = frame.len();
    frame.resize(len, 0);
    stream
        .read_exact(&mut frame[have..])
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => FrameError::Truncated,
            _ => FrameError::Io(e),
        })?;
    Ok(Some(frame.freeze()))
}

/// Serves one connection until the client closes it, a request cannot be answered, or the
/// broker stops (which shuts the read side down).
pub async fn serve(ctx: Rc<Ctx>, mut stream: TcpStream) {
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
    let mut writer = unsafe { TcpStream::from_raw_fd(write_fd) };
    let (tx, rx) =
        local_channel::new_bounded::<glommio::Task<_>>(shard.config.max_inflight_requests);

    let writer_shard = shard.clone();
    let write_loop = glommio::spawn_local(async move {
        while let Some(task) = rx.recv().await {
            let result: Result<Option<Response>, handlers::RequestError> = task.await;
            match result {
                Ok(Some(response)) => {
                    let zero_copy = writer_shard.config.fetch_zero_copy;
                    let sent =
                        write_response(&mut writer, response, &writer_shard.fetch_stats, zero_copy)
                            .await;
                    if sent.is_err() {
                        break;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::info!("closing connection: {e}");
                    break;
                }
            }
        }
        // Wakes the reader if it is still waiting for bytes.
        let _ = writer.shutdown(Shutdown::Both).await;
    });

    let max = shard.config.socket_request_max_bytes as usize;
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        match read_frame(&mut stream, &mut buf, max).await {
            Ok(Some(frame)) => {
                let ctx = ctx.clone();
                let task = glommio::spawn_local(async move { handlers::handle(&ctx, frame).await });
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
    write_loop.await;
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
