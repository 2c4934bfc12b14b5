//! ACLs against the real binary: with `authorizer.enabled`, a SASL principal without ACLs
//! cannot write, read, describe, create, delete or commit, and can once a super user has
//! created the ACLs; the ACL APIs need cluster permissions; bindings survive a restart;
//! confluent-kafka's AdminClient creates, describes and deletes them; without an
//! authorizer the ACL APIs answer SECURITY_DISABLED.

mod common;

use common::kafka::{self, topic_name};
use common::{Broker, RawClient, disk_tempdir, free_port, run_python};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeAclsRequest, DescribeAclsResponse, GroupId,
    JoinGroupRequest, JoinGroupResponse, MetadataRequest, MetadataResponse, OffsetCommitRequest,
    OffsetCommitResponse, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use ringbroker::protocol::batch::testing::build_batch;

const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const SECURITY_DISABLED: i16 = 54;

// Kafka's enum values (ResourceType, PatternType, AclOperation, AclPermissionType).
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const READ: i8 = 3;
const WRITE: i8 = 4;
const CREATE: i8 = 5;
const DELETE: i8 = 6;
const ALLOW: i8 = 3;
const ANY: i8 = 1;

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

fn users_add(data: &std::path::Path, user: &str, password: &str) {
    for mechanism in ["PLAIN", "SCRAM-SHA-256"] {
        common::users_add(data, mechanism, user, password);
    }
}

struct Secured {
    broker: Broker,
    _data: tempfile::TempDir,
    sasl: u16,
}

fn start(authorizer: bool) -> Secured {
    let data = disk_tempdir("rb-acls-");
    users_add(data.path(), "admin", "admin-secret");
    users_add(data.path(), "alice", "alice-secret");
    let (plain, sasl) = (free_port(), free_port());
    let extra = [
        format!("listeners=PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl}"),
        format!("authorizer.enabled={authorizer}"),
        "super.users=User:admin".to_string(),
    ]
    .into_iter()
    .flat_map(|s| ["--set".to_string(), s])
    .collect();
    let broker = Broker::start_with_listeners(data.path(), plain, extra);
    Secured {
        broker,
        _data: data,
        sasl,
    }
}

/// A raw client on the SASL listener, authenticated with PLAIN.
fn login(port: u16, user: &str, password: &str) -> RawClient {
    let mut c = RawClient::connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    let h: SaslHandshakeResponse = c.call(
        1,
        &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
    );
    assert_eq!(h.error_code, 0);
    let token = format!("\0{user}\0{password}");
    let a: SaslAuthenticateResponse = c.call(
        1,
        &SaslAuthenticateRequest::default().with_auth_bytes(bytes::Bytes::from(token)),
    );
    assert_eq!(a.error_code, 0, "{user} logs in");
    c
}

fn produce(c: &mut RawClient, topic: &str) -> i16 {
    let batch = build_batch(&[b"v".as_slice()], common::recent_ts());
    kafka::produce(c, &[(topic, 0, batch)])[0].2
}

fn fetch(c: &mut RawClient, topic: &str) -> i16 {
    kafka::fetch(c, topic, &[(0, 0)])[0].1
}

fn delete_topic(c: &mut RawClient, topic: &str) -> i16 {
    let r: DeleteTopicsResponse = c.call(
        4,
        &DeleteTopicsRequest::default()
            .with_topic_names(vec![topic_name(topic)])
            .with_timeout_ms(10_000),
    );
    r.responses[0].error_code
}

fn commit(c: &mut RawClient, group: &str, topic: &str) -> i16 {
    let r: OffsetCommitResponse = c.call(
        2,
        &OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(s(""))
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(1),
                    ]),
            ]),
    );
    r.topics[0].partitions[0].error_code
}

fn join(c: &mut RawClient, group: &str) -> i16 {
    let r: JoinGroupResponse = c.call(
        5,
        &JoinGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(s(""))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default().with_name(s("range")),
            ]),
    );
    r.error_code
}

fn binding(rt: i8, name: &str, pattern: i8, operation: i8) -> AclCreation {
    AclCreation::default()
        .with_resource_type(rt)
        .with_resource_name(s(name))
        .with_resource_pattern_type(pattern)
        .with_principal(s("User:alice"))
        .with_host(s("*"))
        .with_operation(operation)
        .with_permission_type(ALLOW)
}

fn create_acls(c: &mut RawClient, acls: Vec<AclCreation>) -> Vec<i16> {
    let r: CreateAclsResponse = c.call(2, &CreateAclsRequest::default().with_creations(acls));
    r.results.iter().map(|r| r.error_code).collect()
}

fn listed_topics(c: &mut RawClient) -> Vec<String> {
    let m: MetadataResponse = c.call(4, &MetadataRequest::default().with_topics(None));
    let mut names: Vec<String> = m
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    names.sort();
    names
}

#[test]
fn a_principal_without_acls_is_refused_and_allowed_once_they_exist() {
    let mut b = start(true);
    let mut admin = login(b.sasl, "admin", "admin-secret");
    assert_eq!(kafka::create_topics(&mut admin, &[("orders", 1)])[0].1, 0);
    assert_eq!(
        produce(&mut admin, "orders"),
        0,
        "a super user may do anything"
    );

    let mut alice = login(b.sasl, "alice", "alice-secret");
    assert_eq!(produce(&mut alice, "orders"), TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(fetch(&mut alice, "orders"), TOPIC_AUTHORIZATION_FAILED);
    let m = kafka::metadata(&mut alice, &["orders"]);
    assert_eq!(m.topics[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    assert!(listed_topics(&mut alice).is_empty(), "no topic is shown");
    let created = kafka::create_topics(&mut alice, &[("alice-new", 1)]);
    assert_eq!(created[0].1, TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(
        delete_topic(&mut alice, "orders"),
        TOPIC_AUTHORIZATION_FAILED
    );
    assert_eq!(
        commit(&mut alice, "g1", "orders"),
        GROUP_AUTHORIZATION_FAILED
    );
    assert_eq!(join(&mut alice, "g1"), GROUP_AUTHORIZATION_FAILED);
    let refused = create_acls(&mut alice, vec![binding(TOPIC, "orders", LITERAL, READ)]);
    assert_eq!(refused, [CLUSTER_AUTHORIZATION_FAILED]);
    // Anonymous clients of the PLAINTEXT listener are refused as well.
    let mut anon = RawClient::connect(b.broker.addr());
    assert_eq!(produce(&mut anon, "orders"), TOPIC_AUTHORIZATION_FAILED);

    // The super user grants: the topic, the group, and topics prefixed alice-.
    let made = create_acls(
        &mut admin,
        vec![
            binding(TOPIC, "orders", LITERAL, WRITE),
            binding(TOPIC, "orders", LITERAL, READ),
            binding(GROUP, "g1", LITERAL, READ),
            binding(TOPIC, "alice-", PREFIXED, CREATE),
            binding(TOPIC, "alice-", PREFIXED, DELETE),
        ],
    );
    assert_eq!(made, [0, 0, 0, 0, 0]);
    assert_eq!(produce(&mut alice, "orders"), 0);
    assert_eq!(fetch(&mut alice, "orders"), 0);
    assert_eq!(
        listed_topics(&mut alice),
        ["orders"],
        "READ implies DESCRIBE"
    );
    assert_eq!(
        kafka::create_topics(&mut alice, &[("alice-new", 1)])[0].1,
        0
    );
    let elsewhere = kafka::create_topics(&mut alice, &[("bob-new", 1)]);
    assert_eq!(elsewhere[0].1, TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(delete_topic(&mut alice, "alice-new"), 0);
    assert_eq!(commit(&mut alice, "g1", "orders"), 0);
    assert_ne!(join(&mut alice, "g1"), GROUP_AUTHORIZATION_FAILED);
    assert_eq!(
        commit(&mut alice, "g2", "orders"),
        GROUP_AUTHORIZATION_FAILED
    );
    assert_eq!(
        anon_produce(&b),
        TOPIC_AUTHORIZATION_FAILED,
        "the grant is alice's"
    );

    // DescribeAcls shows them; DeleteAcls takes READ away.
    let d: DescribeAclsResponse = admin.call(
        2,
        &DescribeAclsRequest::default()
            .with_resource_type_filter(TOPIC)
            .with_resource_name_filter(None)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_pattern_type_filter(ANY)
            .with_operation(ANY)
            .with_permission_type(ANY),
    );
    assert_eq!(d.error_code, 0);
    let count: usize = d.resources.iter().map(|r| r.acls.len()).sum();
    assert_eq!(count, 4, "{:?}", d.resources);
    let del: DeleteAclsResponse = admin.call(
        2,
        &DeleteAclsRequest::default().with_filters(vec![
            DeleteAclsFilter::default()
                .with_resource_type_filter(TOPIC)
                .with_resource_name_filter(Some(s("orders")))
                .with_pattern_type_filter(LITERAL)
                .with_principal_filter(None)
                .with_host_filter(None)
                .with_operation(READ)
                .with_permission_type(ANY),
        ]),
    );
    assert_eq!(del.filter_results[0].matching_acls.len(), 1);
    assert_eq!(fetch(&mut alice, "orders"), TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(produce(&mut alice, "orders"), 0, "WRITE stays");

    // The bindings survive a restart.
    b.broker.restart();
    let mut alice = login(b.sasl, "alice", "alice-secret");
    assert_eq!(produce(&mut alice, "orders"), 0);
    assert_eq!(fetch(&mut alice, "orders"), TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(
        commit(&mut alice, "g1", "orders"),
        TOPIC_AUTHORIZATION_FAILED
    );
}

fn anon_produce(b: &Secured) -> i16 {
    let mut anon = RawClient::connect(b.broker.addr());
    produce(&mut anon, "orders")
}

/// The admin APIs that change topics and groups are checked too.
#[test]
fn admin_changes_need_their_acls() {
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use kafka_protocol::messages::{
        CreatePartitionsRequest, CreatePartitionsResponse, DeleteGroupsRequest,
        DeleteGroupsResponse, DeleteRecordsRequest, DeleteRecordsResponse,
        IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    };
    let b = start(true);
    let mut admin = login(b.sasl, "admin", "admin-secret");
    assert_eq!(kafka::create_topics(&mut admin, &[("ledger", 1)])[0].1, 0);
    let grow = CreatePartitionsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            CreatePartitionsTopic::default()
                .with_name(topic_name("ledger"))
                .with_count(2)
                .with_assignments(None),
        ]);
    let delete_records = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(topic_name("ledger"))
                .with_partitions(vec![
                    DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(-1),
                ]),
        ]);
    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("ledger"))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_config_operation(0)
                    .with_value(Some(s("1000"))),
            ]),
    ]);
    let delete_groups =
        DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("ledger-readers"))]);

    let mut alice = login(b.sasl, "alice", "alice-secret");
    let r: CreatePartitionsResponse = alice.call(1, &grow);
    assert_eq!(r.results[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    let r: DeleteRecordsResponse = alice.call(1, &delete_records);
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        TOPIC_AUTHORIZATION_FAILED
    );
    let r: IncrementalAlterConfigsResponse = alice.call(0, &alter);
    assert_eq!(r.responses[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    let r: DeleteGroupsResponse = alice.call(1, &delete_groups);
    assert_eq!(r.results[0].error_code, GROUP_AUTHORIZATION_FAILED);
    let m = kafka::metadata(&mut admin, &["ledger"]);
    assert_eq!(m.topics[0].partitions.len(), 1, "nothing grew");
    // SCRAM credentials need ALTER / DESCRIBE on the cluster.
    use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
    use kafka_protocol::messages::{
        AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
        DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
    };
    let upsert = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        ScramCredentialUpsertion::default()
            .with_name(s("mallory"))
            .with_mechanism(1)
            .with_iterations(4096)
            .with_salt(bytes::Bytes::from_static(b"salt"))
            .with_salted_password(bytes::Bytes::from_static(
                b"0123456789abcdef0123456789abcdef",
            )),
    ]);
    let r: AlterUserScramCredentialsResponse = alice.call(0, &upsert);
    assert_eq!(r.results[0].error_code, CLUSTER_AUTHORIZATION_FAILED);
    let d: DescribeUserScramCredentialsResponse = alice.call(
        0,
        &DescribeUserScramCredentialsRequest::default().with_users(None),
    );
    assert_eq!(d.error_code, CLUSTER_AUTHORIZATION_FAILED);
    let d: DescribeUserScramCredentialsResponse = admin.call(
        0,
        &DescribeUserScramCredentialsRequest::default().with_users(None),
    );
    let users: Vec<&str> = d.results.iter().map(|r| r.user.as_str()).collect();
    assert_eq!(users, ["admin", "alice"], "mallory was not added");

    // The super user may do each.
    let r: CreatePartitionsResponse = admin.call(1, &grow);
    assert_eq!(r.results[0].error_code, 0);
    let r: DeleteRecordsResponse = admin.call(1, &delete_records);
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let r: IncrementalAlterConfigsResponse = admin.call(0, &alter);
    assert_eq!(r.responses[0].error_code, 0);
}

/// The read side: offsets, group views, configs and producer ids; then librdkafka's
/// idempotent producer and consumer group work once the ACLs exist.
#[test]
fn reads_and_group_membership_need_their_acls() {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
    use kafka_protocol::messages::{
        DescribeConfigsRequest, DescribeConfigsResponse, DescribeGroupsRequest,
        DescribeGroupsResponse, DescribeLogDirsRequest, DescribeLogDirsResponse,
        FindCoordinatorResponse, HeartbeatRequest, HeartbeatResponse, InitProducerIdRequest,
        InitProducerIdResponse, ListGroupsRequest, ListGroupsResponse, OffsetFetchRequest,
        OffsetFetchResponse,
    };
    let b = start(true);
    let mut admin = login(b.sasl, "admin", "admin-secret");
    assert_eq!(kafka::create_topics(&mut admin, &[("events", 1)])[0].1, 0);
    assert_eq!(produce(&mut admin, "events"), 0);
    assert_eq!(
        commit(&mut admin, "readers", "events"),
        0,
        "the group exists"
    );

    let mut alice = login(b.sasl, "alice", "alice-secret");
    let (err, _) = kafka::list_offset(&mut alice, "events", 0, -1);
    assert_eq!(err, TOPIC_AUTHORIZATION_FAILED);
    let f: OffsetFetchResponse = alice.call(
        3,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(s("readers")))
            .with_topics(None),
    );
    assert_eq!(f.error_code, GROUP_AUTHORIZATION_FAILED);
    let c: FindCoordinatorResponse =
        alice.call(2, &FindCoordinatorRequest::default().with_key(s("readers")));
    assert_eq!(c.error_code, GROUP_AUTHORIZATION_FAILED);
    let d: DescribeGroupsResponse = alice.call(
        1,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("readers"))]),
    );
    assert_eq!(d.groups[0].error_code, GROUP_AUTHORIZATION_FAILED);
    let h: HeartbeatResponse = alice.call(
        1,
        &HeartbeatRequest::default()
            .with_group_id(GroupId(s("readers")))
            .with_generation_id(1)
            .with_member_id(s("m")),
    );
    assert_eq!(h.error_code, GROUP_AUTHORIZATION_FAILED);
    let l: ListGroupsResponse = alice.call(1, &ListGroupsRequest::default());
    assert!(l.groups.is_empty(), "no group is shown: {:?}", l.groups);
    let l: ListGroupsResponse = admin.call(1, &ListGroupsRequest::default());
    assert!(l.groups.iter().any(|g| g.group_id.as_str() == "readers"));
    let dc: DescribeConfigsResponse = alice.call(
        1,
        &DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("events"))
                .with_configuration_keys(None),
        ]),
    );
    assert_eq!(dc.results[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    let dirs: DescribeLogDirsResponse =
        alice.call(4, &DescribeLogDirsRequest::default().with_topics(None));
    assert_eq!(dirs.error_code, CLUSTER_AUTHORIZATION_FAILED);
    assert!(dirs.results.is_empty());
    let pid: InitProducerIdResponse = alice.call(
        1,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000),
    );
    assert_eq!(pid.error_code, CLUSTER_AUTHORIZATION_FAILED);
    let ask = kafka_protocol::messages::DescribeClusterRequest::default()
        .with_include_cluster_authorized_operations(true);
    let dc: kafka_protocol::messages::DescribeClusterResponse = alice.call(0, &ask);
    assert_eq!(dc.error_code, CLUSTER_AUTHORIZATION_FAILED);
    let dc: kafka_protocol::messages::DescribeClusterResponse = admin.call(0, &ask);
    assert_eq!(dc.error_code, 0);
    assert_eq!(
        dc.cluster_authorized_operations, 0b1_1111_1010_0000,
        "all, for a super user"
    );
    const CLUSTER: i8 = 4;
    const DESCRIBE: i8 = 8;
    let describe_cluster = binding(CLUSTER, "kafka-cluster", LITERAL, DESCRIBE);
    assert_eq!(create_acls(&mut admin, vec![describe_cluster]), [0]);
    let dc: kafka_protocol::messages::DescribeClusterResponse = alice.call(0, &ask);
    assert_eq!(dc.error_code, 0);
    assert_eq!(dc.cluster_authorized_operations, 1 << 8, "DESCRIBE only");

    // Granted: the topic (WRITE, READ) and the group (READ).
    let made = create_acls(
        &mut admin,
        vec![
            binding(TOPIC, "events", LITERAL, WRITE),
            binding(TOPIC, "events", LITERAL, READ),
            binding(GROUP, "readers", LITERAL, READ),
        ],
    );
    assert_eq!(made, [0, 0, 0]);
    let (err, _) = kafka::list_offset(&mut alice, "events", 0, -1);
    assert_eq!(err, 0);
    let f: OffsetFetchResponse = alice.call(
        3,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(s("readers")))
            .with_topics(None),
    );
    assert_eq!(f.error_code, 0);
    let pid: InitProducerIdResponse = alice.call(
        1,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000),
    );
    assert_eq!(
        pid.error_code, 0,
        "WRITE on a topic allows idempotence (KIP-679)"
    );
    let bootstrap = format!("127.0.0.1:{}", b.sasl);
    run_python("acl_admin.py", &["group", &bootstrap, "events"]);
}

#[test]
fn confluent_admin_client_manages_acls_and_librdkafka_is_refused_then_allowed() {
    let b = start(true);
    let bootstrap = format!("127.0.0.1:{}", b.sasl);
    let mut admin = login(b.sasl, "admin", "admin-secret");
    assert_eq!(
        kafka::create_topics(&mut admin, &[("shipments", 1)])[0].1,
        0
    );
    run_python("acl_admin.py", &["refused", &bootstrap, "shipments"]);
    run_python("acl_admin.py", &["grant", &bootstrap, "shipments"]);
    run_python("acl_admin.py", &["allowed", &bootstrap, "shipments"]);
    run_python("acl_admin.py", &["revoke", &bootstrap, "shipments"]);
    run_python("acl_admin.py", &["refused", &bootstrap, "shipments"]);
}

#[test]
fn without_an_authorizer_the_acl_apis_say_security_is_disabled() {
    let b = start(false);
    let mut alice = login(b.sasl, "alice", "alice-secret");
    let r = create_acls(&mut alice, vec![binding(TOPIC, "t", LITERAL, READ)]);
    assert_eq!(r, [SECURITY_DISABLED]);
    let d: DescribeAclsResponse = alice.call(
        1,
        &DescribeAclsRequest::default()
            .with_resource_type_filter(ANY)
            .with_pattern_type_filter(ANY)
            .with_operation(ANY)
            .with_permission_type(ANY),
    );
    assert_eq!(d.error_code, SECURITY_DISABLED);
    // And nothing is checked: alice may produce anywhere.
    assert_eq!(produce(&mut alice, "free-for-all"), 0);
}
