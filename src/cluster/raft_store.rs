//! Durable Raft state (to be written).
