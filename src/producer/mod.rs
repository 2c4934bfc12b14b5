//! Idempotent producers: producer id allocation (InitProducerId) and the per-partition
//! producer state that deduplicates retried batches and rejects sequence gaps.

pub mod ids;
pub mod state;
pub mod txns;

pub use ids::{ProducerIdAllocator, ProducerIdAndEpoch};
pub use state::{
    ActiveProducer, BatchMeta, ProducerBatch, ProducerEntry, ProducerError, ProducerStates, Verdict,
};
pub use txns::{AbortedTxn, PartitionTxns};
