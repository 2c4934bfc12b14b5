//! One connection's SASL exchange: the mechanism chosen by SaslHandshake, then the
//! tokens of SaslAuthenticate (or, after a v0 handshake, raw tokens), until the client is
//! authenticated or refused. A pure state machine: the connection does the IO.

use super::credentials::{Users, plain_matches};
use super::scram::{ScramServer, Step};
use crate::config::security::Mechanism;

enum State {
    /// Waiting for SaslHandshake.
    Handshake,
    Plain,
    Scram(Box<ScramServer>),
    Done,
}

pub struct Authenticator {
    enabled: Vec<Mechanism>,
    state: State,
}

/// The authenticated identity, as Kafka names it (`User:alice`).
pub fn principal(user: &str) -> String {
    format!("User:{user}")
}

impl Authenticator {
    pub fn new(enabled: Vec<Mechanism>) -> Authenticator {
        Authenticator {
            enabled,
            state: State::Handshake,
        }
    }

    pub fn enabled(&self) -> &[Mechanism] {
        &self.enabled
    }

    /// Chooses the mechanism; `None` when it is not one this listener offers (the
    /// handshake is then answered UNSUPPORTED_SASL_MECHANISM, and a new one may follow).
    pub fn handshake(&mut self, name: &str) -> Option<Mechanism> {
        if !matches!(self.state, State::Handshake) {
            return None;
        }
        let m = Mechanism::parse(name).filter(|m| self.enabled.contains(m))?;
        self.state = match m {
            Mechanism::Plain => State::Plain,
            m => State::Scram(Box::new(ScramServer::new(m))),
        };
        Some(m)
    }

    /// True once a mechanism is chosen and before the exchange ended.
    pub fn expects_token(&self) -> bool {
        matches!(self.state, State::Plain | State::Scram(_))
    }

    /// Takes one client token.
    pub fn authenticate(&mut self, users: &Users, token: &[u8]) -> Step {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Plain => plain(users, token),
            State::Scram(mut scram) => {
                let step = scram.step(users, token);
                if matches!(step, Step::Continue(_)) {
                    self.state = State::Scram(scram);
                }
                step
            }
            State::Handshake => Step::Failed("SaslAuthenticate before SaslHandshake".into()),
            State::Done => Step::Failed("SaslAuthenticate after authentication".into()),
        }
    }
}

/// PLAIN (RFC 4616): `authzid NUL authcid NUL password`, the authorization id empty or the
/// user's own.
fn plain(users: &Users, token: &[u8]) -> Step {
    let mut parts = token.split(|b| *b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Step::Failed("a PLAIN token that is not authzid NUL user NUL password".into());
    };
    let Ok(user) = std::str::from_utf8(user) else {
        return Step::Failed("a PLAIN user that is not UTF-8".into());
    };
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return Step::Failed(format!("user {user:?} asked to act as another"));
    }
    if password.len() > super::credentials::PASSWORD_MAX
        || user.len() > super::credentials::USER_NAME_MAX
    {
        return Step::Failed("a PLAIN user or password too long".into());
    }
    match users.lookup(user, Mechanism::Plain) {
        Some(keys) if plain_matches(&keys, password) => Step::Done {
            user: user.to_string(),
            reply: Vec::new(),
        },
        Some(_) => Step::Failed(format!("user {user:?}: wrong password")),
        None => Step::Failed(format!("unknown user {user:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_checks_the_stored_hash() {
        let mut users = Users::default();
        users.set("alice", Mechanism::Plain, "pw", 4096).unwrap();
        let mut a = Authenticator::new(vec![Mechanism::Plain]);
        assert_eq!(a.handshake("SCRAM-SHA-256"), None, "not enabled");
        assert_eq!(a.handshake("PLAIN"), Some(Mechanism::Plain));
        assert!(matches!(
            a.authenticate(&users, b"\0alice\0pw"),
            Step::Done { ref user, .. } if user == "alice"
        ));
        assert!(matches!(
            a.authenticate(&users, b"\0alice\0pw"),
            Step::Failed(_)
        ));
        for token in [
            &b"\0alice\0px"[..],
            b"\0bob\0pw",
            b"bob\0alice\0pw",
            b"alice\0pw",
            b"\0alice\0pw\0",
            b"",
        ] {
            let mut a = Authenticator::new(vec![Mechanism::Plain]);
            a.handshake("PLAIN");
            assert!(
                matches!(a.authenticate(&users, token), Step::Failed(_)),
                "{token:?}"
            );
        }
    }
}
