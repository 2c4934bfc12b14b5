//! Every version the broker advertises is really served: each API is called at every
//! advertised version (within what the request types here encode by topic name), and each
//! response decodes completely at that version and says the same thing.

mod common;

use std::collections::BTreeMap;

use common::kafka::{self, NONE};
use common::{Broker, RawClient};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, CreateTopicsRequest, DeleteTopicsRequest, FetchRequest,
    ListOffsetsRequest, MetadataRequest, ProduceRequest,
};
use kafka_protocol::protocol::{Message, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;
use ringbroker::protocol::batch::testing::build_batch;

/// Advertised versions of `key`, limited to those the request type here can encode.
fn versions<R: Message>(
    adv: &BTreeMap<i16, (i16, i16)>,
    key: ApiKey,
) -> std::ops::RangeInclusive<i16> {
    let (min, max) = *adv
        .get(&(key as i16))
        .unwrap_or_else(|| panic!("{key:?} is not advertised"));
    min.max(R::VERSIONS.min)..=max.min(R::VERSIONS.max)
}

#[test]
fn every_advertised_version_is_served() {
    let broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    let adv = c.versions();
    kafka::create_topic(&mut c, "vers", 2);

    for v in versions::<ApiVersionsRequest>(&adv, ApiKey::ApiVersions) {
        let mut req = ApiVersionsRequest::default();
        if v >= 3 {
            req = req
                .with_client_software_name(StrBytes::from_static_str("ringbroker-tests"))
                .with_client_software_version(StrBytes::from_static_str("1"));
        }
        let resp = c.call(v, &req);
        assert_eq!(resp.error_code, NONE, "ApiVersions v{v}");
        let got: BTreeMap<i16, (i16, i16)> = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        assert_eq!(got, adv, "ApiVersions v{v} lists the same ranges");
    }

    for v in versions::<MetadataRequest>(&adv, ApiKey::Metadata) {
        let mut req = MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(kafka::topic_name("vers"))),
        ]));
        if v >= 4 {
            req = req.with_allow_auto_topic_creation(false);
        }
        let md = c.call(v, &req);
        assert_eq!(md.brokers.len(), 1, "Metadata v{v}");
        assert_eq!(md.brokers[0].port, broker.port as i32, "Metadata v{v}");
        assert_eq!(md.topics.len(), 1, "Metadata v{v}");
        assert_eq!(md.topics[0].error_code, NONE, "Metadata v{v}");
        assert_eq!(md.topics[0].partitions.len(), 2, "Metadata v{v}");
    }

    let mut created = Vec::new();
    for v in versions::<CreateTopicsRequest>(&adv, ApiKey::CreateTopics) {
        let name = format!("created-v{v}");
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(kafka::topic_name(&name))
                    .with_num_partitions(3)
                    .with_replication_factor(1),
            ]);
        let resp = c.call(v, &req);
        assert_eq!(resp.topics.len(), 1, "CreateTopics v{v}");
        assert_eq!(resp.topics[0].error_code, NONE, "CreateTopics v{v}");
        if v >= 5 {
            assert_eq!(resp.topics[0].num_partitions, 3, "CreateTopics v{v}");
        }
        assert_eq!(
            kafka::metadata(&mut c, &[&name]).topics[0].partitions.len(),
            3
        );
        created.push(name);
    }

    let mut produced = 0i64;
    for v in versions::<ProduceRequest>(&adv, ApiKey::Produce) {
        let value = format!("produced at v{v}").into_bytes();
        let req =
            kafka::produce_request(&[("vers", 1, build_batch(&[&value], common::recent_ts()))]);
        let resp = c.call(v, &req);
        assert_eq!(
            kafka::flatten_produce(&resp),
            vec![("vers".to_string(), 1, NONE, produced)],
            "Produce v{v}"
        );
        produced += 1;
    }
    assert!(produced > 0, "no Produce version was exercised");

    for v in versions::<FetchRequest>(&adv, ApiKey::Fetch) {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(kafka::topic_name("vers"))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(1)
                            .with_current_leader_epoch(-1)
                            .with_fetch_offset(0)
                            .with_last_fetched_epoch(-1)
                            .with_log_start_offset(-1)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ]);
        let resp = c.call(v, &req);
        let p = &resp.responses[0].partitions[0];
        assert_eq!(
            (p.error_code, p.high_watermark),
            (NONE, produced),
            "Fetch v{v}"
        );
        let mut bytes = p.records.clone().unwrap_or_default();
        let records: usize = RecordBatchDecoder::decode_all(&mut bytes)
            .unwrap_or_else(|e| panic!("Fetch v{v}: {e:#}"))
            .iter()
            .map(|s| s.records.len())
            .sum();
        assert_eq!(records as i64, produced, "Fetch v{v}");
    }

    for v in versions::<ListOffsetsRequest>(&adv, ApiKey::ListOffsets) {
        for (ts, want) in [(-1, produced), (-2, 0)] {
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![
                    ListOffsetsTopic::default()
                        .with_name(kafka::topic_name("vers"))
                        .with_partitions(vec![
                            ListOffsetsPartition::default()
                                .with_partition_index(1)
                                .with_current_leader_epoch(-1)
                                .with_timestamp(ts),
                        ]),
                ]);
            let resp = c.call(v, &req);
            let p = &resp.topics[0].partitions[0];
            assert_eq!(
                (p.error_code, p.offset),
                (NONE, want),
                "ListOffsets v{v} at {ts}"
            );
        }
    }

    let mut to_delete = created.into_iter();
    for v in versions::<DeleteTopicsRequest>(&adv, ApiKey::DeleteTopics) {
        let Some(name) = to_delete.next() else {
            break;
        };
        let mut req = DeleteTopicsRequest::default().with_timeout_ms(10_000);
        if v >= 6 {
            req = req.with_topics(vec![
                DeleteTopicState::default().with_name(Some(kafka::topic_name(&name))),
            ]);
        } else {
            req = req.with_topic_names(vec![kafka::topic_name(&name)]);
        }
        let resp = c.call(v, &req);
        assert_eq!(resp.responses.len(), 1, "DeleteTopics v{v}");
        assert_eq!(resp.responses[0].error_code, NONE, "DeleteTopics v{v}");
        assert_eq!(
            kafka::metadata(&mut c, &[&name]).topics[0].error_code,
            kafka::UNKNOWN_TOPIC_OR_PARTITION,
            "deleted with DeleteTopics v{v}"
        );
    }
}
