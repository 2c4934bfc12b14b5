//! The broker-wide request memory pool (Kafka's `queued.max.request.bytes`).
//!
//! Request bytes are reserved from the pool before they are allocated, and go back when
//! the last reference to the frame's bytes is dropped (the request answered, its records
//! appended). When the pool is spent, connections wait before reading more: the broker
//! stops reading sockets instead of allocating, and TCP pushes back on the clients.
//!
//! A small frame is reserved whole when its length is read. A large one is reserved step
//! by step as its bytes arrive, so a client that declares a 100 MiB frame and sends nothing
//! holds nothing (reserving declared sizes lets a handful of such clients starve everyone
//! for as long as the frame timeout). Partly read frames could then hold the whole pool
//! and wait on each other; so one frame at a time may take the *overdraft* and complete
//! past the capacity. Request memory is thus bounded by the capacity plus one largest
//! frame (`socket.request.max.bytes`).
//!
//! The pool is atomic counters shared by every shard, touched once per frame or per MiB of
//! a large one, never per byte. A waiting connection re-checks on a short timer: memory
//! freed on another shard cannot wake it directly, and a spent pool is an overload, not
//! the steady state.

use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug)]
pub struct MemoryPool {
    capacity: u64,
    used: AtomicU64,
    /// Whether some frame holds the overdraft.
    overdraft: AtomicBool,
    /// Times a connection had to wait for memory (for the stats line and the tests).
    waits: AtomicU64,
}

/// The right to reserve past the capacity, held by one frame until it is read whole.
#[derive(Debug)]
pub struct Overdraft {
    pool: Arc<MemoryPool>,
}

impl Drop for Overdraft {
    fn drop(&mut self) {
        self.pool.overdraft.store(false, Ordering::Release);
    }
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
            overdraft: AtomicBool::new(false),
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

    /// Reserves `bytes`, waiting until they fit, or (when `overdraft` is given) until they
    /// fit or this frame holds the overdraft. The caller has checked that `bytes` is at
    /// most the capacity (frames are bounded by `socket.request.max.bytes`, which the
    /// configuration keeps at or below the pool).
    pub async fn reserve(
        self: &Arc<Self>,
        bytes: u64,
        mut overdraft: Option<&mut Option<Overdraft>>,
    ) -> Reservation {
        let mut pause = Duration::from_micros(500);
        let mut waited = false;
        loop {
            if let Some(r) = self.try_reserve(bytes) {
                return r;
            }
            if let Some(slot) = overdraft.as_deref_mut() {
                if slot.is_none() {
                    *slot = self.try_overdraft();
                }
                if slot.is_some() {
                    self.used.fetch_add(bytes, Ordering::AcqRel);
                    return Reservation {
                        pool: self.clone(),
                        bytes,
                    };
                }
            }
            if !waited {
                waited = true;
                self.waits.fetch_add(1, Ordering::Relaxed);
            }
            glommio::timer::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// Reserves `bytes` at once, past the capacity if need be: for memory a request already
    /// being handled needs (its decoded form). Waiting there could deadlock with the
    /// frames that hold the pool; instead the overdrawn pool holds back new frames.
    pub fn force_reserve(self: &Arc<Self>, bytes: u64) -> Reservation {
        self.used.fetch_add(bytes, Ordering::AcqRel);
        Reservation {
            pool: self.clone(),
            bytes,
        }
    }

    fn try_overdraft(self: &Arc<Self>) -> Option<Overdraft> {
        self.overdraft
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Overdraft { pool: self.clone() })
    }
}

impl Reservation {
    /// Adds `other`'s bytes to this reservation.
    pub fn merge(&mut self, mut other: Reservation) {
        self.bytes += std::mem::take(&mut other.bytes);
    }

    /// A reservation of nothing, to merge steps into.
    pub fn empty(pool: &Arc<MemoryPool>) -> Reservation {
        Reservation {
            pool: pool.clone(),
            bytes: 0,
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

    #[test]
    fn one_frame_at_a_time_completes_past_a_spent_pool() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let pool = MemoryPool::new(100);
                let held = pool.try_reserve(100).expect("fits");
                // The first frame takes the overdraft and goes on past the capacity...
                let mut first = None;
                let a = pool.reserve(50, Some(&mut first)).await;
                assert!(first.is_some());
                assert_eq!(pool.used(), 150);
                // ...a second one waits, and small frames wait for memory as before.
                let mut second = None;
                let waiting = pool.reserve(10, Some(&mut second));
                let timed_out =
                    glommio::timer::timeout(Duration::from_millis(30), async { Ok(waiting.await) })
                        .await;
                assert!(timed_out.is_err(), "no second overdraft");
                // Once the first frame is whole, the overdraft passes on.
                drop(first);
                let b = pool.reserve(10, Some(&mut second)).await;
                assert!(second.is_some());
                drop((a, b, held, second));
                assert_eq!(pool.used(), 0);
            })
            .expect("executor")
            .join()
            .expect("join");
    }
}
