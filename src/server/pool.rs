//! The broker-wide request memory pool (Kafka's `queued.max.request.bytes`).
//!
//! A frame's memory is reserved from the pool as soon as its length is read, before one
//! byte of it is allocated, and goes back when the last reference to the frame's bytes is
//! dropped (the request answered, its records appended). When the pool is spent,
//! connections wait before reading their next frame: the broker stops reading sockets
//! instead of allocating, and TCP pushes back on the clients.
//!
//! The pool is one atomic counter shared by every shard; it is touched twice per request,
//! not per byte. A waiting connection re-checks on a short timer: memory freed on another
//! shard cannot wake it directly, and a spent pool is an overload, not the steady state.

use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug)]
pub struct MemoryPool {
    capacity: u64,
    used: AtomicU64,
    /// Times a connection had to wait for memory (for the stats line and the tests).
    waits: AtomicU64,
}

/// Bytes held from the pool; given back on drop.
#[derive(Debug)]
pub struct Reservation {
    pool: Arc<MemoryPool>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.pool.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl MemoryPool {
    pub fn new(capacity: u64) -> Arc<MemoryPool> {
        Arc::new(MemoryPool {
            capacity,
            used: AtomicU64::new(0),
            waits: AtomicU64::new(0),
        })
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    /// Reserves `bytes` if they fit what is left. More than the whole pool never fits.
    pub fn try_reserve(self: &Arc<Self>, bytes: u64) -> Option<Reservation> {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            let next = used.checked_add(bytes)?;
            if next > self.capacity {
                return None;
            }
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return Some(Reservation {
                        pool: self.clone(),
                        bytes,
                    });
                }
                Err(now) => used = now,
            }
        }
    }

    /// Reserves `bytes`, waiting until they fit. The caller has checked that `bytes` is at
    /// most the capacity (frames are bounded by `socket.request.max.bytes`, which the
    /// configuration keeps at or below the pool).
    pub async fn reserve(self: &Arc<Self>, bytes: u64) -> Reservation {
        if let Some(r) = self.try_reserve(bytes) {
            return r;
        }
        self.waits.fetch_add(1, Ordering::Relaxed);
        let mut pause = Duration::from_micros(500);
        loop {
            glommio::timer::sleep(pause).await;
            if let Some(r) = self.try_reserve(bytes) {
                return r;
            }
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}

/// Bytes that hold their pool reservation until the last clone is dropped.
pub fn pooled(bytes: impl AsRef<[u8]> + Send + 'static, reservation: Reservation) -> Bytes {
    struct Owner<T> {
        bytes: T,
        _reservation: Reservation,
    }
    impl<T: AsRef<[u8]>> AsRef<[u8]> for Owner<T> {
        fn as_ref(&self) -> &[u8] {
            self.bytes.as_ref()
        }
    }
    Bytes::from_owner(Owner {
        bytes,
        _reservation: reservation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_return_when_the_last_clone_drops() {
        let pool = MemoryPool::new(100);
        let r = pool.try_reserve(60).expect("fits");
        assert!(pool.try_reserve(41).is_none(), "60 + 41 > 100");
        let frame = pooled(vec![7u8; 60], r);
        let part = frame.slice(10..20);
        drop(frame);
        assert_eq!(pool.used(), 60, "a slice still holds the frame");
        assert_eq!(&part[..], &[7u8; 10]);
        drop(part);
        assert_eq!(pool.used(), 0);
        assert!(pool.try_reserve(100).is_some());
        assert!(pool.try_reserve(101).is_none(), "never more than the pool");
        assert!(pool.try_reserve(u64::MAX).is_none());
    }
}
