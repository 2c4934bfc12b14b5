//! The partition work a shard does for requests: appends, reads, long-poll waits and
//! offset lookups, each on logs this shard owns.

use super::Shard;
use super::messages::*;
use super::stats::add;
use crate::protocol::code;
use crate::protocol::versions::list_offsets;
use crate::rt::LocalBoxFuture;
use crate::rt::join::{first_of, join_all};
use crate::storage::log::AppendInfo;
use crate::storage::{Chunk, StorageError};
use glommio::channels::local_channel;
use std::rc::Rc;
use std::time::Duration;

/// Kafka's API keys of Produce and Fetch, the label of their partition errors.
const API_PRODUCE: i16 = 0;
const API_FETCH: i16 = 1;

/// Kafka's answer to a batch with records without a key on a compacted topic: the batch
/// index of each in `record_errors`, with Kafka's message while the messages together take
/// no more bytes than the batch did (admission lists at most one record per 7 bytes of it,
/// so the answer stays smaller than the request), and an `error_message` that counts them
/// and shows the first three, as Kafka's `RecordValidationException` does.
fn keyless_refused(
    topic: &str,
    partition: i32,
    batch_bytes: usize,
    indexes: Vec<i32>,
    total: u32,
) -> ProduceResult {
    let message = format!(
        "Compacted topic cannot accept message without key in topic partition \
         {topic}-{partition}"
    );
    let shown: Vec<String> = indexes
        .iter()
        .take(3)
        .map(|i| format!("RecordError(batchIndex={i}, message='{message}')"))
        .collect();
    let mut budget = batch_bytes;
    let record_errors = indexes
        .into_iter()
        .map(|i| {
            let m = budget.checked_sub(message.len()).map(|left| {
                budget = left;
                message.clone()
            });
            (i, m)
        })
        .collect();
    ProduceResult {
        record_errors,
        ..ProduceResult::error(
            code::INVALID_RECORD,
            Some(format!(
                "One or more records have been rejected due to {total} record errors in \
                 total, and only showing the first three errors at most: [{}]",
                shown.join(", ")
            )),
        )
    }
}

impl Shard {
    /// The log of a partition this broker leads, or the error a client gets: a partition
    /// led elsewhere (or by nobody) is NOT_LEADER_OR_FOLLOWER, so the client refreshes its
    /// metadata and goes to the leader.
    pub(super) fn leader_log(&self, topic: &str, partition: i32) -> Result<super::logs::Log, i16> {
        let meta = self.meta();
        let known = meta
            .topics
            .get(topic)
            .is_some_and(|t| (0..t.partitions).contains(&partition));
        if known && !meta.leads(topic, partition) {
            return Err(code::NOT_LEADER_OR_FOLLOWER);
        }
        if known && self.table.offline(topic, partition).is_some() {
            return Err(code::KAFKA_STORAGE_ERROR);
        }
        self.log(topic, partition)
            .ok_or(code::UNKNOWN_TOPIC_OR_PARTITION)
    }

    pub(super) async fn produce(self: &Rc<Self>, parts: Vec<ProducePart>) -> Vec<ProduceResult> {
        let _queued = super::metrics::Held::new(&self.metrics.produce_in_flight);
        // The partitions of one request are appended concurrently: each waits for its own
        // durability (under flush=fsync, each log's group commit), so a request for 12
        // partitions costs one fdatasync round, not 12 in a row. Offsets within a
        // partition still follow the request's order: each append takes its place in line
        // here, when called.
        let appends: Vec<LocalBoxFuture<'_, ProduceResult>> = parts
            .into_iter()
            .map(|part| {
                let log = self.leader_log(&part.topic, part.partition);
                if crate::fatal::faults().panic_topic.as_deref() == Some(part.topic.as_str()) {
                    panic!("injected fault: an append to {} panics", part.topic);
                }
                let batch_bytes = part.records.len();
                // acks=all with fewer in-sync replicas than min.insync.replicas appends
                // nothing (Kafka checks before the append).
                let all = part.acks == -1;
                let log = log.and_then(|log| {
                    if all && self.too_few_in_sync(&part.topic, part.partition) {
                        Err(code::NOT_ENOUGH_REPLICAS)
                    } else {
                        Ok(log)
                    }
                });
                let append = log.map(|log| {
                    // The first batch of a producer's transaction here is checked with the
                    // transaction's coordinator first (KIP-890): a partition the
                    // coordinator does not know would never get a marker, and its last
                    // stable offset would hang.
                    let open = transactional_producer(&part.records)
                        .filter(|(pid, _)| !log.has_open_transaction(*pid));
                    let append: LocalBoxFuture<'static, Result<AppendInfo, StorageError>> =
                        match open {
                            Some((pid, epoch)) => {
                                let gate = self.txn_gate(
                                    part.transactional_id.clone(),
                                    pid,
                                    epoch,
                                    part.topic.clone(),
                                    part.partition,
                                );
                                Box::pin(log.append_gated(part.records, gate))
                            }
                            None => Box::pin(log.append(part.records)),
                        };
                    (log, append)
                });
                let (topic, partition) = (part.topic, part.partition);
                let timeout = Duration::from_millis(part.timeout_ms);
                Box::pin(async move {
                    let (log, append) = match append {
                        Ok(append) => append,
                        Err(c) => return ProduceResult::error(c, None),
                    };
                    match append.await {
                        Ok(info) => {
                            let error_code = if all {
                                self.wait_replicated(
                                    &topic,
                                    partition,
                                    &log,
                                    info.last_offset,
                                    timeout,
                                )
                                .await
                            } else {
                                code::NONE
                            };
                            ProduceResult {
                                error_code,
                                error_message: None,
                                base_offset: info.base_offset,
                                log_append_time: info.log_append_time,
                                log_start_offset: info.log_start_offset,
                                record_errors: Vec::new(),
                            }
                        }
                        Err(StorageError::KeylessRecords { indexes, total }) => {
                            keyless_refused(&topic, partition, batch_bytes, indexes, total)
                        }
                        Err(e) => ProduceResult::error(e.code(), Some(e.to_string())),
                    }
                }) as LocalBoxFuture<'_, ProduceResult>
            })
            .collect();
        let results = join_all(appends).await;
        self.count_errors(API_PRODUCE, results.iter().map(|r| r.error_code));
        results
    }

    /// Counts the partitions answered with an error (the omitted duplicates are none).
    fn count_errors(&self, api: i16, codes: impl Iterator<Item = i16>) {
        for c in codes {
            if c != code::NONE && c != i16::MIN {
                self.metrics.partition_error(api, c);
            }
        }
    }

    pub(super) async fn read(&self, parts: Vec<ReadPart>, max_bytes: u64) -> Vec<ReadResult> {
        let mut out = Vec::with_capacity(parts.len());
        let mut budget = max_bytes;
        for part in parts {
            let log = match self.leader_log(&part.topic, part.partition) {
                Ok(log) => log,
                Err(c) => {
                    out.push(ReadResult::error(c));
                    continue;
                }
            };
            if let Some(c) =
                self.leader_epoch_error(&part.topic, part.partition, part.current_leader_epoch)
            {
                out.push(ReadResult::error(c));
                continue;
            }
            let empty = |diverging| ReadResult {
                error_code: code::NONE,
                high_watermark: log.high_watermark(),
                last_stable_offset: log.last_stable_offset(),
                aborted: Vec::new(),
                log_start_offset: log.log_start_offset(),
                records: Vec::new(),
                diverging,
            };
            let replica = part.replica >= 0;
            if replica {
                // A follower whose last fetched epoch ends earlier here (or is not here)
                // holds a tail this log does not: it truncates before fetching more.
                let diverged = log.diverging(part.last_fetched_epoch, part.offset);
                if diverged.is_some() {
                    out.push(empty(diverged));
                    continue;
                }
                self.replica_fetched(&part.topic, part.partition, part.replica, part.offset, &log);
            }
            if budget == 0 {
                // The response is full: report the partition's offsets without records.
                out.push(empty(None));
                continue;
            }
            let max = part.max_bytes.min(budget);
            let slice = if replica {
                log.read_for_replica(part.offset, max).await
            } else if part.committed {
                log.read_committed(part.offset, max).await
            } else {
                log.read(part.offset, max).await
            };
            let slice = match slice {
                Ok(s) => s,
                Err(e) => {
                    let mut r = ReadResult::error(e.code());
                    r.high_watermark = log.high_watermark();
                    r.last_stable_offset = log.last_stable_offset();
                    r.log_start_offset = log.log_start_offset();
                    out.push(r);
                    continue;
                }
            };
            // Regions leave as chunks: cached bytes as they are, file ranges as a dup of the
            // segment's descriptor (so they can cross to the connection's shard and outlive
            // a retention delete), copied only when the file has no descriptor.
            let mut records = Vec::with_capacity(slice.regions.len());
            let mut failed = None;
            for region in &slice.regions {
                if let Some(cached) = &region.cached {
                    add(&self.fetch_stats.cache_hit_bytes, region.len);
                    records.extend(cached.iter().cloned().map(Chunk::Bytes));
                    continue;
                }
                if log.config().io == crate::config::IoMode::Direct {
                    add(&self.fetch_stats.cache_miss_bytes, region.len);
                }
                let dup = region.raw_fd().map(|fd| {
                    // SAFETY: `fd` is open for as long as `region` holds its file.
                    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
                    borrowed.try_clone_to_owned()
                });
                match dup {
                    Some(Ok(fd)) => records.push(Chunk::File {
                        fd,
                        position: region.position,
                        len: region.len,
                        pin: region.send_pin(),
                    }),
                    Some(Err(e)) => {
                        failed = Some(e);
                        break;
                    }
                    None => match region.read().await {
                        Ok(bytes) => records.push(Chunk::Bytes(bytes.into())),
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    },
                }
            }
            if let Some(e) = failed {
                tracing::error!("read of {}-{} failed: {e}", part.topic, part.partition);
                out.push(ReadResult::error(code::KAFKA_STORAGE_ERROR));
                continue;
            }
            let len: u64 = records.iter().map(Chunk::len).sum();
            log.stats().read(len, slice.records);
            budget = budget.saturating_sub(len);
            let last_stable_offset = log.last_stable_offset();
            // Only the aborted transactions the returned records overlap (Kafka's bound): a
            // consumer far behind would otherwise get every one up to the LSO.
            let aborted = if part.committed && len > 0 {
                log.aborted_between(part.offset, slice.end_offset.min(last_stable_offset))
                    .into_iter()
                    .map(|t| (t.producer_id, t.first_offset))
                    .collect()
            } else {
                Vec::new()
            };
            out.push(ReadResult {
                error_code: code::NONE,
                // A follower reads past the high watermark, and a read_committed read
                // stops at the last stable offset; both learn the real high watermark.
                high_watermark: if replica || part.committed {
                    log.high_watermark()
                } else {
                    slice.high_watermark
                },
                last_stable_offset,
                aborted,
                log_start_offset: slice.log_start_offset,
                records,
                diverging: None,
            });
        }
        self.count_errors(API_FETCH, out.iter().map(|r| r.error_code));
        out
    }

    /// Waits until one of `parts` has a high watermark above the one the caller saw, or the
    /// timeout. Checking against the caller's value closes the race with an append that
    /// lands between the caller's read and this wait.
    pub(super) async fn wait_changed(
        &self,
        parts: Vec<(String, i32, i64)>,
        timeout_ms: u64,
        replica: bool,
        cancel: Option<local_channel::LocalReceiver<()>>,
    ) {
        let mut logs = Vec::with_capacity(parts.len());
        for (topic, partition, seen) in &parts {
            let Some(log) = self.log(topic, *partition) else {
                return;
            };
            let now = if replica {
                log.local_end()
            } else {
                log.high_watermark()
            };
            if now != *seen {
                return;
            }
            logs.push(log);
        }
        let _parked = super::metrics::Held::new(&self.metrics.fetch_waiting);
        // No await between the checks above and registering here, so no advance is missed.
        let mut waits: Vec<LocalBoxFuture<'_, ()>> = Vec::with_capacity(logs.len() + 1);
        for log in &logs {
            waits.push(Box::pin(log.changed()));
        }
        waits.push(Box::pin(glommio::timer::sleep(Duration::from_millis(
            timeout_ms,
        ))));
        if let Some(cancel) = cancel {
            waits.push(Box::pin(async move {
                // Resolves when the sender is dropped: the caller stopped waiting.
                let _ = cancel.recv().await;
            }));
        }
        first_of(waits).await;
    }

    pub(super) async fn list_offsets(&self, parts: Vec<ListOffsetsPart>) -> Vec<ListOffsetsResult> {
        let mut out = Vec::with_capacity(parts.len());
        for part in parts {
            let log = match self.leader_log(&part.topic, part.partition) {
                Ok(log) => log,
                Err(c) => {
                    out.push(ListOffsetsResult::error(c));
                    continue;
                }
            };
            let ok = |offset| ListOffsetsResult {
                error_code: code::NONE,
                offset,
                timestamp: -1,
            };
            out.push(match part.timestamp {
                // EARLIEST, and EARLIEST_LOCAL (v8): with no tiered storage every segment
                // is local.
                list_offsets::EARLIEST | list_offsets::EARLIEST_LOCAL => ok(log.log_start_offset()),
                list_offsets::LATEST if part.committed => ok(log.last_stable_offset()),
                list_offsets::LATEST => ok(log.high_watermark()),
                // LATEST_TIERED (v9): nothing is tiered, which Kafka answers with -1.
                list_offsets::LATEST_TIERED => ok(-1),
                list_offsets::MAX_TIMESTAMP => match log.max_timestamp_offset().await {
                    Ok(Some((offset, timestamp))) => ListOffsetsResult {
                        error_code: code::NONE,
                        offset,
                        timestamp,
                    },
                    Ok(None) => ok(-1),
                    Err(e) => ListOffsetsResult::error(e.code()),
                },
                ts if ts < 0 => ListOffsetsResult::error(code::INVALID_REQUEST),
                ts => match log.offset_for_timestamp(ts).await {
                    Ok(Some((offset, timestamp))) => ListOffsetsResult {
                        error_code: code::NONE,
                        offset,
                        timestamp,
                    },
                    Ok(None) => ok(-1),
                    Err(e) => ListOffsetsResult::error(e.code()),
                },
            });
        }
        out
    }

    /// The idempotent producers of partitions this shard owns (DescribeProducers); a
    /// partition led elsewhere answers NOT_LEADER_OR_FOLLOWER, as Kafka's leader-only view.
    pub(super) fn describe_producers(&self, parts: Vec<(String, i32)>) -> Vec<ProducersResult> {
        parts
            .into_iter()
            .map(
                |(topic, partition)| match self.leader_log(&topic, partition) {
                    Ok(log) => ProducersResult {
                        error_code: code::NONE,
                        producers: log.active_producers(),
                    },
                    Err(c) => ProducersResult::error(c),
                },
            )
            .collect()
    }
}

/// The producer id and epoch of the first batch of `records` when it is transactional.
fn transactional_producer(records: &[u8]) -> Option<(i64, i16)> {
    let h = crate::protocol::batch::BatchHeader::parse(records).ok()?;
    let transactional = h.attributes & crate::protocol::batch::ATTR_TRANSACTIONAL != 0;
    (transactional && h.producer_id >= 0).then_some((h.producer_id, h.producer_epoch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyless_records_are_named_with_messages_within_the_batch_size() {
        let r = keyless_refused("t", 2, 10_000, vec![0, 10, 20, 30], 4);
        assert_eq!(r.error_code, code::INVALID_RECORD);
        let m = "Compacted topic cannot accept message without key in topic partition t-2";
        let named: Vec<(i32, Option<&str>)> = r
            .record_errors
            .iter()
            .map(|(i, m)| (*i, m.as_deref()))
            .collect();
        assert_eq!(
            named,
            vec![(0, Some(m)), (10, Some(m)), (20, Some(m)), (30, Some(m))]
        );
        let shown = format!(
            "[RecordError(batchIndex=0, message='{m}'), RecordError(batchIndex=10, \
             message='{m}'), RecordError(batchIndex=20, message='{m}')]"
        );
        assert_eq!(
            r.error_message,
            Some(format!(
                "One or more records have been rejected due to 4 record errors in total, and \
                 only showing the first three errors at most: {shown}"
            ))
        );
        // A batch of tiny records: the messages stop where they would outgrow it; every
        // record is still named, and the total counts those admission did not list.
        let r = keyless_refused("t", 2, 2 * m.len() + 1, (0..100).collect(), 5000);
        let with_message = r.record_errors.iter().filter(|(_, m)| m.is_some()).count();
        assert_eq!((r.record_errors.len(), with_message), (100, 2));
        assert!(
            r.error_message
                .is_some_and(|e| e.contains("due to 5000 record errors in total"))
        );
    }
}
