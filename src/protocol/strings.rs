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
