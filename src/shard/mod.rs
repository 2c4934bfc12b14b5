//! Shards: the shard table (who owns a partition), the mesh messages between shards, the
//! metadata copy every shard keeps, and the shard runtime that owns the logs. Starting and
//! stopping them is `crate::broker`.

pub mod groups;
pub mod messages;
pub mod meta;
pub mod runtime;
pub mod stats;
pub mod table;

pub use runtime::Shard;
