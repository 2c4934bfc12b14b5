//! Latency histograms (HdrHistogram, microseconds) and the percentiles the reports show.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;

/// Highest latency recorded exactly: one hour; longer values are clamped to it.
const MAX_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds, 3 significant digits.
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    pub fn new() -> Self {
        // Bounds are constants that `new_with_bounds` accepts (low >= 1, high >= 2 * low).
        Latency(Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds"))
    }

    pub fn record(&mut self, latency: Duration) {
        let us = (latency.as_micros() as u64).clamp(1, MAX_US);
        self.0.saturating_record(us);
    }

    pub fn add(&mut self, other: &Latency) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The latency at quantile `q` (0..=1), in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.0.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn summary(&self) -> Percentiles {
        Percentiles {
            count: self.0.len(),
            mean: self.0.mean() / 1000.0,
            p50: self.quantile_ms(0.5),
            p90: self.quantile_ms(0.9),
            p99: self.quantile_ms(0.99),
            p999: self.quantile_ms(0.999),
            p9999: self.quantile_ms(0.9999),
            max: self.0.max() as f64 / 1000.0,
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub p9999: f64,
    pub max: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_ordered() {
        let mut h = Latency::new();
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert!((s.p50 - 500.0).abs() < 1.0, "{s:?}");
        assert!(s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.p999 && s.p999 <= s.max);
        assert!((s.max - 1000.0).abs() < 1.0, "{s:?}");
    }
}
