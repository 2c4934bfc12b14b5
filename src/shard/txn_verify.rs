//! The check before a producer's first transactional batch on a partition (KIP-890 part
//! 1): the transaction's coordinator must have the partition in the producer's open
//! transaction, or the batch is refused; a partition its coordinator does not know would
//! never get a marker, and its last stable offset would hang.

use super::Shard;
use crate::protocol::code;
use crate::txn::{TXN_TOPIC, TxnError, TxnOp, TxnReply};
use std::rc::Rc;
use std::time::Duration;

/// How long a transactional produce waits for its coordinator's check before it is
/// answered NOT_ENOUGH_REPLICAS (and retried by the producer). The partition's other
/// appends wait behind it meanwhile, so this stays short.
const VERIFY_WITHIN: Duration = Duration::from_secs(3);

impl Shard {
    /// The check before a producer's first transactional batch on a partition (KIP-890):
    /// its transaction's coordinator must have the partition in the producer's open
    /// transaction. Refusals carry the code the producer gets: INVALID_TXN_STATE (not in
    /// the transaction), INVALID_PRODUCER_EPOCH (fenced), or NOT_ENOUGH_REPLICAS while the
    /// coordinator cannot answer (producers retry it, as they do against Kafka).
    pub(super) fn txn_gate(
        self: &Rc<Self>,
        id: Option<String>,
        producer_id: i64,
        epoch: i16,
        topic: String,
        partition: i32,
    ) -> impl std::future::Future<Output = Result<(), crate::storage::StorageError>> + 'static {
        let shard = self.clone();
        async move {
            let refused =
                |code, reason: String| crate::storage::StorageError::Refused { code, reason };
            let Some(id) = id.filter(|i| !i.is_empty()) else {
                return Err(refused(
                    code::INVALID_TXN_STATE,
                    "a transactional batch needs the request's transactional id".into(),
                ));
            };
            let verified = glommio::timer::timeout(VERIFY_WITHIN, async {
                Ok(shard
                    .verify_in_txn(&id, producer_id, epoch, &topic, partition)
                    .await)
            })
            .await
            .unwrap_or(Err(TxnError::CoordinatorNotAvailable));
            match verified {
                Ok(true) => Ok(()),
                Ok(false) => Err(refused(
                    code::INVALID_TXN_STATE,
                    format!("{topic}-{partition} is not in the transaction of {id}"),
                )),
                Err(TxnError::ProducerFenced) => Err(refused(
                    code::INVALID_PRODUCER_EPOCH,
                    format!("producer {producer_id} epoch {epoch} is fenced"),
                )),
                Err(
                    TxnError::NotCoordinator
                    | TxnError::CoordinatorNotAvailable
                    | TxnError::LoadInProgress
                    | TxnError::ConcurrentTransactions,
                ) => Err(refused(
                    code::NOT_ENOUGH_REPLICAS,
                    format!("the coordinator of {id} could not confirm the transaction"),
                )),
                Err(e) => Err(refused(code::INVALID_TXN_STATE, e.to_string())),
            }
        }
    }

    /// Whether `topic`-`partition` is in the open transaction of `id` (producer id and
    /// epoch), asked of its coordinator: a shard of this broker, or the broker leading the
    /// id's `__transaction_state` partition (AddPartitionsToTxn v4, `verify_only`).
    async fn verify_in_txn(
        self: &Rc<Self>,
        id: &str,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<bool, TxnError> {
        let (_, p) = self
            .txn_coordinator(id)
            .ok_or(TxnError::CoordinatorNotAvailable)?;
        let view = self.meta();
        let remote = match &view.meta.cluster {
            Some(c) => {
                let leader = view.assignment(TXN_TOPIC, p).map_or(-1, |a| a.leader);
                (leader != c.node).then(|| self.broker_link(c, leader).map(|a| (c.node, a)))
            }
            None => None,
        };
        match remote {
            None => {
                let op = TxnOp::AddPartitions {
                    id: id.to_string(),
                    producer_id,
                    epoch,
                    partitions: vec![(topic.to_string(), partition)],
                    verify_only: true,
                };
                match self.route_txn(op).await {
                    TxnReply::Verified(r) => r.map(|v| v.first().copied().unwrap_or(false)),
                    _ => Err(TxnError::CoordinatorNotAvailable),
                }
            }
            Some(None) => Err(TxnError::CoordinatorNotAvailable),
            Some(Some((me, to))) => {
                verify_remote(me, to, id, producer_id, epoch, topic, partition).await
            }
        }
    }
}

/// AddPartitionsToTxn v4 with `verify_only`, to the coordinator's broker (`to`: how to
/// reach it, its host and port): whether the partition is in the producer's open
/// transaction there.
async fn verify_remote(
    me: i32,
    to: (
        Option<std::sync::Arc<super::replica::client::InterBrokerClient>>,
        String,
        u16,
    ),
    id: &str,
    producer_id: i64,
    epoch: i16,
    topic: &str,
    partition: i32,
) -> Result<bool, TxnError> {
    use crate::protocol::strings::str_bytes;
    use kafka_protocol::messages::add_partitions_to_txn_request::{
        AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
    };
    use kafka_protocol::messages::{
        AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, ProducerId, TopicName,
        TransactionalId,
    };
    let txn = AddPartitionsToTxnTransaction::default()
        .with_transactional_id(TransactionalId(str_bytes(id.to_string())))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_verify_only(true)
        .with_topics(vec![
            AddPartitionsToTxnTopic::default()
                .with_name(TopicName(str_bytes(topic.to_string())))
                .with_partitions(vec![partition]),
        ]);
    let req = AddPartitionsToTxnRequest::default().with_transactions(vec![txn]);
    let (client, host, port) = to;
    let mut conn =
        super::replica::client::LeaderConn::connect(client.as_deref(), &host, port, me, 1 << 20)
            .await
            .map_err(|_| TxnError::CoordinatorNotAvailable)?;
    let r: AddPartitionsToTxnResponse = conn
        .call(ApiKey::AddPartitionsToTxn, 4, &req, Duration::from_secs(2))
        .await
        .map_err(|_| TxnError::CoordinatorNotAvailable)?;
    let c = r
        .results_by_transaction
        .first()
        .and_then(|t| t.topic_results.first())
        .and_then(|t| t.results_by_partition.first())
        .map_or(code::UNKNOWN_SERVER_ERROR, |p| p.partition_error_code);
    match c {
        code::NONE => Ok(true),
        code::INVALID_TXN_STATE => Ok(false),
        code::PRODUCER_FENCED | code::INVALID_PRODUCER_EPOCH => Err(TxnError::ProducerFenced),
        code::INVALID_PRODUCER_ID_MAPPING => Err(TxnError::InvalidProducerIdMapping),
        _ => Err(TxnError::CoordinatorNotAvailable),
    }
}
