//! Strings of the `kafka-protocol` types, to and from Rust strings.

/// A topic name from the wire as an owned string.
pub fn topic_str(name: &kafka_protocol::messages::TopicName) -> String {
    name.0.as_str().to_string()
}

pub fn topic_name(name: &str) -> kafka_protocol::messages::TopicName {
    kafka_protocol::messages::TopicName(kafka_protocol::protocol::StrBytes::from_string(
        name.to_string(),
    ))
}

pub fn str_bytes(s: impl Into<String>) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.into())
}

/// FNV-1a over a name: the same on every shard and across restarts (std's hasher is
/// randomly seeded). Which shard owns a partition and which offsets partition holds a
/// group both follow it, so it must never change.
pub fn name_hash(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
