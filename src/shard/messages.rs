//! Messages between shards. They cross threads, so everything here is `Send`: record bytes
//! travel as `Bytes`, never as a log or a file, which stay on their owning shard.

use super::meta::Metadata;
use crate::storage::Chunk;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What travels on the mesh. A request names the shard and the id to answer, and the reply
/// comes back on the mesh to that shard, whose router hands it to the waiting task.
pub enum MeshMsg {
    Request {
        from: usize,
        id: u64,
        req: ShardRequest,
    },
    Reply {
        id: u64,
        rep: ShardReply,
    },
    /// The caller of request `id` stopped waiting (a long poll answered by another shard):
    /// a wait still parked for it ends now instead of at its timeout.
    Cancel {
        from: usize,
        id: u64,
    },
}

/// Work for the shard that owns the partitions named (or, for metadata, for shard 0).
pub enum ShardRequest {
    Produce(Vec<ProducePart>),
    /// Reads without waiting (one round of a Fetch).
    Read {
        parts: Vec<ReadPart>,
        max_bytes: u64,
    },
    /// Resolves when one partition's high watermark passes the one given, or after
    /// `timeout_ms`.
    WaitChanged {
        parts: Vec<(String, i32, i64)>,
        timeout_ms: u64,
        /// A follower's fetch: waits for the log end to pass the offset given (followers
        /// read past the high watermark), not the high watermark.
        replica: bool,
    },
    ListOffsets(Vec<ListOffsetsPart>),
    /// The idempotent producers of each partition named (topic, partition).
    DescribeProducers(Vec<(String, i32)>),
    /// Where each partition's leader epoch ends (OffsetForLeaderEpoch).
    EpochEnds(Vec<EpochEndPart>),
    /// Moves the log start of each partition (DeleteRecords).
    DeleteRecords(Vec<DeleteRecordsPart>),
    /// To shard 0, the metadata writer.
    CreateTopics {
        topics: Vec<NewTopic>,
        validate_only: bool,
    },
    /// To shard 0, the metadata writer.
    DeleteTopics(Vec<String>),
    /// To shard 0, the metadata writer: AlterConfigs / IncrementalAlterConfigs of topics.
    AlterTopicConfigs {
        changes: Vec<ConfigChange>,
        validate_only: bool,
    },
    /// To shard 0, the metadata writer: AlterConfigs / IncrementalAlterConfigs of brokers.
    AlterBrokerConfigs {
        changes: Vec<BrokerConfigChange>,
        validate_only: bool,
    },
    /// To shard 0, the metadata writer: CreatePartitions.
    CreatePartitions {
        topics: Vec<PartitionsChange>,
        validate_only: bool,
    },
    /// To a group's coordinator shard (or, for listing, to every shard).
    Group(Box<crate::group::GroupOp>),
    /// From shard 0 to every shard: open logs of new partitions, close deleted ones.
    ApplyMetadata(Arc<Metadata>),
    /// In a cluster, to shard 0 (which runs the controller node): propose a command to the
    /// metadata log and answer with its outcome once this broker has applied it.
    Propose(crate::cluster::image::Command),
    /// A scrape of the metrics endpoint: this shard's counters.
    Metrics,
    /// To a transactional id's coordinator shard.
    Txn(Box<crate::txn::TxnOp>),
    /// Transaction markers on partitions this shard owns (one error code each).
    WriteMarkers(Vec<MarkerPart>),
    /// To shard 0: create `__transaction_state` if it is missing.
    CreateTxnTopic,
    /// The size of each partition log this shard holds (DescribeLogDirs), of the topics
    /// and partitions named (`None`: all).
    LogSizes(Arc<Option<LogSizesFilter>>),
}

/// A commit or abort marker for one partition of a transaction.
pub struct MarkerPart {
    pub topic: String,
    pub partition: i32,
    pub producer_id: i64,
    pub epoch: i16,
    pub commit: bool,
    /// The leader epoch of the coordinator's `__transaction_state` partition.
    pub coordinator_epoch: i32,
}

/// Topics and, per topic, the partitions asked for.
pub type LogSizesFilter = BTreeMap<String, std::collections::BTreeSet<i32>>;

/// One partition log's size on disk.
pub struct LogSize {
    pub topic: String,
    pub partition: i32,
    pub size_bytes: u64,
}

pub enum ShardReply {
    Produce(Vec<ProduceResult>),
    Read(Vec<ReadResult>),
    Changed,
    ListOffsets(Vec<ListOffsetsResult>),
    DescribeProducers(Vec<ProducersResult>),
    EpochEnds(Vec<EpochEndResult>),
    DeleteRecords(Vec<DeleteRecordsResult>),
    CreateTopics(Vec<TopicResult>),
    DeleteTopics(Vec<TopicResult>),
    AlterTopicConfigs(Vec<TopicResult>),
    /// Per change, in order: the error code and message.
    AlterBrokerConfigs(Vec<(i16, Option<String>)>),
    CreatePartitions(Vec<TopicResult>),
    Applied,
    /// `None` when the coordinator stopped with the request parked.
    Group(Option<crate::group::GroupReply>),
    Proposed(Result<crate::cluster::image::Outcome, crate::cluster::ProposeError>),
    Metrics(Box<super::snapshot::ShardSnapshot>),
    Txn(crate::txn::TxnReply),
    WriteMarkers(Vec<i16>),
    LogSizes(Vec<LogSize>),
}

/// How one topic's config overrides change.
pub enum ConfigEdit {
    /// AlterConfigs: these become the overrides, all others are removed.
    Replace(BTreeMap<String, String>),
    /// IncrementalAlterConfigs: these operations, in order.
    Ops(Vec<(String, crate::config::topic::ConfigOp, Option<String>)>),
}

/// CreatePartitions of one topic: its new partition count and, if the client gave them,
/// the replicas of each new partition.
pub struct PartitionsChange {
    pub topic: String,
    pub count: i32,
    pub assignments: Option<Vec<Vec<i32>>>,
}

pub struct ConfigChange {
    pub topic: String,
    pub edit: ConfigEdit,
}

/// A change of dynamic broker configs: one broker's (`Some(id)`) or the cluster-wide ones.
pub struct BrokerConfigChange {
    pub broker: Option<i32>,
    pub edit: ConfigEdit,
}

pub struct ProducePart {
    pub topic: String,
    pub partition: i32,
    pub records: Bytes,
    /// -1 (all in-sync replicas), 0 or 1.
    pub acks: i16,
    /// How long `acks=all` waits for the in-sync replicas.
    pub timeout_ms: u64,
    /// The request's transactional id (Produce v3+): a transactional batch is checked
    /// against its coordinator before it is appended.
    pub transactional_id: Option<String>,
}

pub struct ProduceResult {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub base_offset: i64,
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// Kafka's `record_errors` (Produce v8+): the records refused one by one, by their
    /// index in the batch, each with a message or none.
    pub record_errors: Vec<(i32, Option<String>)>,
}

pub struct ReadPart {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub max_bytes: u64,
    /// The broker id of a follower's fetch; -1 for a consumer.
    pub replica: i32,
    /// The leader epoch the fetcher believes in (-1: none given).
    pub current_leader_epoch: i32,
    /// A follower's last fetched epoch, checked for divergence (-1: none).
    pub last_fetched_epoch: i32,
    /// A `read_committed` consumer: reads stop at the last stable offset.
    pub committed: bool,
}

pub struct ReadResult {
    pub error_code: i16,
    pub high_watermark: i64,
    /// The last stable offset (-1 when unknown).
    pub last_stable_offset: i64,
    /// For a `read_committed` read: the aborted transactions the records overlap, as
    /// (producer id, first offset).
    pub aborted: Vec<(i64, i64)>,
    pub log_start_offset: i64,
    /// Whole batches: memory or segment-file ranges (sent with sendfile).
    pub records: Vec<Chunk>,
    /// To a follower whose log parted from the leader's: the largest epoch both hold and
    /// where it ends at the leader.
    pub diverging: Option<(i32, i64)>,
}

impl ReadResult {
    pub fn records_len(&self) -> u64 {
        self.records.iter().map(Chunk::len).sum()
    }
}

pub struct ListOffsetsPart {
    pub topic: String,
    pub partition: i32,
    pub timestamp: i64,
    /// isolation_level read_committed: LATEST is the last stable offset.
    pub committed: bool,
}

pub struct ListOffsetsResult {
    pub error_code: i16,
    pub offset: i64,
    pub timestamp: i64,
}

/// One partition of OffsetForLeaderEpoch.
pub struct EpochEndPart {
    pub topic: String,
    pub partition: i32,
    pub current_leader_epoch: i32,
    pub leader_epoch: i32,
}

/// The largest epoch at or below the one asked for, and where it ends.
pub struct EpochEndResult {
    pub error_code: i16,
    pub leader_epoch: i32,
    pub end_offset: i64,
}

impl EpochEndResult {
    pub fn error(error_code: i16) -> EpochEndResult {
        EpochEndResult {
            error_code,
            leader_epoch: -1,
            end_offset: -1,
        }
    }
}

/// One partition's answer to DescribeProducers.
pub struct ProducersResult {
    pub error_code: i16,
    pub producers: Vec<crate::producer::ActiveProducer>,
}

impl ProducersResult {
    pub fn error(error_code: i16) -> ProducersResult {
        ProducersResult {
            error_code,
            producers: Vec::new(),
        }
    }
}

pub struct DeleteRecordsPart {
    pub topic: String,
    pub partition: i32,
    /// The new log start; -1 for the high watermark.
    pub offset: i64,
}

pub struct DeleteRecordsResult {
    pub error_code: i16,
    /// The log start offset after the request; -1 on error.
    pub low_watermark: i64,
}

impl DeleteRecordsResult {
    pub fn error(error_code: i16) -> DeleteRecordsResult {
        DeleteRecordsResult {
            error_code,
            low_watermark: -1,
        }
    }
}

pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    /// The replicas of each partition when the client chose them, in partition order.
    pub assignments: Option<Vec<Vec<i32>>>,
    pub configs: BTreeMap<String, String>,
}

pub struct TopicResult {
    pub name: String,
    pub error_code: i16,
    pub error_message: Option<String>,
    pub partitions: i32,
    pub id: String,
}

/// The error code of a result that is left out of the response (a duplicate entry).
const OMITTED: i16 = i16::MIN;

impl ProduceResult {
    pub fn error(error_code: i16, error_message: Option<String>) -> ProduceResult {
        ProduceResult {
            error_code,
            error_message,
            base_offset: -1,
            log_append_time: -1,
            log_start_offset: -1,
            record_errors: Vec::new(),
        }
    }

    /// A placeholder for a repeated entry, answered with its first occurrence.
    pub fn omitted() -> ProduceResult {
        ProduceResult::error(OMITTED, None)
    }

    pub fn is_omitted(&self) -> bool {
        self.error_code == OMITTED
    }
}

impl ReadResult {
    pub fn error(error_code: i16) -> ReadResult {
        ReadResult {
            error_code,
            high_watermark: -1,
            last_stable_offset: -1,
            aborted: Vec::new(),
            log_start_offset: -1,
            records: Vec::new(),
            diverging: None,
        }
    }
}

impl ListOffsetsResult {
    pub fn error(error_code: i16) -> ListOffsetsResult {
        ListOffsetsResult {
            error_code,
            offset: -1,
            timestamp: -1,
        }
    }
}
