//! Requests as clients build them: CreatePartitions, DeleteRecords, DescribeLogDirs.
//! Every array has 2-3 elements; `case` 0 fills nullable fields, case 1 leaves them null.

use super::{UNKNOWN_TAG, s, tv};
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, DeleteRecordsRequest, DescribeLogDirsRequest, TopicName,
    create_partitions_request as cp, delete_records_request as dr,
    describe_log_dirs_request as dld,
};

const NAMES: [&str; 3] = ["alpha", "beta", "gamma"];

pub fn create_partitions(_v: i16, case: usize) -> CreatePartitionsRequest {
    let assignment = |a: usize| {
        cp::CreatePartitionsAssignment::default()
            .with_broker_ids(vec![BrokerId(a as i32), BrokerId(7)])
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    let topic = |t: usize| {
        cp::CreatePartitionsTopic::default()
            .with_name(TopicName(s(NAMES[t])))
            .with_count(5)
            .with_assignments((case == 0).then(|| (0..2).map(assignment).collect()))
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    CreatePartitionsRequest::default()
        .with_topics((0..3).map(topic).collect())
        .with_timeout_ms(30_000)
        .with_validate_only(case == 1)
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}

pub fn delete_records(_v: i16, _case: usize) -> DeleteRecordsRequest {
    let partition = |p: usize| {
        dr::DeleteRecordsPartition::default()
            .with_partition_index(p as i32)
            .with_offset(-1 + p as i64 * 100)
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    let topic = |t: usize| {
        dr::DeleteRecordsTopic::default()
            .with_name(TopicName(s(NAMES[t])))
            .with_partitions((0..3).map(partition).collect())
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    DeleteRecordsRequest::default()
        .with_topics((0..2).map(topic).collect())
        .with_timeout_ms(30_000)
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}

pub fn describe_log_dirs(_v: i16, case: usize) -> DescribeLogDirsRequest {
    let topic = |t: usize| {
        dld::DescribableLogDirTopic::default()
            .with_topic(TopicName(s(NAMES[t])))
            .with_partitions(vec![0, 1, 2])
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    DescribeLogDirsRequest::default()
        .with_topics((case == 0).then(|| (0..2).map(topic).collect()))
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}
