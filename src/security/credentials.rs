//! SASL users: salted, hashed credentials per mechanism, kept in
//! `<data>/__ringbroker_users.json`.
//!
//! A SCRAM credential is what RFC 5802 has the server keep: the salt, the iteration count,
//! StoredKey = H(HMAC(SaltedPassword, "Client Key")) and ServerKey = HMAC(SaltedPassword,
//! "Server Key"), where SaltedPassword = PBKDF2-HMAC(password, salt, iterations). A PLAIN
//! credential is a PBKDF2-HMAC-SHA-512 hash of the password with its own salt: the
//! password itself is never stored. The file is replaced atomically (write a temporary
//! file, fsync, rename, fsync the directory), so a crash leaves the old users or the new.

use crate::config::security::Mechanism;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const USERS_FILE: &str = "__ringbroker_users.json";
const USERS_TMP: &str = "__ringbroker_users.json.tmp";
/// Kafka's default and smallest SCRAM iteration count.
pub const ITERATIONS_DEFAULT: u32 = 4096;
/// Kafka's largest SCRAM iteration count; more would let a stored credential make every
/// authentication cost seconds.
pub const ITERATIONS_MAX: u32 = 16384;
const SALT_BYTES: usize = 32;
/// Longest user name accepted, in bytes.
pub const USER_NAME_MAX: usize = 256;
/// Longest password accepted, in bytes.
pub const PASSWORD_MAX: usize = 1024;
/// The users file is read whole at start; it may not be larger than this.
const FILE_MAX_BYTES: u64 = 64 << 20;

#[derive(Debug, Error)]
pub enum CredentialError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged: {reason}")]
    Damaged { path: PathBuf, reason: String },
    #[error("{0}")]
    Invalid(String),
}

/// One user's credential for one mechanism, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// Base64 of the salt.
    pub salt: String,
    pub iterations: u32,
    /// SCRAM: base64 of StoredKey; PLAIN: base64 of the salted password hash.
    pub stored_key: String,
    /// SCRAM: base64 of ServerKey; PLAIN: empty.
    #[serde(default)]
    pub server_key: String,
}

/// A credential decoded for use.
#[derive(Debug, Clone)]
pub struct Keys {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

/// Every user's credentials: user name → mechanism name → credential.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Users {
    pub users: BTreeMap<String, BTreeMap<String, Credential>>,
}

fn hmac<D: hmac::EagerHash>(key: &[u8], parts: &[&[u8]]) -> Vec<u8>
where
    hmac::Hmac<D>: KeyInit + Mac,
{
    // HMAC takes a key of any length, so `new_from_slice` cannot fail; an empty result
    // would fail every comparison rather than pass one.
    let Ok(mut mac) = <hmac::Hmac<D> as KeyInit>::new_from_slice(key) else {
        return Vec::new();
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// HMAC with the mechanism's hash.
pub fn mac(mechanism: Mechanism, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    match mechanism {
        Mechanism::ScramSha256 => hmac::<sha2::Sha256>(key, parts),
        Mechanism::ScramSha512 | Mechanism::Plain => hmac::<sha2::Sha512>(key, parts),
    }
}

/// The mechanism's hash of `data`.
pub fn hash(mechanism: Mechanism, data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    match mechanism {
        Mechanism::ScramSha256 => sha2::Sha256::digest(data).to_vec(),
        Mechanism::ScramSha512 | Mechanism::Plain => sha2::Sha512::digest(data).to_vec(),
    }
}

/// PBKDF2 with the mechanism's HMAC.
pub fn salted_password(
    mechanism: Mechanism,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Vec<u8> {
    match mechanism {
        Mechanism::ScramSha256 => {
            let mut out = vec![0u8; 32];
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations, &mut out);
            out
        }
        Mechanism::ScramSha512 | Mechanism::Plain => {
            let mut out = vec![0u8; 64];
            pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password, salt, iterations, &mut out);
            out
        }
    }
}

/// Compares two byte strings in time that depends on their lengths only.
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Credential {
    /// A new credential for `password`, with a fresh random salt.
    pub fn new(mechanism: Mechanism, password: &str, iterations: u32) -> Credential {
        let mut salt = [0u8; SALT_BYTES];
        rand::fill(&mut salt[..]);
        Credential::with_salt(mechanism, password, &salt, iterations)
    }

    pub fn with_salt(
        mechanism: Mechanism,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Credential {
        let salted = salted_password(mechanism, password.as_bytes(), salt, iterations);
        Credential::from_salted(mechanism, salt, salted, iterations)
    }

    /// The credential of a password already salted and hashed by the client
    /// (AlterUserScramCredentials sends SaltedPassword, never the password).
    pub fn from_salted(
        mechanism: Mechanism,
        salt: &[u8],
        salted: Vec<u8>,
        iterations: u32,
    ) -> Credential {
        let (stored_key, server_key) = match mechanism {
            Mechanism::Plain => (salted, Vec::new()),
            _ => {
                let client_key = mac(mechanism, &salted, &[b"Client Key"]);
                (
                    hash(mechanism, &client_key),
                    mac(mechanism, &salted, &[b"Server Key"]),
                )
            }
        };
        Credential {
            salt: B64.encode(salt),
            iterations,
            stored_key: B64.encode(stored_key),
            server_key: B64.encode(server_key),
        }
    }

    pub fn keys(&self) -> Option<Keys> {
        Some(Keys {
            salt: B64.decode(&self.salt).ok()?,
            iterations: self.iterations,
            stored_key: B64.decode(&self.stored_key).ok()?,
            server_key: B64.decode(&self.server_key).ok()?,
        })
    }
}

/// Checks a PLAIN password against its stored hash.
pub fn plain_matches(keys: &Keys, password: &[u8]) -> bool {
    let salted = salted_password(Mechanism::Plain, password, &keys.salt, keys.iterations);
    same_bytes(&salted, &keys.stored_key)
}

/// Checks a user name as ringbroker accepts it: 1 to 256 bytes, no control characters.
pub fn check_user_name(name: &str) -> Result<(), CredentialError> {
    if name.is_empty() || name.len() > USER_NAME_MAX || name.chars().any(char::is_control) {
        return Err(CredentialError::Invalid(format!(
            "a user name is 1 to {USER_NAME_MAX} bytes without control characters"
        )));
    }
    Ok(())
}

impl Users {
    /// The credential of `user` for `mechanism`, decoded.
    pub fn lookup(&self, user: &str, mechanism: Mechanism) -> Option<Keys> {
        self.users.get(user)?.get(mechanism.name())?.keys()
    }

    /// Adds or replaces `user`'s credential for `mechanism`.
    pub fn set(
        &mut self,
        user: &str,
        mechanism: Mechanism,
        password: &str,
        iterations: u32,
    ) -> Result<(), CredentialError> {
        check_user_name(user)?;
        if password.is_empty() || password.len() > PASSWORD_MAX {
            return Err(CredentialError::Invalid(format!(
                "a password is 1 to {PASSWORD_MAX} bytes"
            )));
        }
        if !(ITERATIONS_DEFAULT..=ITERATIONS_MAX).contains(&iterations) {
            return Err(CredentialError::Invalid(format!(
                "iterations must be in {ITERATIONS_DEFAULT}..={ITERATIONS_MAX}"
            )));
        }
        self.users.entry(user.to_string()).or_default().insert(
            mechanism.name().to_string(),
            Credential::new(mechanism, password, iterations),
        );
        Ok(())
    }

    /// Reads the users of a data dir; none when the file does not exist.
    pub fn load(data_dir: &Path) -> Result<Users, CredentialError> {
        let path = data_dir.join(USERS_FILE);
        let io = |source| CredentialError::Io {
            path: path.clone(),
            source,
        };
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Users::default()),
            Err(e) => return Err(io(e)),
        };
        let len = file.metadata().map_err(io)?.len();
        if len > FILE_MAX_BYTES {
            return Err(CredentialError::Damaged {
                path,
                reason: format!("{len} bytes, more than {FILE_MAX_BYTES}"),
            });
        }
        let users: Users = serde_json::from_reader(std::io::BufReader::new(file)).map_err(|e| {
            CredentialError::Damaged {
                path: path.clone(),
                reason: e.to_string(),
            }
        })?;
        for (name, creds) in &users.users {
            for (mechanism, c) in creds {
                let known = Mechanism::parse(mechanism).is_some();
                let iterations_ok = (1..=ITERATIONS_MAX).contains(&c.iterations);
                if !known || !iterations_ok || c.keys().is_none() {
                    return Err(CredentialError::Damaged {
                        path,
                        reason: format!("bad {mechanism} credential of user {name:?}"),
                    });
                }
            }
        }
        Ok(users)
    }

    /// Replaces the users file atomically and durably.
    pub fn save(&self, data_dir: &Path) -> Result<(), CredentialError> {
        use std::io::Write;
        let path = data_dir.join(USERS_FILE);
        let io = |source| CredentialError::Io {
            path: path.clone(),
            source,
        };
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| io(std::io::Error::other(e.to_string())))?;
        let tmp = data_dir.join(USERS_TMP);
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(&text).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(io)?;
        std::fs::File::open(data_dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7677_test_vector() {
        // RFC 7677 section 3: user "user", password "pencil", 4096 iterations.
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let c = Credential::with_salt(Mechanism::ScramSha256, "pencil", &salt, 4096);
        let keys = c.keys().unwrap();
        // ServerSignature of the RFC's exchange, computed from our ServerKey.
        let auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
                    r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                    s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
                    c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let sig = mac(Mechanism::ScramSha256, &keys.server_key, &[auth.as_bytes()]);
        assert_eq!(
            B64.encode(sig),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn users_are_saved_hashed_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut users = Users::default();
        users
            .set("alice", Mechanism::Plain, "s3cret", 4096)
            .unwrap();
        users
            .set("alice", Mechanism::ScramSha512, "s3cret", 4096)
            .unwrap();
        users.save(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(USERS_FILE)).unwrap();
        assert!(
            !text.contains("s3cret"),
            "the password itself is not stored"
        );
        let back = Users::load(dir.path()).unwrap();
        assert_eq!(back, users);
        let plain = back.lookup("alice", Mechanism::Plain).unwrap();
        assert!(plain_matches(&plain, b"s3cret"));
        assert!(!plain_matches(&plain, b"s3cres"));
        assert!(back.lookup("alice", Mechanism::ScramSha256).is_none());
        assert!(back.lookup("bob", Mechanism::Plain).is_none());
    }

    #[test]
    fn bad_users_and_damaged_files_are_refused() {
        let mut users = Users::default();
        assert!(users.set("", Mechanism::Plain, "x", 4096).is_err());
        assert!(users.set("a\nb", Mechanism::Plain, "x", 4096).is_err());
        assert!(users.set("a", Mechanism::Plain, "", 4096).is_err());
        assert!(users.set("a", Mechanism::Plain, "x", 1).is_err());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(USERS_FILE), b"{\"users\":{\"a\":{\"MD5\":").unwrap();
        assert!(Users::load(dir.path()).is_err());
        std::fs::write(
            dir.path().join(USERS_FILE),
            br#"{"users":{"a":{"GSSAPI":{"salt":"","iterations":4096,"stored_key":""}}}}"#,
        )
        .unwrap();
        assert!(Users::load(dir.path()).is_err());
    }
}
