//! Read-only views of the cluster: DescribeCluster and DescribeProducers (every version
//! of both is flexible).

use super::*;
use kafka_protocol::messages::describe_producers_request as dp;
use std::mem::size_of;

static DESCRIBE_CLUSTER_BODY: StructSchema = StructSchema {
    name: "DescribeClusterRequest",
    fields: &[
        field("include_cluster_authorized_operations", Versions::ALL, BOOL),
        field("endpoint_type", from(1), INT8),
        field("include_fenced_brokers", from(2), BOOL),
    ],
    tagged: &[],
};

pub static DESCRIBE_CLUSTER: MessageSchema = MessageSchema {
    api: ApiKey::DescribeCluster,
    versions: range(0, 2),
    flexible: from(0),
    body: &DESCRIBE_CLUSTER_BODY,
};

static DESCRIBE_PRODUCERS_TOPIC: StructSchema = StructSchema {
    name: "DescribeProducersTopicRequest",
    fields: &[
        field("name", Versions::ALL, STRING),
        field(
            "partition_indexes",
            Versions::ALL,
            prims(Prim::Int32, size_of::<i32>()),
        ),
    ],
    tagged: &[],
};

static DESCRIBE_PRODUCERS_BODY: StructSchema = StructSchema {
    name: "DescribeProducersRequest",
    fields: &[field(
        "topics",
        Versions::ALL,
        structs(&DESCRIBE_PRODUCERS_TOPIC, size_of::<dp::TopicRequest>()),
    )],
    tagged: &[],
};

pub static DESCRIBE_PRODUCERS: MessageSchema = MessageSchema {
    api: ApiKey::DescribeProducers,
    versions: range(0, 0),
    flexible: from(0),
    body: &DESCRIBE_PRODUCERS_BODY,
};
