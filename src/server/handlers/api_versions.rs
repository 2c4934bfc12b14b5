//! ApiVersions, versions 0-3.
//!
//! A request with a version we do not know gets UNSUPPORTED_VERSION with our ranges,
//! encoded as v0 (which every client can read), and the connection stays open: that is how
//! clients negotiate down.

use super::{Ctx, Request, RequestError, SUPPORTED, encode_frame};
use crate::protocol::code;
use bytes::Bytes;
use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::messages::api_versions_response::ApiVersion;

fn response(error_code: i16) -> ApiVersionsResponse {
    let api_keys = SUPPORTED
        .iter()
        .map(|(api, min, max)| {
            ApiVersion::default()
                .with_api_key(*api as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
}

pub async fn handle(_ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    // The body (client software name and version) is not needed; decoding it still
    // rejects garbage.
    let _: kafka_protocol::messages::ApiVersionsRequest = req.decode_body()?;
    req.respond(&response(code::NONE))
}

/// The reply to an ApiVersions version we do not support.
pub fn unsupported(correlation_id: i32) -> Result<Bytes, RequestError> {
    // The ApiVersions response header is always v0.
    encode_frame(correlation_id, 0, &response(code::UNSUPPORTED_VERSION), 0)
}
