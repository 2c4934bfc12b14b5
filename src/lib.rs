//! ringbroker: a Kafka-wire-compatible message broker on glommio (io_uring, thread-per-core).

pub mod alloc;
pub mod bench;
pub mod compression;
pub mod config;
pub mod fatal;
pub mod group;
pub mod producer;
pub mod protocol;
pub mod server;
pub mod shard;
pub mod storage;

/// The unit tests decode hostile requests too, so they run on the broker's allocator.
#[cfg(test)]
#[global_allocator]
static TEST_ALLOCATOR: alloc::BrokerAlloc = alloc::BrokerAlloc;
