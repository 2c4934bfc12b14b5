//! The Kafka front end: listener, connections, one handler per API, and the mapping of
//! internal errors to Kafka error codes.

pub mod admission;
pub mod connection;
pub mod handlers;
pub mod listener;
pub mod pool;
pub mod response;
