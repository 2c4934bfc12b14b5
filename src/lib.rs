//! ringbroker: a Kafka-wire-compatible message broker on glommio (io_uring, thread-per-core).

pub mod broker;
pub mod cluster;
pub mod compression;
pub mod config;
pub mod fatal;
pub mod group;
pub mod os;
pub mod producer;
pub mod protocol;
pub mod replication;
pub mod rt;
pub mod security;
pub mod server;
pub mod shard;
pub mod stats;
pub mod storage;
pub mod txn;

/// The precheck's differential tests run `kafka-protocol` on hostile frames; see
/// `test_alloc`.
#[cfg(test)]
mod test_alloc;
#[cfg(test)]
#[global_allocator]
static TEST_ALLOCATOR: test_alloc::BrokerAlloc = test_alloc::BrokerAlloc;
