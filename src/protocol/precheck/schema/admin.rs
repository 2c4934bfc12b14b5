//! Cluster and topic administration: Metadata, ApiVersions, CreateTopics, DeleteTopics,
//! InitProducerId, DescribeConfigs, AlterConfigs, IncrementalAlterConfigs.

use super::*;
use kafka_protocol::messages::{
    BrokerId, TopicName, alter_configs_request as ac, create_topics_request as ct,
    delete_topics_request as dt, describe_configs_request as dc,
    incremental_alter_configs_request as iac, metadata_request as md,
};
use std::mem::size_of;

// Metadata: v9 is the first flexible version. The crate holds `topics` and a topic's
// `name` in `Option`s in every version, so null is accepted in every version.

static METADATA_TOPIC: StructSchema = StructSchema {
    name: "MetadataRequestTopic",
    fields: &[
        field("topic_id", from(10), UUID),
        field("name", Versions::ALL, NULLABLE_STRING),
    ],
    tagged: &[],
};

static METADATA_BODY: StructSchema = StructSchema {
    name: "MetadataRequest",
    fields: &[
        field(
            "topics",
            Versions::ALL,
            nullable_structs(&METADATA_TOPIC, size_of::<md::MetadataRequestTopic>()),
        ),
        field("allow_auto_topic_creation", from(4), BOOL),
        field("include_cluster_authorized_operations", range(8, 10), BOOL),
        field("include_topic_authorized_operations", from(8), BOOL),
    ],
    tagged: &[],
};

pub static METADATA: MessageSchema = MessageSchema {
    api: ApiKey::Metadata,
    versions: range(0, 12),
    flexible: from(9),
    body: &METADATA_BODY,
};

// ApiVersions: v3 is the first flexible version (and the first with a body).

static API_VERSIONS_BODY: StructSchema = StructSchema {
    name: "ApiVersionsRequest",
    fields: &[
        field("client_software_name", from(3), STRING),
        field("client_software_version", from(3), STRING),
    ],
    tagged: &[],
};

pub static API_VERSIONS: MessageSchema = MessageSchema {
    api: ApiKey::ApiVersions,
    versions: range(0, 3),
    flexible: from(3),
    body: &API_VERSIONS_BODY,
};

// CreateTopics: v5 is the first flexible version.

static CREATABLE_ASSIGNMENT: StructSchema = StructSchema {
    name: "CreatableReplicaAssignment",
    fields: &[
        field("partition_index", Versions::ALL, INT32),
        field(
            "broker_ids",
            Versions::ALL,
            prims(Prim::Int32, size_of::<BrokerId>()),
        ),
    ],
    tagged: &[],
};

static CREATABLE_CONFIG: StructSchema = StructSchema {
    name: "CreatableTopicConfig",
    fields: &[
        field("name", Versions::ALL, STRING),
        field("value", Versions::ALL, NULLABLE_STRING),
    ],
    tagged: &[],
};

static CREATABLE_TOPIC: StructSchema = StructSchema {
    name: "CreatableTopic",
    fields: &[
        field("name", Versions::ALL, STRING),
        field("num_partitions", Versions::ALL, INT32),
        field("replication_factor", Versions::ALL, INT16),
        field(
            "assignments",
            Versions::ALL,
            structs(
                &CREATABLE_ASSIGNMENT,
                size_of::<ct::CreatableReplicaAssignment>(),
            ),
        ),
        field(
            "configs",
            Versions::ALL,
            structs(&CREATABLE_CONFIG, size_of::<ct::CreatableTopicConfig>()),
        ),
    ],
    tagged: &[],
};

static CREATE_TOPICS_BODY: StructSchema = StructSchema {
    name: "CreateTopicsRequest",
    fields: &[
        field(
            "topics",
            Versions::ALL,
            structs(&CREATABLE_TOPIC, size_of::<ct::CreatableTopic>()),
        ),
        field("timeout_ms", Versions::ALL, INT32),
        field("validate_only", from(1), BOOL),
    ],
    tagged: &[],
};

pub static CREATE_TOPICS: MessageSchema = MessageSchema {
    api: ApiKey::CreateTopics,
    versions: range(2, 7),
    flexible: from(5),
    body: &CREATE_TOPICS_BODY,
};

// DeleteTopics: v4 is the first flexible version; v6 replaces names by (name, id) pairs.

static DELETE_TOPIC_STATE: StructSchema = StructSchema {
    name: "DeleteTopicState",
    fields: &[
        field("name", from(6), NULLABLE_STRING),
        field("topic_id", from(6), UUID),
    ],
    tagged: &[],
};

static DELETE_TOPICS_BODY: StructSchema = StructSchema {
    name: "DeleteTopicsRequest",
    fields: &[
        field(
            "topics",
            from(6),
            structs(&DELETE_TOPIC_STATE, size_of::<dt::DeleteTopicState>()),
        ),
        field("topic_names", until(5), strings(size_of::<TopicName>())),
        field("timeout_ms", Versions::ALL, INT32),
    ],
    tagged: &[],
};

pub static DELETE_TOPICS: MessageSchema = MessageSchema {
    api: ApiKey::DeleteTopics,
    versions: range(1, 6),
    flexible: from(4),
    body: &DELETE_TOPICS_BODY,
};

// InitProducerId: v2 is the first flexible version.

static INIT_PRODUCER_ID_BODY: StructSchema = StructSchema {
    name: "InitProducerIdRequest",
    fields: &[
        field("transactional_id", Versions::ALL, NULLABLE_STRING),
        field("transaction_timeout_ms", Versions::ALL, INT32),
        field("producer_id", from(3), INT64),
        field("producer_epoch", from(3), INT16),
    ],
    tagged: &[],
};

pub static INIT_PRODUCER_ID: MessageSchema = MessageSchema {
    api: ApiKey::InitProducerId,
    versions: range(0, 4),
    flexible: from(2),
    body: &INIT_PRODUCER_ID_BODY,
};

// DescribeConfigs: v4 is the first flexible version (the crate has no v0).

static DESCRIBE_CONFIGS_RESOURCE: StructSchema = StructSchema {
    name: "DescribeConfigsResource",
    fields: &[
        field("resource_type", Versions::ALL, INT8),
        field("resource_name", Versions::ALL, STRING),
        field(
            "configuration_keys",
            Versions::ALL,
            Ty::Array {
                elem: Elem::String { nullable: false },
                nullable: true,
                rust_elem_size: size_of::<kafka_protocol::protocol::StrBytes>(),
            },
        ),
    ],
    tagged: &[],
};

static DESCRIBE_CONFIGS_BODY: StructSchema = StructSchema {
    name: "DescribeConfigsRequest",
    fields: &[
        field(
            "resources",
            Versions::ALL,
            structs(
                &DESCRIBE_CONFIGS_RESOURCE,
                size_of::<dc::DescribeConfigsResource>(),
            ),
        ),
        field("include_synonyms", Versions::ALL, BOOL),
        field("include_documentation", from(3), BOOL),
    ],
    tagged: &[],
};

pub static DESCRIBE_CONFIGS: MessageSchema = MessageSchema {
    api: ApiKey::DescribeConfigs,
    versions: range(1, 4),
    flexible: from(4),
    body: &DESCRIBE_CONFIGS_BODY,
};

// AlterConfigs: v2 is the first flexible version.

static ALTERABLE_CONFIG: StructSchema = StructSchema {
    name: "AlterableConfig",
    fields: &[
        field("name", Versions::ALL, STRING),
        field("value", Versions::ALL, NULLABLE_STRING),
    ],
    tagged: &[],
};

static ALTER_CONFIGS_RESOURCE: StructSchema = StructSchema {
    name: "AlterConfigsResource",
    fields: &[
        field("resource_type", Versions::ALL, INT8),
        field("resource_name", Versions::ALL, STRING),
        field(
            "configs",
            Versions::ALL,
            structs(&ALTERABLE_CONFIG, size_of::<ac::AlterableConfig>()),
        ),
    ],
    tagged: &[],
};

static ALTER_CONFIGS_BODY: StructSchema = StructSchema {
    name: "AlterConfigsRequest",
    fields: &[
        field(
            "resources",
            Versions::ALL,
            structs(
                &ALTER_CONFIGS_RESOURCE,
                size_of::<ac::AlterConfigsResource>(),
            ),
        ),
        field("validate_only", Versions::ALL, BOOL),
    ],
    tagged: &[],
};

pub static ALTER_CONFIGS: MessageSchema = MessageSchema {
    api: ApiKey::AlterConfigs,
    versions: range(0, 2),
    flexible: from(2),
    body: &ALTER_CONFIGS_BODY,
};

// IncrementalAlterConfigs: v1 is the first flexible version.

static INCREMENTAL_CONFIG: StructSchema = StructSchema {
    name: "IncrementalAlterableConfig",
    fields: &[
        field("name", Versions::ALL, STRING),
        field("config_operation", Versions::ALL, INT8),
        field("value", Versions::ALL, NULLABLE_STRING),
    ],
    tagged: &[],
};

static INCREMENTAL_RESOURCE: StructSchema = StructSchema {
    name: "IncrementalAlterConfigsResource",
    fields: &[
        field("resource_type", Versions::ALL, INT8),
        field("resource_name", Versions::ALL, STRING),
        field(
            "configs",
            Versions::ALL,
            structs(&INCREMENTAL_CONFIG, size_of::<iac::AlterableConfig>()),
        ),
    ],
    tagged: &[],
};

static INCREMENTAL_BODY: StructSchema = StructSchema {
    name: "IncrementalAlterConfigsRequest",
    fields: &[
        field(
            "resources",
            Versions::ALL,
            structs(
                &INCREMENTAL_RESOURCE,
                size_of::<iac::AlterConfigsResource>(),
            ),
        ),
        field("validate_only", Versions::ALL, BOOL),
    ],
    tagged: &[],
};

pub static INCREMENTAL_ALTER_CONFIGS: MessageSchema = MessageSchema {
    api: ApiKey::IncrementalAlterConfigs,
    versions: range(0, 1),
    flexible: from(1),
    body: &INCREMENTAL_BODY,
};
