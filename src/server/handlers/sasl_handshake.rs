//! SaslHandshake, versions 0-1. On a SASL listener, before the client has authenticated,
//! the connection's SASL gate (`server::sasl_gate`) answers it. Everywhere else (a
//! listener without SASL, or a client already authenticated while
//! `connections.max.reauth.ms` is 0, so re-authentication is off) it is out of place and
//! answered ILLEGAL_SASL_STATE, as Kafka does.

use super::{Ctx, Request, RequestError, str_bytes};
use crate::config::security::Mechanism;
use crate::protocol::code;
use bytes::Bytes;
use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};

/// The answer to a handshake: its error code and the mechanisms offered.
pub fn response(error_code: i16, enabled: &[Mechanism]) -> SaslHandshakeResponse {
    SaslHandshakeResponse::default()
        .with_error_code(error_code)
        .with_mechanisms(enabled.iter().map(|m| str_bytes(m.name())).collect())
}

pub async fn handle(_ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let _: SaslHandshakeRequest = req.decode_body()?;
    req.respond(&response(code::ILLEGAL_SASL_STATE, &[]))
}
