//! DescribeLogDirs, versions 1-4 (the `kafka-protocol` crate has no v0): the broker's one
//! log directory (`data_dir`) with the size of each partition log this broker holds, of the
//! topics and partitions asked for (null: all), offset lag 0 and `is_future_key` false (no
//! replica moves between directories); v4 adds the filesystem's total and usable bytes.
//! Every shard reports the logs it owns.

use super::{Ctx, Request, RequestError, str_bytes, topic_name, topic_str};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use crate::shard::messages::{LogSize, LogSizesFilter, ShardReply, ShardRequest};
use crate::shard::runtime::join_all;
use bytes::Bytes;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};
use std::collections::BTreeMap;
use std::sync::Arc;

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: DescribeLogDirsRequest = req.decode_body()?;
    if !ctx.allowed(op::DESCRIBE, resource::CLUSTER, resource::CLUSTER_NAME) {
        // v3+ carry the code; older versions tell it by an empty answer, as Kafka does.
        let refused =
            DescribeLogDirsResponse::default().with_error_code(code::CLUSTER_AUTHORIZATION_FAILED);
        return req.respond(&refused);
    }
    let filter: Option<LogSizesFilter> = request.topics.as_ref().map(|topics| {
        let mut f = LogSizesFilter::new();
        for t in topics {
            f.entry(topic_str(&t.topic))
                .or_default()
                .extend(t.partitions.iter().copied());
        }
        f
    });
    let filter = Arc::new(filter);
    let shard = &ctx.shard;
    let calls = (0..shard.nshards)
        .map(|s| Box::pin(shard.call(s, ShardRequest::LogSizes(filter.clone()))))
        .collect();
    let mut sizes: Vec<LogSize> = Vec::new();
    let mut error_code = code::NONE;
    for reply in join_all(calls).await {
        match reply {
            Some(ShardReply::LogSizes(s)) => sizes.extend(s),
            // A shard that cannot answer (the broker is stopping) leaves its logs out;
            // the directory is reported as failing rather than as smaller than it is.
            _ => error_code = code::KAFKA_STORAGE_ERROR,
        }
    }
    let mut by_topic: BTreeMap<String, Vec<(i32, u64)>> = BTreeMap::new();
    for s in sizes {
        by_topic
            .entry(s.topic)
            .or_default()
            .push((s.partition, s.size_bytes));
    }
    let topics = by_topic
        .into_iter()
        .map(|(name, mut parts)| {
            parts.sort_unstable();
            DescribeLogDirsTopic::default()
                .with_name(topic_name(&name))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(p, size)| {
                            DescribeLogDirsPartition::default()
                                .with_partition_index(p)
                                .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX))
                                .with_offset_lag(0)
                                .with_is_future_key(false)
                        })
                        .collect(),
                )
        })
        .collect();
    let dir = &ctx.shard.config.data_dir;
    let (total, usable) = match crate::os::disk::space(dir) {
        Ok((t, u)) => (
            i64::try_from(t).unwrap_or(i64::MAX),
            i64::try_from(u).unwrap_or(i64::MAX),
        ),
        Err(e) => {
            tracing::warn!("statvfs of {}: {e}", dir.display());
            (-1, -1)
        }
    };
    let path = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
    let result = DescribeLogDirsResult::default()
        .with_error_code(error_code)
        .with_log_dir(str_bytes(path.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable);
    req.respond(
        &DescribeLogDirsResponse::default()
            .with_error_code(code::NONE)
            .with_results(vec![result]),
    )
}
