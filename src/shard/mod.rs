//! Shards: the shard table (who owns a partition), the mesh messages between shards, the
//! metadata copy every shard keeps, the shard runtime that owns the logs, and the scatter of
//! one request's partitions to their owning shards. Starting and stopping them is
//! `crate::broker`.

pub mod broker_configs;
pub mod cleaner;
pub mod configs;
pub mod controller;
pub mod delete_records;
pub mod groups;
pub mod internal_log;
pub mod logs;
pub mod messages;
pub mod meta;
pub mod metrics;
pub mod new_partitions;
pub mod partitions;
pub mod replica;
pub mod runtime;
pub mod scatter;
pub mod scrub;
pub mod snapshot;
pub mod stats;
pub mod table;
pub mod topics;
pub mod txn_markers;
pub mod txn_verify;
pub mod txns;

pub use runtime::Shard;
