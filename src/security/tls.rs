//! The rustls server configuration of the SSL and SASL_SSL listeners, from Kafka's PEM
//! settings: `ssl.keystore.location` (the private key and the certificate chain, leaf
//! first), `ssl.truststore.location` (CA certificates client certificates must chain to)
//! and `ssl.client.auth`. The ring provider does the cryptography; TLS 1.2 and 1.3 are
//! offered with rustls's safe defaults.

use crate::config::security::{ClientAuth, SecurityConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("{key} is not set")]
    Missing { key: &'static str },
    #[error("cannot read {what} from {path}: {reason}")]
    Pem {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error("TLS configuration refused: {0}")]
    Config(String),
}

fn certificates(path: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |reason: String| TlsError::Pem {
        what,
        path: path.to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem("no CERTIFICATE in the file".into()));
    }
    Ok(certs)
}

/// Builds the server configuration every TLS connection of the broker's listeners shares.
pub fn server_config(config: &SecurityConfig) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    server_config_with(config, config.ssl_client_auth)
}

/// The server configuration with `client_auth` in place of `ssl.client.auth` (the
/// controller port always requires a certificate).
pub fn server_config_with(
    config: &SecurityConfig,
    client_auth: ClientAuth,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let keystore = config
        .ssl_keystore_location
        .as_deref()
        .ok_or(TlsError::Missing {
            key: "ssl.keystore.location",
        })?;
    let chain = certificates(keystore, "the certificate chain")?;
    let key = PrivateKeyDer::from_pem_file(keystore).map_err(|e| TlsError::Pem {
        what: "the private key",
        path: keystore.to_string(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        auth => {
            let truststore =
                config
                    .ssl_truststore_location
                    .as_deref()
                    .ok_or(TlsError::Missing {
                        key: "ssl.truststore.location",
                    })?;
            let mut roots = rustls::RootCertStore::empty();
            for ca in certificates(truststore, "CA certificates")? {
                roots
                    .add(ca)
                    .map_err(|e| TlsError::Config(format!("{truststore}: {e}")))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let verifier = match auth {
                ClientAuth::Requested => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let server = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(format!("{keystore}: {e}")))?;
    Ok(Arc::new(server))
}
