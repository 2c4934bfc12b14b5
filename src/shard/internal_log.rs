//! Reading and writing the internal topics' partitions (`__consumer_offsets`,
//! `__transaction_state`) as their coordinators' hosts do: loading every record, and
//! waiting for an appended record to be replicated. Shared by `shard::groups` and
//! `shard::txns`, which use nothing of each other.

use super::logs::Log;
use crate::group::records::{LoggedRecord, parse_batches};
use std::time::{Duration, Instant};

/// How long a coordinator's write waits for the in-sync replicas before it counts as
/// failed (the client retries).
const REPLICATED_WITHIN: Duration = Duration::from_secs(5);

/// Waits until the high watermark passes `last_offset` (every in-sync replica has it);
/// `false` after `REPLICATED_WITHIN`. At once for a log with no other replica.
pub(super) async fn replicated(log: &Log, last_offset: i64) -> bool {
    let deadline = Instant::now() + REPLICATED_WITHIN;
    while log.high_watermark() <= last_offset {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let changed = log.changed();
        let tick = glommio::timer::sleep((deadline - now).min(Duration::from_millis(100)));
        futures_lite::future::or(changed, tick).await;
    }
    true
}

/// Appends the records of one partition of an internal topic (`__consumer_offsets`,
/// `__transaction_state`) to `out`, in log order.
pub(super) async fn read_records(
    log: &Log,
    topic: &str,
    partition: i32,
    out: &mut Vec<LoggedRecord>,
) {
    let mut offset = log.log_start_offset();
    // To the log end, not the high watermark: a new leader's high watermark lags its log
    // for a moment, and what it holds past it is the partition's future (its followers
    // copy it). Loading below it would miss the latest state: a transaction found decided
    // that was completed long ago would get its markers again, and commit whatever the
    // producer has open now.
    while offset < log.local_end() {
        let slice = match log.read_for_replica(offset, 1 << 20).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot load {topic}-{partition} at {offset}: {e}");
                return;
            }
        };
        let mut bytes = Vec::new();
        for region in &slice.regions {
            match region.read().await {
                Ok(b) => bytes.extend_from_slice(&b),
                Err(e) => {
                    tracing::error!("cannot read {topic}-{partition}: {e}");
                    return;
                }
            }
        }
        let (records, next) = parse_batches(&bytes);
        out.extend(records.into_iter().filter(|r| r.offset >= offset));
        match next {
            Some(next) if next > offset => offset = next,
            _ => return,
        }
    }
}
