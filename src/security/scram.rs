//! The server side of SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), without
//! channel binding, as Kafka offers them.
//!
//! Two client messages: client-first (`n,,n=USER,r=NONCE`) is answered with server-first
//! (`r=NONCE+OURS,s=SALT,i=ITERATIONS`); client-final (`c=biws,r=NONCE+OURS,p=PROOF`) is
//! checked against the stored key and answered with server-final (`v=SIGNATURE`). An
//! unknown user gets a made-up salt and fails at the proof like a wrong password, so the
//! exchange does not tell which users exist. Everything from the client is bounded and
//! parsed without panicking.

use super::credentials::{Keys, Users, hash, mac, same_bytes};
use crate::config::security::Mechanism;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

/// Longest client message accepted, in bytes.
const MESSAGE_MAX: usize = 4096;
/// Longest client nonce accepted, in bytes.
const NONCE_MAX: usize = 1024;
const SERVER_NONCE_BYTES: usize = 24;

/// What one client message leads to.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this and wait for the next message.
    Continue(Vec<u8>),
    /// Authenticated as `user`; send `reply` (server-final).
    Done { user: String, reply: Vec<u8> },
    /// Refused, for the reason given (logged; clients get a generic message).
    Failed(String),
}

/// What server-first settled, for checking client-final.
struct Pending {
    user: String,
    keys: Keys,
    /// False for a user made up to hide that it does not exist.
    known: bool,
    nonce: String,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
}

enum State {
    First,
    Final(Box<Pending>),
    Finished,
}

pub struct ScramServer {
    mechanism: Mechanism,
    state: State,
}

/// Decodes a SCRAM `saslname`: `=2C` is `,` and `=3D` is `=`; any other `=` is an error.
fn decode_name(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('=') {
        out.push_str(rest.get(..at)?);
        let code = rest.get(at..at.checked_add(3)?)?;
        match code {
            "=2C" => out.push(','),
            "=3D" => out.push('='),
            _ => return None,
        }
        rest = rest.get(at.checked_add(3)?..)?;
    }
    out.push_str(rest);
    Some(out)
}

/// The value of attribute `name` (`name=value`) in a comma-separated part.
fn attr(part: Option<&str>, name: char) -> Option<&str> {
    let part = part?;
    let mut chars = part.chars();
    (chars.next()? == name && chars.next()? == '=').then(|| part.get(2..))?
}

fn printable_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce.len() <= NONCE_MAX
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

impl ScramServer {
    pub fn new(mechanism: Mechanism) -> ScramServer {
        ScramServer {
            mechanism,
            state: State::First,
        }
    }

    /// Takes the next client message.
    pub fn step(&mut self, users: &Users, message: &[u8]) -> Step {
        if message.len() > MESSAGE_MAX {
            self.state = State::Finished;
            return Step::Failed(format!("a SCRAM message of {} bytes", message.len()));
        }
        let Ok(text) = std::str::from_utf8(message) else {
            self.state = State::Finished;
            return Step::Failed("a SCRAM message that is not UTF-8".into());
        };
        match std::mem::replace(&mut self.state, State::Finished) {
            State::First => self.client_first(users, text),
            State::Final(p) => {
                let verdict = self.client_final(text, &p);
                let user = p.user;
                match verdict {
                    Ok(reply) if p.known => Step::Done { user, reply },
                    Ok(_) => Step::Failed(format!("unknown user {user:?}")),
                    Err(reason) => Step::Failed(format!("user {user:?}: {reason}")),
                }
            }
            State::Finished => Step::Failed("a SCRAM message after the exchange ended".into()),
        }
    }

    fn client_first(&mut self, users: &Users, text: &str) -> Step {
        // gs2-header: cbind flag, optional authzid, then the bare message.
        let mut parts = text.splitn(3, ',');
        let flag = parts.next().unwrap_or_default();
        let authzid = parts.next().unwrap_or_default();
        let Some(bare) = parts.next() else {
            return Step::Failed("client-first without a gs2 header".into());
        };
        if flag != "n" && flag != "y" {
            return Step::Failed("channel binding is not supported".into());
        }
        let mut fields = bare.split(',');
        let (Some(name), Some(nonce)) = (
            attr(fields.next(), 'n').and_then(decode_name),
            attr(fields.next(), 'r'),
        ) else {
            return Step::Failed("client-first without n= and r=".into());
        };
        for extension in fields {
            if extension.starts_with("m=") || extension.starts_with("tokenauth=") {
                return Step::Failed(format!("unsupported extension {extension:?}"));
            }
        }
        if !authzid.is_empty()
            && attr(Some(authzid), 'a').and_then(decode_name) != Some(name.clone())
        {
            return Step::Failed("an authorization id other than the user".into());
        }
        if name.is_empty() || name.len() > super::credentials::USER_NAME_MAX {
            return Step::Failed("a user name of a bad length".into());
        }
        if !printable_nonce(nonce) {
            return Step::Failed("a bad client nonce".into());
        }
        let (keys, known) = match users.lookup(&name, self.mechanism) {
            Some(k) => (k, true),
            None => (self.made_up(&name), false),
        };
        let mut ours = [0u8; SERVER_NONCE_BYTES];
        rand::fill(&mut ours[..]);
        let nonce = format!("{nonce}{}", B64.encode(ours));
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&keys.salt),
            keys.iterations
        );
        self.state = State::Final(Box::new(Pending {
            user: name,
            keys,
            known,
            nonce,
            // The header as sent: flag, authzid and the comma after them.
            gs2_header: format!("{flag},{authzid},"),
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
        }));
        Step::Continue(server_first.into_bytes())
    }

    /// Keys for a user that does not exist: a salt that stays the same for the name (a
    /// second try must not reveal it by changing) and a key nothing matches.
    fn made_up(&self, name: &str) -> Keys {
        let secret = process_secret();
        let salt = mac(self.mechanism, &secret, &[b"salt", name.as_bytes()]);
        let mut stored_key = vec![0u8; hash(self.mechanism, b"").len()];
        rand::fill(&mut stored_key[..]);
        Keys {
            salt: salt.get(..16).unwrap_or(&salt).to_vec(),
            iterations: super::credentials::ITERATIONS_DEFAULT,
            stored_key,
            server_key: Vec::new(),
        }
    }

    fn client_final(&self, text: &str, p: &Pending) -> Result<Vec<u8>, String> {
        let (keys, nonce, gs2_header) = (&p.keys, &p.nonce, &p.gs2_header);
        let (client_first_bare, server_first) = (&p.client_first_bare, &p.server_first);
        let Some((without_proof, proof)) = text.rsplit_once(",p=") else {
            return Err("client-final without a proof".into());
        };
        let mut fields = without_proof.split(',');
        let binding = attr(fields.next(), 'c').ok_or("client-final without c=")?;
        let their_nonce = attr(fields.next(), 'r').ok_or("client-final without r=")?;
        if B64.decode(binding).ok().as_deref() != Some(gs2_header.as_bytes()) {
            return Err("channel binding data differs from the gs2 header".into());
        }
        if their_nonce != nonce {
            return Err("the nonce differs from the one agreed".into());
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| "a proof that is not base64")?;
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = mac(self.mechanism, &keys.stored_key, &[auth_message.as_bytes()]);
        if proof.len() != signature.len() {
            return Err("a proof of the wrong length".into());
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        if !same_bytes(&hash(self.mechanism, &client_key), &keys.stored_key) {
            return Err("wrong password".into());
        }
        let server_signature = mac(self.mechanism, &keys.server_key, &[auth_message.as_bytes()]);
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

/// A random secret of this process, for the made-up salts of unknown users.
fn process_secret() -> Vec<u8> {
    static SECRET: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    SECRET
        .get_or_init(|| {
            let mut s = [0u8; 32];
            rand::fill(&mut s[..]);
            s
        })
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client side, as RFC 5802 section 3 computes it.
    fn client_final(m: Mechanism, password: &str, first_bare: &str, server_first: &str) -> String {
        let fields: Vec<&str> = server_first.split(',').collect();
        let nonce = &fields[0][2..];
        let salt = B64.decode(&fields[1][2..]).unwrap();
        let iterations: u32 = fields[2][2..].parse().unwrap();
        let c = super::super::credentials::Credential::with_salt(m, password, &salt, iterations);
        let keys = c.keys().unwrap();
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{first_bare},{server_first},{without_proof}");
        let signature = mac(m, &keys.stored_key, &[auth.as_bytes()]);
        // ClientKey from the salted password, as the client has it.
        let mut salted = vec![0u8; signature.len()];
        match m {
            Mechanism::ScramSha256 => pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
                password.as_bytes(),
                &salt,
                iterations,
                &mut salted,
            ),
            _ => pbkdf2::pbkdf2_hmac::<sha2::Sha512>(
                password.as_bytes(),
                &salt,
                iterations,
                &mut salted,
            ),
        }
        let client_key = mac(m, &salted, &[b"Client Key"]);
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        format!("{without_proof},p={}", B64.encode(proof))
    }

    fn users() -> Users {
        let mut u = Users::default();
        u.set("alice", Mechanism::ScramSha256, "pw", 4096).unwrap();
        u.set("alice", Mechanism::ScramSha512, "pw", 4096).unwrap();
        u
    }

    fn run(m: Mechanism, user: &str, password: &str) -> Step {
        let users = users();
        let mut s = ScramServer::new(m);
        let bare = format!("n={user},r=fyko+d2lbbFgONRv9qkxdawL");
        let Step::Continue(first) = s.step(&users, format!("n,,{bare}").as_bytes()) else {
            panic!("no server-first");
        };
        let first = String::from_utf8(first).unwrap();
        assert!(first.starts_with("r=fyko+d2lbbFgONRv9qkxdawL"));
        s.step(&users, client_final(m, password, &bare, &first).as_bytes())
    }

    #[test]
    fn right_password_passes_and_wrong_ones_fail() {
        for m in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
            assert!(
                matches!(run(m, "alice", "pw"), Step::Done { ref user, .. } if user == "alice")
            );
            assert!(matches!(run(m, "alice", "pX"), Step::Failed(_)));
            assert!(matches!(run(m, "mallory", "pw"), Step::Failed(_)));
        }
    }

    #[test]
    fn hostile_messages_fail_without_panicking() {
        let users = users();
        for msg in [
            &b""[..],
            b"n,,",
            b"p=tls-unique,,n=alice,r=x",
            b"n,,n=al=ZZice,r=abc",
            b"n,,n=alice",
            b"n,,n=alice,r=a b",
            b"n,a=bob,n=alice,r=abc",
            b"n,,n=alice,r=abc,m=ext",
            b"\xff\xfe",
            &[b'n'; 5000][..],
        ] {
            let mut s = ScramServer::new(Mechanism::ScramSha256);
            assert!(matches!(s.step(&users, msg), Step::Failed(_)), "{msg:?}");
        }
        let mut s = ScramServer::new(Mechanism::ScramSha256);
        assert!(matches!(
            s.step(&users, b"n,,n=alice,r=abc"),
            Step::Continue(_)
        ));
        assert!(matches!(
            s.step(&users, b"c=biws,r=abc,p=!!"),
            Step::Failed(_)
        ));
        assert!(matches!(s.step(&users, b"anything"), Step::Failed(_)));
    }

    #[test]
    fn names_are_unescaped() {
        assert_eq!(decode_name("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        assert_eq!(decode_name("a=2"), None);
        assert_eq!(decode_name("a=41"), None);
    }
}
