//! The Prometheus endpoint (`metrics.listen`): one small HTTP/1.1 listener on shard 0
//! that answers `GET /metrics` with every shard's counters, gathered over the mesh and
//! rendered in the text exposition format. Anything else gets 404 or 405; a request that
//! is malformed, larger than [`MAX_REQUEST_BYTES`] or slower than [`REQUEST_TIMEOUT`]
//! closes its connection. Each connection carries one request (`Connection: close`).

pub mod render;

use crate::shard::Shard;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

/// A scrape's request line and headers fit in far less.
pub const MAX_REQUEST_BYTES: usize = 8 << 10;
/// The whole request must arrive within this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more are closed at accept.
const MAX_CONNECTIONS: usize = 16;

/// What the bytes received so far say.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// No end of headers yet, and still under the size bound.
    Incomplete,
    /// Not HTTP/1.x as we take it, or over the size bound: the connection is closed.
    Bad(&'static str),
    Request {
        method: String,
        path: String,
    },
}

/// Parses a request head: `METHOD SP TARGET SP HTTP/1.x CRLF (header CRLF)* CRLF`. Only
/// the request line is looked at; the headers are only bounded.
pub fn parse(buf: &[u8]) -> Parsed {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() >= MAX_REQUEST_BYTES {
            return Parsed::Bad("request head too large");
        }
        return Parsed::Incomplete;
    };
    if end >= MAX_REQUEST_BYTES {
        return Parsed::Bad("request head too large");
    }
    let Some(head) = buf.get(..end) else {
        return Parsed::Bad("request head out of range");
    };
    let Ok(head) = std::str::from_utf8(head) else {
        return Parsed::Bad("request head is not UTF-8");
    };
    let line = head.split("\r\n").next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parsed::Bad("request line is not METHOD TARGET VERSION");
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Parsed::Bad("bad method");
    }
    if !target.starts_with('/') {
        return Parsed::Bad("bad request target");
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Parsed::Bad("not HTTP/1.x");
    }
    // The query string does not choose anything here.
    let path = target.split('?').next().unwrap_or_default();
    Parsed::Request {
        method: method.to_string(),
        path: path.to_string(),
    }
}

fn response(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Accepts scrapers until the task is dropped (at shutdown).
pub async fn serve(shard: Rc<Shard>, listener: TcpListener) {
    let active = Rc::new(Cell::new(0usize));
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("metrics: accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if active.get() >= MAX_CONNECTIONS {
            continue;
        }
        active.set(active.get() + 1);
        let (shard, active) = (shard.clone(), active.clone());
        glommio::spawn_local(async move {
            let served = glommio::timer::timeout(REQUEST_TIMEOUT * 2, async {
                Ok(answer(&shard, stream).await)
            })
            .await;
            if let Ok(Err(why)) = served {
                tracing::debug!("metrics: connection closed: {why}");
            }
            active.set(active.get().saturating_sub(1));
        })
        .detach();
    }
}

/// Reads one request and answers it.
async fn answer(shard: &Rc<Shard>, mut stream: TcpStream) -> Result<(), String> {
    let _ = stream.set_read_timeout(Some(REQUEST_TIMEOUT));
    let _ = stream.set_write_timeout(Some(REQUEST_TIMEOUT));
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let (method, path) = loop {
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before a whole request".into());
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        match parse(&buf) {
            Parsed::Incomplete => continue,
            Parsed::Bad(why) => {
                let _ = stream
                    .write_all(&response("400 Bad Request", "text/plain", why.as_bytes()))
                    .await;
                return Err(why.into());
            }
            Parsed::Request { method, path } => break (method, path),
        }
    };
    let reply = match (method.as_str(), path.as_str()) {
        ("GET", "/metrics") => {
            let text = render::render(shard.gather_metrics().await)
                .map_err(|e| format!("rendering failed: {e}"))?;
            response("200 OK", render::CONTENT_TYPE, text.as_bytes())
        }
        ("GET", _) => response("404 Not Found", "text/plain", b"not found; try /metrics\n"),
        _ => response(
            "405 Method Not Allowed",
            "text/plain",
            b"only GET is served\n",
        ),
    };
    stream.write_all(&reply).await.map_err(|e| e.to_string())?;
    let _ = stream.close().await;
    Ok(())
}

#[cfg(test)]
mod tests;
