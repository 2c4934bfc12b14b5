//! Broker and topic configuration: defaults, TOML loading and limits.

pub mod broker;
pub mod group;
pub mod log;
pub mod topic;

pub use broker::{BrokerConfig, ConfigError};
pub use group::GroupConfig;
pub use log::{FlushMode, IoMode, LogConfig};
