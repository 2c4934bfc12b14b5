//! A broker's connection to another broker's Kafka listener (a follower's to its leader,
//! a transaction coordinator's to a partition leader): one request at a time, encoded and
//! decoded with `kafka-protocol`, every wait bounded, and a response frame larger than the
//! caller asked for refused before it is read.
//!
//! It goes to the other broker's `inter.broker.listener.name` listener, over TLS and with a
//! SASL login when that listener's protocol asks for them (`InterBrokerClient`).

use crate::config::inter_broker::InterBroker;
use crate::config::security::Mechanism;
use crate::security::sasl_client::{ScramClient, plain_token};
use crate::security::tls_client::{Link, TlsStream};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use glommio::net::TcpStream;
use kafka_protocol::messages::{
    ApiKey, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How this broker reaches the others: the listener, and its TLS configuration when that
/// listener's protocol is SSL or SASL_SSL. Built once at start.
pub struct InterBrokerClient {
    pub link: InterBroker,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("bad response: {0}")]
    Protocol(String),
    #[error("SASL login refused: {0}")]
    Login(String),
}

pub struct LeaderConn {
    stream: Link<TcpStream>,
    /// When the SASL session the server granted ends (KIP-368): the connection is not
    /// used past it.
    session_ends: Option<Instant>,
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
    /// Connects to `host:port`, another broker's inter-broker listener, with the TLS and
    /// SASL that `client` asks for (plain TCP without one).
    pub async fn connect(
        client: Option<&InterBrokerClient>,
        host: &str,
        port: u16,
        me: i32,
        max_frame: usize,
    ) -> Result<LeaderConn, ClientError> {
        let addr = format!("{host}:{port}");
        let tcp = within(Duration::from_secs(3), TcpStream::connect(addr.as_str()))
            .await
            .ok_or(ClientError::Timeout)?
            .map_err(|e| ClientError::Io(std::io::Error::other(e.to_string())))?;
        let _ = tcp.set_nodelay(true);
        let stream = match client.and_then(|c| c.tls.clone()) {
            Some(config) => Link::Tls(Box::new(
                within(
                    Duration::from_secs(5),
                    TlsStream::connect(tcp, config, host),
                )
                .await
                .ok_or(ClientError::Timeout)??,
            )),
            None => Link::Plain(tcp),
        };
        let mut conn = LeaderConn {
            stream,
            session_ends: None,
            correlation: 0,
            client_id: StrBytes::from_string(format!("ringbroker-replica-{me}")),
            max_frame,
        };
        if let Some(login) = client.and_then(|c| c.link.sasl.as_ref()) {
            conn.log_in(login).await?;
        }
        Ok(conn)
    }

    /// Whether the SASL session has ended (or ends within a second): reconnect instead.
    pub fn expired(&self) -> bool {
        self.session_ends
            .is_some_and(|end| Instant::now() + Duration::from_secs(1) >= end)
    }

    /// SaslHandshake v1 and SaslAuthenticate v2, one round for PLAIN, two for SCRAM.
    async fn log_in(
        &mut self,
        login: &crate::config::inter_broker::SaslLogin,
    ) -> Result<(), ClientError> {
        let limit = Duration::from_secs(5);
        let hs: SaslHandshakeResponse = self
            .call(
                ApiKey::SaslHandshake,
                1,
                &SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static_str(login.mechanism.name())),
                limit,
            )
            .await?;
        if hs.error_code != 0 {
            return Err(ClientError::Login(format!(
                "mechanism {} not enabled there (error {})",
                login.mechanism.name(),
                hs.error_code
            )));
        }
        let started = Instant::now();
        let lifetime = match login.mechanism {
            Mechanism::Plain => {
                let token = plain_token(&login.username, &login.password);
                self.authenticate(token, limit).await?.1
            }
            m => {
                let mut scram = ScramClient::new(m, &login.username, &login.password);
                let (first, _) = self.authenticate(scram.first(), limit).await?;
                // The salted password is thousands of HMAC rounds: off the reactor.
                let (scram, last) = glommio::executor()
                    .spawn_blocking(move || {
                        let last = scram.client_final(&first);
                        (scram, last)
                    })
                    .await;
                let last = last.map_err(|e| ClientError::Login(e.to_string()))?;
                let (server_final, lifetime) = self.authenticate(last, limit).await?;
                scram
                    .finish(&server_final)
                    .map_err(|e| ClientError::Login(e.to_string()))?;
                lifetime
            }
        };
        self.session_ends = u64::try_from(lifetime)
            .ok()
            .filter(|ms| *ms > 0)
            .map(|ms| started + Duration::from_millis(ms));
        Ok(())
    }

    /// One SaslAuthenticate round: the server's bytes and the session lifetime it gave.
    async fn authenticate(
        &mut self,
        token: Vec<u8>,
        limit: Duration,
    ) -> Result<(Bytes, i64), ClientError> {
        let r: SaslAuthenticateResponse = self
            .call(
                ApiKey::SaslAuthenticate,
                2,
                &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)),
                limit,
            )
            .await?;
        if r.error_code != 0 {
            return Err(ClientError::Login(format!(
                "error {}: {}",
                r.error_code,
                r.error_message.as_deref().unwrap_or("")
            )));
        }
        Ok((r.auth_bytes, r.session_lifetime_ms))
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
