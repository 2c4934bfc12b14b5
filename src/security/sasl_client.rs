//! The client side of PLAIN and SCRAM-SHA-256/512 (RFC 5802), for a broker logging in on
//! another broker's SASL listener. The server is another broker, but still checked: its
//! nonce must extend ours, its iteration count is bounded, and its final signature must
//! prove it knows the stored credential.

use super::credentials::{hash, mac, salted_password, same_bytes};
use crate::config::security::Mechanism;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

/// The most PBKDF2 iterations a server may ask for (Kafka's own limit).
const ITERATIONS_MAX: u32 = 16_384;
const NONCE_BYTES: usize = 24;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SaslClientError {
    #[error("the server's SCRAM message is malformed: {0}")]
    Malformed(&'static str),
    #[error("the server refused: {0}")]
    Refused(String),
    #[error("the server's signature is wrong: it does not know this user's credential")]
    BadServer,
}

/// The one message of PLAIN: no authorization id, the user, the password.
pub fn plain_token(user: &str, password: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(user.len() + password.len() + 2);
    out.push(0);
    out.extend_from_slice(user.as_bytes());
    out.push(0);
    out.extend_from_slice(password.as_bytes());
    out
}

/// `,` and `=` escaped as SCRAM's `saslname` wants them.
fn encode_name(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

pub struct ScramClient {
    mechanism: Mechanism,
    password: String,
    nonce: String,
    client_first_bare: String,
    /// After `client_final`: the server signature that server-final must carry.
    expected: Option<Vec<u8>>,
}

impl ScramClient {
    pub fn new(mechanism: Mechanism, user: &str, password: &str) -> ScramClient {
        let mut raw = [0u8; NONCE_BYTES];
        rand::fill(&mut raw[..]);
        ScramClient::with_nonce(mechanism, user, password, &B64.encode(raw))
    }

    fn with_nonce(mechanism: Mechanism, user: &str, password: &str, nonce: &str) -> ScramClient {
        ScramClient {
            mechanism,
            password: password.to_string(),
            nonce: nonce.to_string(),
            client_first_bare: format!("n={},r={nonce}", encode_name(user)),
            expected: None,
        }
    }

    /// client-first.
    pub fn first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// client-final, from server-first.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, SaslClientError> {
        let text = std::str::from_utf8(server_first)
            .map_err(|_| SaslClientError::Malformed("not UTF-8"))?;
        if let Some(e) = text.strip_prefix("e=") {
            return Err(SaslClientError::Refused(e.to_string()));
        }
        let mut parts = text.split(',');
        fn field<'a>(
            part: Option<&'a str>,
            name: &'static str,
        ) -> Result<&'a str, SaslClientError> {
            part.and_then(|p| p.strip_prefix(name))
                .ok_or(SaslClientError::Malformed(name))
        }
        let nonce = field(parts.next(), "r=")?;
        let salt = B64
            .decode(field(parts.next(), "s=")?)
            .map_err(|_| SaslClientError::Malformed("s="))?;
        let iterations: u32 = field(parts.next(), "i=")?
            .parse()
            .map_err(|_| SaslClientError::Malformed("i="))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(SaslClientError::Malformed("r= does not extend our nonce"));
        }
        if !(1..=ITERATIONS_MAX).contains(&iterations) {
            return Err(SaslClientError::Malformed("i= out of bounds"));
        }
        let m = self.mechanism;
        let salted = salted_password(m, self.password.as_bytes(), &salt, iterations);
        let client_key = mac(m, &salted, &[b"Client Key"]);
        let stored_key = hash(m, &client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{},{text},{without_proof}", self.client_first_bare);
        let signature = mac(m, &stored_key, &[auth.as_bytes()]);
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = mac(m, &salted, &[b"Server Key"]);
        self.expected = Some(mac(m, &server_key, &[auth.as_bytes()]));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks server-final.
    pub fn finish(&self, server_final: &[u8]) -> Result<(), SaslClientError> {
        let text = std::str::from_utf8(server_final)
            .map_err(|_| SaslClientError::Malformed("not UTF-8"))?;
        if let Some(e) = text.strip_prefix("e=") {
            return Err(SaslClientError::Refused(e.to_string()));
        }
        let v = text
            .strip_prefix("v=")
            .and_then(|v| B64.decode(v).ok())
            .ok_or(SaslClientError::Malformed("v="))?;
        match &self.expected {
            Some(expected) if same_bytes(expected, &v) => Ok(()),
            _ => Err(SaslClientError::BadServer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::credentials::Users;
    use crate::security::scram::{ScramServer, Step};

    fn exchange(m: Mechanism, stored: &str, tried: &str) -> Result<String, String> {
        let mut users = Users::default();
        users
            .set("broker,1", m, stored, 4096)
            .map_err(|e| e.to_string())?;
        let mut server = ScramServer::new(m);
        let mut client = ScramClient::new(m, "broker,1", tried);
        let Step::Continue(server_first) = server.step(&users, &client.first()) else {
            return Err("no server-first".into());
        };
        let client_final = client
            .client_final(&server_first)
            .map_err(|e| e.to_string())?;
        match server.step(&users, &client_final) {
            Step::Done { user, reply } => {
                client.finish(&reply).map_err(|e| e.to_string())?;
                Ok(user)
            }
            Step::Failed(why) => Err(why),
            Step::Continue(_) => Err("a third round".into()),
        }
    }

    #[test]
    fn scram_client_logs_in_on_the_server_side() {
        for m in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
            assert_eq!(exchange(m, "pw", "pw").as_deref(), Ok("broker,1"));
            assert!(exchange(m, "pw", "wrong").is_err());
        }
    }

    #[test]
    fn a_server_that_does_not_know_the_credential_is_refused() {
        let m = Mechanism::ScramSha256;
        let mut client = ScramClient::with_nonce(m, "u", "pw", "abc");
        for bad in [
            &b"r=xyz1,s=c2FsdA==,i=4096"[..],
            b"r=abc,s=c2FsdA==,i=4096",
            b"r=abcd,s=c2FsdA==,i=99999999",
            b"r=abcd,s=!!,i=4096",
            b"e=unknown-user",
            b"\xff",
        ] {
            assert!(client.client_final(bad).is_err(), "{bad:?}");
        }
        assert!(client.client_final(b"r=abcd,s=c2FsdA==,i=4096").is_ok());
        assert_eq!(client.finish(b"v=AAAA"), Err(SaslClientError::BadServer));
        assert!(client.finish(b"e=other-error").is_err());
    }

    #[test]
    fn plain_token_layout() {
        assert_eq!(plain_token("u", "p"), b"\0u\0p".to_vec());
    }
}
