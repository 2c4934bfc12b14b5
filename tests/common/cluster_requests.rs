//! Kafka requests the cluster harness sends to one chosen broker (a submodule of
//! `cluster.rs`): Metadata read into a [`View`] (one broker's picture of the cluster),
//! CreateTopics, Produce, Fetch, ListOffsets and FindCoordinator. Errors (connection
//! refused, timeouts, undecodable answers) come back as text naming the node, so waits can
//! retry them and failures can show them.

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiVersionsRequest, BrokerId, CreateTopicsRequest, DeleteTopicsRequest, FetchRequest,
    FindCoordinatorRequest, ListOffsetsRequest, MetadataRequest, MetadataResponse, ProduceRequest,
};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Cluster, NONE, REQUEST_TIMEOUT};
use crate::common::{RawClient, kafka, recent_ts};

/// One partition as a broker's Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub error: i16,
    pub leader: i32,
    pub epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// One broker's Metadata answer.
#[derive(Debug, Clone)]
pub struct View {
    /// The node that answered.
    pub from: i32,
    /// Live brokers: node id → "host:port".
    pub brokers: BTreeMap<i32, String>,
    pub controller: i32,
    /// Topic → its error code.
    pub topics: BTreeMap<String, i16>,
    /// (topic, partition) → what this broker says of it.
    pub parts: BTreeMap<(String, i32), Part>,
}

impl View {
    pub fn broker_ids(&self) -> Vec<i32> {
        self.brokers.keys().copied().collect()
    }

    /// The partitions of `topic`, by index (empty if the topic is unknown).
    pub fn topic(&self, topic: &str) -> BTreeMap<i32, Part> {
        self.parts
            .iter()
            .filter(|((t, _), _)| t == topic)
            .map(|((_, p), part)| (*p, part.clone()))
            .collect()
    }

    /// Partition → leader id of `topic`.
    pub fn leaders(&self, topic: &str) -> BTreeMap<i32, i32> {
        self.topic(topic)
            .into_iter()
            .map(|(p, part)| (p, part.leader))
            .collect()
    }

    /// Every partition (of every topic in the answer) that `node` leads.
    pub fn led_by(&self, node: i32) -> Vec<(String, i32)> {
        self.parts
            .iter()
            .filter(|(_, part)| part.leader == node)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// One line per topic, for failure messages.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "node {} says: brokers {:?}, controller {}",
            self.from,
            self.broker_ids(),
            self.controller
        );
        for (topic, err) in &self.topics {
            let _ = write!(s, "\n    {topic} (error {err}):");
            for (p, part) in self.topic(topic) {
                let _ = write!(
                    s,
                    " p{p}=L{}/e{} r{:?} isr{:?}{}",
                    part.leader,
                    part.epoch,
                    part.replicas,
                    part.isr,
                    if part.error != NONE {
                        format!(" err{}", part.error)
                    } else {
                        String::new()
                    }
                );
            }
        }
        s
    }
}

impl Cluster {
    fn connect(&self, id: i32) -> Result<RawClient, String> {
        let addr = self.broker(id).addr();
        let c = RawClient::try_connect(addr).map_err(|e| format!("node {id} ({addr}): {e}"))?;
        c.stream
            .set_read_timeout(Some(REQUEST_TIMEOUT))
            .map_err(|e| e.to_string())?;
        Ok(c)
    }

    /// Sends `req` to node `id` at the highest version both sides know, capped at `cap`;
    /// returns the version used and the answer.
    pub fn call<R: Request + Clone>(
        &self,
        id: i32,
        cap: i16,
        req: &R,
    ) -> Result<(i16, R::Response), String> {
        self.call_with(id, cap, |_| req.clone())
    }

    /// As `call`, with the request built for the version chosen (fields differ by version).
    pub fn call_with<R: Request>(
        &self,
        id: i32,
        cap: i16,
        build: impl FnOnce(i16) -> R,
    ) -> Result<(i16, R::Response), String> {
        let mut c = self.connect(id)?;
        let (_, versions) = c
            .request(3, &ApiVersionsRequest::default())
            .map_err(|e| format!("node {id}: ApiVersions: {e:#}"))?;
        let range = versions
            .api_keys
            .iter()
            .find(|k| k.api_key == R::KEY)
            .ok_or_else(|| format!("node {id} does not advertise api key {}", R::KEY))?;
        let v = range.max_version.min(cap).min(R::VERSIONS.max);
        if v < range.min_version {
            return Err(format!(
                "node {id}: no common version for api key {}",
                R::KEY
            ));
        }
        let (_, resp) = c
            .request(v, &build(v))
            .map_err(|e| format!("node {id}: api key {} v{v}: {e:#}", R::KEY))?;
        Ok((v, resp))
    }

    /// Node `id`'s Metadata (v12 or its highest) for `topics`, or every topic if empty.
    pub fn try_view(&self, id: i32, topics: &[&str]) -> Result<View, String> {
        let md = self.metadata(id, topics)?;
        let mut view = View {
            from: id,
            brokers: md
                .brokers
                .iter()
                .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
                .collect(),
            controller: md.controller_id.0,
            topics: BTreeMap::new(),
            parts: BTreeMap::new(),
        };
        for t in &md.topics {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            view.topics.insert(name.clone(), t.error_code);
            for p in &t.partitions {
                let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
                view.parts.insert(
                    (name.clone(), p.partition_index),
                    Part {
                        error: p.error_code,
                        leader: p.leader_id.0,
                        epoch: p.leader_epoch,
                        replicas: ids(&p.replica_nodes),
                        isr: ids(&p.isr_nodes),
                    },
                );
            }
        }
        Ok(view)
    }

    /// Node `id`'s raw Metadata answer (v12 or the highest it supports) for `topics`, or
    /// every topic if empty; never creates a topic.
    pub fn metadata(&self, id: i32, topics: &[&str]) -> Result<MetadataResponse, String> {
        let wanted = (!topics.is_empty()).then(|| {
            topics
                .iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(kafka::topic_name(t))))
                .collect()
        });
        let req = MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(wanted);
        Ok(self.call(id, 12, &req)?.1)
    }

    /// Partition → leader of `topic`, as node `id` says (failing the test if it does not
    /// answer).
    pub fn leaders(&self, id: i32, topic: &str) -> BTreeMap<i32, i32> {
        self.view(id, &[topic]).leaders(topic)
    }

    /// As `try_view`, failing the test (naming the node) if the broker does not answer.
    pub fn view(&self, id: i32, topics: &[&str]) -> View {
        self.try_view(id, topics)
            .unwrap_or_else(|e| panic!("Metadata from node {id}: {e}"))
    }

    /// CreateTopics of one topic through node `id`; returns its error code and message.
    pub fn create_topic(&self, id: i32, name: &str, partitions: i32, rf: i16) -> (i16, String) {
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(15_000)
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(kafka::topic_name(name))
                    .with_num_partitions(partitions)
                    .with_replication_factor(rf),
            ]);
        let (_, resp) = self
            .call(id, 7, &req)
            .unwrap_or_else(|e| panic!("CreateTopics {name} through node {id}: {e}"));
        let t = resp
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == name)
            .unwrap_or_else(|| panic!("node {id}: CreateTopics answer lacks {name}: {resp:?}"));
        (
            t.error_code,
            t.error_message
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default(),
        )
    }

    /// Deletes a topic through node `id`; returns the error code.
    pub fn delete_topic(&self, id: i32, name: &str) -> i16 {
        let req = DeleteTopicsRequest::default()
            .with_timeout_ms(15_000)
            .with_topic_names(vec![kafka::topic_name(name)]);
        let (_, resp) = self
            .call(id, 4, &req)
            .unwrap_or_else(|e| panic!("DeleteTopics {name} through node {id}: {e}"));
        resp.responses
            .iter()
            .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(name))
            .map(|t| t.error_code)
            .unwrap_or_else(|| panic!("node {id}: DeleteTopics answer lacks {name}: {resp:?}"))
    }

    /// Creates a topic through node `id` and waits until every live node shows it led.
    pub fn create_topic_ok(&self, id: i32, name: &str, partitions: i32, rf: i16) -> View {
        let (err, msg) = self.create_topic(id, name, partitions, rf);
        assert_eq!(
            err, NONE,
            "CreateTopics {name} ({partitions} partitions, RF {rf}) through node {id}: {msg}"
        );
        self.wait_topic(name, partitions, rf as usize)
    }

    /// Produces `values` (one uncompressed batch, acks=all) to node `id`; returns the
    /// partition's error code and base offset.
    pub fn produce(
        &self,
        id: i32,
        topic: &str,
        partition: i32,
        values: &[&str],
    ) -> Result<(i16, i64), String> {
        let refs: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
        let batch = ringbroker::protocol::batch::testing::build_batch(&refs, recent_ts());
        let req: ProduceRequest = kafka::produce_request(&[(topic, partition, batch)]);
        let (_, resp) = self.call(id, 9, &req)?;
        let flat = kafka::flatten_produce(&resp);
        match flat.as_slice() {
            [(t, p, err, base)] if t == topic && *p == partition => Ok((*err, *base)),
            other => Err(format!(
                "node {id}: Produce answer for {topic}-{partition}: {other:?}"
            )),
        }
    }

    /// Fetches `topic`-`partition` from `offset` at node `id`; returns the error code, high
    /// watermark and record values.
    pub fn fetch(
        &self,
        id: i32,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<(i16, i64, Vec<String>), String> {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(16 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(kafka::topic_name(topic))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_current_leader_epoch(-1)
                            .with_fetch_offset(offset)
                            .with_last_fetched_epoch(-1)
                            .with_log_start_offset(-1)
                            .with_partition_max_bytes(8 << 20),
                    ]),
            ]);
        let (_, resp) = self.call(id, 12, &req)?;
        let p = resp
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| format!("node {id}: Fetch answer lacks {topic}-{partition}"))?;
        let mut values = Vec::new();
        if let Some(bytes) = &p.records {
            let mut b: Bytes = bytes.clone();
            let sets = RecordBatchDecoder::decode_all(&mut b)
                .map_err(|e| format!("node {id}: decode: {e:#}"))?;
            for r in sets.into_iter().flat_map(|s| s.records) {
                if r.offset >= offset {
                    values.push(String::from_utf8_lossy(&r.value.unwrap_or_default()).into_owned());
                }
            }
        }
        Ok((p.error_code, p.high_watermark, values))
    }

    /// ListOffsets latest of `topic`-`partition` at node `id`: (error code, offset).
    pub fn latest_offset(
        &self,
        id: i32,
        topic: &str,
        partition: i32,
    ) -> Result<(i16, i64), String> {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(kafka::topic_name(topic))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(partition)
                            .with_current_leader_epoch(-1)
                            .with_timestamp(-1),
                    ]),
            ]);
        let (_, resp) = self.call(id, 7, &req)?;
        resp.topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == partition)
            .map(|p| (p.error_code, p.offset))
            .ok_or_else(|| format!("node {id}: ListOffsets answer lacks {topic}-{partition}"))
    }

    /// FindCoordinator of consumer group `group` at node `id`: (error, node id, "host:port").
    pub fn find_coordinator(&self, id: i32, group: &str) -> Result<(i16, i32, String), String> {
        let key = StrBytes::from_string(group.to_string());
        let (v, resp) = self.call_with(id, 4, |v| {
            let req = FindCoordinatorRequest::default().with_key_type(0);
            if v >= 4 {
                req.with_coordinator_keys(vec![key])
            } else {
                req.with_key(key)
            }
        })?;
        if v >= 4 {
            let c = resp.coordinators.first().ok_or_else(|| {
                format!("node {id}: FindCoordinator v{v} answered no coordinator")
            })?;
            Ok((c.error_code, c.node_id.0, format!("{}:{}", c.host, c.port)))
        } else {
            Ok((
                resp.error_code,
                resp.node_id.0,
                format!("{}:{}", resp.host, resp.port),
            ))
        }
    }
}
