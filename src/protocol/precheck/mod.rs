//! Structural pre-check of request frames, before `kafka-protocol` decodes them.
//!
//! The crate's array decoders reserve `Vec::with_capacity(n)` with `n` taken from the wire
//! before looking for the elements' bytes, and even an honest count amplifies: an element
//! that takes 2 bytes on the wire can be a 70-byte Rust struct. [`check_request`] walks
//! the raw frame once, guided by our own description of each request ([`schema`]), and
//! refuses any count or length the remaining bytes cannot hold. It returns an upper bound
//! of what decoding will reserve so the caller can refuse amplified requests too.
//!
//! What the walker accepts the crate can decode without running out of bytes; what it
//! refuses the crate would fail on as well, except for the rules [`PrecheckError::is_limit`]
//! names (limits and a stricter varint rule). The tests hold both directions against the
//! crate with generated and mutated frames.
//!
//! The caller runs it on the whole frame (without the length prefix) after its own
//! version gate: an unsupported ApiVersions probe and Produce v0-2 are answered without
//! decoding and have no schema here ([`PrecheckError::UnsupportedVersion`]).
//!
//! # Adding the schema of an API
//!
//! 1. Read the crate's decoder for the request (`kafka-protocol`'s
//!    `src/messages/<name>_request.rs`, `impl Decodable`) and Kafka's protocol
//!    documentation for the facts: each field's versions, its type, whether the Rust field
//!    is an `Option` (then it is nullable in every version, as far as the crate is
//!    concerned), the first flexible version (where the tagged-field sections start) and
//!    any tag the decoder matches on (those go in `tagged`, with the versions the decoder
//!    accepts them in).
//! 2. Describe it in a file under `schema/` (group related APIs; keep files under 500
//!    lines): one `static StructSchema` per struct, innermost first, fields in wire order
//!    built with [`schema::field`]. Arrays of structs use [`schema::structs`] (or
//!    [`schema::nullable_structs`]) with `size_of::<the crate's element type>()`; arrays of
//!    strings and scalars use [`schema::strings`] and [`schema::prims`] with the size of
//!    the Rust element (`StrBytes`, `TopicName`, `i32`, `BrokerId`...).
//! 3. Add a `pub static MessageSchema` with the versions the broker advertises and list it
//!    in [`schema::ALL`].
//! 4. Teach the tests to build and measure the request: a builder in `tests/build_*.rs`
//!    (every array non-empty with 2-3 elements, nullable fields filled in case 0 and null
//!    in case 1, version-limited fields set only in their versions, as the crate's encoder
//!    insists), wired into `build` and `decode_body` in `tests/mod.rs`, and a line per
//!    struct in `tests/footprint.rs`. The coverage test enumerates the versions the broker
//!    advertises (`server::handlers::SUPPORTED`) and fails for any without a schema or a
//!    builder (and counts the pairs: update that number); the estimate must equal what the
//!    crate's decode reserves.
//! 5. Run `cargo test --lib protocol::precheck`; for a long differential run set
//!    `PRECHECK_FUZZ_ITERS` (and `PRECHECK_FUZZ_SEED`).

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

pub mod schema;
mod walk;

#[cfg(test)]
mod tests;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use schema::MessageSchema;
use std::mem::size_of;
use thiserror::Error;

pub use walk::MAX_DEPTH;

/// An upper bound of the memory one unknown tagged field costs once decoded: an entry of a
/// `BTreeMap<i32, Bytes>`. A map of n entries has at most n nodes; the largest node (an
/// internal one) holds 11 keys, 11 values, 12 child pointers, a parent pointer and two
/// `u16`s. Four more words cover the shared header a split `Bytes` may allocate.
pub const TAGGED_ENTRY_BYTES: usize = 11 * (size_of::<i32>() + size_of::<Bytes>())
    + 13 * size_of::<usize>()
    + 2 * size_of::<u16>()
    + 4 * size_of::<usize>();

/// What the walker allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most entries in one tagged-field section.
    pub max_tagged_fields: u32,
    /// Most bytes decoding may reserve for arrays and unknown tagged fields together.
    pub max_decoded_bytes: usize,
}

impl Default for Limits {
    /// 64 tagged fields a section; 64 MiB of decoded arrays (a Fetch of 100 000
    /// partitions reserves about 10 MiB).
    fn default() -> Self {
        Limits {
            max_tagged_fields: 64,
            max_decoded_bytes: 64 << 20,
        }
    }
}

/// A frame the walker accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub api: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    /// Bytes of the request header; the body starts here.
    pub header_len: usize,
    /// Bytes of header and body; anything after is trailing bytes, which Kafka ignores.
    pub consumed: usize,
    /// Upper bound of what decoding reserves: count × Rust element size over every array,
    /// plus [`TAGGED_ENTRY_BYTES`] per unknown tagged field.
    pub decoded_bytes_estimate: usize,
}

/// Why a frame was refused. Offsets (`at`) count from the start of the frame.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PrecheckError {
    #[error("frame ends at byte {at}: {need} more bytes needed for {what}")]
    Truncated {
        what: &'static str,
        at: usize,
        need: usize,
    },
    #[error("unknown API key {0}")]
    UnknownApi(i16),
    #[error("no request schema for {0:?}")]
    NoSchema(ApiKey),
    #[error("version {version} of {api:?} is not served")]
    UnsupportedVersion { api: ApiKey, version: i16 },
    #[error(
        "{what} at byte {at} claims {count} elements of at least {min_elem} bytes, \
         but only {remaining} bytes remain"
    )]
    ArrayTooLong {
        what: &'static str,
        at: usize,
        count: usize,
        min_elem: usize,
        remaining: usize,
    },
    #[error("{what} at byte {at} has length {len}, but only {remaining} bytes remain")]
    LengthBeyondFrame {
        what: &'static str,
        at: usize,
        len: usize,
        remaining: usize,
    },
    #[error("{what} at byte {at} has negative length {len}")]
    NegativeLength {
        what: &'static str,
        at: usize,
        len: i64,
    },
    #[error("{what} at byte {at} is null but is not nullable")]
    NullNotAllowed { what: &'static str, at: usize },
    #[error("varint for {what} at byte {at} is longer than {max} bytes")]
    VarintTooLong {
        what: &'static str,
        at: usize,
        max: usize,
    },
    #[error(
        "tagged-field section at byte {at} has {count} entries, more than the limit of {limit}"
    )]
    TooManyTaggedFields { at: usize, count: u32, limit: u32 },
    #[error("tag {tag} ({what}) at byte {at} is not valid in version {version}")]
    TagNotValidForVersion {
        what: &'static str,
        tag: u32,
        at: usize,
        version: i16,
    },
    #[error("decoding would reserve at least {estimate} bytes, more than the limit of {limit}")]
    DecodedTooLarge { estimate: usize, limit: usize },
    #[error("schema nests structs deeper than {0}")]
    TooDeep(usize),
}

impl PrecheckError {
    /// True for refusals of frames the crate might decode: the [`Limits`] and varints whose
    /// last allowed byte still continues (Kafka refuses them; the crate stops reading and
    /// carries on). Every other refusal is a frame the crate fails to decode too.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            PrecheckError::TooManyTaggedFields { .. }
                | PrecheckError::DecodedTooLarge { .. }
                | PrecheckError::VarintTooLong { .. }
                | PrecheckError::TooDeep(_)
        )
    }
}

/// Checks a whole request frame, without its 4-byte length prefix: the request header
/// (API key, version, correlation id, client id, and the tagged fields of a flexible
/// header), then the body described by the API's schema. Trailing bytes after the body are
/// allowed and not counted in [`Checked::consumed`].
pub fn check_request(frame: &[u8], limits: &Limits) -> Result<Checked, PrecheckError> {
    walk::check(frame, limits)
}

/// The schema of a request API, if the broker serves it.
pub fn schema_for(api: ApiKey) -> Option<&'static MessageSchema> {
    schema::ALL.iter().copied().find(|s| s.api == api)
}
