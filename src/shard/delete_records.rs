//! DeleteRecords on the shard that owns the partitions: each log's start moves, durably,
//! and the segments wholly below it go.

use super::Shard;
use super::messages::{DeleteRecordsPart, DeleteRecordsResult};
use super::meta;
use crate::protocol::code;

impl Shard {
    pub(super) async fn delete_records(
        &self,
        parts: Vec<DeleteRecordsPart>,
    ) -> Vec<DeleteRecordsResult> {
        let mut out = Vec::with_capacity(parts.len());
        for part in parts {
            // The broker's own state: a forged start would lose committed offsets (Kafka
            // refuses DeleteRecords on internal topics too).
            if meta::is_internal(&part.topic) {
                out.push(DeleteRecordsResult::error(code::INVALID_TOPIC_EXCEPTION));
                continue;
            }
            let log = match self.leader_log(&part.topic, part.partition) {
                Ok(log) => log,
                Err(c) => {
                    out.push(DeleteRecordsResult::error(c));
                    continue;
                }
            };
            out.push(match log.delete_records_before(part.offset).await {
                Ok(low_watermark) => {
                    tracing::info!(
                        "{}-{}: records below {low_watermark} deleted",
                        part.topic,
                        part.partition
                    );
                    DeleteRecordsResult {
                        error_code: code::NONE,
                        low_watermark,
                    }
                }
                Err(e) => DeleteRecordsResult::error(e.code()),
            });
        }
        out
    }
}
