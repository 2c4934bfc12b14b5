//! ringbroker: a Kafka-wire-compatible message broker on glommio (io_uring, thread-per-core).

pub mod alloc;
pub mod bench;
pub mod config;
pub mod protocol;
pub mod server;
pub mod shard;
pub mod storage;
