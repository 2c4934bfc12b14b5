//! Produce, versions 3-9; versions 0-2 are advertised but answered UNSUPPORTED_VERSION.
//!
//! librdkafka turns compression off when a broker advertises Produce only from v3, so we
//! advertise v0 like Kafka 4.0 does; v0-2 (message sets v0/v1) are refused per partition.
//! The records of each partition stay `Bytes` from the socket buffer to the log append; only
//! their size is checked here, the batches are validated by the log.

use super::dedupe::{Naming, Repeats};
use super::{Ctx, Request, RequestError, str_bytes, topic_name, topic_str};
use crate::protocol::code;
use crate::protocol::reader::Reader;
use crate::security::acl::{op, resource};
use crate::shard::messages::{ProducePart, ProduceResult, ShardReply, ShardRequest};
use crate::shard::meta::{is_internal, validate_topic_name};
use crate::shard::scatter::ShardUnreachable;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

/// The oldest Produce version we decode (record batches v2).
pub const MIN_VERSION: i16 = crate::protocol::versions::PRODUCE_MIN_DECODED;

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Option<Bytes>, RequestError> {
    let request: ProduceRequest = req.decode_body()?;
    let acks = request.acks;
    let shard = &ctx.shard;

    if shard.config.auto_create_topics_enable {
        let meta = shard.meta();
        let mut missing: Vec<String> = request
            .topic_data
            .iter()
            .map(|t| topic_str(&t.name))
            .filter(|n| {
                !meta.topics.contains_key(n) && validate_topic_name(n).is_ok() && !is_internal(n)
            })
            .filter(|n| ctx.allowed(op::WRITE, resource::TOPIC, n) && ctx.may_create_topic(n))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            super::create_topics::auto_create(ctx, missing).await;
        }
    }

    let meta = shard.meta();
    // A partition named twice is answered once, with INVALID_REQUEST, and neither copy is
    // appended: which one the client meant cannot be known.
    let mut repeats = Repeats::count(request.topic_data.iter().flat_map(|t| {
        t.partition_data
            .iter()
            .map(move |p| (t.name.0.as_str(), p.index))
    }));
    let mut results: Vec<Vec<Option<ProduceResult>>> = Vec::new();
    // The parts to append, each with its owning shard, and the (topic, partition) index of
    // each in the request.
    let mut to_append: Vec<(usize, ProducePart)> = Vec::new();
    let mut places: Vec<(usize, usize)> = Vec::new();
    for (ti, topic) in request.topic_data.iter().enumerate() {
        let name = topic_str(&topic.name);
        let view = meta.topics.get(&name);
        let authorized = ctx.allowed(op::WRITE, resource::TOPIC, &name);
        let mut row = Vec::with_capacity(topic.partition_data.len());
        for (pi, part) in topic.partition_data.iter().enumerate() {
            let p = part.index;
            let naming = repeats.visit((topic.name.0.as_str(), p));
            if naming == Naming::Repeat {
                row.push(Some(ProduceResult::omitted()));
                continue;
            }
            let error = if !matches!(acks, -1..=1) {
                Some(code::INVALID_REQUIRED_ACKS)
            } else if naming == Naming::FirstOfMany {
                Some(code::INVALID_REQUEST)
            } else if !authorized {
                Some(code::TOPIC_AUTHORIZATION_FAILED)
            } else {
                match view {
                    None if validate_topic_name(&name).is_err() => {
                        Some(code::INVALID_TOPIC_EXCEPTION)
                    }
                    // Internal topics are written by the broker only.
                    _ if is_internal(&name) => Some(code::INVALID_TOPIC_EXCEPTION),
                    Some(v) if p >= 0 && p < v.partitions => match &part.records {
                        None => Some(code::CORRUPT_MESSAGE),
                        Some(r) if r.len() as u64 > v.log.max_batch_bytes => {
                            Some(code::MESSAGE_TOO_LARGE)
                        }
                        Some(_) => None,
                    },
                    _ => Some(code::UNKNOWN_TOPIC_OR_PARTITION),
                }
            };
            match error {
                Some(c) => row.push(Some(ProduceResult::error(c, None))),
                None => {
                    row.push(None);
                    let append = ProducePart {
                        topic: name.clone(),
                        partition: p,
                        records: part.records.clone().unwrap_or_default(),
                        acks,
                        timeout_ms: u64::try_from(request.timeout_ms).unwrap_or(0),
                        transactional_id: request.transactional_id.as_ref().map(|t| t.to_string()),
                    };
                    to_append.push((shard.owner(&name, p), append));
                    places.push((ti, pi));
                }
            }
        }
        results.push(row);
    }

    // One message per owning shard, all in flight at once.
    let answers = shard
        .scatter(to_append, ShardRequest::Produce, |reply| match reply {
            ShardReply::Produce(rs) => Some(rs),
            _ => None,
        })
        .await;
    for ((ti, pi), answer) in places.into_iter().zip(answers) {
        results[ti][pi] = Some(answer);
    }

    if acks == 0 {
        return Ok(None);
    }
    let responses = request
        .topic_data
        .iter()
        .zip(results)
        .map(|(topic, row)| {
            let partition_responses = topic
                .partition_data
                .iter()
                .zip(row)
                .filter(|(_, r)| !r.as_ref().is_some_and(ProduceResult::is_omitted))
                .map(|(part, r)| {
                    // Every part sent to a shard got an answer above; one that did not
                    // would be a part no shard was asked for.
                    let r = r.unwrap_or_else(|| ShardUnreachable.into());
                    PartitionProduceResponse::default()
                        .with_index(part.index)
                        .with_error_code(r.error_code)
                        .with_base_offset(r.base_offset)
                        .with_log_append_time_ms(r.log_append_time)
                        .with_log_start_offset(r.log_start_offset)
                        .with_record_errors(if req.version >= 8 {
                            record_errors(r.record_errors)
                        } else {
                            Vec::new()
                        })
                        .with_error_message(
                            r.error_message.filter(|_| req.version >= 8).map(str_bytes),
                        )
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(topic_name(&topic_str(&topic.name)))
                .with_partition_responses(partition_responses)
        })
        .collect();
    req.respond(&ProduceResponse::default().with_responses(responses))
        .map(Some)
}

/// Kafka's `record_errors` (v8+): each refused record by its index in the batch.
fn record_errors(errors: Vec<(i32, Option<String>)>) -> Vec<BatchIndexAndErrorMessage> {
    errors
        .into_iter()
        .map(|(index, message)| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(index)
                .with_batch_index_error_message(message.map(str_bytes))
        })
        .collect()
}

/// Answers Produce v0-2 with UNSUPPORTED_VERSION for every partition (nothing for acks=0).
/// The crate does not decode these versions, so the few fields needed are read by hand.
pub fn unsupported_old_version(frame: Bytes, version: i16) -> Result<Option<Bytes>, RequestError> {
    let truncated = || RequestError::Decode("truncated produce request".into());
    let mut c = Reader::new(&frame);
    c.take(4).ok_or_else(truncated)?; // api key, api version
    let correlation_id = c.i32().ok_or_else(truncated)?;
    c.sized(false).ok_or_else(truncated)?; // client id
    let acks = c.i16().ok_or_else(truncated)?;
    c.i32().ok_or_else(truncated)?; // timeout
    let mut body = BytesMut::new();
    // Every topic and partition takes at least 4 bytes: a count beyond that is a lie, and
    // is refused before anything is reserved for it.
    let bad_count = || RequestError::Decode("bad array length".into());
    let topics = c.count(4).ok_or_else(bad_count)?;
    body.put_i32(i32::try_from(topics).map_err(|_| bad_count())?);
    for _ in 0..topics {
        let name = c.sized(false).ok_or_else(truncated)?.unwrap_or_default();
        // At most i16::MAX bytes: it was read with an i16 length.
        body.put_i16(name.len() as i16);
        body.put_slice(name);
        let partitions = c.count(4).ok_or_else(bad_count)?;
        body.put_i32(i32::try_from(partitions).map_err(|_| bad_count())?);
        for _ in 0..partitions {
            let partition = c.i32().ok_or_else(truncated)?;
            c.sized(true).ok_or_else(truncated)?; // records
            body.put_i32(partition);
            body.put_i16(code::UNSUPPORTED_VERSION);
            body.put_i64(-1); // base offset
            if version >= 2 {
                body.put_i64(-1); // log append time
            }
        }
    }
    if version >= 1 {
        body.put_i32(0); // throttle time
    }
    if acks == 0 {
        return Ok(None);
    }
    let len = i32::try_from(4 + body.len()).map_err(|_| bad_count())?;
    let mut frame_out = BytesMut::with_capacity(8 + body.len());
    frame_out.put_i32(len);
    frame_out.put_i32(correlation_id);
    frame_out.put_slice(&body);
    Ok(Some(frame_out.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_produce_versions_get_unsupported_version() {
        let mut f = BytesMut::new();
        f.put_i16(0); // Produce
        f.put_i16(2);
        f.put_i32(77); // correlation id
        f.put_i16(1);
        f.put_slice(b"c");
        f.put_i16(1); // acks
        f.put_i32(1000);
        f.put_i32(1);
        f.put_i16(1);
        f.put_slice(b"t");
        f.put_i32(1);
        f.put_i32(5); // partition
        f.put_i32(3);
        f.put_slice(b"xyz");
        let out = unsupported_old_version(f.freeze(), 2).unwrap().unwrap();
        let expected_len = 4 + 4 + (2 + 1) + 4 + (4 + 2 + 8 + 8) + 4;
        assert_eq!(out.len(), 4 + expected_len);
        assert_eq!(&out[4..8], &77i32.to_be_bytes());
        // error code of partition 5
        assert_eq!(
            &out[8 + 4 + 3 + 4 + 4..8 + 4 + 3 + 4 + 6],
            &35i16.to_be_bytes()
        );
    }

    #[test]
    fn lying_array_lengths_are_rejected() {
        let mut f = BytesMut::new();
        f.put_i16(0);
        f.put_i16(0);
        f.put_i32(1);
        f.put_i16(-1);
        f.put_i16(1);
        f.put_i32(1000);
        f.put_i32(i32::MAX);
        assert!(unsupported_old_version(f.freeze(), 0).is_err());
    }
}
