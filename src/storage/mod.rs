//! The storage engine: partition logs of segments in Kafka's on-disk layout.
//!
//! `io` is the seam to the disk (glommio in production, a fault-injecting simulation in
//! tests); `index` holds the sparse `.index` / `.timeindex`; `log` owns the segments of one
//! partition, its appender and flush policy, recovery, reads and compaction; `clean` holds
//! compaction's key map and the rewrite of a batch's records; `snapshot` the producer state
//! snapshots written at segment roll, which spare an open the walk of the whole log;
//! `release` the last close of deleted files, off the reactor.

pub mod admit;
pub mod aligned;
pub mod cache;
pub mod chunk;
pub mod clean;
pub mod epochs;
pub mod error;
pub mod glommio_io;
pub mod index;
pub mod io;

pub use cache::BatchCache;
pub use chunk::Chunk;
pub use error::{Result, StorageError};
pub use glommio_io::GlommioStorage;
pub use io::{FileKind, Storage, StorageFile};
pub mod log;
pub mod notify;
pub mod release;
pub mod repair;
pub mod scanner;
pub mod segment;
pub mod sim;
pub mod snapshot;

pub use log::{AppendInfo, FileRegion, PartitionLog, ReadSlice};
