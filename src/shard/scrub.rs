//! The scrubber of one shard: the sealed segments of the logs this shard owns read again
//! and checked as the open checks them (`PartitionLog::scrub_next`), in a low-share task
//! queue, paced to `log.scrub.io.max.bytes.per.second`. Two kinds of pass:
//! - soon after a log opened (within about a second), its sealed segments that the open
//!   did not read because a producer state snapshot stood for them
//!   (`PartitionLog::unverified_below`), once; this runs even when `log.scrub.interval.ms`
//!   is 0, so damage in a sealed segment is still found after every restart;
//! - every `log.scrub.interval.ms` (unless 0), every sealed segment of every log.
//!
//! Damage takes the partition offline at once, as damage found at open does: one ERROR
//! line naming the file, position and fault, and KAFKA_STORAGE_ERROR to its requests;
//! nothing on disk is changed (`ringbroker repair` is the operator's tool), and the other
//! partitions keep serving.

use super::Shard;
use super::cleaner::Throttle;
use crate::storage::clean::Pace;
use crate::storage::error::StorageError;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Against the default queue's 1000: the scrubber takes at most about 1/20 of a busy
/// shard.
const SCRUB_SHARES: usize = 50;

/// How often the scrubber looks for logs opened with segments left to check.
const OPENED_CHECK: Duration = Duration::from_secs(1);

/// Starts the shard's scrubber.
pub fn start(shard: Rc<Shard>) -> Option<glommio::Task<()>> {
    let interval = shard.config.cleaner.scrub_interval_ms;
    let interval = (interval > 0).then(|| Duration::from_millis(interval));
    let queue = glommio::executor().create_task_queue(
        glommio::Shares::Static(SCRUB_SHARES),
        glommio::Latency::NotImportant,
        "log-scrubber",
    );
    match glommio::spawn_local_into(run(shard, interval), queue) {
        Ok(task) => Some(task),
        Err(e) => {
            tracing::error!("cannot start the log scrubber: {e}");
            None
        }
    }
}

async fn run(shard: Rc<Shard>, interval: Option<Duration>) {
    let pace = Throttle::new(Some(shard.config.cleaner.scrub_io_max_bytes_per_second));
    // The open checked every sealed segment it read: the first full pass is one interval
    // later.
    let mut next_full = interval.map(|i| Instant::now() + i);
    let tick = interval.map_or(OPENED_CHECK, |i| i.min(OPENED_CHECK));
    loop {
        glommio::timer::sleep(tick).await;
        for (topic, p, log) in shard.all_logs() {
            if let Some(below) = log.unverified_below()
                && scrub(&shard, &topic, p, &log, &pace, Some(below)).await
            {
                log.mark_verified();
            }
        }
        if let (Some(at), Some(interval)) = (next_full, interval)
            && Instant::now() >= at
        {
            for (topic, p, log) in shard.all_logs() {
                scrub(&shard, &topic, p, &log, &pace, None).await;
            }
            next_full = Some(Instant::now() + interval);
        }
    }
}

/// Checks the sealed segments of one log with a base below `before` (all, when `None`).
/// `true` when all of them checked out.
async fn scrub(
    shard: &Shard,
    topic: &str,
    p: i32,
    log: &super::logs::Log,
    pace: &Throttle,
    before: Option<i64>,
) -> bool {
    let mut after = None;
    loop {
        match log.scrub_next(after, before).await {
            Ok(Some((base, size))) => {
                after = Some(base);
                pace.pace(size).await;
            }
            Ok(None) => return true,
            Err(e @ StorageError::Corrupt { .. }) => {
                shard.take_offline(topic, p, &e);
                return false;
            }
            Err(e) => {
                tracing::warn!("scrubbing {topic}-{p}: {e}; tried again next pass");
                return false;
            }
        }
    }
}
