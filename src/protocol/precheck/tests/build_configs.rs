//! Requests as clients build them: DescribeConfigs, AlterConfigs, IncrementalAlterConfigs,
//! DescribeCluster, DescribeProducers, SaslHandshake, SaslAuthenticate, and the ACL APIs.
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

/// The unknown tagged field of flexible versions (v2+ of the ACL APIs).
fn tag_from_v2<T: WithTags>(v: i16, mut m: T) -> T {
    if v >= 2 {
        m.add_tag();
    }
    m
}

pub trait WithTags {
    fn add_tag(&mut self);
}

macro_rules! with_tags {
    ($($t:ty),*) => {
        $(impl WithTags for $t {
            fn add_tag(&mut self) {
                self.unknown_tagged_fields.insert(UNKNOWN_TAG, tv());
            }
        })*
    };
}

with_tags!(
    kafka_protocol::messages::DescribeUserScramCredentialsRequest,
    kafka_protocol::messages::describe_user_scram_credentials_request::UserName,
    kafka_protocol::messages::AlterUserScramCredentialsRequest,
    kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialDeletion,
    kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion,
    kafka_protocol::messages::CreateAclsRequest,
    kafka_protocol::messages::create_acls_request::AclCreation,
    kafka_protocol::messages::DescribeAclsRequest,
    kafka_protocol::messages::DeleteAclsRequest,
    kafka_protocol::messages::delete_acls_request::DeleteAclsFilter
);

pub fn create_acls(v: i16, _case: usize) -> kafka_protocol::messages::CreateAclsRequest {
    use kafka_protocol::messages::create_acls_request::AclCreation;
    let creation = |i: usize| {
        tag_from_v2(
            v,
            AclCreation::default()
                .with_resource_type(2)
                .with_resource_name(s(["alpha", "beta", "gamma"][i]))
                .with_resource_pattern_type(3)
                .with_principal(s("User:alice"))
                .with_host(s("*"))
                .with_operation(3)
                .with_permission_type(3),
        )
    };
    tag_from_v2(
        v,
        kafka_protocol::messages::CreateAclsRequest::default()
            .with_creations((0..3).map(creation).collect()),
    )
}

pub fn describe_acls(v: i16, case: usize) -> kafka_protocol::messages::DescribeAclsRequest {
    let filled = case == 0;
    tag_from_v2(
        v,
        kafka_protocol::messages::DescribeAclsRequest::default()
            .with_resource_type_filter(2)
            .with_resource_name_filter(filled.then(|| s("alpha")))
            .with_pattern_type_filter(1)
            .with_principal_filter(filled.then(|| s("User:alice")))
            .with_host_filter(filled.then(|| s("*")))
            .with_operation(1)
            .with_permission_type(1),
    )
}

pub fn delete_acls(v: i16, case: usize) -> kafka_protocol::messages::DeleteAclsRequest {
    use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
    let filled = case == 0;
    let filter = |i: usize| {
        tag_from_v2(
            v,
            DeleteAclsFilter::default()
                .with_resource_type_filter(2)
                .with_resource_name_filter(filled.then(|| s(["alpha", "beta"][i])))
                .with_pattern_type_filter(3)
                .with_principal_filter(filled.then(|| s("User:alice")))
                .with_host_filter(filled.then(|| s("*")))
                .with_operation(3)
                .with_permission_type(3),
        )
    };
    tag_from_v2(
        v,
        kafka_protocol::messages::DeleteAclsRequest::default()
            .with_filters((0..2).map(filter).collect()),
    )
}

pub fn describe_scram(
    v: i16,
    case: usize,
) -> kafka_protocol::messages::DescribeUserScramCredentialsRequest {
    use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
    let users = (case == 0).then(|| {
        ["alice", "bob"]
            .iter()
            .map(|n| tag_from_v2(2, UserName::default().with_name(s(n))))
            .collect()
    });
    tag_from_v2(
        v + 2,
        kafka_protocol::messages::DescribeUserScramCredentialsRequest::default().with_users(users),
    )
}

pub fn alter_scram(
    v: i16,
    _case: usize,
) -> kafka_protocol::messages::AlterUserScramCredentialsRequest {
    use kafka_protocol::messages::alter_user_scram_credentials_request::{
        ScramCredentialDeletion, ScramCredentialUpsertion,
    };
    let deletion = |i: usize| {
        tag_from_v2(
            2,
            ScramCredentialDeletion::default()
                .with_name(s(["alice", "bob"][i]))
                .with_mechanism(1),
        )
    };
    let upsertion = |i: usize| {
        tag_from_v2(
            2,
            ScramCredentialUpsertion::default()
                .with_name(s(["carol", "dave", "erin"][i]))
                .with_mechanism(2)
                .with_iterations(4096)
                .with_salt(bytes::Bytes::from_static(b"salt"))
                .with_salted_password(bytes::Bytes::from_static(b"salted")),
        )
    };
    tag_from_v2(
        v + 2,
        kafka_protocol::messages::AlterUserScramCredentialsRequest::default()
            .with_deletions((0..2).map(deletion).collect())
            .with_upsertions((0..3).map(upsertion).collect()),
    )
}
