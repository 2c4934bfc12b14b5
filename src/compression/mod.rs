//! Record batch codecs (Kafka's attribute bits 0-2) and broker-side recompression.
//!
//! Decompression is always bounded: output is read incrementally and the read stops at a
//! limit, whatever sizes the stream claims. A batch that inflates past the limit gets
//! [`CompressionError::TooLarge`], corrupt data [`CompressionError::Corrupt`], and codec
//! bits 5-7 [`CompressionError::Unsupported`].

pub mod snappy;

use crate::protocol::batch::{
    self, ATTR_COMPRESSION_MASK, BatchHeader, HEADER_BYTES, LOG_OVERHEAD,
};
use std::io::Read;
use thiserror::Error;

/// The smallest decompression limit, whatever `max.message.bytes` says.
pub const MIN_DECOMPRESSED_LIMIT: usize = 64 << 20;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CompressionError {
    #[error("unsupported compression type {0}")]
    Unsupported(i16),
    #[error("corrupt compressed records: {0}")]
    Corrupt(String),
    #[error("records decompress to more than {limit} bytes")]
    TooLarge { limit: usize },
}

type Result<T> = std::result::Result<T, CompressionError>;

impl CompressionError {
    /// The Kafka error code a client gets for this error.
    pub fn code(&self) -> i16 {
        use crate::protocol::code;
        match self {
            CompressionError::Unsupported(_) => code::UNSUPPORTED_COMPRESSION_TYPE,
            CompressionError::Corrupt(_) => code::CORRUPT_MESSAGE,
            // Records that inflate past the limit: too large to store, as a huge batch is.
            CompressionError::TooLarge { .. } => code::MESSAGE_TOO_LARGE,
        }
    }
}

/// Kafka's codecs, numbered as in the batch attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

pub const ALL_CODECS: [Codec; 5] = [
    Codec::None,
    Codec::Gzip,
    Codec::Snappy,
    Codec::Lz4,
    Codec::Zstd,
];

impl Codec {
    /// The codec of a batch's attributes.
    pub fn from_attributes(attributes: i16) -> Result<Codec> {
        match attributes & ATTR_COMPRESSION_MASK {
            0 => Ok(Codec::None),
            1 => Ok(Codec::Gzip),
            2 => Ok(Codec::Snappy),
            3 => Ok(Codec::Lz4),
            4 => Ok(Codec::Zstd),
            other => Err(CompressionError::Unsupported(other)),
        }
    }

    /// The codec of a topic's `compression.type`; `None` for `producer`.
    pub fn from_topic_config(value: &str) -> std::result::Result<Option<Codec>, String> {
        match value {
            "producer" => Ok(None),
            "uncompressed" | "none" => Ok(Some(Codec::None)),
            "gzip" => Ok(Some(Codec::Gzip)),
            "snappy" => Ok(Some(Codec::Snappy)),
            "lz4" => Ok(Some(Codec::Lz4)),
            "zstd" => Ok(Some(Codec::Zstd)),
            _ => Err("expected producer, uncompressed, gzip, snappy, lz4 or zstd".to_string()),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

/// The decompression limit for a topic whose batches may be `max_batch_bytes` compressed.
pub fn decompressed_limit(max_batch_bytes: u64) -> usize {
    let limit = max_batch_bytes.saturating_mul(4);
    usize::try_from(limit)
        .unwrap_or(usize::MAX)
        .max(MIN_DECOMPRESSED_LIMIT)
}

/// Reads `r` to its end into memory, failing once more than `limit` bytes come out.
pub(crate) fn read_capped<R: Read>(mut r: R, limit: usize, out: &mut Vec<u8>) -> Result<()> {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CompressionError::Corrupt(e.to_string())),
        };
        if out.len() + n > limit {
            return Err(CompressionError::TooLarge { limit });
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// Decompresses `data` written with `codec`, producing at most `limit` bytes.
pub fn decompress(codec: Codec, data: &[u8], limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    match codec {
        Codec::None => {
            if data.len() > limit {
                return Err(CompressionError::TooLarge { limit });
            }
            out.extend_from_slice(data);
        }
        Codec::Gzip => read_capped(flate2::read::MultiGzDecoder::new(data), limit, &mut out)?,
        Codec::Snappy => snappy::decompress(data, limit, &mut out)?,
        Codec::Lz4 => read_capped(lz4_flex::frame::FrameDecoder::new(data), limit, &mut out)?,
        Codec::Zstd => {
            let mut d = zstd::stream::read::Decoder::with_buffer(data)
                .map_err(|e| CompressionError::Corrupt(e.to_string()))?;
            // The window a frame asks for is allocated up front: refuse large ones.
            d.window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| CompressionError::Corrupt(e.to_string()))?;
            read_capped(d, limit, &mut out)?
        }
    }
    Ok(out)
}

/// The decompressed bytes of `data` (written with a compressing `codec`) as a stream. The
/// caller bounds how much it reads; the snappy reader also stops at `limit` itself, since a
/// raw snappy block must be decoded whole.
pub fn reader<'a>(codec: Codec, data: &'a [u8], limit: usize) -> Result<Box<dyn Read + 'a>> {
    Ok(match codec {
        Codec::None => Box::new(data),
        Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(data)),
        Codec::Snappy => Box::new(snappy::Reader::new(data, limit)),
        Codec::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(data)),
        Codec::Zstd => {
            let mut d = zstd::stream::read::Decoder::with_buffer(data)
                .map_err(|e| CompressionError::Corrupt(e.to_string()))?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| CompressionError::Corrupt(e.to_string()))?;
            Box::new(d)
        }
    })
}

/// Largest zstd window accepted on decompression (16 MiB); producers use 2-8 MiB windows.
const ZSTD_WINDOW_LOG_MAX: u32 = 24;
/// zstd level for broker-side recompression (the library default).
const ZSTD_LEVEL: i32 = 3;

/// Compresses `data` with `codec` in the format Kafka clients read.
pub fn compress(codec: Codec, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    match codec {
        Codec::None => data.to_vec(),
        Codec::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            // Writes into a Vec do not fail.
            e.write_all(data).expect("write to Vec");
            e.finish().expect("write to Vec")
        }
        Codec::Snappy => snappy::compress_xerial(data),
        Codec::Lz4 => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(data).expect("write to Vec");
            e.finish().expect("write to Vec")
        }
        Codec::Zstd => zstd::bulk::compress(data, ZSTD_LEVEL).expect("zstd compress to Vec"),
    }
}

/// Rewrites one whole, CRC-valid batch with `target` when its codec differs: only the
/// compression bits, the records, the length and the CRC change. Returns `None` when the
/// batch can be stored as it is. Its records were walked before (`storage::admit`), so
/// they are only decompressed here (within `limit`), not checked again.
pub fn recompress_batch(
    header: &BatchHeader,
    batch_bytes: &[u8],
    target: Codec,
    limit: usize,
) -> Result<Option<Vec<u8>>> {
    let source = Codec::from_attributes(header.attributes)?;
    if source == target {
        return Ok(None);
    }
    let payload = batch_bytes
        .get(HEADER_BYTES..)
        .ok_or_else(|| CompressionError::Corrupt("batch shorter than its header".into()))?;
    let records = decompress(source, payload, limit)?;
    let compressed = compress(target, &records);
    let mut out = Vec::with_capacity(HEADER_BYTES + compressed.len());
    out.extend_from_slice(&batch_bytes[..HEADER_BYTES]);
    out.extend_from_slice(&compressed);
    let length =
        i32::try_from(out.len() - LOG_OVERHEAD).map_err(|_| CompressionError::TooLarge {
            limit: i32::MAX as usize,
        })?;
    let attributes = (header.attributes & !ATTR_COMPRESSION_MASK) | target as i16;
    batch::set_length_attributes_and_crc(&mut out, length, attributes);
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::batch::testing::build_batch;
    use crate::protocol::batch::validate_batch;

    fn sample() -> Vec<u8> {
        let mut s = Vec::new();
        for i in 0..2000 {
            s.extend_from_slice(format!("{{\"i\":{i},\"msg\":\"hello world\"}}\n").as_bytes());
        }
        s
    }

    #[test]
    fn every_codec_round_trips() {
        let data = sample();
        for codec in ALL_CODECS {
            let c = compress(codec, &data);
            if codec != Codec::None {
                assert!(c.len() < data.len() / 3, "{codec:?} compresses");
            }
            assert_eq!(decompress(codec, &c, 1 << 20).unwrap(), data, "{codec:?}");
            assert_eq!(
                decompress(codec, &c, data.len() - 1),
                Err(CompressionError::TooLarge {
                    limit: data.len() - 1
                }),
                "{codec:?} limit"
            );
        }
    }

    #[test]
    fn corrupt_data_is_an_error_not_a_panic() {
        let data = sample();
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let mut c = compress(codec, &data);
            let mid = c.len() / 2;
            for b in &mut c[mid..mid + 8] {
                *b ^= 0x5a;
            }
            // Codecs without a checksum (zstd as clients write it, lz4 frames without
            // content checksum) may decode flipped bytes into other bytes: then the record
            // framing check catches it. Either way, no panic and never the original data.
            if let Ok(out) = decompress(codec, &c, 1 << 20) {
                assert_ne!(out, data, "{codec:?}");
            }
            let whole = compress(codec, &data);
            assert!(
                decompress(codec, &whole[..whole.len() / 2], 1 << 20).is_err(),
                "{codec:?} cut"
            );
            assert!(
                decompress(codec, b"garbage!", 1 << 20).is_err(),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn bombs_stop_at_the_limit() {
        // 256 MiB of zeros, compressed incrementally; decompression must stop at 1 MiB.
        use std::io::Write;
        let zeros = vec![0u8; 1 << 20];
        let limit = 1 << 20;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let mut lz = lz4_flex::frame::FrameEncoder::new(Vec::new());
        let mut zs = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        for _ in 0..256 {
            gz.write_all(&zeros).unwrap();
            lz.write_all(&zeros).unwrap();
            zs.write_all(&zeros).unwrap();
        }
        let bombs = [
            (Codec::Gzip, gz.finish().unwrap()),
            (Codec::Lz4, lz.finish().unwrap()),
            (Codec::Zstd, zs.finish().unwrap()),
            (Codec::Snappy, snappy::compress_xerial(&vec![0u8; 8 << 20])),
        ];
        for (codec, bomb) in bombs {
            assert_eq!(
                decompress(codec, &bomb, limit),
                Err(CompressionError::TooLarge { limit }),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn unknown_codec_bits_are_unsupported() {
        for bits in 5..8 {
            assert_eq!(
                Codec::from_attributes(bits),
                Err(CompressionError::Unsupported(bits))
            );
        }
    }

    #[test]
    fn recompression_changes_only_codec_payload_length_and_crc() {
        let values: Vec<Vec<u8>> = (0..50).map(|i| format!("value {i}").into_bytes()).collect();
        let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
        let plain = build_batch(&refs, 1234);
        let h = validate_batch(&plain).unwrap();
        let mut prev = plain.clone();
        for codec in [
            Codec::Lz4,
            Codec::Gzip,
            Codec::Snappy,
            Codec::Zstd,
            Codec::None,
        ] {
            let ph = validate_batch(&prev).unwrap();
            let out = recompress_batch(&ph, &prev, codec, 1 << 20)
                .unwrap()
                .unwrap();
            let nh = validate_batch(&out).expect("valid after recompression");
            assert_eq!(nh.compression(), codec as i16);
            assert_eq!(nh.record_count, h.record_count);
            assert_eq!(nh.base_timestamp, h.base_timestamp);
            assert_eq!(nh.producer_id, h.producer_id);
            assert_eq!(
                decompress(codec, &out[HEADER_BYTES..], 1 << 20).unwrap(),
                plain[HEADER_BYTES..]
            );
            prev = out;
        }
        assert_eq!(prev, plain, "back to uncompressed gives the original batch");
        // Same codec: stored as is.
        assert_eq!(recompress_batch(&h, &plain, Codec::None, 1 << 20), Ok(None));
    }
}
