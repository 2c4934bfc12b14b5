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

#[cfg(test)]
mod tests {
    use super::*;

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
