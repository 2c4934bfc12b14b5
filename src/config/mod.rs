//! Broker and topic configuration: defaults, TOML loading and limits.

pub mod broker;
pub mod cleaner;
pub mod cluster;
pub mod describe;
pub mod dynamic;
pub mod group;
pub mod inter_broker;
pub mod limits;
pub mod log;
pub mod parse;
pub mod security;
pub mod tls;
pub mod topic;
pub mod topic_keys;
pub mod txn;

pub use broker::{BrokerConfig, ConfigError};
pub use cleaner::CleanerConfig;
pub use cluster::ClusterConfig;
pub use group::GroupConfig;
pub use limits::LimitsConfig;
pub use log::{FlushMode, IoMode, LogConfig};
pub use security::SecurityConfig;
pub use txn::TxnConfig;
