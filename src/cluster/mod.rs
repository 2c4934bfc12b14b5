//! The cluster: a controller quorum on raft-rs (TiKV's Raft, a state machine we drive) and
//! the replicated metadata it agrees on, in the shape of KRaft.
//!
//! - `image`: the metadata (brokers, topics, partition assignment, leaders and epochs,
//!   producer-id blocks) and the pure `apply` of each command;
//! - `raft_store`: the durable Raft log, hard state and snapshot, over the storage seam;
//! - `node`: one voter: raft-rs, the store, the image, sessions of the brokers;
//! - `transport`: framed TCP between the voters.

pub mod image;
pub mod liveness;
pub mod logging;
pub mod node;
pub mod raft_store;
pub mod transport;

/// Why a proposal got no outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    #[error("no controller is reachable")]
    NoController,
    #[error("the controller did not apply the request in time")]
    Timeout,
    #[error("this broker does not run in a cluster")]
    NotClustered,
}

impl ProposeError {
    /// Kafka's code for a client: retriable in every case but the last.
    pub fn code(&self) -> i16 {
        match self {
            ProposeError::NoController => crate::protocol::code::NOT_CONTROLLER,
            ProposeError::Timeout => crate::protocol::code::REQUEST_TIMED_OUT,
            ProposeError::NotClustered => crate::protocol::code::INVALID_REQUEST,
        }
    }
}
