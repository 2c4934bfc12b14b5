//! A one-value channel between tasks of one thread, independent of the executor (so it
//! works under glommio and under the simulation alike).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
    /// The sender is gone (sent or dropped).
    closed: bool,
}

pub struct Sender<T> {
    slot: Rc<RefCell<Slot<T>>>,
}

pub struct Receiver<T> {
    slot: Rc<RefCell<Slot<T>>>,
}

pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let slot = Rc::new(RefCell::new(Slot {
        value: None,
        waker: None,
        closed: false,
    }));
    (Sender { slot: slot.clone() }, Receiver { slot })
}

impl<T> Sender<T> {
    /// Hands `value` to the receiver (dropped if the receiver is gone).
    pub fn send(self, value: T) {
        self.slot.borrow_mut().value = Some(value);
        // Drop wakes the receiver.
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut slot = self.slot.borrow_mut();
            slot.closed = true;
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Future for Receiver<T> {
    /// `None` when the sender was dropped without sending.
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut slot = self.slot.borrow_mut();
        if let Some(v) = slot.value.take() {
            return Poll::Ready(Some(v));
        }
        if slot.closed {
            return Poll::Ready(None);
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_or_none_arrives() {
        let (tx, rx) = channel();
        tx.send(5);
        assert_eq!(futures_lite::future::block_on(rx), Some(5));
        let (tx, rx) = channel::<i32>();
        drop(tx);
        assert_eq!(futures_lite::future::block_on(rx), None);
    }
}
