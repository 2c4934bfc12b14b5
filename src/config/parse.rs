//! The error of every configuration setting and the parsers the settings share: the
//! leaf of `config`, which every settings file uses and which uses none of them.

use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    #[error("unknown config key {0:?}")]
    UnknownKey(String),
    #[error("bad value {value:?} for {key}: {reason}")]
    BadValue {
        key: String,
        value: String,
        reason: String,
    },
    #[error("invalid TOML: {0}")]
    Toml(String),
    #[error("cannot read config file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("--set expects KEY=VALUE, got {0:?}")]
    BadOverride(String),
    /// A dynamic broker config change names keys that only the configuration file sets.
    #[error("Cannot update these configs dynamically: {0}")]
    NotDynamic(String),
}

pub(crate) fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse::<T>()
        .map_err(|e| ConfigError::BadValue {
            key: key.to_string(),
            value: value.to_string(),
            reason: e.to_string(),
        })
}

/// A positive number, as most sizes and intervals must be.
pub(crate) fn parse_positive(key: &str, value: &str) -> Result<u64, ConfigError> {
    let v: u64 = parse_num(key, value)?;
    if v == 0 {
        return Err(bad(key, value, "must be greater than 0"));
    }
    Ok(v)
}

/// Kafka writes "no limit" as -1.
pub(crate) fn parse_optional_limit(key: &str, value: &str) -> Result<Option<u64>, ConfigError> {
    let v: i64 = parse_num(key, value)?;
    match v {
        -1 => Ok(None),
        v if v >= 0 => Ok(Some(v as u64)),
        _ => Err(bad(key, value, "must be -1 (unlimited) or >= 0")),
    }
}

pub(crate) fn bad(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::BadValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

pub(crate) fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(key, value, "expected true or false")),
    }
}

pub(crate) fn parse_timestamp_type(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "CreateTime" => Ok(false),
        "LogAppendTime" => Ok(true),
        _ => Err(bad(key, value, "expected CreateTime or LogAppendTime")),
    }
}

/// A timestamp bound in ms; Kafka's "no bound" is Long.MAX_VALUE, and -1 reads the same.
pub(crate) fn parse_timestamp_bound(key: &str, value: &str) -> Result<Option<u64>, ConfigError> {
    let v: i64 = parse_num(key, value)?;
    match v {
        -1 | i64::MAX => Ok(None),
        v if v >= 0 => Ok(Some(v as u64)),
        _ => Err(bad(key, value, "must be >= 0 (or -1 for no bound)")),
    }
}
