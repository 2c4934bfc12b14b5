//! The Kafka front end: listener, connections, the request memory pool and connection
//! limits, and one handler per API.

pub mod admission;
pub mod authorizer;
pub mod connection;
pub mod durable;
pub mod fetch_sessions;
pub mod handlers;
pub mod listener;
pub mod metrics;
pub mod pool;
pub mod response;
pub mod sasl_gate;
pub mod security_store;
pub mod transport;
