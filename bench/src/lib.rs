//! `ringbroker-bench`: a load generator for any Kafka-compatible broker.
//!
//! Producers (librdkafka, so batch size, linger, compression and acks behave as users see
//! them) offer an open-loop load; consumers read the records back. Ack and end-to-end
//! latencies are measured from each record's scheduled time (see [`schedule`]), into
//! HdrHistograms; warm-up results are discarded ([`run`]). `ringbroker-bench sweep` runs a
//! matrix of broker and client settings ([`sweep`]) and renders tables and plots
//! ([`render`]).
//!
//! The library also holds the measurement helpers the broker's criterion benches share:
//! [`hardware`] (the machine a result was measured on), [`limits`] (loopback TCP, disk
//! write and fdatasync limits), [`loglines`] (realistic compressible data) and
//! [`report::write_dated`] (dated result files). It does not depend on the broker crate;
//! a sweep starts the broker binary by its path.

pub mod args;
pub mod consumer;
pub mod drain;
pub mod hardware;
pub mod histogram;
pub mod limits;
pub mod loglines;
pub mod process;
pub mod producer;
pub mod record;
pub mod render;
pub mod report;
pub mod run;
pub mod schedule;
pub mod stats;
pub mod svg;
pub mod sweep;
pub mod sweep_report;
