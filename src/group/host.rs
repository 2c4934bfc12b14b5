//! The runtime around the pure group coordinator (Kafka's coordinator runtime): it feeds
//! the coordinator requests, the time and the outcome of appends, appends the records the
//! coordinator asks for through an [`OffsetsLog`], and delivers the answers.
//!
//! Appends are started in the order the coordinator asked for them, and an [`OffsetsLog`]
//! must take its place in line when `append` is called (the partition log does), so the
//! records of one group land in the order they were decided even though each append is
//! awaited in its own task. The coordinator's state is borrowed only inside one step,
//! never across an await.

use super::records::{LoggedRecord, build_batch_of};
use super::{Effects, GroupCoordinator, GroupError, GroupOp, GroupReply, Token};
use crate::rt::{LocalBoxFuture, Runtime, oneshot};
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// Where the coordinator's records go: the group's partition of `__consumer_offsets`.
pub trait OffsetsLog: 'static {
    /// Appends `batch` to the partition of `group`, taking its place in line now; the
    /// future resolves to the batch's base offset once the append is as durable as the
    /// partition's flush setting makes acknowledged appends.
    fn append(&self, group: &str, batch: Bytes)
    -> LocalBoxFuture<'static, Result<i64, GroupError>>;
}

pub struct GroupHost<L: OffsetsLog, R: Runtime> {
    coordinator: RefCell<GroupCoordinator>,
    log: L,
    rt: R,
    waiting: RefCell<HashMap<Token, oneshot::Sender<GroupReply>>>,
    next_token: Cell<Token>,
}

impl<L: OffsetsLog, R: Runtime> GroupHost<L, R> {
    pub fn new(coordinator: GroupCoordinator, log: L, rt: R) -> Rc<Self> {
        Rc::new(GroupHost {
            coordinator: RefCell::new(coordinator),
            log,
            rt,
            waiting: RefCell::new(HashMap::new()),
            next_token: Cell::new(0),
        })
    }

    /// Every committed offset this host's coordinator holds (for the metrics).
    pub fn committed_offsets(&self) -> Vec<(String, String, i32, i64)> {
        self.coordinator.borrow().committed_offsets()
    }

    /// Runs `op` and waits for its answer (`None` only if the host is dropped with the
    /// request parked, as when the shard stops). `topics` gives a topic's partition count.
    pub async fn handle(
        self: &Rc<Self>,
        op: GroupOp,
        topics: &dyn Fn(&str) -> i32,
    ) -> Option<GroupReply> {
        let token = self.next_token.get();
        self.next_token.set(token.wrapping_add(1));
        let (tx, rx) = oneshot::channel();
        self.waiting.borrow_mut().insert(token, tx);
        let now = self.rt.now_ms();
        let fx = self.coordinator.borrow_mut().handle(token, op, now, topics);
        self.apply(fx);
        rx.await
    }

    /// Session and rebalance timeouts and offset expiry.
    pub fn tick(self: &Rc<Self>) {
        let fx = self.coordinator.borrow_mut().tick(self.rt.now_ms());
        self.apply(fx);
    }

    /// Rebuilds the groups from the records of the offsets partitions, then serves.
    pub fn load(&self, records: impl IntoIterator<Item = LoggedRecord>) {
        let now = self.rt.now_ms();
        let mut c = self.coordinator.borrow_mut();
        c.load(records, now);
        c.finish_load();
    }

    /// Stops serving: every parked request is dropped, so its caller answers that the
    /// coordinator is gone and the client finds it again (on a restart, and later when
    /// the offsets partition moves to another broker).
    pub fn unload(&self) {
        self.waiting.borrow_mut().clear();
    }

    /// Forgets the groups of offsets partition `partition` (of `partitions`): in a cluster,
    /// another broker coordinates them now, or they are about to be loaded afresh.
    pub fn forget_partition(&self, partition: i32, partitions: i32) {
        self.coordinator
            .borrow_mut()
            .forget(|g| super::offsets_partition(g, partitions) != partition);
    }

    /// Reads the coordinator's state (tests, the simulation, stats).
    pub fn with<T>(&self, f: impl FnOnce(&GroupCoordinator) -> T) -> T {
        f(&self.coordinator.borrow())
    }

    fn apply(self: &Rc<Self>, fx: Effects) {
        for (token, reply) in fx.replies {
            if let Some(tx) = self.waiting.borrow_mut().remove(&token) {
                tx.send(reply);
            }
        }
        for append in fx.appends {
            let now = self.rt.now_ms();
            let Some(batch) = build_batch_of(&append.records, now, append.producer) else {
                continue;
            };
            // Called here, in order; awaited in its own task.
            let pending = self.log.append(&append.group, batch);
            let host = self.clone();
            self.rt.spawn(Box::pin(async move {
                let result = pending.await;
                match append.then {
                    Some(id) => {
                        let now = host.rt.now_ms();
                        let fx = host.coordinator.borrow_mut().appended(id, result, now);
                        host.apply(fx);
                    }
                    None => {
                        if let Err(e) = result {
                            tracing::error!("cannot persist group {}: {e}", append.group);
                        }
                    }
                }
            }));
        }
    }
}
