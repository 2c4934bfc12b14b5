//! What a sweep writes and `combine` reads back: its points (one setting at one rate) and
//! the whole report. Shared by `sweep`, which measures them, and `render`, which draws
//! them; neither imports the other's types.

use crate::args::{Acks, Compression, SweepArgs};
use crate::hardware::Machine;
use crate::limits::Limits;
use crate::report::Results;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A point's results as fractions of the machine's limits.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Ratios {
    /// Produced MB/s (record values) / loopback TCP MB/s.
    pub produce_to_tcp_loopback: f64,
    /// Produced MB/s / sequential disk write MB/s.
    pub produce_to_disk_write: f64,
    /// Ack p50 / fdatasync p50: how many syncs' worth of time an ack takes.
    pub ack_p50_to_fdatasync_p50: f64,
    pub ack_p99_to_fdatasync_p50: f64,
}

/// One setting at one offered rate: its results, or why it failed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Point {
    pub setting: String,
    pub broker: String,
    pub broker_config: BTreeMap<String, String>,
    pub codec: Compression,
    pub batch_size: usize,
    pub acks: Acks,
    pub rate: u64,
    pub results: Option<Results>,
    pub ratios: Option<Ratios>,
    pub error: Option<String>,
}

/// `sweep.json`.
#[derive(Serialize)]
pub struct SweepReport<'a> {
    pub benchmark: &'static str,
    pub version: &'static str,
    pub machine: Machine,
    pub params: &'a SweepArgs,
    pub limits: Option<Limits>,
    pub points: Vec<Point>,
}
