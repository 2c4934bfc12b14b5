//! Transactions (KIP-98): one transaction coordinator per `__transaction_state` partition,
//! on the shard that owns the partition (the partition's leader in a cluster), as groups
//! have theirs on `__consumer_offsets`.
//!
//! The coordinator is pure: [`TxnCoordinator`] takes a request, the time and a fresh
//! producer id when it needs one, and answers with a [`Step`]: reply now, or persist this
//! new state of the transactional id first (and then, for a commit or abort, write the
//! markers). It does no IO; `shard::txns` appends its records, writes the markers to the
//! partitions' owners and feeds the outcomes back.
//!
//! - `records`: the key/value records of `__transaction_state` in Kafka's formats.
//! - `coordinator`: the state machine (InitProducerId, AddPartitionsToTxn,
//!   AddOffsetsToTxn, EndTxn, timeouts, DescribeTransactions, ListTransactions).

pub mod coordinator;
pub mod records;

pub use coordinator::{Step, TxnCoordinator};

use std::collections::BTreeSet;
use thiserror::Error;

/// The internal topic holding the state of every transactional id.
pub const TXN_TOPIC: &str = "__transaction_state";

/// The partition of `__transaction_state` that holds `transactional_id` (the same stable
/// hash as groups use).
pub fn txn_partition(transactional_id: &str, partitions: i32) -> i32 {
    crate::group::offsets_partition(transactional_id, partitions)
}

/// The state of a transactional id, with Kafka's names and on-disk codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnStatus {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnStatus {
    pub fn code(self) -> i8 {
        match self {
            TxnStatus::Empty => 0,
            TxnStatus::Ongoing => 1,
            TxnStatus::PrepareCommit => 2,
            TxnStatus::PrepareAbort => 3,
            TxnStatus::CompleteCommit => 4,
            TxnStatus::CompleteAbort => 5,
            TxnStatus::Dead => 6,
            TxnStatus::PrepareEpochFence => 7,
        }
    }

    pub fn from_code(code: i8) -> Option<TxnStatus> {
        Some(match code {
            0 => TxnStatus::Empty,
            1 => TxnStatus::Ongoing,
            2 => TxnStatus::PrepareCommit,
            3 => TxnStatus::PrepareAbort,
            4 => TxnStatus::CompleteCommit,
            5 => TxnStatus::CompleteAbort,
            6 => TxnStatus::Dead,
            7 => TxnStatus::PrepareEpochFence,
            _ => return None,
        })
    }

    /// The name DescribeTransactions and ListTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            TxnStatus::Empty => "Empty",
            TxnStatus::Ongoing => "Ongoing",
            TxnStatus::PrepareCommit => "PrepareCommit",
            TxnStatus::PrepareAbort => "PrepareAbort",
            TxnStatus::CompleteCommit => "CompleteCommit",
            TxnStatus::CompleteAbort => "CompleteAbort",
            TxnStatus::Dead => "Dead",
            TxnStatus::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// Markers are being written (the outcome is decided and durable).
    pub fn is_prepared(self) -> bool {
        matches!(self, TxnStatus::PrepareCommit | TxnStatus::PrepareAbort)
    }
}

/// What the coordinator knows of one transactional id; one record of
/// `__transaction_state` holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMeta {
    pub producer_id: i64,
    pub epoch: i16,
    pub timeout_ms: i32,
    pub status: TxnStatus,
    /// The partitions of the current transaction.
    pub partitions: BTreeSet<(String, i32)>,
    pub last_update_ms: i64,
    /// When the current transaction started (-1: none).
    pub start_ms: i64,
}

/// Why a transactional request fails; [`TxnError::code`] maps each to its Kafka code.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TxnError {
    #[error("this broker does not coordinate the transactional id")]
    NotCoordinator,
    #[error("the transaction coordinator is not available")]
    CoordinatorNotAvailable,
    #[error("the transaction coordinator is loading")]
    LoadInProgress,
    #[error("another operation on the transaction is in progress")]
    ConcurrentTransactions,
    #[error("the producer was fenced by a newer epoch")]
    ProducerFenced,
    #[error("the producer id does not match the transactional id")]
    InvalidProducerIdMapping,
    #[error("the transaction is not in a state that allows this")]
    InvalidTxnState,
    #[error("the transaction timeout is above transaction.max.timeout.ms")]
    InvalidTransactionTimeout,
    #[error("invalid transactional id")]
    InvalidRequest,
}

impl TxnError {
    pub fn code(&self) -> i16 {
        use crate::protocol::code;
        match self {
            TxnError::NotCoordinator => code::NOT_COORDINATOR,
            TxnError::CoordinatorNotAvailable => code::COORDINATOR_NOT_AVAILABLE,
            TxnError::LoadInProgress => code::COORDINATOR_LOAD_IN_PROGRESS,
            TxnError::ConcurrentTransactions => code::CONCURRENT_TRANSACTIONS,
            TxnError::ProducerFenced => code::PRODUCER_FENCED,
            TxnError::InvalidProducerIdMapping => code::INVALID_PRODUCER_ID_MAPPING,
            TxnError::InvalidTxnState => code::INVALID_TXN_STATE,
            TxnError::InvalidTransactionTimeout => code::INVALID_TRANSACTION_TIMEOUT,
            TxnError::InvalidRequest => code::INVALID_REQUEST,
        }
    }
}

/// Work for a transaction coordinator: the shard that owns the transactional id's
/// partition of `__transaction_state`. Travels between shards, so only owned data.
pub enum TxnOp {
    Init {
        id: String,
        timeout_ms: i32,
        /// The producer id and epoch the producer holds (KIP-360), if any.
        current: Option<(i64, i16)>,
    },
    AddPartitions {
        id: String,
        producer_id: i64,
        epoch: i16,
        partitions: Vec<(String, i32)>,
        /// Only check that the partitions are in the transaction (v4+ from brokers).
        verify_only: bool,
    },
    End {
        id: String,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    },
    /// DescribeTransactions of these ids (those this shard coordinates).
    Describe(Vec<String>),
    /// ListTransactions: every id this shard coordinates.
    List,
}

pub enum TxnReply {
    /// InitProducerId: the producer id and epoch.
    Init(Result<(i64, i16), TxnError>),
    Done(Result<(), TxnError>),
    /// AddPartitionsToTxn with verify_only: per partition, whether it is in the
    /// transaction.
    Verified(Result<Vec<bool>, TxnError>),
    /// Per id asked: its state, or the error for it.
    Described(Vec<(String, Result<TxnMeta, TxnError>)>),
    Listed(Vec<(String, TxnMeta)>),
}

impl TxnOp {
    /// The transactional id the op is about (all but Describe and List).
    pub fn id(&self) -> Option<&str> {
        match self {
            TxnOp::Init { id, .. } | TxnOp::AddPartitions { id, .. } | TxnOp::End { id, .. } => {
                Some(id)
            }
            TxnOp::Describe(_) | TxnOp::List => None,
        }
    }

    /// The answer when the op cannot reach a coordinator.
    pub fn refuse(&self, e: TxnError) -> TxnReply {
        match self {
            TxnOp::Init { .. } => TxnReply::Init(Err(e)),
            TxnOp::AddPartitions {
                verify_only: true, ..
            } => TxnReply::Verified(Err(e)),
            TxnOp::AddPartitions { .. } | TxnOp::End { .. } => TxnReply::Done(Err(e)),
            TxnOp::Describe(ids) => {
                TxnReply::Described(ids.iter().map(|id| (id.clone(), Err(e.clone()))).collect())
            }
            TxnOp::List => TxnReply::Listed(Vec::new()),
        }
    }
}
