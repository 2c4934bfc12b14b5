//! Kafka wire protocol pieces that ringbroker implements itself: the v2 record batch header
//! and its CRC, the record framing inside a batch, and the structural pre-check of request
//! frames. Request/response framing and API types come from the `kafka-protocol` crate.

pub mod batch;
pub mod code;
pub mod precheck;
pub mod reader;
pub mod records;
pub mod strings;
pub mod versions;
