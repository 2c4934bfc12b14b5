//! A follower's connection to its leader's Kafka listener: one request at a time, encoded
//! and decoded with `kafka-protocol`, every wait bounded, and a response frame larger than
//! the follower asked for refused before it is read.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("bad response: {0}")]
    Protocol(String),
}

pub struct LeaderConn {
    stream: TcpStream,
    correlation: i32,
    client_id: StrBytes,
    /// The largest response frame accepted.
    max_frame: usize,
}

/// `fut`, or `None` after `limit`.
async fn within<T>(limit: Duration, fut: impl std::future::Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(fut.await) }, async {
        glommio::timer::sleep(limit).await;
        None
    })
    .await
}

impl LeaderConn {
    pub async fn connect(
        host: &str,
        port: u16,
        me: i32,
        max_frame: usize,
    ) -> Result<LeaderConn, ClientError> {
        let addr = format!("{host}:{port}");
        let stream = within(Duration::from_secs(3), TcpStream::connect(addr.as_str()))
            .await
            .ok_or(ClientError::Timeout)?
            .map_err(|e| ClientError::Io(std::io::Error::other(e.to_string())))?;
        let _ = stream.set_nodelay(true);
        Ok(LeaderConn {
            stream,
            correlation: 0,
            client_id: StrBytes::from_string(format!("ringbroker-replica-{me}")),
            max_frame,
        })
    }

    /// Sends `req` as `api` `version` and waits at most `limit` for the answer.
    pub async fn call<Req, Resp>(
        &mut self,
        api: ApiKey,
        version: i16,
        req: &Req,
        limit: Duration,
    ) -> Result<Resp, ClientError>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        self.correlation = self.correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(self.client_id.clone()));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, Req::header_version(version))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        req.encode(&mut body, version)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let len = i32::try_from(body.len()).map_err(|_| ClientError::Protocol("too big".into()))?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(len);
        frame.extend_from_slice(&body);
        let correlation = self.correlation;
        let max_frame = self.max_frame;
        let stream = &mut self.stream;
        let exchange = async move {
            stream.write_all(&frame).await?;
            let mut size = [0u8; 4];
            stream.read_exact(&mut size).await?;
            let size = usize::try_from(i32::from_be_bytes(size))
                .ok()
                .filter(|s| *s <= max_frame)
                .ok_or_else(|| ClientError::Protocol("response frame size out of bounds".into()))?;
            let mut buf = vec![0u8; size];
            stream.read_exact(&mut buf).await?;
            Ok::<Bytes, ClientError>(Bytes::from(buf))
        };
        let mut buf = within(limit, exchange)
            .await
            .ok_or(ClientError::Timeout)??;
        let header = ResponseHeader::decode(&mut buf, Resp::header_version(version))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        if header.correlation_id != correlation {
            return Err(ClientError::Protocol(format!(
                "correlation id {} for request {correlation}",
                header.correlation_id
            )));
        }
        let resp =
            Resp::decode(&mut buf, version).map_err(|e| ClientError::Protocol(e.to_string()))?;
        if buf.has_remaining() {
            return Err(ClientError::Protocol("trailing bytes".into()));
        }
        Ok(resp)
    }
}
