//! The scrubber of one shard: every `log.scrub.interval.ms`, each sealed segment of the
//! logs this shard owns is read again and checked as the open checks it
//! (`PartitionLog::scrub_next`), in a low-share task queue, paced to
//! `log.scrub.io.max.bytes.per.second`. Damage takes the partition offline at once, as
//! damage found at open does: one ERROR line naming the file, position and fault, and
//! KAFKA_STORAGE_ERROR to its requests; nothing on disk is changed (`ringbroker repair`
//! is the operator's tool), and the other partitions keep serving.

use super::Shard;
use super::cleaner::Throttle;
use crate::storage::clean::Pace;
use crate::storage::error::StorageError;
use std::rc::Rc;
use std::time::Duration;

/// Against the default queue's 1000: the scrubber takes at most about 1/20 of a busy
/// shard.
const SCRUB_SHARES: usize = 50;

/// Starts the shard's scrubber; `None` when `log.scrub.interval.ms` is 0.
pub fn start(shard: Rc<Shard>) -> Option<glommio::Task<()>> {
    let interval = shard.config.cleaner.scrub_interval_ms;
    if interval == 0 {
        return None;
    }
    let queue = glommio::executor().create_task_queue(
        glommio::Shares::Static(SCRUB_SHARES),
        glommio::Latency::NotImportant,
        "log-scrubber",
    );
    match glommio::spawn_local_into(run(shard, Duration::from_millis(interval)), queue) {
        Ok(task) => Some(task),
        Err(e) => {
            tracing::error!("cannot start the log scrubber: {e}");
            None
        }
    }
}

async fn run(shard: Rc<Shard>, interval: Duration) {
    let pace = Throttle::new(Some(shard.config.cleaner.scrub_io_max_bytes_per_second));
    loop {
        // The open checked every sealed segment: the first pass is one interval later.
        glommio::timer::sleep(interval).await;
        for (topic, p, log) in shard.all_logs() {
            let mut after = None;
            loop {
                match log.scrub_next(after).await {
                    Ok(Some((base, size))) => {
                        after = Some(base);
                        pace.pace(size).await;
                    }
                    Ok(None) => break,
                    Err(e @ StorageError::Corrupt { .. }) => {
                        shard.take_offline(&topic, p, &e);
                        break;
                    }
                    Err(e) => {
                        tracing::warn!("scrubbing {topic}-{p}: {e}; tried again next pass");
                        break;
                    }
                }
            }
        }
    }
}
