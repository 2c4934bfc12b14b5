//! A single-threaded broadcast notification: tasks wait for "something changed" and
//! re-check their condition. It works on any executor, so the log code runs unchanged on
//! glommio and under the simulated disk in tests.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub struct Notify {
    epoch: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
}

impl Notify {
    /// Wakes every task waiting in [`Notify::listen`].
    pub fn notify_all(&self) {
        self.epoch.set(self.epoch.get().wrapping_add(1));
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for w in waiters {
            w.wake();
        }
    }

    /// A future that resolves at the next `notify_all` after this call. Check the
    /// condition, then call `listen` without awaiting in between, so no change is missed.
    pub fn listen(self: &Rc<Self>) -> Listen {
        Listen {
            notify: self.clone(),
            epoch: self.epoch.get(),
        }
    }
}

pub struct Listen {
    notify: Rc<Notify>,
    epoch: u64,
}

impl Future for Listen {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.epoch.get() != self.epoch {
            return Poll::Ready(());
        }
        let mut waiters = self.notify.waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// A strictly first-come, first-served async lock. The place in line (a ticket) is taken
/// synchronously, when the caller arrives, so callers are served in the order they called
/// `ticket`, whatever order their futures are later polled in. The log assigns offsets
/// under it: pipelined produce requests of one connection must get offsets in request
/// order, and a lock that lets a newcomer overtake a woken waiter would break that.
///
/// Tickets and guards share the line with the lock rather than borrow it, so a ticket can
/// travel inside a future that outlives the call that took it (a task of its own).
#[derive(Default)]
pub struct FifoLock {
    line: Rc<Line>,
}

#[derive(Default)]
struct Line {
    next: Cell<u64>,
    serving: Cell<u64>,
    /// Tickets whose holders went away before their turn; skipped when reached.
    abandoned: RefCell<std::collections::BTreeSet<u64>>,
    notify: Rc<Notify>,
}

pub struct Ticket {
    line: Rc<Line>,
    number: u64,
    served: bool,
}

pub struct FifoGuard {
    line: Rc<Line>,
}

impl FifoLock {
    /// Takes a place in line now.
    pub fn ticket(&self) -> Ticket {
        let number = self.line.next.get();
        self.line.next.set(number + 1);
        Ticket {
            line: self.line.clone(),
            number,
            served: false,
        }
    }

    /// Waits for a place taken now.
    pub async fn lock(&self) -> FifoGuard {
        self.ticket().acquire().await
    }
}

impl Line {
    fn advance(&self) {
        let mut next = self.serving.get() + 1;
        let mut abandoned = self.abandoned.borrow_mut();
        while abandoned.remove(&next) {
            next += 1;
        }
        self.serving.set(next);
        drop(abandoned);
        self.notify.notify_all();
    }
}

impl Ticket {
    pub async fn acquire(mut self) -> FifoGuard {
        loop {
            if self.line.serving.get() == self.number {
                self.served = true;
                return FifoGuard {
                    line: self.line.clone(),
                };
            }
            self.line.notify.listen().await;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.served {
            return;
        }
        if self.line.serving.get() == self.number {
            self.line.advance();
        } else {
            self.line.abandoned.borrow_mut().insert(self.number);
        }
    }
}

impl Drop for FifoGuard {
    fn drop(&mut self) {
        self.line.advance();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_lock_serves_in_ticket_order_and_skips_abandoned_tickets() {
        let lock = FifoLock::default();
        let order = RefCell::new(Vec::new());
        futures_lite::future::block_on(async {
            let first = lock.lock().await;
            let t1 = lock.ticket();
            let t2 = lock.ticket();
            let t3 = lock.ticket();
            drop(t2); // a cancelled request
            let a = async {
                let _g = t1.acquire().await;
                order.borrow_mut().push(1);
            };
            let b = async {
                let _g = t3.acquire().await;
                order.borrow_mut().push(3);
            };
            // Poll the later ticket first: it must still wait for the earlier one.
            let run = futures_lite::future::zip(b, a);
            drop(first);
            run.await;
        });
        assert_eq!(*order.borrow(), vec![1, 3]);
        // The lock is free again.
        futures_lite::future::block_on(async {
            let _g = lock.lock().await;
        });
    }

    #[test]
    fn listen_resolves_only_after_notify() {
        let n = Rc::new(Notify::default());
        let mut l = std::pin::pin!(n.listen());
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(l.as_mut().poll(&mut cx).is_pending());
        n.notify_all();
        assert!(l.as_mut().poll(&mut cx).is_ready());
    }
}
