//! Open-loop load generation.
//!
//! Record `i` of a producer is due at `t0 + i / rate`. Its latency is measured from that
//! scheduled time, not from the moment it was handed to the client, so a stall of the
//! client or the broker counts against every record that should have been sent during it
//! (no coordinated omission). A producer that falls behind sends at once, but keeps the
//! schedule: it catches up instead of silently lowering the offered load.

use std::time::{Duration, Instant};

/// When each record is due.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    start: Instant,
    /// `None`: closed loop, every record is due when the previous one has been handed over.
    interval_ns: Option<f64>,
}

impl Schedule {
    /// `rate` records per second from `start`; 0 = closed loop.
    pub fn new(start: Instant, rate: f64) -> Self {
        let interval_ns = (rate > 0.0).then(|| 1e9 / rate);
        Schedule { start, interval_ns }
    }

    pub fn is_open_loop(&self) -> bool {
        self.interval_ns.is_some()
    }

    /// The time record `seq` is due, or `None` in closed loop.
    pub fn due(&self, seq: u64) -> Option<Instant> {
        self.interval_ns
            .map(|ns| self.start + Duration::from_nanos((seq as f64 * ns) as u64))
    }
}

/// Where the driver hands records: a Kafka producer, or a fake in tests.
pub trait Sink {
    /// Hands record `seq`, due at `scheduled`, to the client. It must not drop the record:
    /// on back-pressure it waits (serving acknowledgements) and retries.
    fn send(&mut self, seq: u64, scheduled: Instant);
    /// Serves acknowledgements until `deadline`; may return earlier.
    fn wait_until(&mut self, deadline: Instant);
}

/// Runs the schedule until the first record due at or after `end`, or until `give_up` if
/// the producer is still behind then (an overloaded broker); returns the records sent.
pub fn drive(schedule: &Schedule, end: Instant, give_up: Instant, sink: &mut impl Sink) -> u64 {
    let mut seq = 0;
    loop {
        let now = Instant::now();
        let scheduled = schedule.due(seq).unwrap_or(now);
        if scheduled >= end || now >= give_up {
            return seq;
        }
        if scheduled > now {
            sink.wait_until(scheduled);
            continue;
        }
        sink.send(seq, scheduled);
        seq += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::Latency;

    /// Acknowledges each record as soon as it is sent, after a short service time, except
    /// record `stall_at`, whose send blocks for `stall`: a broker pause, say.
    struct StallingSink {
        stall_at: u64,
        stall: Duration,
        latency: Latency,
    }

    impl Sink for StallingSink {
        fn send(&mut self, seq: u64, scheduled: Instant) {
            if seq == self.stall_at {
                std::thread::sleep(self.stall);
            }
            std::thread::sleep(Duration::from_micros(50));
            self.latency.record(Instant::now() - scheduled);
        }
        fn wait_until(&mut self, deadline: Instant) {
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
        }
    }

    fn run(rate: f64) -> Latency {
        let mut sink = StallingSink {
            stall_at: 500,
            stall: Duration::from_millis(200),
            latency: Latency::new(),
        };
        let start = Instant::now();
        let end = start + Duration::from_secs(1);
        let sent = drive(
            &Schedule::new(start, rate),
            end,
            end + Duration::from_secs(5),
            &mut sink,
        );
        assert_eq!(sent, sink.latency.len());
        sink.latency
    }

    #[test]
    fn open_loop_charges_a_stall_to_every_record_scheduled_during_it() {
        // 2000 records/s for 1 s; the stall at record 500 (t = 250 ms) lasts 200 ms, so the
        // ~400 records due during it are sent late, by 200 ms down to 0.
        let latency = run(2000.0);
        let s = latency.summary();
        assert!(s.count >= 1900, "the schedule was kept: {s:?}");
        assert!(s.max >= 200.0, "{s:?}");
        // The top 1 % (20 records) were all due early in the stall.
        assert!(s.p99 >= 150.0, "p99 must include the stall: {s:?}");
        // Not one slow record: about 200 records waited over 100 ms.
        let over_100ms = (1.0 - quantile_below(&latency, 100.0)) * s.count as f64;
        assert!(
            over_100ms >= 120.0,
            "{over_100ms} records over 100 ms: {s:?}"
        );
        assert!(s.p50 < 50.0, "records outside the stall are fast: {s:?}");
    }

    #[test]
    fn closed_loop_hides_the_stall_in_one_record() {
        // What a closed-loop tool would report for the same stall: one slow record.
        let s = run(0.0).summary();
        assert!(s.max >= 200.0, "{s:?}");
        assert!(s.p99 < 50.0, "{s:?}");
    }

    /// The fraction of records whose latency is below `ms`.
    fn quantile_below(latency: &Latency, ms: f64) -> f64 {
        let (mut lo, mut hi) = (0.0f64, 1.0f64);
        for _ in 0..30 {
            let mid = (lo + hi) / 2.0;
            if latency.quantile_ms(mid) < ms {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }
}
