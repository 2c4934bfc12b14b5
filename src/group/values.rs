//! The values of `__consumer_offsets` in Kafka's formats, so that tools reading the topic
//! (Burrow, `kafka-consumer-groups`' decoders, `OffsetsMessageFormatter`) read ringbroker's.
//!
//! Written: `OffsetCommitValue` v3 and `GroupMetadataValue` v3, the versions Kafka 2.3 to
//! 4.0 write (Kafka writes OffsetCommitValue v1 only for a commit with an explicit
//! retention time, which ringbroker does not take). Read: every version Kafka defines
//! (0..=4, v4 being the first flexible one, with compact strings and tagged fields), and
//! ringbroker's own values from before this format ("legacy"), so a data directory
//! written by an older ringbroker keeps its offsets and groups.
//!
//! The legacy values also start with version 1, which is one of Kafka's. They are told
//! apart by the exact length each layout implies: a value decodes as legacy only if the
//! legacy layout accounts for every byte, and otherwise as Kafka's v1 only if Kafka's does.
//! ringbroker never wrote Kafka's v1, so a v1 value in a ringbroker log is legacy; a
//! Kafka v1 value (from a copied Kafka log) could be misread only if its metadata had a
//! control character in its third byte (offsets) or its leader a two-byte id with no
//! members (group metadata), and `legacy_and_kafka_v1_are_told_apart` pins both.
//!
//! Every byte comes from disk: lengths and counts are checked against what is left, and a
//! value with bytes left over is refused.

use super::records::RecordError;
use crate::protocol::reader::Reader;
use bytes::Bytes;

/// The version of each value that ringbroker writes.
pub const OFFSET_VALUE_VERSION: i16 = 3;
pub const GROUP_VALUE_VERSION: i16 = 3;
/// The newest version of either value that is read (the first flexible one).
const MAX_VERSION: i16 = 4;

/// A committed offset (Kafka's `OffsetCommitValue`).
#[derive(Debug, Clone, PartialEq)]
pub struct OffsetValue {
    pub offset: i64,
    /// -1 when unknown (versions before 3 do not carry it).
    pub leader_epoch: i32,
    /// Kafka's metadata is a non-null string; a null one (legacy) reads as `None`.
    pub metadata: Option<String>,
    pub commit_timestamp_ms: i64,
}

/// A group's metadata (Kafka's `GroupMetadataValue`).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    /// The selected assignor; `None` for an empty group.
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// Kafka's `currentStateTimestamp`: when the group entered its state; -1 when absent.
    pub timestamp_ms: i64,
    pub members: Vec<MemberValue>,
}

/// One member in a group's metadata (Kafka's `MemberMetadata`).
#[derive(Debug, Clone, PartialEq)]
pub struct MemberValue {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// -1 when absent (version 0).
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the selected protocol (its subscription).
    pub subscription: Bytes,
    pub assignment: Bytes,
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), RecordError> {
    let len = i16::try_from(s.len()).map_err(|_| RecordError(s.len()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_nullable_str(out: &mut Vec<u8>, s: Option<&str>) -> Result<(), RecordError> {
    match s {
        Some(s) => put_str(out, s),
        None => {
            out.extend_from_slice(&(-1i16).to_be_bytes());
            Ok(())
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) -> Result<(), RecordError> {
    let len = i32::try_from(b.len()).map_err(|_| RecordError(b.len()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(b);
    Ok(())
}

/// Decodes a value's fields with `f` and refuses it unless every byte was used.
fn whole<T>(bytes: &[u8], f: impl FnOnce(&mut Values) -> Option<T>) -> Option<T> {
    let mut r = Values {
        r: Reader::new(bytes),
        flexible: false,
    };
    let v = f(&mut r)?;
    (r.r.remaining() == 0).then_some(v)
}

/// A reader of one value's fields, in the classic or the flexible (v4+) encoding.
struct Values<'a> {
    r: Reader<'a>,
    flexible: bool,
}

impl Values<'_> {
    /// An unsigned varint (flexible lengths and counts), at most 5 bytes (a u32): a
    /// longer one, or a fifth byte with bits beyond 32, is refused.
    fn uvarint(&mut self) -> Option<u32> {
        let mut v: u32 = 0;
        for i in 0..5u32 {
            let b = *self.r.take(1)?.first()?;
            if i == 4 && b > 0x0f {
                return None;
            }
            v |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// A string or bytes field: `Some(None)` for null.
    fn sized(&mut self, long: bool) -> Option<Option<&[u8]>> {
        if !self.flexible {
            return self.r.sized(long);
        }
        match self.uvarint()? {
            0 => Some(None),
            n => {
                let len = usize::try_from(n - 1).ok()?;
                self.r.take(len).map(Some)
            }
        }
    }

    fn nullable_string(&mut self) -> Option<Option<String>> {
        match self.sized(false)? {
            None => Some(None),
            Some(b) => std::str::from_utf8(b).ok().map(|s| Some(s.to_string())),
        }
    }

    fn string(&mut self) -> Option<String> {
        self.nullable_string()?
    }

    fn bytes(&mut self) -> Option<Bytes> {
        self.sized(true)?.map(Bytes::copy_from_slice)
    }

    /// An array count, refused when the bytes left cannot hold that many elements of at
    /// least `min_element_bytes` each.
    fn count(&mut self, min_element_bytes: usize) -> Option<usize> {
        if !self.flexible {
            return self.r.count(min_element_bytes);
        }
        let n = usize::try_from(self.uvarint()?.checked_sub(1)?).ok()?;
        (n.checked_mul(min_element_bytes.max(1))? <= self.r.remaining()).then_some(n)
    }

    /// The tagged fields that end each flexible struct: none is one ringbroker uses
    /// (OffsetCommitValue's topic id is one), so all are skipped.
    fn tagged_fields(&mut self) -> Option<()> {
        if !self.flexible {
            return Some(());
        }
        let n = self.uvarint()?;
        for _ in 0..n {
            self.uvarint()?;
            let size = usize::try_from(self.uvarint()?).ok()?;
            self.r.take(size)?;
        }
        Some(())
    }
}

impl OffsetValue {
    /// Kafka's OffsetCommitValue v3. A `None` metadata is written as Kafka writes it, "".
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        let mut out = Vec::with_capacity(32);
        out.extend_from_slice(&OFFSET_VALUE_VERSION.to_be_bytes());
        out.extend_from_slice(&self.offset.to_be_bytes());
        out.extend_from_slice(&self.leader_epoch.to_be_bytes());
        put_str(&mut out, self.metadata.as_deref().unwrap_or(""))?;
        out.extend_from_slice(&self.commit_timestamp_ms.to_be_bytes());
        Ok(out)
    }

    /// Any of Kafka's versions (0..=4) or a legacy ringbroker value.
    pub fn decode(bytes: &[u8]) -> Option<OffsetValue> {
        let version = Reader::new(bytes).i16()?;
        let body = bytes.get(2..)?;
        if version == 1
            && let Some(v) = whole(body, Self::legacy)
        {
            return Some(v);
        }
        if !(0..=MAX_VERSION).contains(&version) {
            return None;
        }
        whole(body, |r| {
            r.flexible = version >= 4;
            let offset = r.r.i64()?;
            let leader_epoch = if version >= 3 { r.r.i32()? } else { -1 };
            let metadata = r.string()?;
            let commit_timestamp_ms = r.r.i64()?;
            if version == 1 {
                r.r.i64()?; // expireTimestamp: ringbroker expires by its own rule.
            }
            r.tagged_fields()?;
            Some(OffsetValue {
                offset,
                leader_epoch,
                metadata: Some(metadata),
                commit_timestamp_ms,
            })
        })
    }

    /// ringbroker's value before Kafka's format: offset, leader epoch, nullable metadata,
    /// commit timestamp.
    fn legacy(r: &mut Values) -> Option<OffsetValue> {
        Some(OffsetValue {
            offset: r.r.i64()?,
            leader_epoch: r.r.i32()?,
            metadata: r.nullable_string()?,
            commit_timestamp_ms: r.r.i64()?,
        })
    }
}

impl GroupValue {
    /// Kafka's GroupMetadataValue v3.
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&GROUP_VALUE_VERSION.to_be_bytes());
        put_str(&mut out, &self.protocol_type)?;
        out.extend_from_slice(&self.generation.to_be_bytes());
        put_nullable_str(&mut out, self.protocol.as_deref())?;
        put_nullable_str(&mut out, self.leader.as_deref())?;
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        let n = i32::try_from(self.members.len()).map_err(|_| RecordError(self.members.len()))?;
        out.extend_from_slice(&n.to_be_bytes());
        for m in &self.members {
            put_str(&mut out, &m.member_id)?;
            put_nullable_str(&mut out, m.instance_id.as_deref())?;
            put_str(&mut out, &m.client_id)?;
            put_str(&mut out, &m.client_host)?;
            out.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
            out.extend_from_slice(&m.session_timeout_ms.to_be_bytes());
            put_bytes(&mut out, &m.subscription)?;
            put_bytes(&mut out, &m.assignment)?;
        }
        Ok(out)
    }

    /// Any of Kafka's versions (0..=4) or a legacy ringbroker value.
    pub fn decode(bytes: &[u8]) -> Option<GroupValue> {
        let version = Reader::new(bytes).i16()?;
        let body = bytes.get(2..)?;
        if version == 1
            && let Some(v) = whole(body, Self::legacy)
        {
            return Some(v);
        }
        if !(0..=MAX_VERSION).contains(&version) {
            return None;
        }
        whole(body, |r| {
            r.flexible = version >= 4;
            let protocol_type = r.string()?;
            let generation = r.r.i32()?;
            let protocol = r.nullable_string()?;
            let leader = r.nullable_string()?;
            let timestamp_ms = if version >= 2 { r.r.i64()? } else { -1 };
            // The fewest bytes a member takes in this version: its empty strings and
            // bytes, its timeouts and, when flexible, its empty tagged fields.
            let min_member = match version {
                0 => 18,
                1 | 2 => 22,
                3 => 24,
                _ => 15,
            };
            let n = r.count(min_member)?;
            let mut members = Vec::with_capacity(n);
            for _ in 0..n {
                members.push(Self::member(r, version)?);
            }
            r.tagged_fields()?;
            Some(GroupValue {
                protocol_type,
                generation,
                protocol,
                leader,
                timestamp_ms,
                members,
            })
        })
    }

    fn member(r: &mut Values, version: i16) -> Option<MemberValue> {
        let member_id = r.string()?;
        let instance_id = if version >= 3 {
            r.nullable_string()?
        } else {
            None
        };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let rebalance_timeout_ms = if version >= 1 { r.r.i32()? } else { -1 };
        let session_timeout_ms = r.r.i32()?;
        let subscription = r.bytes()?;
        let assignment = r.bytes()?;
        r.tagged_fields()?;
        Some(MemberValue {
            member_id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        })
    }

    /// ringbroker's value before Kafka's format: protocol type, generation, protocol,
    /// timestamp; no leader and no members.
    fn legacy(r: &mut Values) -> Option<GroupValue> {
        let protocol_type = r.string()?;
        let generation = r.r.i32()?;
        let protocol = r.string()?;
        let timestamp_ms = r.r.i64()?;
        Some(GroupValue {
            protocol_type,
            generation,
            protocol: (!protocol.is_empty()).then_some(protocol),
            leader: None,
            timestamp_ms,
            members: Vec::new(),
        })
    }
}
