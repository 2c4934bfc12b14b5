//! Admission of an append: size checks, the record walk of `storage::admit`,
//! recompression, the idempotent producer checks, and offset assignment.

use super::PartitionLog;
use crate::compression::{self, Codec};
use crate::config::{FlushMode, LogConfig};
use crate::producer::{ProducerBatch, Verdict};
use crate::protocol::batch;
use crate::storage::admit;
use crate::storage::error::{Result, StorageError};
use crate::storage::io::Storage;
use crate::storage::notify::Ticket;
use bytes::{Bytes, BytesMut};
use std::future::Future;

/// What an append was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker timestamp stamped on the batches, or -1 for `CreateTime` topics.
    pub log_append_time: i64,
    pub log_start_offset: i64,
}

fn producer_batch(h: &batch::BatchHeader) -> ProducerBatch {
    ProducerBatch {
        producer_id: h.producer_id,
        epoch: h.producer_epoch,
        first_seq: h.base_sequence,
        last_offset_delta: h.last_offset_delta,
    }
}

/// Rewrites the batches not in `target` (admission walked their records already). Returns
/// the new bytes, or `None` when every batch is already stored as `target`.
fn recompress(
    headers: &[(batch::BatchHeader, std::ops::Range<usize>)],
    batches: &[u8],
    target: Codec,
    config: &LogConfig,
) -> Result<Option<Vec<u8>>> {
    let limit = compression::decompressed_limit(config.max_batch_bytes);
    let mut rewritten: Vec<Option<Vec<u8>>> = Vec::with_capacity(headers.len());
    for (h, range) in headers {
        rewritten.push(compression::recompress_batch(
            h,
            &batches[range.clone()],
            target,
            limit,
        )?);
    }
    if rewritten.iter().all(Option::is_none) {
        return Ok(None);
    }
    let mut out = Vec::new();
    for ((_, range), new) in headers.iter().zip(rewritten) {
        match new {
            Some(b) => out.extend_from_slice(&b),
            None => out.extend_from_slice(&batches[range.clone()]),
        }
    }
    Ok(Some(out))
}

impl<S: Storage> PartitionLog<S> {
    /// Appends one or more v2 batches (a produce request's records). See [the append
    /// contract](crate::storage::log#the-append-contract) for what is durable when the
    /// future resolves.
    ///
    /// Not an `async fn`: the place in line is taken here, when `append` is called, so
    /// offsets follow the order of the calls even when the futures are polled in another
    /// order. The future holds its own handle on the log and borrows nothing, so a caller
    /// may call `append` in order and await each future in a task of its own.
    pub fn append(&self, batches: Bytes) -> impl Future<Output = Result<AppendInfo>> + use<S> {
        let ticket = self.inner.assign_lock.ticket();
        let log = self.clone();
        async move { log.append_in_line(ticket, batches).await }
    }

    /// As [`PartitionLog::append`], once `gate` allows it: the place in line is taken now,
    /// so offsets still follow the order of the calls, and the appends behind this one wait
    /// for the gate. A gate that fails appends nothing and gives the place up.
    pub fn append_gated<G>(
        &self,
        batches: Bytes,
        gate: G,
    ) -> impl Future<Output = Result<AppendInfo>> + use<S, G>
    where
        G: Future<Output = Result<()>>,
    {
        let ticket = self.inner.assign_lock.ticket();
        let log = self.clone();
        async move {
            gate.await?;
            log.append_in_line(ticket, batches).await
        }
    }

    /// The append itself, once its place in line (`ticket`) is taken.
    async fn append_in_line(&self, ticket: Ticket, batches: Bytes) -> Result<AppendInfo> {
        let config = self.config();
        let size = batches.len() as u64;
        if size > config.max_batch_bytes || size > config.segment_bytes.min(u32::MAX as u64) {
            return Err(StorageError::BatchTooLarge {
                size,
                max: config.max_batch_bytes.min(config.segment_bytes),
            });
        }
        let mut headers = batch::validate_batches(&batches)?;
        let checked_at = self.now();
        let issued = self
            .inner
            .issued_ids
            .borrow()
            .as_ref()
            .map(|a| a.load(std::sync::atomic::Ordering::Acquire));
        admit::check_headers(&headers, &config, checked_at, issued)?;
        let mut batches = batches;
        let mut rewritten = None;
        let inline = admit::WalkBudget {
            bytes: admit::INLINE_WALK_BYTES,
            is_inline: true,
        };
        // Recompression is heavy anyway: it always runs off the reactor, walk included.
        // Otherwise the walk stays inline unless a batch needs more than the inline budget.
        if config.compression.is_some()
            || !admit::walk_all(&headers, &batches, &config, checked_at, inline)?
        {
            let (hs, bs, cfg) = (headers.clone(), batches.clone(), config.clone());
            let work = move || -> Result<Option<Vec<u8>>> {
                let full = admit::WalkBudget {
                    bytes: compression::decompressed_limit(cfg.max_batch_bytes) as u64,
                    is_inline: false,
                };
                admit::walk_all(&hs, &bs, &cfg, checked_at, full)?;
                match cfg.compression {
                    Some(target) => recompress(&hs, &bs, target, &cfg),
                    None => Ok(None),
                }
            };
            rewritten = self.inner.storage.offload(work).await.ok_or_else(|| {
                StorageError::InvalidRecord("checking the batch failed (a bug)".into())
            })??;
        }
        if let Some(rewritten) = rewritten {
            let size = rewritten.len() as u64;
            if size > config.max_batch_bytes || size > config.segment_bytes {
                return Err(StorageError::BatchTooLarge {
                    size,
                    max: config.max_batch_bytes.min(config.segment_bytes),
                });
            }
            headers = batch::validate_batches(&rewritten)?;
            batches = Bytes::from(rewritten);
        }
        let size = batches.len() as u64;
        let records: i64 = headers.iter().map(|(h, _)| h.record_count as i64).sum();
        let producer_batches: Vec<ProducerBatch> =
            headers.iter().map(|(h, _)| producer_batch(h)).collect();
        let idempotent = producer_batches.iter().any(|b| b.producer_id >= 0);

        let guard = ticket.acquire().await;
        self.check_open(&self.inner.state.borrow())?;
        // On a full disk, nothing new gets an offset until the queue is written again.
        self.resume_after_no_space().await?;
        // The producer checks and the state update happen under the lock that assigns
        // offsets, so two appends of one producer cannot both pass the check.
        let verdict = if idempotent {
            self.inner.producers.borrow().check(&producer_batches)?
        } else {
            Verdict::Append
        };
        if let Verdict::Duplicate(meta) = verdict {
            drop(guard);
            // A retry of a batch already in the log: answer with its offsets once it is
            // as durable as the original's acknowledgement would have needed.
            let durable = config.flush == FlushMode::Fsync;
            self.wait_for(meta.last_offset + 1, durable).await?;
            return Ok(AppendInfo {
                base_offset: meta.base_offset,
                last_offset: meta.last_offset,
                log_append_time: -1,
                log_start_offset: self.log_start_offset(),
            });
        }
        let now = self.now();
        self.maybe_roll(&config, size, records, now).await?;
        let info = self.queue(&config, &headers, &batches, now, idempotent);
        drop(guard);
        // Counted once queued: the bytes are in the log's line from here on.
        self.inner
            .stats
            .appended(size, u64::try_from(records).unwrap_or(0));

        let durable = config.flush == FlushMode::Fsync;
        self.wait_for(info.last_offset + 1, durable).await?;
        Ok(info)
    }

    /// Assigns offsets to checked batches and queues them for the writer; updates the
    /// producer, transaction and epoch state. Call under the assign lock, after the roll.
    ///
    /// The request's bytes are not copied: each batch is queued as a copy of its header,
    /// where the offset, leader epoch and append time are set, and a slice of the rest.
    fn queue(
        &self,
        config: &LogConfig,
        headers: &[(batch::BatchHeader, std::ops::Range<usize>)],
        batches: &Bytes,
        now: i64,
        idempotent: bool,
    ) -> AppendInfo {
        let append_time = if config.log_append_time { now } else { -1 };
        let mut st = self.inner.state.borrow_mut();
        let mut producers = self.inner.producers.borrow_mut();
        let mut txns = self.inner.txns.borrow_mut();
        let base_offset = st.next_offset();
        let log_start_offset = st.log_start_offset;
        let seg = st.active_mut();
        if seg.size == 0 {
            seg.created_ms = now;
        }
        let mut offset = base_offset;
        let stamp = self.inner.stamp_epoch.get();
        let mut epochs = self.inner.epochs.borrow_mut();
        let mut heads = BytesMut::with_capacity(headers.len() * batch::HEADER_BYTES);
        for (header, range) in headers {
            let whole = &batches[range.clone()];
            let (head_in, records) = whole.split_at(batch::HEADER_BYTES);
            let at = heads.len();
            heads.extend_from_slice(head_in);
            let head = &mut heads[at..];
            batch::set_base_offset(head, offset);
            if let Some(epoch) = stamp {
                // Outside the CRC, like the base offset.
                batch::set_partition_leader_epoch(head, epoch);
                epochs.assign(epoch, offset);
            } else {
                // The epoch the batch came with, as the walk at open reads it back: the
                // cache a snapshot takes from here must be the one that walk would build.
                epochs.assign(header.partition_leader_epoch, offset);
            }
            let max_ts = if config.log_append_time && header.attributes & batch::ATTR_CONTROL == 0 {
                batch::set_log_append_time_split(head, records, now);
                now
            } else {
                header.max_timestamp
            };
            let last = offset + header.last_offset_delta as i64;
            if header.attributes & batch::ATTR_CONTROL != 0 {
                let commit = batch::control_type(whole) == Some(batch::CONTROL_COMMIT);
                txns.marker(header.producer_id, offset, commit);
                producers.fence(header.producer_id, header.producer_epoch);
            } else {
                if header.attributes & batch::ATTR_TRANSACTIONAL != 0 {
                    txns.data(header.producer_id, offset);
                }
                if idempotent {
                    producers.commit(&producer_batch(header), offset, last, max_ts);
                }
            }
            let position = seg.size;
            seg.index_batch(
                position,
                offset,
                last,
                range.len() as u64,
                max_ts,
                config.index_interval_bytes,
            );
            offset = last + 1;
        }
        let end_pos = seg.size;
        let heads = heads.freeze();
        for (i, (_, range)) in headers.iter().enumerate() {
            let h = i * batch::HEADER_BYTES;
            st.pending
                .push_back(heads.slice(h..h + batch::HEADER_BYTES));
            if range.len() > batch::HEADER_BYTES {
                st.pending
                    .push_back(batches.slice(range.start + batch::HEADER_BYTES..range.end));
            }
        }
        st.marks.push_back((end_pos, offset));
        AppendInfo {
            base_offset,
            last_offset: offset - 1,
            log_append_time: append_time,
            log_start_offset,
        }
    }

    /// Appends a transaction marker (a commit or abort control batch) for `producer_id`
    /// at `epoch`, written by the transaction coordinator: it closes the producer's open
    /// transaction here. A marker of an epoch older than the producer's current one is
    /// refused (a fenced coordinator or producer). Resolves as an append does.
    pub fn append_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
    ) -> impl Future<Output = Result<AppendInfo>> + use<S> {
        let ticket = self.inner.assign_lock.ticket();
        let log = self.clone();
        async move {
            let config = log.config();
            let now = log.now();
            let bytes = batch::encode_marker(producer_id, epoch, commit, coordinator_epoch, now);
            let headers = batch::validate_batches(&bytes)?;
            let size = bytes.len() as u64;
            let guard = ticket.acquire().await;
            log.check_open(&log.inner.state.borrow())?;
            log.resume_after_no_space().await?;
            log.inner
                .producers
                .borrow()
                .check_marker(producer_id, epoch)?;
            log.maybe_roll(&config, size, 1, now).await?;
            let info = log.queue(&config, &headers, &Bytes::from(bytes), now, true);
            drop(guard);
            log.inner.stats.appended(size, 1);
            let durable = config.flush == FlushMode::Fsync;
            log.wait_for(info.last_offset + 1, durable).await?;
            Ok(info)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::PartitionLog;
    use super::super::tests::{batch, cfg, read_all};
    use crate::config::{FlushMode, LogConfig};
    use crate::protocol::batch;
    use crate::storage::StorageError;
    use crate::storage::sim::SimStorage;
    use bytes::Bytes;
    use futures_lite::future::{block_on, zip};
    use std::path::PathBuf;

    /// Only a future that borrows nothing can be handed to a task of its own.
    fn owns_what_it_needs<F: std::future::Future + 'static>(f: F) -> F {
        f
    }

    #[test]
    fn offsets_follow_the_order_of_calls_not_of_first_polls() {
        block_on(async {
            let sim = SimStorage::new(8);
            let dir = PathBuf::from("/d/order-0");
            let log = PartitionLog::open(sim, dir, cfg(FlushMode::Fsync))
                .await
                .expect("open");
            let handle = log.clone();
            let first = owns_what_it_needs(handle.append(batch(0, 1)));
            let second = owns_what_it_needs(handle.append(batch(1, 2)));
            // Never polled: it gives its place up when dropped, and the line moves on.
            drop(handle.append(batch(9, 1)));
            let third = owns_what_it_needs(handle.append(batch(2, 1)));
            drop(handle);
            // `zip` polls its first future first: the last call is polled first.
            let (c, (b, a)) = zip(third, zip(second, first)).await;
            let offsets = |r: crate::storage::Result<super::AppendInfo>| {
                let info = r.expect("append");
                (info.base_offset, info.last_offset)
            };
            assert_eq!(offsets(a), (0, 0));
            assert_eq!(offsets(b), (1, 2));
            assert_eq!(offsets(c), (3, 3));
            let stored: Vec<i64> = read_all(&log, 0).await.iter().map(|(o, _)| *o).collect();
            assert_eq!(stored, vec![0, 1, 3]);
        });
    }

    fn idem_batch(i: usize, pid: i64, epoch: i16, seq: i32, n: usize) -> Bytes {
        let mut b = batch(i, n).to_vec();
        batch::set_producer(&mut b, pid, epoch, seq);
        Bytes::from(b)
    }

    #[test]
    fn producer_state_deduplicates_concurrent_retries_and_survives_reopen() {
        block_on(async {
            let sim = SimStorage::new(3);
            let dir = PathBuf::from("/d/idem-0");
            let log = PartitionLog::open(sim.clone(), dir.clone(), cfg(FlushMode::Fsync))
                .await
                .expect("open");
            let mut seq = 0;
            let mut sent = Vec::new();
            for i in 0..60 {
                let n = 1 + i % 3;
                let b = idem_batch(i, 5, 0, seq, n);
                // The batch and its retry race: one append, the same offsets for both.
                let (a, r) =
                    futures_lite::future::zip(log.append(b.clone()), log.append(b.clone())).await;
                let (a, r) = (a.expect("append"), r.expect("retry"));
                assert_eq!(
                    (a.base_offset, a.last_offset),
                    (r.base_offset, r.last_offset)
                );
                sent.push((b, a.base_offset));
                seq += n as i32;
            }
            let end = log.log_end_offset();
            assert_eq!(read_all(&log, 0).await.len(), 60);
            assert!(log.segment_count() > 1);
            let gap = idem_batch(99, 5, 0, seq + 1, 1);
            assert!(matches!(
                log.append(gap.clone()).await,
                Err(StorageError::Producer(
                    crate::producer::ProducerError::OutOfOrder { .. }
                ))
            ));
            log.close().await.expect("close");

            let log = PartitionLog::open(sim, dir, cfg(FlushMode::Fsync))
                .await
                .expect("reopen");
            // The last five batches are still known after the state is rebuilt.
            for (b, base) in &sent[55..] {
                let info = log.append(b.clone()).await.expect("retry after reopen");
                assert_eq!(info.base_offset, *base);
            }
            assert!(
                log.append(sent[50].0.clone()).await.is_err(),
                "too old to tell"
            );
            assert!(log.append(gap).await.is_err());
            let stale = idem_batch(1, 5, -1, 0, 1);
            assert!(matches!(
                log.append(stale).await,
                Err(StorageError::Producer(
                    crate::producer::ProducerError::StaleEpoch { .. }
                ))
            ));
            assert_eq!(log.log_end_offset(), end);
            let next = log
                .append(idem_batch(100, 5, 0, seq, 1))
                .await
                .expect("in sequence");
            assert_eq!(next.base_offset, end);
        });
    }

    #[test]
    fn topic_compression_recompresses_and_unknown_codecs_are_refused() {
        use crate::compression::{Codec, compress, decompress};
        block_on(async {
            let sim = SimStorage::new(4);
            let config = LogConfig {
                compression: Some(Codec::Zstd),
                ..cfg(FlushMode::None)
            };
            let log = PartitionLog::open(sim, PathBuf::from("/d/z-0"), config)
                .await
                .expect("open");
            let plain = batch(3, 4).to_vec();
            let records = &plain[batch::HEADER_BYTES..];
            let mut lz4 = plain[..batch::HEADER_BYTES].to_vec();
            lz4.extend_from_slice(&compress(Codec::Lz4, records));
            let len = (lz4.len() - batch::LOG_OVERHEAD) as i32;
            batch::set_length_attributes_and_crc(&mut lz4, len, Codec::Lz4 as i16);
            let info = log.append(Bytes::from(lz4.clone())).await.expect("append");
            assert_eq!((info.base_offset, info.last_offset), (0, 3));
            let stored = read_all(&log, 0).await;
            let h = batch::BatchHeader::parse(&stored[0].1).expect("header");
            assert_eq!(h.compression(), Codec::Zstd as i16);
            assert_eq!(
                decompress(Codec::Zstd, &stored[0].1[batch::HEADER_BYTES..], 1 << 20).unwrap(),
                records
            );
            let mut bad = plain.clone();
            batch::set_length_attributes_and_crc(&mut bad, len_of(&plain), 6);
            assert!(matches!(
                log.append(Bytes::from(bad)).await,
                Err(StorageError::Compression(
                    crate::compression::CompressionError::Unsupported(6)
                ))
            ));
            assert_eq!(log.log_end_offset(), 4);
        });
    }

    fn len_of(b: &[u8]) -> i32 {
        (b.len() - batch::LOG_OVERHEAD) as i32
    }

    #[test]
    fn bad_batches_write_nothing() {
        block_on(async {
            let sim = SimStorage::new(2);
            let log = PartitionLog::open(sim, PathBuf::from("/d/t-0"), cfg(FlushMode::None))
                .await
                .expect("open");
            log.append(batch(1, 1)).await.expect("good");
            let mut bad = batch(2, 2).to_vec();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(matches!(
                log.append(Bytes::from(bad)).await,
                Err(StorageError::InvalidBatch(batch::BatchError::BadCrc { .. }))
            ));
            let big = Bytes::from(vec![0u8; 5000]);
            assert!(matches!(
                log.append(big).await,
                Err(StorageError::BatchTooLarge { .. })
            ));
            assert_eq!(log.log_end_offset(), 1);
            assert_eq!(log.size_bytes(), batch(1, 1).len() as u64);
            assert!(matches!(
                log.read(5, 100).await,
                Err(StorageError::OffsetOutOfRange { .. })
            ));
        });
    }
}
