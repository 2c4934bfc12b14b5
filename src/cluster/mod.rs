//! The cluster: a controller quorum on raft-rs (TiKV's Raft, a state machine we drive) and
//! the replicated metadata it agrees on, in the shape of KRaft.
//!
//! - `image`: the metadata (brokers, topics, partition assignment, leaders and epochs,
//!   producer-id blocks) and the pure `apply` of each command;
//! - `raft_store`: the durable Raft log, hard state and snapshot, over the storage seam;
//! - `node`: one voter: raft-rs, the store, the image, sessions of the brokers;
//! - `transport`: framed TCP between the voters.

pub mod raft_store;
