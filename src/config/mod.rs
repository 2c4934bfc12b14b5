//! Broker and topic configuration: defaults, TOML loading and limits.

pub mod log;

pub use log::{FlushMode, IoMode, LogConfig};
