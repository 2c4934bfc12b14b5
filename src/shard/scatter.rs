//! Scatter by owning shard: the partitions a request names go to the shards that own them,
//! one message per shard with all of its partitions, every message in flight at once, and
//! the answers come back in the order of the request.
//!
//! The grouping and the reassembly are pure ([`group_by_shard`], [`Places::reassemble`]);
//! [`Shard::scatter`] and [`Shard::scatter_first`] put the mesh calls between them.

use super::Shard;
use super::messages::{
    DeleteRecordsResult, EpochEndResult, ListOffsetsResult, ProduceResult, ProducersResult,
    ReadResult, ShardReply, ShardRequest,
};
use super::runtime::{first_of, join_all};
use crate::protocol::code;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

/// The shard that owns a partition could not be asked: the mesh to it is gone (only while
/// the broker stops), or its reply did not fit the request (a bug).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the shard that owns the partition did not answer")]
pub struct ShardUnreachable;

impl ShardUnreachable {
    /// The Kafka error code a client gets for a partition whose owner did not answer.
    ///
    /// NOT_LEADER_OR_FOLLOWER, which Kafka answers when the broker asked does not host
    /// (or no longer hosts) the partition's leader: every client treats it as retriable,
    /// refreshes its metadata and sends the request again. That is the right reaction
    /// here: the owner is out of reach only while this broker stops, and once several
    /// brokers share the partitions the retry finds the new leader. KAFKA_STORAGE_ERROR
    /// would claim a failed log directory, sending an operator to a disk that is fine;
    /// LEADER_NOT_AVAILABLE means a leader election is under way.
    pub fn code(&self) -> i16 {
        code::NOT_LEADER_OR_FOLLOWER
    }
}

impl From<ShardUnreachable> for ProduceResult {
    fn from(e: ShardUnreachable) -> Self {
        ProduceResult::error(e.code(), Some(e.to_string()))
    }
}

impl From<ShardUnreachable> for EpochEndResult {
    fn from(e: ShardUnreachable) -> Self {
        EpochEndResult::error(e.code())
    }
}

impl From<ShardUnreachable> for ReadResult {
    fn from(e: ShardUnreachable) -> Self {
        ReadResult::error(e.code())
    }
}

impl From<ShardUnreachable> for ListOffsetsResult {
    fn from(e: ShardUnreachable) -> Self {
        ListOffsetsResult::error(e.code())
    }
}

impl From<ShardUnreachable> for ProducersResult {
    fn from(e: ShardUnreachable) -> Self {
        ProducersResult::error(e.code())
    }
}

impl From<ShardUnreachable> for DeleteRecordsResult {
    fn from(e: ShardUnreachable) -> Self {
        DeleteRecordsResult::error(e.code())
    }
}

/// Where the answers of each group go in the order the items were given.
pub struct Places {
    per_group: Vec<Vec<usize>>,
    len: usize,
}

/// Groups `(owning shard, item)` pairs by shard, in shard order (within a shard, in the
/// order given): `(owning shard, its items)` per group, and where their answers go.
pub fn group_by_shard<P>(
    items: impl IntoIterator<Item = (usize, P)>,
) -> (Vec<(usize, Vec<P>)>, Places) {
    let mut groups: BTreeMap<usize, (Vec<P>, Vec<usize>)> = BTreeMap::new();
    let mut len = 0;
    for (place, (owner, item)) in items.into_iter().enumerate() {
        let group = groups.entry(owner).or_default();
        group.0.push(item);
        group.1.push(place);
        len = place + 1;
    }
    let (groups, per_group) = groups
        .into_iter()
        .map(|(owner, (items, places))| ((owner, items), places))
        .unzip();
    (groups, Places { per_group, len })
}

impl Places {
    /// Puts each group's answers (`replies`, one per group, in group order) back in the
    /// order the items were given. A group without an answer, or with a number of answers
    /// that is not its number of items, gives [`ShardUnreachable`] for each of its items.
    pub fn reassemble<R>(self, replies: Vec<Option<Vec<R>>>) -> Vec<Result<R, ShardUnreachable>> {
        let mut out: Vec<Result<R, ShardUnreachable>> =
            (0..self.len).map(|_| Err(ShardUnreachable)).collect();
        for (places, reply) in self.per_group.into_iter().zip(replies) {
            match reply {
                Some(answers) if answers.len() == places.len() => {
                    for (place, answer) in places.into_iter().zip(answers) {
                        if let Some(slot) = out.get_mut(place) {
                            *slot = Ok(answer);
                        }
                    }
                }
                Some(answers) => tracing::error!(
                    "a shard gave {} answers for {} partitions",
                    answers.len(),
                    places.len()
                ),
                None => {}
            }
        }
        out
    }
}

impl Shard {
    /// Sends each shard the `(owning shard, item)` items it owns in one request built by
    /// `request`, all requests in flight at once, and returns the answer of every item in
    /// the order given. `answers` takes the per-item answers out of a reply (`None` if the
    /// reply is not of the kind asked for); an item whose shard did not answer gets
    /// [`ShardUnreachable`], turned into its answer type.
    pub async fn scatter<P, R: From<ShardUnreachable>>(
        self: &Rc<Self>,
        items: impl IntoIterator<Item = (usize, P)>,
        request: impl Fn(Vec<P>) -> ShardRequest,
        answers: impl Fn(ShardReply) -> Option<Vec<R>>,
    ) -> Vec<R> {
        let (groups, places) = group_by_shard(items);
        let calls = groups
            .into_iter()
            .map(|(owner, items)| Box::pin(self.call(owner, request(items))))
            .collect();
        let replies = join_all(calls)
            .await
            .into_iter()
            .map(|reply| reply.and_then(&answers))
            .collect();
        places
            .reassemble(replies)
            .into_iter()
            .map(|answer| answer.unwrap_or_else(R::from))
            .collect()
    }

    /// As [`Shard::scatter`], for requests that answer nothing per item (long-poll waits):
    /// resolves when the first shard answers or turns out unreachable, at once if there
    /// are no items.
    pub async fn scatter_first<P>(
        self: &Rc<Self>,
        items: impl IntoIterator<Item = (usize, P)>,
        request: impl Fn(Vec<P>) -> ShardRequest,
    ) {
        let (groups, _) = group_by_shard(items);
        if groups.is_empty() {
            return;
        }
        let calls = groups
            .into_iter()
            .map(|(owner, items)| {
                let call = self.call(owner, request(items));
                Box::pin(async move {
                    call.await;
                }) as Pin<Box<dyn Future<Output = ()> + '_>>
            })
            .collect();
        first_of(calls).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_grouped_by_shard_and_answers_come_back_in_order() {
        let items = vec![(1, 'a'), (0, 'b'), (1, 'c'), (2, 'd'), (0, 'e'), (3, 'f')];
        let (groups, places) = group_by_shard(items);
        assert_eq!(
            groups,
            vec![
                (0, vec!['b', 'e']),
                (1, vec!['a', 'c']),
                (2, vec!['d']),
                (3, vec!['f'])
            ]
        );
        // Shard 2 is unreachable and shard 3 answers with the wrong number of answers.
        let replies = vec![
            Some(vec!['B', 'E']),
            Some(vec!['A', 'C']),
            None,
            Some(vec!['F', 'X']),
        ];
        let err = Err(ShardUnreachable);
        assert_eq!(
            places.reassemble(replies),
            vec![Ok('A'), Ok('B'), Ok('C'), err, Ok('E'), err]
        );
    }

    #[test]
    fn no_items_no_groups() {
        let (groups, places) = group_by_shard::<()>(Vec::new());
        assert!(groups.is_empty());
        assert!(places.reassemble::<()>(Vec::new()).is_empty());
    }
}
