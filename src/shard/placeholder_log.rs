//! TEMPORARY in-memory stand-in for `storage::log::PartitionLog`, with the same signatures,
//! until the real one lands on `main`. Deleted when it does.

use crate::config::LogConfig;
use crate::protocol::batch::{set_base_offset, validate_batches};
use crate::storage::{Result, Storage, StorageError};
use bytes::Bytes;
use std::cell::RefCell;
use std::io;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::rc::Rc;

pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_append_time: i64,
    pub log_start_offset: i64,
}

pub struct FileRegion<F> {
    data: Bytes,
    _f: PhantomData<F>,
}

impl<F> FileRegion<F> {
    pub async fn read(&self) -> io::Result<Vec<u8>> {
        Ok(self.data.to_vec())
    }
}

pub struct ReadSlice<F> {
    pub regions: Vec<FileRegion<F>>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

struct Inner {
    batches: Vec<(i64, i64, i64, Bytes)>,
    next: i64,
    waiters: Vec<glommio::channels::local_channel::LocalSender<()>>,
    config: LogConfig,
}

pub struct PartitionLog<S: Storage> {
    inner: Rc<RefCell<Inner>>,
    _s: PhantomData<S>,
}

impl<S: Storage> Clone for PartitionLog<S> {
    fn clone(&self) -> Self {
        PartitionLog {
            inner: self.inner.clone(),
            _s: PhantomData,
        }
    }
}

impl<S: Storage> PartitionLog<S> {
    pub async fn open(_storage: S, _dir: PathBuf, config: LogConfig) -> Result<Self> {
        Ok(PartitionLog {
            inner: Rc::new(RefCell::new(Inner {
                batches: Vec::new(),
                next: 0,
                waiters: Vec::new(),
                config,
            })),
            _s: PhantomData,
        })
    }

    pub async fn append(&self, batches: Bytes) -> Result<AppendInfo> {
        let max = self.inner.borrow().config.max_batch_bytes;
        if batches.len() as u64 > max {
            return Err(StorageError::BatchTooLarge {
                size: batches.len() as u64,
                max,
            });
        }
        let found = validate_batches(&batches)?;
        let mut inner = self.inner.borrow_mut();
        let base = inner.next;
        for (h, range) in found {
            let mut b = batches[range].to_vec();
            let first = inner.next;
            set_base_offset(&mut b, first);
            let last = first + h.last_offset_delta as i64;
            inner.next = last + 1;
            inner
                .batches
                .push((first, last, h.max_timestamp, Bytes::from(b)));
        }
        for w in inner.waiters.drain(..) {
            let _ = w.try_send(());
        }
        Ok(AppendInfo {
            base_offset: base,
            last_offset: inner.next - 1,
            log_append_time: -1,
            log_start_offset: 0,
        })
    }

    pub async fn read(&self, offset: i64, max_bytes: u64) -> Result<ReadSlice<S::File>> {
        let inner = self.inner.borrow();
        if offset < 0 || offset > inner.next {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: 0,
                high_watermark: inner.next,
            });
        }
        let mut regions = Vec::new();
        let mut total = 0u64;
        for (_, last, _, b) in inner.batches.iter().filter(|b| b.1 >= offset) {
            let _ = last;
            if !regions.is_empty() && total + b.len() as u64 > max_bytes {
                break;
            }
            total += b.len() as u64;
            regions.push(FileRegion {
                data: b.clone(),
                _f: PhantomData,
            });
        }
        Ok(ReadSlice {
            regions,
            high_watermark: inner.next,
            log_start_offset: 0,
        })
    }

    pub fn high_watermark(&self) -> i64 {
        self.inner.borrow().next
    }
    pub fn log_start_offset(&self) -> i64 {
        0
    }
    pub fn log_end_offset(&self) -> i64 {
        self.inner.borrow().next
    }
    pub async fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>> {
        let inner = self.inner.borrow();
        Ok(inner.batches.iter().find(|b| b.2 >= ts).map(|b| (b.0, b.2)))
    }
    pub fn changed(&self) -> impl std::future::Future<Output = ()> + 'static {
        let (tx, rx) = glommio::channels::local_channel::new_bounded(1);
        self.inner.borrow_mut().waiters.push(tx);
        async move {
            let _ = rx.recv().await;
        }
    }
    pub async fn tick(&self, _now_ms: i64) -> Result<()> {
        Ok(())
    }
    pub async fn flush(&self) -> Result<()> {
        Ok(())
    }
    pub async fn close(&self) -> Result<()> {
        Ok(())
    }
    pub fn config(&self) -> LogConfig {
        self.inner.borrow().config.clone()
    }
    pub fn set_config(&self, c: LogConfig) {
        self.inner.borrow_mut().config = c;
    }
}
