//! Snappy as Kafka clients write it. The Java client wraps raw snappy blocks in xerial
//! snappy-java's stream framing (a 16-byte header, then blocks each prefixed with a 4-byte
//! big-endian length); librdkafka writes one raw snappy block. Both are read; the broker
//! writes the xerial framing, which both clients read.

use super::{CompressionError, Result};

/// The xerial stream header: magic, version 1, minimum compatible version 1, as
/// snappy-java writes it. Only this exact header is read as xerial framing; anything else
/// is a raw block (as the kafka-protocol crate decides; librdkafka looks at the magic
/// alone and Java also takes other versions, so a batch with another header would read
/// differently in different consumers: it is refused as corrupt raw snappy).
const XERIAL_HEADER: [u8; 16] = *b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01";
const XERIAL_HEADER_BYTES: usize = XERIAL_HEADER.len();

fn is_xerial(data: &[u8]) -> bool {
    data.starts_with(&XERIAL_HEADER)
}
/// Uncompressed bytes per xerial block when writing (snappy-java's default).
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;

fn corrupt(e: impl std::fmt::Display) -> CompressionError {
    CompressionError::Corrupt(format!("snappy: {e}"))
}

/// Decompresses one raw block into `out`, which may grow to at most `limit` bytes. The size
/// the block claims is checked against the limit before anything is allocated for it.
fn raw_block(block: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<()> {
    let len = snap::raw::decompress_len(block).map_err(corrupt)?;
    if out.len().saturating_add(len) > limit {
        return Err(CompressionError::TooLarge { limit });
    }
    let start = out.len();
    out.resize(start + len, 0);
    let n = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(corrupt)?;
    if n != len {
        return Err(corrupt(format!("block claims {len} bytes, holds {n}")));
    }
    Ok(())
}

pub fn decompress(data: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<()> {
    if !is_xerial(data) {
        return raw_block(data, limit, out);
    }
    let mut pos = XERIAL_HEADER_BYTES;
    while pos < data.len() {
        let len_bytes = data
            .get(pos..pos + 4)
            .ok_or_else(|| corrupt("truncated xerial block length"))?;
        let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        pos += 4;
        let end = pos
            .checked_add(len as usize)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| corrupt(format!("xerial block of {len} bytes is truncated")))?;
        raw_block(&data[pos..end], limit, out)?;
        pos = end;
    }
    Ok(())
}

/// Decompressed bytes of `data` as a stream, one block at a time, at most `limit` bytes in
/// all (the record walker reads through it without holding the whole batch).
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    xerial: bool,
    block: Vec<u8>,
    at: usize,
    produced: usize,
    limit: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8], limit: usize) -> Reader<'a> {
        let xerial = is_xerial(data);
        Reader {
            data,
            pos: if xerial { XERIAL_HEADER_BYTES } else { 0 },
            xerial,
            block: Vec::new(),
            at: 0,
            produced: 0,
            limit,
        }
    }

    /// Decodes the next block into `self.block`; `false` when none is left.
    fn next_block(&mut self) -> Result<bool> {
        // An empty raw stream is one empty (so corrupt) block, as `decompress` reads it.
        if self.pos >= self.data.len() && (self.xerial || !self.data.is_empty()) {
            return Ok(false);
        }
        let block = if self.xerial {
            let len_bytes = self
                .data
                .get(self.pos..self.pos.saturating_add(4))
                .ok_or_else(|| corrupt("truncated xerial block length"))?;
            let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
            let start = self.pos + 4;
            let end = usize::try_from(len)
                .ok()
                .and_then(|l| start.checked_add(l))
                .filter(|&e| e <= self.data.len())
                .ok_or_else(|| corrupt(format!("xerial block of {len} bytes is truncated")))?;
            self.pos = end;
            &self.data[start..end]
        } else {
            self.pos = self.data.len();
            self.data
        };
        self.block.clear();
        self.at = 0;
        raw_block(block, self.limit - self.produced, &mut self.block).map_err(|e| match e {
            CompressionError::TooLarge { .. } => CompressionError::TooLarge { limit: self.limit },
            other => other,
        })?;
        self.produced += self.block.len();
        Ok(true)
    }
}

impl std::io::Read for Reader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.block.len() {
            match self.next_block() {
                Ok(true) => {}
                Ok(false) => return Ok(0),
                // The stream's reader tells "past the limit" from "corrupt" by the kind.
                Err(e @ CompressionError::TooLarge { .. }) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::FileTooLarge,
                        e.to_string(),
                    ));
                }
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
        }
        let n = buf.len().min(self.block.len() - self.at);
        buf[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Compresses `data` in xerial framing, 32 KiB of input per block.
pub fn compress_xerial(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(XERIAL_HEADER_BYTES + data.len() / 2 + 64);
    out.extend_from_slice(&XERIAL_HEADER);
    let mut enc = snap::raw::Encoder::new();
    let mut block = vec![0u8; snap::raw::max_compress_len(XERIAL_BLOCK_BYTES)];
    for chunk in data.chunks(XERIAL_BLOCK_BYTES) {
        // The buffer holds the worst case of a block, so compression cannot fail.
        let n = enc
            .compress(chunk, &mut block)
            .expect("snappy block buffer");
        out.extend_from_slice(&(n as u32).to_be_bytes());
        out.extend_from_slice(&block[..n]);
    }
    out
}

/// One raw snappy block, as librdkafka writes it.
pub fn compress_raw(data: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(data)
        .expect("snappy raw compression of an in-memory buffer")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_xerial_both_decode() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for c in [compress_raw(&data), compress_xerial(&data)] {
            let mut out = Vec::new();
            decompress(&c, 1 << 22, &mut out).unwrap();
            assert_eq!(out, data);
        }
    }

    #[test]
    fn a_block_claiming_a_huge_size_allocates_nothing() {
        // A raw block whose length varint says 1 GiB but holds a few bytes.
        let mut lie = Vec::new();
        let mut v: u64 = 1 << 30;
        while v >= 0x80 {
            lie.push((v as u8) | 0x80);
            v >>= 7;
        }
        lie.push(v as u8);
        lie.extend_from_slice(&[0, 0]);
        let mut out = Vec::new();
        assert_eq!(
            decompress(&lie, 1 << 20, &mut out),
            Err(CompressionError::TooLarge { limit: 1 << 20 })
        );
        assert!(out.capacity() < 1 << 20);
    }

    #[test]
    fn only_the_exact_xerial_header_is_xerial() {
        // Found by tests/fuzz_records.rs: the magic with another version was read as
        // xerial here and by librdkafka, as a raw block by the kafka-protocol crate.
        let data = [7u8; 1000];
        let good = compress_xerial(&data);
        assert_eq!(good[..16], *b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01");
        let mut out = Vec::new();
        decompress(&good, 1 << 20, &mut out).unwrap();
        assert_eq!(out, data);
        for at in 8..16 {
            let mut other = good.clone();
            other[at] ^= 0x40;
            let mut out = Vec::new();
            assert!(decompress(&other, 1 << 20, &mut out).is_err(), "byte {at}");
            let mut r = Reader::new(&other, 1 << 20);
            let mut streamed = Vec::new();
            assert!(std::io::Read::read_to_end(&mut r, &mut streamed).is_err());
        }
    }

    #[test]
    fn empty_input_is_corrupt_whole_and_streamed() {
        // Found by tests/fuzz_records.rs: the stream read nothing and ended cleanly.
        assert!(decompress(&[], 1 << 20, &mut Vec::new()).is_err());
        let mut streamed = Vec::new();
        assert!(std::io::Read::read_to_end(&mut Reader::new(&[], 1 << 20), &mut streamed).is_err());
        // A xerial header and no block is an empty stream, in both.
        let header = compress_xerial(&[]);
        assert_eq!(header.len(), 16);
        decompress(&header, 1 << 20, &mut streamed).unwrap();
        let mut r = Reader::new(&header, 1 << 20);
        assert_eq!(
            std::io::Read::read_to_end(&mut r, &mut streamed).unwrap(),
            0
        );
    }

    #[test]
    fn truncated_xerial_frames_are_corrupt() {
        let c = compress_xerial(&[7u8; 100_000]);
        let mut out = Vec::new();
        assert!(decompress(&c[..c.len() - 3], 1 << 20, &mut out).is_err());
    }
}
