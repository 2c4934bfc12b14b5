//! SaslHandshake (never flexible) and SaslAuthenticate (flexible from v2); the SCRAM
//! credential APIs (flexible in their only version, v0).

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

static SCRAM_USER_NAME: StructSchema = StructSchema {
    name: "UserName",
    fields: &[field("name", Versions::ALL, STRING)],
    tagged: &[],
};

static DESCRIBE_USER_SCRAM_CREDENTIALS_BODY: StructSchema = StructSchema {
    name: "DescribeUserScramCredentialsRequest",
    fields: &[field(
        "users",
        Versions::ALL,
        nullable_structs(
            &SCRAM_USER_NAME,
            std::mem::size_of::<
                kafka_protocol::messages::describe_user_scram_credentials_request::UserName,
            >(),
        ),
    )],
    tagged: &[],
};

pub static DESCRIBE_USER_SCRAM_CREDENTIALS: MessageSchema = MessageSchema {
    api: ApiKey::DescribeUserScramCredentials,
    versions: range(0, 0),
    flexible: from(0),
    body: &DESCRIBE_USER_SCRAM_CREDENTIALS_BODY,
};

static SCRAM_DELETION: StructSchema = StructSchema {
    name: "ScramCredentialDeletion",
    fields: &[
        field("name", Versions::ALL, STRING),
        field("mechanism", Versions::ALL, INT8),
    ],
    tagged: &[],
};

static SCRAM_UPSERTION: StructSchema = StructSchema {
    name: "ScramCredentialUpsertion",
    fields: &[
        field("name", Versions::ALL, STRING),
        field("mechanism", Versions::ALL, INT8),
        field("iterations", Versions::ALL, INT32),
        field("salt", Versions::ALL, BYTES),
        field("salted_password", Versions::ALL, BYTES),
    ],
    tagged: &[],
};

static ALTER_USER_SCRAM_CREDENTIALS_BODY: StructSchema = StructSchema {
    name: "AlterUserScramCredentialsRequest",
    fields: &[
        field(
            "deletions",
            Versions::ALL,
            structs(
                &SCRAM_DELETION,
                std::mem::size_of::<kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialDeletion>(),
            ),
        ),
        field(
            "upsertions",
            Versions::ALL,
            structs(
                &SCRAM_UPSERTION,
                std::mem::size_of::<kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion>(),
            ),
        ),
    ],
    tagged: &[],
};

pub static ALTER_USER_SCRAM_CREDENTIALS: MessageSchema = MessageSchema {
    api: ApiKey::AlterUserScramCredentials,
    versions: range(0, 0),
    flexible: from(0),
    body: &ALTER_USER_SCRAM_CREDENTIALS_BODY,
};
