//! Requests as clients build them: DescribeConfigs, AlterConfigs, IncrementalAlterConfigs,
//! DescribeCluster, DescribeProducers, SaslHandshake, SaslAuthenticate.
//! Every array has 2-3 elements; `case` 0 fills nullable fields, case 1 leaves them null.

use super::{UNKNOWN_TAG, s, tv};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    AlterConfigsRequest, DescribeClusterRequest, DescribeConfigsRequest, DescribeProducersRequest,
    IncrementalAlterConfigsRequest, SaslAuthenticateRequest, SaslHandshakeRequest, TopicName,
    alter_configs_request as ac, describe_producers_request as dp,
    incremental_alter_configs_request as iac,
};

const NAMES: [&str; 3] = ["retention.ms", "cleanup.policy", "segment.bytes"];

pub fn describe(v: i16, case: usize) -> DescribeConfigsRequest {
    let resource = |r: usize| {
        DescribeConfigsResource::default()
            .with_resource_type(if r == 0 { 2 } else { 4 })
            .with_resource_name(s(["alpha", "1"][r]))
            .with_configuration_keys((case == 0).then(|| NAMES.iter().map(|n| s(n)).collect()))
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    DescribeConfigsRequest::default()
        .with_resources((0..2).map(resource).collect())
        .with_include_synonyms(case == 0)
        .with_include_documentation(case == 0 && v >= 3)
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}

pub fn alter(_v: i16, case: usize) -> AlterConfigsRequest {
    let config = |c: usize| {
        ac::AlterableConfig::default()
            .with_name(s(NAMES[c]))
            .with_value((case == 0 || c != 1).then(|| s("1000")))
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    let resource = |r: usize| {
        ac::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(["alpha", "beta"][r]))
            .with_configs((0..3).map(config).collect())
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    AlterConfigsRequest::default()
        .with_resources((0..2).map(resource).collect())
        .with_validate_only(case == 1)
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}

pub fn incremental(_v: i16, case: usize) -> IncrementalAlterConfigsRequest {
    let config = |c: usize| {
        iac::AlterableConfig::default()
            .with_name(s(NAMES[c]))
            .with_config_operation(c as i8)
            .with_value((case == 0 || c != 1).then(|| s("1000")))
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    let resource = |r: usize| {
        iac::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(["alpha", "beta"][r]))
            .with_configs((0..3).map(config).collect())
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    IncrementalAlterConfigsRequest::default()
        .with_resources((0..2).map(resource).collect())
        .with_validate_only(case == 1)
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}

pub fn describe_cluster(v: i16, case: usize) -> DescribeClusterRequest {
    DescribeClusterRequest::default()
        .with_include_cluster_authorized_operations(case == 0)
        .with_endpoint_type(if v >= 1 && case == 1 { 2 } else { 1 })
        .with_include_fenced_brokers(v >= 2 && case == 0)
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}

pub fn describe_producers(_v: i16, case: usize) -> DescribeProducersRequest {
    let topic = |t: usize| {
        dp::TopicRequest::default()
            .with_name(TopicName(s(["alpha", "beta"][t])))
            .with_partition_indexes(if case == 0 { vec![0, 1, 2] } else { vec![] })
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    DescribeProducersRequest::default()
        .with_topics((0..2).map(topic).collect())
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}

pub fn sasl_handshake(_v: i16, case: usize) -> SaslHandshakeRequest {
    SaslHandshakeRequest::default().with_mechanism(s(["SCRAM-SHA-256", ""][case]))
}

pub fn sasl_authenticate(v: i16, case: usize) -> SaslAuthenticateRequest {
    let r = SaslAuthenticateRequest::default().with_auth_bytes(if case == 0 {
        bytes::Bytes::from_static(b"n,,n=alice,r=abc")
    } else {
        bytes::Bytes::new()
    });
    if v >= 2 {
        r.with_unknown_tagged_field(UNKNOWN_TAG, tv())
    } else {
        r
    }
}
