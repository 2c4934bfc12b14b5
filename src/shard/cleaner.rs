//! The log cleaner of one shard (`cleanup.policy=compact`): a background task on the
//! shard's reactor, in its own low-share task queue, that cleans one log at a time.
//!
//! Each pass asks every compacted log this shard owns how dirty it is
//! (`PartitionLog::cleanable`) and cleans the dirtiest one whose dirty ratio reaches its
//! `min.cleanable.dirty.ratio`, or one that is overdue (`max.compaction.lag.ms` passed,
//! or a tombstone's delete horizon). With nothing to clean it sleeps
//! `log.cleaner.backoff.ms`. Its IO is paced to `log.cleaner.io.max.bytes.per.second`,
//! and it yields to the shard's request tasks whenever glommio says they wait. A log
//! whose clean fails (a corrupt batch, a key map too small) is left alone for ten
//! backoffs, and the error is logged, as Kafka marks such a partition uncleanable.

use super::Shard;
use crate::config::CleanerConfig;
use crate::storage::clean::Pace;
use std::cell::Cell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The cleaner's share of the reactor against the default queue's 1000: it runs when the
/// shard has CPU to spare, and cannot take more than about 1/10 of a busy one.
const CLEANER_SHARES: usize = 100;

/// Paces the cleaner's bytes to a rate, and yields to other tasks.
pub struct Throttle {
    rate: Option<u64>,
    window_start: Cell<Instant>,
    window_bytes: Cell<u64>,
}

impl Throttle {
    pub fn new(rate: Option<u64>) -> Throttle {
        Throttle {
            rate,
            window_start: Cell::new(Instant::now()),
            window_bytes: Cell::new(0),
        }
    }

    /// How long to wait after `bytes` more, `elapsed` into the window.
    fn wait_for(&self, bytes: u64, elapsed: Duration) -> Duration {
        let total = self.window_bytes.get().saturating_add(bytes);
        self.window_bytes.set(total);
        let Some(rate) = self.rate.filter(|&r| r > 0) else {
            return Duration::ZERO;
        };
        let due = Duration::from_secs_f64(total as f64 / rate as f64);
        due.saturating_sub(elapsed)
    }
}

impl Pace for Throttle {
    async fn pace(&self, bytes: u64) {
        let wait = self.wait_for(bytes, self.window_start.get().elapsed());
        if !wait.is_zero() {
            glommio::timer::sleep(wait).await;
        }
        // A fresh window every second: an idle spell (the window's time passed without
        // its bytes) is not saved up as a burst.
        if self.window_start.get().elapsed() >= Duration::from_secs(1) {
            self.window_start.set(Instant::now());
            self.window_bytes.set(0);
        }
        glommio::yield_if_needed().await;
    }
}

/// Starts the shard's cleaner in its own task queue; `None` when `log.cleaner.enable` is
/// off. Dropping the task stops it: a clean cut short leaves files that the next open of
/// the log removes or finishes (see `storage::log::swap`).
pub fn start(shard: Rc<Shard>) -> Option<glommio::Task<()>> {
    let config = shard.config.cleaner.clone();
    if !config.enable {
        return None;
    }
    let queue = glommio::executor().create_task_queue(
        glommio::Shares::Static(CLEANER_SHARES),
        glommio::Latency::NotImportant,
        "log-cleaner",
    );
    match glommio::spawn_local_into(run(shard, config), queue) {
        Ok(task) => Some(task),
        Err(e) => {
            tracing::error!("cannot start the log cleaner: {e}");
            None
        }
    }
}

async fn run(shard: Rc<Shard>, config: CleanerConfig) {
    let pace = Throttle::new(config.io_max_bytes_per_second);
    let backoff = Duration::from_millis(config.backoff_ms);
    let mut uncleanable: HashMap<PathBuf, Instant> = HashMap::new();
    loop {
        let now = crate::storage::log::wall_clock_ms();
        uncleanable.retain(|_, since| since.elapsed() < backoff * 10);
        let mut best = None;
        let mut best_score = f64::MIN;
        for (topic, p, log) in shard.all_logs() {
            if uncleanable.contains_key(log.dir()) {
                continue;
            }
            match log.cleanable(now).await {
                Ok(Some(c)) => {
                    let ratio = log.config().min_cleanable_dirty_ratio;
                    let score = if c.overdue {
                        2.0 + c.dirty_ratio
                    } else {
                        c.dirty_ratio
                    };
                    if (c.overdue || c.dirty_ratio >= ratio) && score > best_score {
                        best_score = score;
                        best = Some((topic, p, log));
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("cleaner: cannot look at {topic}-{p}: {e}"),
            }
            glommio::yield_if_needed().await;
        }
        let Some((topic, p, log)) = best else {
            glommio::timer::sleep(backoff).await;
            continue;
        };
        let started = Instant::now();
        match log.clean(now, config.dedupe_buffer_bytes, &pace).await {
            Ok(Some(r)) => tracing::info!(
                "cleaner: {topic}-{p} clean up to offset {} in {:?}: {} -> {} sealed segments, \
                 {} bytes read, {} written, {} records removed ({} tombstones)",
                r.cleaned_to,
                started.elapsed(),
                r.segments_before,
                r.segments_after,
                r.bytes_read,
                r.bytes_written,
                r.records_removed,
                r.tombstones_removed
            ),
            Ok(None) => glommio::timer::sleep(backoff).await,
            Err(e) => {
                tracing::error!("cleaner: {topic}-{p} cannot be cleaned, skipped for a while: {e}");
                uncleanable.insert(log.dir().to_path_buf(), Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_waits_in_proportion_to_the_bytes() {
        let t = Throttle::new(Some(1000));
        assert_eq!(t.wait_for(500, Duration::ZERO), Duration::from_millis(500));
        assert_eq!(
            t.wait_for(500, Duration::from_millis(400)),
            Duration::from_millis(600)
        );
        assert_eq!(t.wait_for(0, Duration::from_secs(5)), Duration::ZERO);
        let free = Throttle::new(None);
        assert_eq!(free.wait_for(1 << 30, Duration::ZERO), Duration::ZERO);
    }
}
