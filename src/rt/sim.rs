//! Deterministic simulation: one thread, virtual time, and a scheduling order picked by a
//! seed (FoundationDB's and TigerBeetle's way).
//!
//! Every ready task is a candidate at each step and the seeded generator picks which runs
//! next, so a run explores orders a real executor would only hit by chance, and the same
//! seed replays the same run exactly. Time moves only when nothing is ready: the clock
//! jumps to the earliest timer. [`Sim::trace`] digests the decisions taken, so a test can
//! check that two runs of one seed were the same run.

use super::{LocalBoxFuture, Runtime};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

thread_local! {
    /// The running simulation's clock, for code that takes a `fn() -> i64` clock.
    static NOW_MS: Cell<i64> = const { Cell::new(0) };
}

/// The clock of the simulation running on this thread (for `PartitionLog::open_with_clock`).
pub fn clock_ms() -> i64 {
    NOW_MS.with(|n| n.get())
}

struct Timer {
    fired: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

struct Inner {
    now_ms: Cell<i64>,
    rng: RefCell<StdRng>,
    tasks: RefCell<Vec<Option<LocalBoxFuture<'static, ()>>>>,
    /// Tasks woken since the last step (wakers must be `Send`, hence the mutex).
    woken: Arc<Mutex<Vec<usize>>>,
    ready: RefCell<BTreeSet<usize>>,
    timers: RefCell<BinaryHeap<Reverse<(i64, u64)>>>,
    timer_state: RefCell<HashMap<u64, Rc<Timer>>>,
    next_timer: Cell<u64>,
    trace: Cell<u64>,
    steps: Cell<u64>,
}

/// A simulation. Drop it to drop every task still in it.
pub struct Sim {
    inner: Rc<Inner>,
}

/// The runtime code under simulation is given.
#[derive(Clone)]
pub struct SimRuntime {
    inner: Rc<Inner>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SimError {
    #[error("no task can run and no timer is set: the simulation is deadlocked")]
    Stalled,
    #[error("the simulation ran {0} steps without finishing")]
    TooLong(u64),
}

struct TaskWaker {
    id: usize,
    woken: Arc<Mutex<Vec<usize>>>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(self.id);
    }
}

/// Mixes `v` into the trace digest (FNV-1a over the bytes).
fn mix(trace: &Cell<u64>, v: u64) {
    let mut h = trace.get();
    for b in v.to_le_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    trace.set(h);
}

impl Inner {
    fn spawn(&self, task: LocalBoxFuture<'static, ()>) {
        let mut tasks = self.tasks.borrow_mut();
        let id = tasks.len();
        tasks.push(Some(task));
        self.ready.borrow_mut().insert(id);
    }

    fn set_now(&self, now: i64) {
        self.now_ms.set(now);
        NOW_MS.with(|n| n.set(now));
    }
}

impl Sim {
    /// A simulation whose clock starts at `start_ms`, its choices drawn from `seed`.
    pub fn new(seed: u64, start_ms: i64) -> Sim {
        let inner = Rc::new(Inner {
            now_ms: Cell::new(start_ms),
            rng: RefCell::new(StdRng::seed_from_u64(seed)),
            tasks: RefCell::new(Vec::new()),
            woken: Arc::new(Mutex::new(Vec::new())),
            ready: RefCell::new(BTreeSet::new()),
            timers: RefCell::new(BinaryHeap::new()),
            timer_state: RefCell::new(HashMap::new()),
            next_timer: Cell::new(0),
            trace: Cell::new(0xcbf2_9ce4_8422_2325),
            steps: Cell::new(0),
        });
        inner.set_now(start_ms);
        Sim { inner }
    }

    pub fn runtime(&self) -> SimRuntime {
        SimRuntime {
            inner: self.inner.clone(),
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.inner.now_ms.get()
    }

    /// A digest of every scheduling decision and clock jump so far.
    pub fn trace(&self) -> u64 {
        self.inner.trace.get()
    }

    /// A number drawn from the simulation's generator (for tests that inject faults).
    pub fn random(&self, below: u64) -> u64 {
        self.inner.rng.borrow_mut().random_range(0..below.max(1))
    }

    /// Runs `main` and every task it spawns until `main` finishes, at most `max_steps`
    /// polls. Tasks still pending when `main` finishes stay in the simulation.
    pub fn run<T: 'static>(
        &self,
        main: impl Future<Output = T> + 'static,
        max_steps: u64,
    ) -> Result<T, SimError> {
        let out: Rc<RefCell<Option<T>>> = Rc::new(RefCell::new(None));
        let slot = out.clone();
        self.inner.spawn(Box::pin(async move {
            let v = main.await;
            *slot.borrow_mut() = Some(v);
        }));
        let inner = &self.inner;
        let mut budget = max_steps;
        loop {
            if let Some(v) = out.borrow_mut().take() {
                return Ok(v);
            }
            let woken: Vec<usize> =
                std::mem::take(&mut *inner.woken.lock().unwrap_or_else(|p| p.into_inner()));
            inner.ready.borrow_mut().extend(woken);
            let next = {
                let ready = inner.ready.borrow();
                if ready.is_empty() {
                    None
                } else {
                    let pick = inner.rng.borrow_mut().random_range(0..ready.len());
                    ready.iter().nth(pick).copied()
                }
            };
            let Some(id) = next else {
                // Nothing can run: move the clock to the earliest timer.
                let Some(Reverse((deadline, _))) = inner.timers.borrow().peek().copied() else {
                    return Err(SimError::Stalled);
                };
                inner.set_now(deadline.max(inner.now_ms.get()));
                mix(&inner.trace, deadline as u64);
                loop {
                    let due = matches!(inner.timers.borrow().peek(), Some(Reverse((d, _))) if *d <= deadline);
                    if !due {
                        break;
                    }
                    let Some(Reverse((_, seq))) = inner.timers.borrow_mut().pop() else {
                        break;
                    };
                    if let Some(t) = inner.timer_state.borrow_mut().remove(&seq) {
                        t.fired.set(true);
                        if let Some(w) = t.waker.borrow_mut().take() {
                            w.wake();
                        }
                    }
                }
                continue;
            };
            if budget == 0 {
                return Err(SimError::TooLong(max_steps));
            }
            budget -= 1;
            inner.steps.set(inner.steps.get() + 1);
            inner.ready.borrow_mut().remove(&id);
            mix(&inner.trace, id as u64);
            let task = inner.tasks.borrow_mut().get_mut(id).and_then(Option::take);
            let Some(mut task) = task else {
                continue;
            };
            let waker = Waker::from(Arc::new(TaskWaker {
                id,
                woken: inner.woken.clone(),
            }));
            let mut cx = Context::from_waker(&waker);
            if task.as_mut().poll(&mut cx).is_pending()
                && let Some(slot) = inner.tasks.borrow_mut().get_mut(id)
            {
                *slot = Some(task);
            }
        }
    }
}

impl Runtime for SimRuntime {
    fn now_ms(&self) -> i64 {
        self.inner.now_ms.get()
    }

    fn sleep(&self, duration: Duration) -> LocalBoxFuture<'static, ()> {
        let ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Box::pin(Sleep {
            inner: self.inner.clone(),
            deadline: self.inner.now_ms.get().saturating_add(ms),
            timer: None,
        })
    }

    fn spawn(&self, task: LocalBoxFuture<'static, ()>) {
        self.inner.spawn(task);
    }
}

struct Sleep {
    inner: Rc<Inner>,
    deadline: i64,
    timer: Option<Rc<Timer>>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.inner.now_ms.get() >= self.deadline
            || self.timer.as_ref().is_some_and(|t| t.fired.get())
        {
            return Poll::Ready(());
        }
        match &self.timer {
            Some(t) => *t.waker.borrow_mut() = Some(cx.waker().clone()),
            None => {
                let seq = self.inner.next_timer.get();
                self.inner.next_timer.set(seq + 1);
                let t = Rc::new(Timer {
                    fired: Cell::new(false),
                    waker: RefCell::new(Some(cx.waker().clone())),
                });
                self.inner
                    .timers
                    .borrow_mut()
                    .push(Reverse((self.deadline, seq)));
                self.inner.timer_state.borrow_mut().insert(seq, t.clone());
                self.timer = Some(t);
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(seed: u64) -> (Vec<(u32, i64)>, u64) {
        let sim = Sim::new(seed, 1_000);
        let rt = sim.runtime();
        let log: Rc<RefCell<Vec<(u32, i64)>>> = Rc::new(RefCell::new(Vec::new()));
        for i in 0..5u32 {
            let (rt2, log2) = (rt.clone(), log.clone());
            rt.spawn(Box::pin(async move {
                for step in 0..3u64 {
                    rt2.sleep(Duration::from_millis(10 * (u64::from(i) % 2 + step)))
                        .await;
                    log2.borrow_mut().push((i, rt2.now_ms()));
                }
            }));
        }
        let rt3 = rt.clone();
        sim.run(
            async move { rt3.sleep(Duration::from_secs(1)).await },
            10_000,
        )
        .expect("finishes");
        let got = log.borrow().clone();
        (got, sim.trace())
    }

    #[test]
    fn one_seed_is_one_run_and_time_is_virtual() {
        let (a, ta) = scenario(7);
        let (b, tb) = scenario(7);
        assert_eq!(a, b);
        assert_eq!(ta, tb);
        assert_eq!(a.len(), 15);
        // Virtual time: every wake-up happens exactly at its deadline.
        assert!(a.iter().all(|(_, t)| (t - 1_000) % 10 == 0));
        let orders: BTreeSet<Vec<u32>> = (0..20)
            .map(|s| scenario(s).0.iter().map(|(i, _)| *i).collect())
            .collect();
        assert!(orders.len() > 1, "seeds explore different orders");
    }

    #[test]
    fn a_deadlock_is_reported() {
        let sim = Sim::new(1, 0);
        let (_tx, rx) = super::super::oneshot::channel::<()>();
        let r = sim.run(rx, 100);
        assert_eq!(r.err(), Some(SimError::Stalled));
    }
}
