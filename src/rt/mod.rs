//! The runtime seam: time, timers and spawning, as the code above storage sees them.
//!
//! Storage already sits on an IO seam (`storage::Storage`, with a fault-injecting disk
//! under the tests). This is the rest of what a shard's code takes from its executor. The
//! broker runs on [`GlommioRuntime`]; the simulation ([`sim`]) runs the same code
//! single-threaded from a seed, with virtual time and a scheduling order the seed picks, so
//! a run with faults can be replayed exactly. Code that must run under the simulation
//! (the group coordinator's host, the partition log) takes a `Runtime` instead of calling
//! glommio or the wall clock itself.

pub mod join;
pub mod oneshot;
pub mod sim;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

pub trait Runtime: Clone + 'static {
    /// Milliseconds since the Unix epoch (virtual in the simulation).
    fn now_ms(&self) -> i64;
    /// Resolves once `duration` has passed.
    fn sleep(&self, duration: Duration) -> LocalBoxFuture<'static, ()>;
    /// Runs `task` to completion on this thread, detached from the caller.
    fn spawn(&self, task: LocalBoxFuture<'static, ()>);
}

/// Milliseconds since the Unix epoch by the system clock (0 if it is before 1970).
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The broker's runtime: glommio's timers and tasks, and the wall clock.
#[derive(Clone, Copy, Default)]
pub struct GlommioRuntime;

impl Runtime for GlommioRuntime {
    fn now_ms(&self) -> i64 {
        wall_clock_ms()
    }

    fn sleep(&self, duration: Duration) -> LocalBoxFuture<'static, ()> {
        Box::pin(glommio::timer::sleep(duration))
    }

    fn spawn(&self, task: LocalBoxFuture<'static, ()>) {
        glommio::spawn_local(task).detach();
    }
}
