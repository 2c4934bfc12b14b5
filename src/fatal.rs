//! Where a panic goes.
//!
//! A panic is a bug, but what it may have spoiled decides what it costs:
//! - code that only decodes, checks or encodes one client's request touches nothing the
//!   shard owns: a panic there is **contained**. The request fails, its connection is
//!   closed, and every other client and every byte of data are untouched;
//! - code that changes state the shard owns (a partition log, a group coordinator, the
//!   producer id allocator) may have left that state half-changed: a panic there is
//!   **fatal**. The process stops (exit code 101) rather than serve from a state that may
//!   be wrong; restart and recovery put the logs back in order.
//!
//! Every thread starts fatal. A connection's tasks run inside [`Contained`], which marks
//! the thread contained while it polls them and turns a panic into an error; the shard's
//! state is only changed inside [`Owned`] (or [`owned`] for synchronous calls), which
//! marks the thread fatal again for as long as it polls, even when the request's own task
//! is the one polling. The panic hook, installed by [`install_hook`], reads the mark.

use std::cell::Cell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Fatal,
    Contained,
}

thread_local! {
    static MODE: Cell<Mode> = const { Cell::new(Mode::Fatal) };
}

/// Sets the thread's mode for as long as it lives, and puts the previous one back on drop
/// (also while unwinding).
struct ModeGuard(Mode);

impl ModeGuard {
    fn enter(mode: Mode) -> ModeGuard {
        ModeGuard(MODE.with(|m| m.replace(mode)))
    }
}

impl Drop for ModeGuard {
    fn drop(&mut self) {
        MODE.with(|m| m.set(self.0));
    }
}

/// Whether a panic on this thread right now would be contained.
pub fn is_contained() -> bool {
    MODE.with(|m| m.get()) == Mode::Contained
}

/// Installs the process's panic hook: a contained panic is logged and unwinds to its
/// [`Contained`]; any other panic prints as usual and stops the process.
pub fn install_hook() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if is_contained() {
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            tracing::error!(
                "bug: a request panicked at {at}: {}; closing its connection",
                payload_text(info.payload())
            );
            return;
        }
        default_hook(info);
        std::process::exit(101);
    }));
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// The error of a [`Contained`] future whose inner future panicked.
#[derive(Debug, thiserror::Error)]
#[error("the request panicked (a bug; see the broker log)")]
pub struct Panicked;

/// Polls a future in contained mode; a panic inside it resolves to `Err(Panicked)` and
/// the inner future is dropped.
pub struct Contained<F> {
    inner: Option<Pin<Box<F>>>,
}

impl<F: Future> Contained<F> {
    pub fn new(inner: F) -> Contained<F> {
        Contained {
            inner: Some(Box::pin(inner)),
        }
    }
}

impl<F: Future> Future for Contained<F> {
    type Output = Result<F::Output, Panicked>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(Err(Panicked));
        };
        let polled = {
            let _mode = ModeGuard::enter(Mode::Contained);
            catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx)))
        };
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => {
                self.inner = None;
                Poll::Ready(Ok(v))
            }
            Err(_) => {
                // Dropping the future may run destructors of a half-done request; they
                // run in contained mode too.
                let _mode = ModeGuard::enter(Mode::Contained);
                let dropped = catch_unwind(AssertUnwindSafe(|| self.inner = None));
                if dropped.is_err() {
                    tracing::error!("bug: dropping a panicked request panicked too");
                }
                Poll::Ready(Err(Panicked))
            }
        }
    }
}

/// Polls a future that changes shard-owned state in fatal mode, whoever polls it.
pub struct Owned<F> {
    inner: Pin<Box<F>>,
}

impl<F: Future> Owned<F> {
    pub fn new(inner: F) -> Owned<F> {
        Owned {
            inner: Box::pin(inner),
        }
    }
}

impl<F: Future> Future for Owned<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _mode = ModeGuard::enter(Mode::Fatal);
        self.inner.as_mut().poll(cx)
    }
}

/// Runs a synchronous change of shard-owned (or broker-owned) state in fatal mode.
pub fn owned<T>(f: impl FnOnce() -> T) -> T {
    let _mode = ModeGuard::enter(Mode::Fatal);
    f()
}

/// Runs `f` in contained mode on this thread: a panic inside becomes `None`. For work on
/// a client's bytes that runs outside its request's task (the blocking pool).
pub fn contained_call<T>(f: impl FnOnce() -> T) -> Option<T> {
    let _mode = ModeGuard::enter(Mode::Contained);
    catch_unwind(AssertUnwindSafe(f)).ok()
}

/// Test-only fault injection, read once from the environment so tests of the real binary
/// can prove where a panic goes:
/// - `RINGBROKER_TEST_PANIC_CLIENT_ID`: a request whose client id is this panics while it
///   is being handled (contained);
/// - `RINGBROKER_TEST_PANIC_TOPIC`: an append to this topic panics inside the partition's
///   owner (fatal).
///
/// Unset (always, outside tests) each check is one comparison against `None`.
pub struct Faults {
    pub panic_client_id: Option<String>,
    pub panic_topic: Option<String>,
    /// Transaction coordinators decide but write no markers, as if the broker stopped
    /// between the decision and the markers (a restart without it completes them).
    pub hold_txn_markers: bool,
}

pub fn faults() -> &'static Faults {
    static FAULTS: OnceLock<Faults> = OnceLock::new();
    FAULTS.get_or_init(|| Faults {
        panic_client_id: std::env::var("RINGBROKER_TEST_PANIC_CLIENT_ID").ok(),
        panic_topic: std::env::var("RINGBROKER_TEST_PANIC_TOPIC").ok(),
        hold_txn_markers: std::env::var_os("RINGBROKER_TEST_HOLD_TXN_MARKERS").is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: Future>(f: F) -> F::Output {
        futures_lite::future::block_on(f)
    }

    #[test]
    fn a_contained_panic_becomes_an_error() {
        // The hook would stop the test process on a fatal panic; the default hook only
        // prints, which is what the test harness has.
        let r = block_on(Contained::new(async {
            assert!(is_contained());
            if std::hint::black_box(true) {
                panic!("boom");
            }
            1
        }));
        assert!(r.is_err());
        assert!(!is_contained(), "the mode is restored after the panic");
        let ok = block_on(Contained::new(async { 7 }));
        assert_eq!(ok.ok(), Some(7));
    }

    #[test]
    fn owned_code_is_fatal_even_inside_a_contained_request() {
        let seen = block_on(Contained::new(async {
            let inside = Owned::new(async { is_contained() }).await;
            let sync_inside = owned(is_contained);
            (inside, sync_inside, is_contained())
        }));
        assert_eq!(seen.ok(), Some((false, false, true)));
        assert!(!is_contained());
    }
}
