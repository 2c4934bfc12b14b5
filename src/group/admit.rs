//! What a group request may carry before the coordinator looks at it.
//!
//! Group ids, member ids, instance ids, protocol types and names end up in records of
//! `__consumer_offsets` or in the coordinator's memory for as long as the group lives. A
//! compact string on the wire has no length limit, so each is bounded here: ids and names
//! by what Kafka's own records can hold (a string with an i16 length, 32767 bytes), and the
//! protocol metadata of a join and the assignments of a sync by `message.max.bytes` (Kafka
//! keeps them in one group record, which that limit bounds). A request beyond a bound is
//! answered with Kafka's error code and changes nothing.

use super::state::join_error;
use super::{GroupError, GroupOp, GroupReply};
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    GroupId, LeaveGroupResponse, OffsetCommitResponse, OffsetDeleteResponse, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

/// The longest id or name a group request may carry: what an i16-length string holds.
pub const STRING_MAX_BYTES: usize = i16::MAX as usize;

fn check_str(s: &str, e: GroupError) -> Result<(), GroupError> {
    if s.len() > STRING_MAX_BYTES {
        Err(e)
    } else {
        Ok(())
    }
}

fn check_opt(s: Option<&StrBytes>, e: GroupError) -> Result<(), GroupError> {
    s.map_or(Ok(()), |s| check_str(s, e))
}

/// Checks every string and blob of `op` against the bounds above. `payload_max_bytes` is
/// the broker's `message.max.bytes`.
pub fn check(op: &GroupOp, payload_max_bytes: u64) -> Result<(), GroupError> {
    let too_long = || GroupError::InvalidRequest;
    let payload_ok = |total: u64| {
        if total > payload_max_bytes {
            Err(GroupError::InvalidRequest)
        } else {
            Ok(())
        }
    };
    match op {
        GroupOp::Join { req, client_id, .. } => {
            check_str(&req.group_id, GroupError::InvalidGroupId)?;
            check_str(&req.member_id, GroupError::UnknownMemberId)?;
            check_opt(req.group_instance_id.as_ref(), too_long())?;
            check_str(&req.protocol_type, too_long())?;
            check_opt(req.reason.as_ref(), too_long())?;
            check_str(client_id, too_long())?;
            let mut total = 0u64;
            for p in &req.protocols {
                check_str(&p.name, too_long())?;
                total = total.saturating_add(p.metadata.len() as u64);
            }
            payload_ok(total)
        }
        GroupOp::Sync { req } => {
            check_str(&req.group_id, GroupError::InvalidGroupId)?;
            check_str(&req.member_id, GroupError::UnknownMemberId)?;
            check_opt(req.group_instance_id.as_ref(), too_long())?;
            check_opt(req.protocol_type.as_ref(), too_long())?;
            check_opt(req.protocol_name.as_ref(), too_long())?;
            let mut total = 0u64;
            for a in &req.assignments {
                check_str(&a.member_id, GroupError::UnknownMemberId)?;
                total = total.saturating_add(a.assignment.len() as u64);
            }
            payload_ok(total)
        }
        GroupOp::Heartbeat {
            group,
            member_id,
            instance_id,
            ..
        } => {
            check_str(group, GroupError::InvalidGroupId)?;
            check_str(member_id, GroupError::UnknownMemberId)?;
            instance_id
                .as_deref()
                .map_or(Ok(()), |s| check_str(s, too_long()))
        }
        GroupOp::Leave { req, .. } => {
            check_str(&req.group_id, GroupError::InvalidGroupId)?;
            check_str(&req.member_id, GroupError::UnknownMemberId)?;
            for m in &req.members {
                check_str(&m.member_id, GroupError::UnknownMemberId)?;
                check_opt(m.group_instance_id.as_ref(), too_long())?;
                check_opt(m.reason.as_ref(), too_long())?;
            }
            Ok(())
        }
        GroupOp::Commit { req } | GroupOp::TxnCommit { req, .. } => {
            check_str(&req.group_id, GroupError::InvalidGroupId)?;
            check_str(&req.member_id, GroupError::UnknownMemberId)?;
            check_opt(req.group_instance_id.as_ref(), too_long())
        }
        GroupOp::Fetch { group, .. } => check_str(group, GroupError::InvalidGroupId),
        GroupOp::Describe(groups) | GroupOp::Delete(groups) => {
            for g in groups {
                check_str(g, GroupError::InvalidGroupId)?;
            }
            Ok(())
        }
        GroupOp::List(_) | GroupOp::TxnMarker { .. } => Ok(()),
        GroupOp::OffsetDelete(req) => check_str(&req.group_id, GroupError::InvalidGroupId),
    }
}

/// The answer to `op` when [`check`] refused it: the error on the request, or on every
/// group and partition it names.
pub fn refuse(op: GroupOp, e: GroupError) -> GroupReply {
    let c = e.code();
    match op {
        GroupOp::Join { .. } => GroupReply::Join(join_error(c, "")),
        GroupOp::Sync { .. } => GroupReply::Sync(SyncGroupResponse::default().with_error_code(c)),
        GroupOp::Heartbeat { .. } => GroupReply::Heartbeat(c),
        GroupOp::Leave { .. } => {
            GroupReply::Leave(LeaveGroupResponse::default().with_error_code(c))
        }
        GroupOp::TxnMarker { .. } => GroupReply::Done,
        GroupOp::Commit { req } | GroupOp::TxnCommit { req, .. } => GroupReply::Commit(
            OffsetCommitResponse::default().with_topics(
                req.topics
                    .into_iter()
                    .map(|t| {
                        let partitions = t
                            .partitions
                            .iter()
                            .map(|p| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(c)
                            })
                            .collect();
                        OffsetCommitResponseTopic::default()
                            .with_name(t.name)
                            .with_partitions(partitions)
                    })
                    .collect(),
            ),
        ),
        GroupOp::Fetch { group, .. } => GroupReply::Fetch(super::FetchedGroup {
            group,
            error_code: c,
            topics: Vec::new(),
        }),
        GroupOp::Describe(groups) => GroupReply::Describe(
            groups
                .into_iter()
                .map(|g| {
                    DescribedGroup::default()
                        .with_group_id(GroupId(StrBytes::from_string(g)))
                        .with_error_code(c)
                })
                .collect(),
        ),
        GroupOp::List(_) => GroupReply::List(Vec::new()),
        GroupOp::Delete(groups) => GroupReply::Delete(groups.into_iter().map(|g| (g, c)).collect()),
        GroupOp::OffsetDelete(_) => {
            GroupReply::OffsetDelete(OffsetDeleteResponse::default().with_error_code(c))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::{JoinGroupRequest, OffsetCommitRequest};

    fn long(n: usize) -> StrBytes {
        StrBytes::from_string("g".repeat(n))
    }

    #[test]
    fn long_ids_and_large_metadata_are_refused() {
        let commit = |n| GroupOp::Commit {
            req: OffsetCommitRequest::default().with_group_id(GroupId(long(n))),
        };
        assert!(check(&commit(STRING_MAX_BYTES), 1 << 20).is_ok());
        assert!(matches!(
            check(&commit(STRING_MAX_BYTES + 1), 1 << 20),
            Err(GroupError::InvalidGroupId)
        ));
        let join = |protocol_type: StrBytes, metadata: usize| GroupOp::Join {
            req: JoinGroupRequest::default()
                .with_group_id(GroupId(long(5)))
                .with_protocol_type(protocol_type)
                .with_protocols(vec![
                    JoinGroupRequestProtocol::default()
                        .with_name(long(5))
                        .with_metadata(vec![0u8; metadata].into()),
                ]),
            version: 6,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
        };
        assert!(check(&join(long(8), 1000), 1000).is_ok());
        assert!(matches!(
            check(&join(long(40_000), 10), 1000),
            Err(GroupError::InvalidRequest)
        ));
        assert!(matches!(
            check(&join(long(8), 1001), 1000),
            Err(GroupError::InvalidRequest)
        ));
        match refuse(commit(1), GroupError::InvalidGroupId) {
            GroupReply::Commit(r) => assert!(r.topics.is_empty()),
            _ => panic!("wrong reply kind"),
        }
    }
}
