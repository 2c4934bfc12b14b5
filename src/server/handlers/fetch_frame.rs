//! The Fetch response frame, v4-12, encoded around record chunks that are not copied.
//!
//! The `kafka-protocol` crate encodes records as bytes in its buffer; to send them from
//! segment files with sendfile, the framing (header, topic and partition fields, the
//! records length prefix) is written here into small buffers and the records stay chunks.
//! The tests check the output against the crate's encoding for every version.

use crate::server::response::{Chunk, Response};
use bytes::{BufMut, Bytes, BytesMut};

/// Versions from which the response is "flexible" (compact encodings, tagged fields).
const FIRST_FLEXIBLE: i16 = 12;

pub struct PartitionFrame {
    pub partition: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// The record bytes; an empty list is sent as empty (not null) records.
    pub records: Vec<Chunk>,
    /// A follower's diverging epoch and its end offset here (v12+, tagged field 0).
    pub diverging: Option<(i32, i64)>,
    /// The aborted transactions the records overlap (read_committed): (producer id,
    /// first offset).
    pub aborted: Vec<(i64, i64)>,
}

pub struct TopicFrame {
    pub name: String,
    pub partitions: Vec<PartitionFrame>,
}

fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn put_len(buf: &mut BytesMut, flexible: bool, len: usize) {
    if flexible {
        put_uvarint(buf, len as u64 + 1);
    } else {
        buf.put_i32(len as i32);
    }
}

fn put_str(buf: &mut BytesMut, flexible: bool, s: &str) {
    if flexible {
        put_uvarint(buf, s.len() as u64 + 1);
    } else {
        buf.put_i16(s.len() as i16);
    }
    buf.put_slice(s.as_bytes());
}

/// Encodes the frame: 4-byte length, response header, body (the top-level error and the
/// fetch session id are sent from v7).
pub fn encode(
    version: i16,
    correlation_id: i32,
    error_code: i16,
    session_id: i32,
    topics: Vec<TopicFrame>,
) -> Response {
    let flexible = version >= FIRST_FLEXIBLE;
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0); // length, patched below
    buf.put_i32(correlation_id);
    if flexible {
        put_uvarint(&mut buf, 0); // header tagged fields
    }
    buf.put_i32(0); // throttle_time_ms
    if version >= 7 {
        buf.put_i16(error_code);
        buf.put_i32(session_id);
    }
    put_len(&mut buf, flexible, topics.len());
    for topic in topics {
        put_str(&mut buf, flexible, &topic.name);
        put_len(&mut buf, flexible, topic.partitions.len());
        for p in topic.partitions {
            buf.put_i32(p.partition);
            buf.put_i16(p.error_code);
            buf.put_i64(p.high_watermark);
            buf.put_i64(p.last_stable_offset);
            if version >= 5 {
                buf.put_i64(p.log_start_offset);
            }
            put_len(&mut buf, flexible, p.aborted.len()); // aborted_transactions
            for (producer_id, first_offset) in &p.aborted {
                buf.put_i64(*producer_id);
                buf.put_i64(*first_offset);
                if flexible {
                    put_uvarint(&mut buf, 0);
                }
            }
            if version >= 11 {
                buf.put_i32(-1); // preferred_read_replica
            }
            let records_len: u64 = p.records.iter().map(Chunk::len).sum();
            put_len(&mut buf, flexible, records_len as usize);
            if records_len > 0 {
                chunks.push(Chunk::Bytes(buf.split().freeze()));
                chunks.extend(p.records.into_iter().filter(|c| !c.is_empty()));
            }
            match p.diverging {
                Some((epoch, end_offset)) if flexible => {
                    put_uvarint(&mut buf, 1); // one partition tagged field:
                    put_uvarint(&mut buf, 0); // tag 0, DivergingEpoch,
                    put_uvarint(&mut buf, 13); // of 4 + 8 + 1 bytes
                    buf.put_i32(epoch);
                    buf.put_i64(end_offset);
                    put_uvarint(&mut buf, 0); // its own tagged fields
                }
                _ if flexible => put_uvarint(&mut buf, 0), // partition tagged fields
                _ => {}
            }
        }
        if flexible {
            put_uvarint(&mut buf, 0); // topic tagged fields
        }
    }
    if flexible {
        put_uvarint(&mut buf, 0); // response tagged fields
    }
    chunks.push(Chunk::Bytes(buf.freeze()));
    let total: u64 = chunks.iter().map(Chunk::len).sum();
    let size = (total - 4) as i32;
    if let Some(Chunk::Bytes(first)) = chunks.first_mut() {
        let mut b = BytesMut::from(first.as_ref());
        b[..4].copy_from_slice(&size.to_be_bytes());
        *first = b.freeze();
    }
    Response { chunks }
}

/// Record bytes for a partition from memory.
pub fn memory(records: Bytes) -> Vec<Chunk> {
    if records.is_empty() {
        Vec::new()
    } else {
        vec![Chunk::Bytes(records)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::handlers::{encode_frame, topic_name};
    use kafka_protocol::messages::FetchResponse;
    use kafka_protocol::messages::fetch_response::{
        EpochEndOffset, FetchableTopicResponse, PartitionData,
    };
    use kafka_protocol::protocol::HeaderVersion;

    fn reference(version: i16, topics: &[(&str, Vec<(i32, Bytes)>)]) -> Bytes {
        let responses = topics
            .iter()
            .map(|(name, parts)| {
                FetchableTopicResponse::default()
                    .with_topic(topic_name(name))
                    .with_partitions(
                        parts
                            .iter()
                            .map(|(p, records)| {
                                PartitionData::default()
                                    .with_partition_index(*p)
                                    .with_error_code(if *p == 2 { 1 } else { 0 })
                                    .with_high_watermark(1000 + *p as i64)
                                    .with_last_stable_offset(1000 + *p as i64)
                                    .with_log_start_offset(7)
                                    .with_aborted_transactions(Some(if *p == 2 {
                                        vec![
                                            kafka_protocol::messages::fetch_response::AbortedTransaction::default()
                                                .with_producer_id(kafka_protocol::messages::ProducerId(9))
                                                .with_first_offset(1001),
                                        ]
                                    } else {
                                        Vec::new()
                                    }))
                                    .with_records(Some(records.clone()))
                                    .with_diverging_epoch(if *p == 1 && version >= 12 {
                                        EpochEndOffset::default().with_epoch(5).with_end_offset(77)
                                    } else {
                                        EpochEndOffset::default()
                                    })
                            })
                            .collect(),
                    )
            })
            .collect();
        // The top-level error and session id are fields from v7.
        let (error, session) = if version >= 7 {
            (71, 0x1234_5678)
        } else {
            (0, 0)
        };
        let body = FetchResponse::default()
            .with_error_code(error)
            .with_session_id(session)
            .with_responses(responses);
        encode_frame(42, FetchResponse::header_version(version), &body, version).expect("encode")
    }

    #[test]
    fn matches_the_crate_encoding_for_every_version() {
        let rec_a = Bytes::from(vec![7u8; 300]);
        let rec_b = Bytes::from(vec![9u8; 5]);
        let topics = vec![
            ("alpha", vec![(0, rec_a.clone()), (2, Bytes::new())]),
            ("beta", vec![(1, rec_b.clone())]),
            ("empty", vec![]),
        ];
        for version in 4..=12 {
            let frames = topics
                .iter()
                .map(|(name, parts)| TopicFrame {
                    name: name.to_string(),
                    partitions: parts
                        .iter()
                        .map(|(p, records)| PartitionFrame {
                            partition: *p,
                            error_code: if *p == 2 { 1 } else { 0 },
                            high_watermark: 1000 + *p as i64,
                            last_stable_offset: 1000 + *p as i64,
                            log_start_offset: 7,
                            aborted: if *p == 2 { vec![(9, 1001)] } else { Vec::new() },
                            // Records split in two chunks, as a cache hit can be.
                            records: if records.len() > 10 {
                                vec![
                                    Chunk::Bytes(records.slice(..100)),
                                    Chunk::Bytes(records.slice(100..)),
                                ]
                            } else {
                                memory(records.clone())
                            },
                            // Only v12+ carries it (a tagged field).
                            diverging: (*p == 1).then_some((5, 77)),
                        })
                        .collect(),
                })
                .collect();
            let (error, session) = if version >= 7 {
                (71, 0x1234_5678)
            } else {
                (0, 0)
            };
            let ours = encode(version, 42, error, session, frames)
                .to_vec()
                .expect("in memory");
            assert_eq!(ours, reference(version, &topics).to_vec(), "v{version}");
        }
    }
}
