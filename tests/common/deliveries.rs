//! A librdkafka producer context that records each delivery: the offset, or the error.
#![allow(dead_code)]

use rdkafka::ClientContext;
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct Deliveries(pub Mutex<Vec<Result<i64, String>>>);

pub struct Recorder(pub Arc<Deliveries>);

impl ClientContext for Recorder {}

impl ProducerContext for Recorder {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let r = match result {
            Ok(m) => Ok(m.offset()),
            Err((e, _)) => Err(e.to_string()),
        };
        self.0.0.lock().unwrap_or_else(|p| p.into_inner()).push(r);
    }
}
