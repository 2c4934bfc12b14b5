//! Counters and histograms shared by the producer, consumer and progress threads.

use crate::histogram::Latency;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// Everything measured in one run. Times are nanoseconds since `epoch`.
///
/// Latencies and "records" counts cover the records *scheduled* inside the measurement
/// window; throughputs count the acknowledgements and receipts that *happened* inside it.
pub struct Stats {
    pub epoch: Instant,
    pub record_size: u64,
    window_start_ns: AtomicU64,
    window_end_ns: AtomicU64,
    /// Every record handed to a producer client, warm-up included.
    pub sent_total: AtomicU64,
    /// Every successful acknowledgement, warm-up included.
    pub acked_total: AtomicU64,
    /// Acknowledged records scheduled in the window.
    pub acked: AtomicU64,
    /// Acknowledgements that arrived in the window.
    pub acked_in_window: AtomicU64,
    pub produce_errors: AtomicU64,
    /// Every record of this run received, warm-up included.
    pub consumed_total: AtomicU64,
    /// Received records scheduled in the window.
    pub consumed: AtomicU64,
    /// Receipts in the window.
    pub consumed_in_window: AtomicU64,
    pub consume_errors: AtomicU64,
    ack_latency: Mutex<Latency>,
    e2e_latency: Mutex<Latency>,
}

impl Stats {
    pub fn new(record_size: usize) -> Self {
        Stats {
            epoch: Instant::now(),
            record_size: record_size as u64,
            window_start_ns: AtomicU64::new(u64::MAX),
            window_end_ns: AtomicU64::new(u64::MAX),
            sent_total: AtomicU64::new(0),
            acked_total: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            acked_in_window: AtomicU64::new(0),
            produce_errors: AtomicU64::new(0),
            consumed_total: AtomicU64::new(0),
            consumed: AtomicU64::new(0),
            consumed_in_window: AtomicU64::new(0),
            consume_errors: AtomicU64::new(0),
            ack_latency: Mutex::new(Latency::new()),
            e2e_latency: Mutex::new(Latency::new()),
        }
    }

    /// Sets the measurement window; called before the first record is produced.
    pub fn set_window(&self, start: Instant, end: Instant) {
        let ns = |t: Instant| t.saturating_duration_since(self.epoch).as_nanos() as u64;
        self.window_start_ns.store(ns(start), Relaxed);
        self.window_end_ns.store(ns(end), Relaxed);
    }

    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    pub fn ns_of(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    pub fn in_window(&self, ns: u64) -> bool {
        ns >= self.window_start_ns.load(Relaxed) && ns < self.window_end_ns.load(Relaxed)
    }

    /// Whether the measurement window had begun at `t`.
    pub fn window_started_at(&self, t: Instant) -> bool {
        self.ns_of(t) >= self.window_start_ns.load(Relaxed)
    }

    /// A producer learnt that the record scheduled at `scheduled_ns` was acknowledged.
    pub fn on_ack(&self, scheduled_ns: u64) {
        let now = self.now_ns();
        self.acked_total.fetch_add(1, Relaxed);
        if self.in_window(now) {
            self.acked_in_window.fetch_add(1, Relaxed);
        }
        if self.in_window(scheduled_ns) {
            self.acked.fetch_add(1, Relaxed);
            let latency = std::time::Duration::from_nanos(now.saturating_sub(scheduled_ns));
            lock(&self.ack_latency).record(latency);
        }
    }

    /// A consumer received the record of this run scheduled at `scheduled_ns`.
    pub fn on_receive(&self, scheduled_ns: u64) {
        let now = self.now_ns();
        self.consumed_total.fetch_add(1, Relaxed);
        if self.in_window(now) {
            self.consumed_in_window.fetch_add(1, Relaxed);
        }
        if self.in_window(scheduled_ns) {
            self.consumed.fetch_add(1, Relaxed);
            let latency = std::time::Duration::from_nanos(now.saturating_sub(scheduled_ns));
            lock(&self.e2e_latency).record(latency);
        }
    }

    pub fn ack_latency(&self) -> MutexGuard<'_, Latency> {
        lock(&self.ack_latency)
    }

    pub fn e2e_latency(&self) -> MutexGuard<'_, Latency> {
        lock(&self.e2e_latency)
    }
}

/// A histogram stays usable even if a thread panicked while holding it.
fn lock(m: &Mutex<Latency>) -> MutexGuard<'_, Latency> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
