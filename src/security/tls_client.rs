//! A broker's TLS connections to the other brokers (their SSL and SASL_SSL listeners, and
//! the controller port under mutual TLS): the rustls client configuration (the other
//! broker's certificate checked against `ssl.truststore.location` and the host name it is
//! reached at; this broker's own certificate presented when asked to), and a stream that
//! runs rustls, client or server side, over any async byte stream, for one task at a time.

use super::tls::TlsError;
use crate::config::security::{ClientAuth, SecurityConfig};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{self, Read, Write};
use std::sync::Arc;

const READ_CHUNK: usize = 32 * 1024;

fn pem_error(what: &'static str, path: &str, e: impl std::fmt::Display) -> TlsError {
    TlsError::Pem {
        what,
        path: path.to_string(),
        reason: e.to_string(),
    }
}

/// The configuration every inter-broker TLS connection of the broker shares: this broker's
/// certificate is presented when `present_certificate`, or when `ssl.client.auth` asks the
/// listeners' clients for one.
pub fn client_config(
    config: &SecurityConfig,
    present_certificate: bool,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let truststore = config
        .ssl_truststore_location
        .as_deref()
        .ok_or(TlsError::Missing {
            key: "ssl.truststore.location",
        })?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(truststore)
        .map_err(|e| pem_error("CA certificates", truststore, e))?
    {
        let ca = ca.map_err(|e| pem_error("CA certificates", truststore, e))?;
        roots
            .add(ca)
            .map_err(|e| TlsError::Config(format!("{truststore}: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots);
    let present = present_certificate || config.ssl_client_auth != ClientAuth::None;
    let client = match (present, &config.ssl_keystore_location) {
        (false, _) | (_, None) => builder.with_no_client_auth(),
        (true, Some(keystore)) => {
            let chain = CertificateDer::pem_file_iter(keystore)
                .map_err(|e| pem_error("the certificate chain", keystore, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| pem_error("the certificate chain", keystore, e))?;
            let key = PrivateKeyDer::from_pem_file(keystore)
                .map_err(|e| pem_error("the private key", keystore, e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsError::Config(format!("{keystore}: {e}")))?
        }
    };
    Ok(Arc::new(client))
}

/// rustls over `io`: a connection whose handshake `connect` (client side) or `accept`
/// (server side) completed.
pub struct TlsStream<S> {
    io: S,
    conn: rustls::Connection,
    buf: Vec<u8>,
}

/// A connection between brokers: plain, or TLS.
pub enum Link<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
}

impl<S: AsyncRead + AsyncWrite + Unpin> Link<S> {
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Link::Plain(s) => s.write_all(data).await,
            Link::Tls(s) => s.write_all(data).await,
        }
    }

    pub async fn read_exact(&mut self, out: &mut [u8]) -> io::Result<()> {
        match self {
            Link::Plain(s) => s.read_exact(out).await,
            Link::Tls(s) => s.read_exact(out).await,
        }
    }
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream<S> {
    /// Runs the handshake with the server reached as `host`. The caller bounds the time.
    pub async fn connect(
        io: S,
        config: Arc<rustls::ClientConfig>,
        host: &str,
    ) -> io::Result<TlsStream<S>> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let conn = rustls::ClientConnection::new(config, name).map_err(tls_error)?;
        TlsStream::handshake(io, conn.into()).await
    }

    /// Runs the handshake with a client, as the server. The caller bounds the time.
    pub async fn accept(io: S, config: Arc<rustls::ServerConfig>) -> io::Result<TlsStream<S>> {
        let conn = rustls::ServerConnection::new(config).map_err(tls_error)?;
        TlsStream::handshake(io, conn.into()).await
    }

    async fn handshake(io: S, conn: rustls::Connection) -> io::Result<TlsStream<S>> {
        let mut stream = TlsStream {
            io,
            conn,
            buf: vec![0u8; READ_CHUNK],
        };
        while stream.conn.is_handshaking() {
            stream.flush_tls().await?;
            if stream.conn.is_handshaking() {
                stream.read_tls().await?;
            }
        }
        stream.flush_tls().await?;
        Ok(stream)
    }

    async fn flush_tls(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            let mut out = Vec::new();
            self.conn.write_tls(&mut out)?;
            if out.is_empty() {
                break;
            }
            self.io.write_all(&out).await?;
        }
        Ok(())
    }

    /// Reads ciphertext from the socket into rustls.
    async fn read_tls(&mut self) -> io::Result<()> {
        let n = self.io.read(&mut self.buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the TLS connection",
            ));
        }
        let mut rest = self.buf.get(..n).unwrap_or_default();
        while !rest.is_empty() {
            self.conn.read_tls(&mut rest)?;
            self.conn.process_new_packets().map_err(tls_error)?;
        }
        Ok(())
    }

    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.conn.writer().write_all(data)?;
        self.flush_tls().await
    }

    pub async fn read_exact(&mut self, mut out: &mut [u8]) -> io::Result<()> {
        while !out.is_empty() {
            match self.conn.reader().read(out) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed the TLS session",
                    ));
                }
                Ok(n) => out = &mut out[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.read_tls().await?;
                    // A KeyUpdate answer, if any, leaves now.
                    self.flush_tls().await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
