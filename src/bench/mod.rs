//! Load generation for benchmarks.

pub mod loglines;
