//! SaslHandshake (never flexible) and SaslAuthenticate (flexible from v2).

use super::*;

static SASL_HANDSHAKE_BODY: StructSchema = StructSchema {
    name: "SaslHandshakeRequest",
    fields: &[field("mechanism", Versions::ALL, STRING)],
    tagged: &[],
};

pub static SASL_HANDSHAKE: MessageSchema = MessageSchema {
    api: ApiKey::SaslHandshake,
    versions: range(0, 1),
    flexible: Versions::NONE,
    body: &SASL_HANDSHAKE_BODY,
};

static SASL_AUTHENTICATE_BODY: StructSchema = StructSchema {
    name: "SaslAuthenticateRequest",
    fields: &[field("auth_bytes", Versions::ALL, BYTES)],
    tagged: &[],
};

pub static SASL_AUTHENTICATE: MessageSchema = MessageSchema {
    api: ApiKey::SaslAuthenticate,
    versions: range(0, 2),
    flexible: from(2),
    body: &SASL_AUTHENTICATE_BODY,
};
