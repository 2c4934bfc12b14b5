//! Counters and fixed-bucket histograms a shard keeps for itself: plain `Cell`s, never
//! shared or atomic, read by their own shard when a scrape asks for a snapshot (see
//! `crate::shard::metrics`), so counting costs an add and nothing more.

use std::cell::Cell;

/// Adds `n` to a counter (wrapping: a counter that wraps after 2^64 is not a concern).
pub fn add(c: &Cell<u64>, n: u64) {
    c.set(c.get().wrapping_add(n));
}

/// Upper bounds of latency buckets, in microseconds: 50 µs to 10 s.
pub const LATENCY_US: &[u64] = &[
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Upper bounds of count buckets (appends per group-commit write): 1 to 1024.
pub const COUNT: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/// A histogram with fixed upper bounds; values above the last fall in `+Inf`.
pub struct Histogram {
    bounds: &'static [u64],
    /// One count per bound, plus `+Inf`; not cumulative.
    counts: Box<[Cell<u64>]>,
    sum: Cell<u64>,
}

/// What a histogram held when read: `Send`, so it can cross the mesh.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    pub bounds: &'static [u64],
    /// One count per bound, plus `+Inf`; not cumulative.
    pub counts: Vec<u64>,
    pub sum: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [u64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| Cell::new(0)).collect(),
            sum: Cell::new(0),
        }
    }

    pub fn observe(&self, v: u64) {
        let i = self.bounds.partition_point(|b| *b < v);
        if let Some(c) = self.counts.get(i) {
            add(c, 1);
        }
        add(&self.sum, v);
    }

    /// Observes the time since `start`, in microseconds.
    pub fn observe_since(&self, start: std::time::Instant) {
        self.observe(u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX));
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(Cell::get).fold(0, u64::wrapping_add)
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds,
            counts: self.counts.iter().map(Cell::get).collect(),
            sum: self.sum.get(),
        }
    }
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().fold(0, |a, b| a.wrapping_add(*b))
    }

    /// Adds another snapshot of the same bounds (another shard's, another log's).
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        if self.counts.is_empty() {
            *self = other.clone();
            return;
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a = a.wrapping_add(*b);
        }
        self.sum = self.sum.wrapping_add(other.sum);
    }

    /// The sum, and `(upper bound, count in this bucket alone)` per bound then `+Inf`, as
    /// `prometheus-client`'s encoder takes them (it writes the cumulative counts); bounds
    /// and sum divided by `scale` (1e6 turns microseconds into seconds).
    pub fn buckets(&self, scale: f64) -> (f64, Vec<(f64, u64)>) {
        let out = self
            .counts
            .iter()
            .enumerate()
            .map(|(i, c)| match self.bounds.get(i) {
                Some(b) => (*b as f64 / scale, *c),
                None => (f64::INFINITY, *c),
            })
            .collect();
        (self.sum as f64 / scale, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fall_in_the_first_bucket_that_holds_them() {
        let h = Histogram::new(&[1, 10, 100]);
        for v in [0, 1, 2, 10, 11, 100, 101, 5000] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.counts, vec![2, 2, 2, 2]);
        assert_eq!(s.sum, 5225);
        assert_eq!(h.count(), 8);
        let (sum, buckets) = s.buckets(1.0);
        assert_eq!(sum, 5225.0);
        assert_eq!(
            buckets,
            vec![(1.0, 2), (10.0, 2), (100.0, 2), (f64::INFINITY, 2)]
        );
    }

    #[test]
    fn merged_snapshots_add_up() {
        let a = Histogram::new(COUNT);
        let b = Histogram::new(COUNT);
        a.observe(3);
        b.observe(3);
        b.observe(2000);
        let mut m = HistogramSnapshot::default();
        m.merge(&a.snapshot());
        m.merge(&b.snapshot());
        assert_eq!(m.count(), 3);
        assert_eq!(m.sum, 2006);
    }
}
