//! ringbroker: a Kafka-wire-compatible message broker on glommio (io_uring, thread-per-core).

pub mod alloc;
pub mod config;
pub mod group;
pub mod protocol;
pub mod server;
pub mod shard;
pub mod storage;
