//! SaslAuthenticate, versions 0-2 (v1 adds the session lifetime, v2 is flexible). On a
//! SASL listener, before the client has authenticated, the connection's SASL gate
//! (`server::sasl_gate`) answers it; anywhere else it is answered ILLEGAL_SASL_STATE.

use super::{Ctx, Request, RequestError};
use crate::protocol::code;
use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};
use kafka_protocol::protocol::StrBytes;

/// The answer to one token. A session lifetime of 0 tells clients not to re-authenticate
/// (the SASL gate sets it when `connections.max.reauth.ms` is on).
pub fn response(
    error_code: i16,
    message: Option<&str>,
    auth_bytes: Bytes,
) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(error_code)
        .with_error_message(message.map(|m| StrBytes::from_string(m.to_string())))
        .with_auth_bytes(auth_bytes)
        .with_session_lifetime_ms(0)
}

pub async fn handle(_ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let _: SaslAuthenticateRequest = req.decode_body()?;
    req.respond(&response(
        code::ILLEGAL_SASL_STATE,
        Some("SaslAuthenticate is not expected on this connection now"),
        Bytes::new(),
    ))
}
