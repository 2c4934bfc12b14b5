//! The bench's record value: an 8-byte scheduled time and an 8-byte run id, then filler.
//!
//! The scheduled time (nanoseconds since the run's epoch, little endian) lets the consumer
//! compute end-to-end latency from the schedule; the run id lets it skip records left in
//! the topic by earlier runs. Producers and consumers share one process and one monotonic
//! clock, so no clock synchronisation is involved.

pub const HEADER_BYTES: usize = 16;

/// A value of `size` bytes whose filler is random upper-case letters, like Kafka's
/// `kafka-producer-perf-test`: compressible, but not trivially.
pub fn template(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..size.max(HEADER_BYTES))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'A' + (x % 26) as u8
        })
        .collect()
}

/// Writes the header into a value made by [`template`].
pub fn stamp(value: &mut [u8], scheduled_ns: u64, run_id: u64) {
    value[..8].copy_from_slice(&scheduled_ns.to_le_bytes());
    value[8..16].copy_from_slice(&run_id.to_le_bytes());
}

/// Reads the header of a received value; `None` for a value too short to be ours.
pub fn parse(value: &[u8]) -> Option<(u64, u64)> {
    let scheduled_ns = u64::from_le_bytes(value.get(..8)?.try_into().ok()?);
    let run_id = u64::from_le_bytes(value.get(8..16)?.try_into().ok()?);
    Some((scheduled_ns, run_id))
}

/// A small xorshift generator for keys and run ids (no need for a crypto RNG here).
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        XorShift(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_then_parse() {
        let mut v = template(32, 7);
        stamp(&mut v, 123_456, 99);
        assert_eq!(parse(&v), Some((123_456, 99)));
        assert_eq!(parse(&v[..15]), None);
        assert!(v[16..].iter().all(u8::is_ascii_uppercase));
    }
}
