//! Shards: the shard table (who owns a partition), the mesh messages between shards, the
//! metadata copy every shard keeps, the shard runtime that owns the logs, and the process
//! that starts and stops the shards.

pub mod messages;
pub mod meta;
pub mod process;
pub mod runtime;
pub mod table;

pub use runtime::Shard;
