//! What a SASL listener lets through before the client has authenticated: ApiVersions,
//! SaslHandshake and SaslAuthenticate, nothing else (Kafka closes the connection on any
//! other request, and so does this gate).
//!
//! The gate runs in the connection's reader, one frame at a time, so nothing behind an
//! unfinished authentication is read, let alone handled. After a v0 handshake the client
//! sends raw SASL tokens (a length and the token, no Kafka header) and gets raw answers;
//! after v1 the tokens travel in SaslAuthenticate. A failed authentication is answered
//! SASL_AUTHENTICATION_FAILED (raw tokens: no answer) after
//! `connection.failed.authentication.delay.ms`, and the connection closes. The frames are
//! bounded by `sasl.server.max.receive.size` until the client is authenticated, and so is
//! their number.
//!
//! With `connections.max.reauth.ms` (KIP-368) a session lasts that long: SaslAuthenticate
//! v1+ tells the client (`session_lifetime_ms`), an authenticated client may run
//! SaslHandshake (v1+) and SaslAuthenticate again on the same connection to start a new
//! session, with the same mechanism and as the same principal (another user is answered
//! SASL_AUTHENTICATION_FAILED and the connection closes, as Kafka does), and a request other
//! than those two that arrives after the session ended closes the connection.

use super::handlers::{self, Ctx, RequestError, sasl_authenticate, sasl_handshake};
use crate::config::security::Mechanism;
use crate::protocol::code;
use crate::security::sasl::{Authenticator, principal};
use crate::security::scram::Step;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, SaslAuthenticateRequest, SaslHandshakeRequest};
use std::time::{Duration, Instant};

/// Frames a client may send before it has authenticated.
const FRAMES_BEFORE_AUTHENTICATION_MAX: u32 = 32;

/// What the reader does with a frame.
pub enum Verdict {
    /// An ordinary request (ApiVersions): handle it as usual.
    Pass,
    /// Send this answer and read on.
    Answer(Bytes),
    /// The client is authenticated: send this answer, and the gate opens.
    Authenticated(Bytes),
    /// Send this answer (if any), then close the connection.
    Close(Option<Bytes>, String),
}

pub struct SaslGate {
    auth: Authenticator,
    /// After a v0 handshake: the next frames are raw tokens.
    raw_tokens: bool,
    failure_delay: Duration,
    frames: u32,
    /// `connections.max.reauth.ms`: how long a session lasts (`None`: for ever).
    session_max: Option<Duration>,
    /// When the current session ends.
    session_end: Option<Instant>,
    /// The mechanism and principal of the first authentication, which a re-authentication
    /// must keep.
    mechanism: Option<Mechanism>,
    principal: Option<String>,
    /// An authenticated client has started a new SaslHandshake.
    reauthenticating: bool,
}

fn raw_frame(token: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + token.len());
    b.put_i32(i32::try_from(token.len()).unwrap_or(i32::MAX));
    b.put_slice(token);
    b.freeze()
}

impl SaslGate {
    pub fn new(
        auth: Authenticator,
        failure_delay: Duration,
        session_max: Option<Duration>,
    ) -> SaslGate {
        SaslGate {
            auth,
            raw_tokens: false,
            failure_delay,
            frames: 0,
            session_max,
            session_end: None,
            mechanism: None,
            principal: None,
            reauthenticating: false,
        }
    }

    /// Whether the gate has work after authentication (re-authentication is on).
    pub fn sessions_expire(&self) -> bool {
        self.session_max.is_some()
    }

    /// Judges one frame of an authenticated client: SaslHandshake and SaslAuthenticate
    /// re-authenticate, anything else passes while the session lasts.
    pub async fn after_authentication(&mut self, ctx: &Ctx, frame: Bytes) -> Verdict {
        let key = frame
            .get(..2)
            .map(|k| i16::from_be_bytes([k[0], k[1]]))
            .map(ApiKey::try_from);
        match key {
            Some(Ok(ApiKey::SaslHandshake)) => {
                self.auth = Authenticator::new(self.auth.enabled().to_vec());
                self.reauthenticating = true;
                self.frames = 1;
                self.handshake(ctx, frame)
            }
            Some(Ok(ApiKey::SaslAuthenticate)) => {
                self.frames = self.frames.saturating_add(1);
                if self.frames > FRAMES_BEFORE_AUTHENTICATION_MAX {
                    return Verdict::Close(None, "too many re-authentication requests".into());
                }
                self.authenticate(ctx, frame).await
            }
            _ if self.session_end.is_some_and(|end| Instant::now() >= end) => Verdict::Close(
                None,
                "its SASL session expired (connections.max.reauth.ms) without \
                 re-authentication"
                    .into(),
            ),
            _ => Verdict::Pass,
        }
    }

    /// Starts a session; its lifetime in milliseconds (0: it does not end).
    fn start_session(&mut self) -> i64 {
        let Some(max) = self.session_max else {
            return 0;
        };
        self.session_end = Instant::now().checked_add(max);
        i64::try_from(max.as_millis()).unwrap_or(i64::MAX)
    }

    /// Judges one frame read before authentication.
    pub async fn admit(&mut self, ctx: &Ctx, frame: Bytes) -> Verdict {
        self.frames = self.frames.saturating_add(1);
        if self.frames > FRAMES_BEFORE_AUTHENTICATION_MAX {
            return Verdict::Close(None, "too many requests before authenticating".into());
        }
        if self.raw_tokens {
            return match self.auth.authenticate(&ctx.sasl_users(), &frame) {
                Step::Continue(challenge) => Verdict::Answer(raw_frame(&challenge)),
                Step::Done { user, reply } => {
                    self.start_session();
                    self.done(ctx, user, raw_frame(&reply))
                }
                Step::Failed(reason) => {
                    glommio::timer::sleep(self.failure_delay).await;
                    Verdict::Close(None, format!("authentication failed: {reason}"))
                }
            };
        }
        let Some(key) = frame.get(..2).map(|k| i16::from_be_bytes([k[0], k[1]])) else {
            return Verdict::Close(None, "a frame without a header".into());
        };
        match ApiKey::try_from(key) {
            Ok(ApiKey::ApiVersions) => Verdict::Pass,
            Ok(ApiKey::SaslHandshake) => self.handshake(ctx, frame),
            Ok(ApiKey::SaslAuthenticate) => self.authenticate(ctx, frame).await,
            _ => Verdict::Close(
                None,
                format!("request of API key {key} before SASL authentication"),
            ),
        }
    }

    fn done(&mut self, ctx: &Ctx, user: String, answer: Bytes) -> Verdict {
        if self.reauthenticating {
            tracing::info!("client {} re-authenticated as {user}", ctx.client_host);
            self.reauthenticating = false;
        } else {
            tracing::debug!("client {} authenticated as {user}", ctx.client_host);
        }
        let p = principal(&user);
        *ctx.principal.borrow_mut() = p.clone();
        self.principal = Some(p);
        Verdict::Authenticated(answer)
    }

    fn handshake(&mut self, ctx: &Ctx, frame: Bytes) -> Verdict {
        let decoded = handlers::decode_request(ctx, frame).and_then(|(mut req, _reserved)| {
            let body: SaslHandshakeRequest = req.decode_body()?;
            Ok((req, body))
        });
        let (req, body) = match decoded {
            Ok(d) => d,
            Err(e) => return Verdict::Close(None, e.to_string()),
        };
        let chosen = self.auth.handshake(body.mechanism.as_str());
        if self.reauthenticating && (req.version == 0 || chosen != self.mechanism) {
            // Raw tokens cannot follow requests, and the mechanism may not change.
            let answer = req.respond(&sasl_handshake::response(
                code::ILLEGAL_SASL_STATE,
                self.auth.enabled(),
            ));
            return Verdict::Close(
                answer.ok(),
                "a re-authentication with handshake v0 or another mechanism".into(),
            );
        }
        self.mechanism = chosen.or(self.mechanism);
        let code = match chosen {
            Some(_) => code::NONE,
            None => code::UNSUPPORTED_SASL_MECHANISM,
        };
        let answer = req.respond(&sasl_handshake::response(code, self.auth.enabled()));
        match (answer, chosen) {
            (Ok(a), Some(_)) => {
                self.raw_tokens = req.version == 0;
                Verdict::Answer(a)
            }
            (Ok(a), None) => Verdict::Close(
                Some(a),
                format!(
                    "SASL mechanism {:?} is not enabled",
                    body.mechanism.as_str()
                ),
            ),
            (Err(e), _) => Verdict::Close(None, e.to_string()),
        }
    }

    async fn authenticate(&mut self, ctx: &Ctx, frame: Bytes) -> Verdict {
        let decoded = handlers::decode_request(ctx, frame).and_then(|(mut req, _reserved)| {
            let body: SaslAuthenticateRequest = req.decode_body()?;
            Ok((req, body))
        });
        let (req, body) = match decoded {
            Ok(d) => d,
            Err(e) => return Verdict::Close(None, e.to_string()),
        };
        let respond = |code: i16,
                       message: Option<&str>,
                       bytes: Vec<u8>,
                       lifetime_ms: i64|
         -> Result<Bytes, RequestError> {
            req.respond(
                &sasl_authenticate::response(code, message, Bytes::from(bytes))
                    .with_session_lifetime_ms(lifetime_ms),
            )
        };
        if !self.auth.expects_token() {
            let answer = respond(
                code::ILLEGAL_SASL_STATE,
                Some("SaslAuthenticate before a SaslHandshake"),
                Vec::new(),
                0,
            );
            return Verdict::Close(answer.ok(), "SaslAuthenticate before SaslHandshake".into());
        }
        match self.auth.authenticate(&ctx.sasl_users(), &body.auth_bytes) {
            Step::Continue(challenge) => match respond(code::NONE, None, challenge, 0) {
                Ok(a) => Verdict::Answer(a),
                Err(e) => Verdict::Close(None, e.to_string()),
            },
            Step::Done { user, .. }
                if self.reauthenticating && self.principal != Some(principal(&user)) =>
            {
                let answer = respond(
                    code::SASL_AUTHENTICATION_FAILED,
                    Some("Cannot change principals during re-authentication"),
                    Vec::new(),
                    0,
                );
                Verdict::Close(
                    answer.ok(),
                    format!(
                        "re-authentication as {user} on a connection of {}",
                        self.principal.as_deref().unwrap_or_default()
                    ),
                )
            }
            Step::Done { user, reply } => {
                let lifetime_ms = self.start_session();
                match respond(code::NONE, None, reply, lifetime_ms) {
                    Ok(a) => self.done(ctx, user, a),
                    Err(e) => Verdict::Close(None, e.to_string()),
                }
            }
            Step::Failed(reason) => {
                glommio::timer::sleep(self.failure_delay).await;
                let answer = respond(
                    code::SASL_AUTHENTICATION_FAILED,
                    Some("Authentication failed: Invalid username or password"),
                    Vec::new(),
                    0,
                );
                Verdict::Close(answer.ok(), format!("authentication failed: {reason}"))
            }
        }
    }
}
