//! The records of `__transaction_state`, in Kafka's formats: key `TransactionLogKey` v0
//! (the transactional id), value `TransactionLogValue` v0 (producer id and epoch, timeout,
//! state, the transaction's partitions, last update and start times). A tombstone removes
//! an id. Values of other versions are skipped when read.

use super::{TxnMeta, TxnStatus};
use std::collections::BTreeSet;

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;

fn put_str(out: &mut Vec<u8>, s: &str) -> Option<()> {
    let len = i16::try_from(s.len()).ok()?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Some(())
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let b = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(b)
    }
    fn i8(&mut self) -> Option<i8> {
        Some(self.take(1)?[0] as i8)
    }
    fn i16(&mut self) -> Option<i16> {
        let b = self.take(2)?;
        Some(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        let b = self.take(4)?;
        Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self) -> Option<i64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Some(i64::from_be_bytes(a))
    }
    fn string(&mut self) -> Option<String> {
        let len = usize::try_from(self.i16()?).ok()?;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

/// The key of `transactional_id`; `None` if the id is longer than a record string holds.
pub fn encode_key(transactional_id: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(4 + transactional_id.len());
    out.extend_from_slice(&KEY_VERSION.to_be_bytes());
    put_str(&mut out, transactional_id)?;
    Some(out)
}

pub fn decode_key(bytes: &[u8]) -> Option<String> {
    let mut r = Reader { buf: bytes, pos: 0 };
    if r.i16()? != KEY_VERSION {
        return None;
    }
    r.string()
}

pub fn encode_value(meta: &TxnMeta) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&VALUE_VERSION.to_be_bytes());
    out.extend_from_slice(&meta.producer_id.to_be_bytes());
    out.extend_from_slice(&meta.epoch.to_be_bytes());
    out.extend_from_slice(&meta.timeout_ms.to_be_bytes());
    out.push(meta.status.code() as u8);
    // The partitions, by topic.
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (t, p) in &meta.partitions {
        match topics.last_mut() {
            Some((last, ps)) if *last == t.as_str() => ps.push(*p),
            _ => topics.push((t.as_str(), vec![*p])),
        }
    }
    out.extend_from_slice(&i32::try_from(topics.len()).ok()?.to_be_bytes());
    for (t, ps) in topics {
        put_str(&mut out, t)?;
        out.extend_from_slice(&i32::try_from(ps.len()).ok()?.to_be_bytes());
        for p in ps {
            out.extend_from_slice(&p.to_be_bytes());
        }
    }
    out.extend_from_slice(&meta.last_update_ms.to_be_bytes());
    out.extend_from_slice(&meta.start_ms.to_be_bytes());
    Some(out)
}

pub fn decode_value(bytes: &[u8]) -> Option<TxnMeta> {
    let mut r = Reader { buf: bytes, pos: 0 };
    if r.i16()? != VALUE_VERSION {
        return None;
    }
    let producer_id = r.i64()?;
    let epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let status = TxnStatus::from_code(r.i8()?)?;
    let mut partitions = BTreeSet::new();
    let topics = r.i32()?;
    // -1: null (no partitions). Each topic takes at least 6 bytes, so a count is bounded
    // by the bytes that hold it before anything is allocated.
    for _ in 0..topics.max(0) {
        let topic = r.string()?;
        let n = r.i32()?;
        if usize::try_from(n).ok()? > bytes.len() {
            return None;
        }
        for _ in 0..n {
            partitions.insert((topic.clone(), r.i32()?));
        }
    }
    let last_update_ms = r.i64()?;
    let start_ms = r.i64()?;
    Some(TxnMeta {
        producer_id,
        epoch,
        timeout_ms,
        status,
        partitions,
        last_update_ms,
        start_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_in_kafkas_layout() {
        let meta = TxnMeta {
            producer_id: 4001,
            epoch: 3,
            timeout_ms: 60_000,
            status: TxnStatus::PrepareCommit,
            partitions: [
                ("a".to_string(), 1),
                ("a".to_string(), 0),
                ("b".to_string(), 2),
            ]
            .into_iter()
            .collect(),
            last_update_ms: 1_700_000_000_123,
            start_ms: 1_700_000_000_000,
        };
        let v = encode_value(&meta).expect("encodes");
        assert_eq!(decode_value(&v), Some(meta));
        // version, producer id, epoch, timeout, status, then 2 topics.
        assert_eq!(&v[..2], &[0, 0]);
        assert_eq!(v[16], 2, "PrepareCommit is status 2");
        assert_eq!(&v[17..21], &2i32.to_be_bytes());
        let k = encode_key("tx-1").expect("encodes");
        assert_eq!(k, [&[0, 0, 0, 4][..], b"tx-1"].concat());
        assert_eq!(decode_key(&k).as_deref(), Some("tx-1"));
        // Cut short or lying about a count: unreadable, not a panic or a huge allocation.
        assert_eq!(decode_value(&v[..v.len() - 1]), None);
        let mut lie = v.clone();
        lie[24..28].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_value(&lie).is_none());
        assert_eq!(decode_key(&k[..3]), None);
    }
}
