//! The rustls server configuration of the SSL and SASL_SSL listeners, from Kafka's PEM
//! settings: `ssl.keystore.location` (the private key and the certificate chain, leaf
//! first), `ssl.truststore.location` (CA certificates client certificates must chain to)
//! and `ssl.client.auth`. The ring provider does the cryptography; TLS 1.2 and 1.3 are
//! offered with rustls's safe defaults.
//!
//! [`TlsStore`] holds the configuration new connections take, and replaces it when the
//! files change (checked every `ssl.reload.interval.ms` on a thread of its own, never on a
//! shard): connections already open keep the one they started with. A change that does not
//! make a valid configuration (a file that does not parse, a key that is not the
//! certificate's) is refused with one ERROR, and the previous configuration stays.

use crate::config::security::{ClientAuth, SecurityConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
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

fn read(path: &str, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Pem {
        what,
        path: path.to_string(),
        reason: e.to_string(),
    })
}

fn certificates(
    path: &str,
    bytes: &[u8],
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |reason: String| TlsError::Pem {
        what,
        path: path.to_string(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem("no CERTIFICATE in the file".into()));
    }
    Ok(certs)
}

/// The contents of the key and trust files, read together.
struct Files {
    keystore: Vec<u8>,
    truststore: Option<Vec<u8>>,
}

impl Files {
    fn read(config: &SecurityConfig, client_auth: ClientAuth) -> Result<Files, TlsError> {
        let keystore = config
            .ssl_keystore_location
            .as_deref()
            .ok_or(TlsError::Missing {
                key: "ssl.keystore.location",
            })?;
        let truststore = match (client_auth, &config.ssl_truststore_location) {
            (ClientAuth::None, _) | (_, None) => None,
            (_, Some(path)) => Some(read(path, "CA certificates")?),
        };
        Ok(Files {
            keystore: read(keystore, "the private key and certificate chain")?,
            truststore,
        })
    }

    fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(&self.keystore);
        h.update([u8::from(self.truststore.is_some())]);
        h.update(self.truststore.as_deref().unwrap_or_default());
        h.finalize().into()
    }
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
    build(config, client_auth, &Files::read(config, client_auth)?)
}

fn build(
    config: &SecurityConfig,
    client_auth: ClientAuth,
    files: &Files,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let keystore = config.ssl_keystore_location.as_deref().unwrap_or_default();
    let chain = certificates(keystore, &files.keystore, "the certificate chain")?;
    let key = PrivateKeyDer::from_pem_slice(&files.keystore).map_err(|e| TlsError::Pem {
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
            let bytes = files.truststore.as_deref().ok_or(TlsError::Missing {
                key: "ssl.truststore.location",
            })?;
            let mut roots = rustls::RootCertStore::empty();
            for ca in certificates(truststore, bytes, "CA certificates")? {
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

/// The TLS configuration new connections take, replaced when the files change.
pub struct TlsStore {
    config: SecurityConfig,
    current: RwLock<Arc<rustls::ServerConfig>>,
    /// The digest of the files last looked at, good or refused (so a refused change is
    /// reported once, not at every check).
    seen: Mutex<[u8; 32]>,
}

/// What a check of the files found.
#[derive(Debug)]
pub enum Reload {
    Unchanged,
    Reloaded,
    /// A file could not be read (between a remove and a rename, say); checked again later.
    Unreadable(TlsError),
    /// The files changed but do not make a valid configuration.
    Refused(TlsError),
}

impl TlsStore {
    /// Reads the files and builds the first configuration; an error here stops the start.
    pub fn load(config: &SecurityConfig) -> Result<Arc<TlsStore>, TlsError> {
        let files = Files::read(config, config.ssl_client_auth)?;
        let built = build(config, config.ssl_client_auth, &files)?;
        Ok(Arc::new(TlsStore {
            config: config.clone(),
            current: RwLock::new(built),
            seen: Mutex::new(files.digest()),
        }))
    }

    /// Loads the files and checks them every `ssl.reload.interval.ms` (if not 0).
    pub fn start(config: &SecurityConfig) -> Result<Arc<TlsStore>, TlsError> {
        let store = TlsStore::load(config)?;
        let every = config.tls.reload_interval_ms;
        if every > 0 {
            store.watch(Duration::from_millis(every)).map_err(|e| {
                TlsError::Config(format!("cannot start the TLS reload thread: {e}"))
            })?;
        }
        Ok(store)
    }

    /// The configuration a new connection uses.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the files (blocking: call it off the shards) and takes a valid change.
    pub fn check(&self) -> Reload {
        let mut seen = match self.seen.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let auth = self.config.ssl_client_auth;
        let files = match Files::read(&self.config, auth) {
            Ok(f) => f,
            Err(e) => return Reload::Unreadable(e),
        };
        let digest = files.digest();
        if digest == *seen {
            return Reload::Unchanged;
        }
        *seen = digest;
        match build(&self.config, auth, &files) {
            Ok(built) => {
                match self.current.write() {
                    Ok(mut c) => *c = built,
                    Err(poisoned) => *poisoned.into_inner() = built,
                }
                Reload::Reloaded
            }
            Err(e) => Reload::Refused(e),
        }
    }

    /// Checks the files every `interval` on a thread of its own, for as long as the store
    /// lives.
    pub fn watch(self: &Arc<Self>, interval: Duration) -> std::io::Result<()> {
        let store = Arc::downgrade(self);
        let mut missing_reported = false;
        std::thread::Builder::new()
            .name("tls-reload".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(interval);
                    let Some(store) = store.upgrade() else { return };
                    match store.check() {
                        Reload::Unchanged => missing_reported = false,
                        Reload::Reloaded => {
                            missing_reported = false;
                            tracing::info!(
                                "TLS key, certificates or CA certificates changed: new \
                                 connections use them"
                            );
                        }
                        Reload::Unreadable(e) => {
                            if !missing_reported {
                                tracing::error!(
                                    "TLS files unreadable, still serving the previous ones: {e}"
                                );
                            }
                            missing_reported = true;
                        }
                        Reload::Refused(e) => {
                            missing_reported = false;
                            tracing::error!(
                                "new TLS files refused, still serving the previous ones: {e}"
                            )
                        }
                    }
                }
            })
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `name` and its key, as PEM.
    fn cert(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_changed_keystore_is_taken_and_a_bad_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.pem");
        let (a_cert, a_key) = cert("a.test");
        std::fs::write(&path, format!("{a_key}{a_cert}")).unwrap();
        let config = SecurityConfig {
            ssl_keystore_location: Some(path.to_string_lossy().into_owned()),
            ..SecurityConfig::default()
        };
        let store = TlsStore::load(&config).unwrap();
        let first = store.current();
        assert!(matches!(store.check(), Reload::Unchanged));
        assert!(Arc::ptr_eq(&first, &store.current()));

        let (b_cert, b_key) = cert("b.test");
        std::fs::write(&path, format!("{b_key}{b_cert}")).unwrap();
        assert!(matches!(store.check(), Reload::Reloaded));
        let second = store.current();
        assert!(!Arc::ptr_eq(&first, &second));

        // A's key with B's certificate: refused once, B stays.
        std::fs::write(&path, format!("{a_key}{b_cert}")).unwrap();
        assert!(matches!(store.check(), Reload::Refused(_)));
        assert!(matches!(store.check(), Reload::Unchanged), "reported once");
        assert!(Arc::ptr_eq(&second, &store.current()));
        std::fs::write(&path, "not PEM at all").unwrap();
        assert!(matches!(store.check(), Reload::Refused(_)));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(store.check(), Reload::Unreadable(_)));
        assert!(Arc::ptr_eq(&second, &store.current()));
    }
}
