//! What the fuzz tests share: the captured corpus, the run parameters from the
//! environment, and byte mutations that know what Kafka's encodings look like (big-endian
//! i16/i32 lengths and counts, unsigned varints of compact arrays and strings, zigzag
//! varints of the record framing).
#![allow(dead_code)]

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use ringbroker::compression::{self, Codec};
use ringbroker::protocol::batch::{self, HEADER_BYTES, LOG_OVERHEAD, testing::build_batch};
use std::path::{Path, PathBuf};

pub type Rng = SmallRng;

pub fn rng(seed: u64) -> Rng {
    SmallRng::seed_from_u64(seed)
}

/// `name` from the environment, parsed, or `default` (hex seeds with 0x are accepted).
pub fn env_or(name: &str, default: u64) -> u64 {
    let Ok(v) = std::env::var(name) else {
        return default;
    };
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    };
    parsed.unwrap_or_else(|| panic!("{name}={v} is not a number"))
}

pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus")
}

/// One captured request frame (no length prefix).
pub struct Seed {
    pub name: String,
    pub api: i16,
    pub version: i16,
    pub frame: Vec<u8>,
}

/// The committed corpus, in file-name order.
pub fn corpus() -> Vec<Seed> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/fuzz/corpus exists (cargo test --test fuzz_capture -- --ignored)")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    paths.sort();
    let out: Vec<Seed> = paths
        .iter()
        .filter_map(|p| {
            let frame = std::fs::read(p).expect("read corpus file");
            (frame.len() >= 8).then(|| Seed {
                name: p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                api: i16::from_be_bytes([frame[0], frame[1]]),
                version: i16::from_be_bytes([frame[2], frame[3]]),
                frame,
            })
        })
        .collect();
    assert!(out.len() > 50, "the corpus holds {} frames", out.len());
    out
}

/// Writes `frames` to `target/fuzz-failures/<what>-<seed>/` for replay; returns the dir.
pub fn save_failure(what: &str, seed: u64, frames: &[(String, Vec<u8>)]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/fuzz-failures")
        .join(format!("{what}-{seed:#x}"));
    let _ = std::fs::create_dir_all(&dir);
    for (name, bytes) in frames {
        let _ = std::fs::write(dir.join(name), bytes);
    }
    dir
}

/// Unsigned LEB128, as compact lengths are written.
pub fn uvarint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

/// Reads an unsigned varint at `at`; (value, bytes).
pub fn read_uvarint(b: &[u8], at: usize) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for i in 0..10 {
        let byte = *b.get(at + i)?;
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// A field that looks like a length or count: (position, width, value). Width 2 and 4 are
/// big-endian, 0 an unsigned varint of one or more bytes.
#[derive(Clone, Copy, Debug)]
pub struct LenAt {
    pub at: usize,
    pub width: usize,
    pub value: i64,
}

/// Fields from `from` on whose value could be a length or count of what follows them:
/// i16 and i32 no larger than the bytes left, varints of 1-3 bytes likewise.
pub fn plausible_lengths(b: &[u8], from: usize) -> Vec<LenAt> {
    let mut out = Vec::new();
    for at in from..b.len() {
        let left = |w: usize| (b.len() - at).saturating_sub(w) as i64;
        if at + 2 <= b.len() {
            let v = i64::from(i16::from_be_bytes([b[at], b[at + 1]]));
            if (1..=left(2)).contains(&v) {
                out.push(LenAt {
                    at,
                    width: 2,
                    value: v,
                });
            }
        }
        if at + 4 <= b.len() {
            let v = i64::from(i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]));
            if (1..=left(4)).contains(&v) {
                out.push(LenAt {
                    at,
                    width: 4,
                    value: v,
                });
            }
        }
        if let Some((v, n)) = read_uvarint(b, at)
            && n <= 3
            && v >= 2
            && (v as i64) <= left(n) + 1
        {
            out.push(LenAt {
                at,
                width: 0,
                value: v as i64,
            });
        }
    }
    out
}

/// A new value for a length or count of `old`: off by one, zero, null, doubled, a
/// boundary, or random.
pub fn new_length(rng: &mut Rng, old: i64) -> i64 {
    match rng.random_range(0..12) {
        0 => 0,
        1 => -1,
        2 => old + 1,
        3 => old - 1,
        4 => old + rng.random_range(2..64),
        5 => old / 2,
        6 => old * 2,
        7 => i64::from(i16::MAX),
        8 => i64::from(i32::MAX),
        9 => 0x80,
        10 => -2,
        _ => rng.random_range(-300..100_000),
    }
}

/// Rewrites the length at `l` with `v` (varints may change width).
pub fn write_length(b: &mut Vec<u8>, l: LenAt, v: i64) {
    match l.width {
        2 => b[l.at..l.at + 2].copy_from_slice(&(v as i16).to_be_bytes()),
        4 => b[l.at..l.at + 4].copy_from_slice(&(v as i32).to_be_bytes()),
        _ => {
            let Some((_, n)) = read_uvarint(b, l.at) else {
                return;
            };
            // The raw wire value (compact encodings store length + 1, so 0 is null).
            let wire = uvarint(v.max(0) as u64 & 0xffff_ffff);
            b.splice(l.at..l.at + n, wire);
        }
    }
}

const BYTES: [u8; 8] = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x40, 0x3f];
const I32S: [i32; 9] = [0, -1, 1, i32::MAX, i32::MIN, 0x7fff, 0x8000, 0xffff, -2];

/// One random change to `b`, never touching bytes before `keep` (a header to preserve);
/// `other` is spliced in by one of the mutations.
pub fn mutate(rng: &mut Rng, b: &mut Vec<u8>, keep: usize, other: &[u8]) {
    if b.len() <= keep {
        b.extend((0..rng.random_range(1..16)).map(|_| rng.random::<u8>()));
        return;
    }
    let len = b.len();
    let at = rng.random_range(keep..len);
    match rng.random_range(0..13) {
        0 | 1 => b[at] ^= 1 << rng.random_range(0..8),
        2 => b[at] = BYTES[rng.random_range(0..BYTES.len())],
        3 if at + 4 <= len => {
            let v = I32S[rng.random_range(0..I32S.len())];
            b[at..at + 4].copy_from_slice(&v.to_be_bytes());
        }
        3 if at + 2 <= len => {
            let v = [0i16, -1, i16::MAX, i16::MIN][rng.random_range(0..4)];
            b[at..at + 2].copy_from_slice(&v.to_be_bytes());
        }
        4..=6 => {
            let lens = plausible_lengths(b, keep);
            if !lens.is_empty() {
                let l = lens[rng.random_range(0..lens.len())];
                let v = new_length(rng, l.value);
                write_length(b, l, v);
            }
        }
        7 => b.truncate(at),
        8 => {
            let bytes: Vec<u8> = (0..rng.random_range(1..9)).map(|_| rng.random()).collect();
            b.splice(at..at, bytes);
        }
        9 => {
            let end = (at + rng.random_range(1..17)).min(len);
            b.drain(at..end);
        }
        10 => duplicate_entry(rng, b, keep),
        11 if !other.is_empty() => {
            // Splice: our prefix, the other's tail.
            let from = rng.random_range(0..other.len());
            b.truncate(at);
            b.extend_from_slice(&other[from..]);
        }
        _ => {
            let end = (at + rng.random_range(1..33)).min(len);
            let chunk = b[at..end].to_vec();
            let to = rng.random_range(keep..=len);
            b.splice(to..to, chunk);
        }
    }
}

/// Copies a length-delimited run after a plausible count and bumps the count: an array
/// with one entry more, which repeats an existing entry when the guess was right.
fn duplicate_entry(rng: &mut Rng, b: &mut Vec<u8>, keep: usize) {
    let lens = plausible_lengths(b, keep);
    if lens.is_empty() {
        return;
    }
    let l = lens[rng.random_range(0..lens.len())];
    let body = l.at + l.width.max(read_uvarint(b, l.at).map_or(1, |(_, n)| n));
    if body >= b.len() {
        return;
    }
    let end = (body + rng.random_range(1..64)).min(b.len());
    let entry = b[body..end].to_vec();
    b.splice(end..end, entry);
    write_length(b, l, l.value + 1);
}

/// The clock the in-process fuzzers give the broker's checks.
pub const NOW: i64 = 1_760_000_000_000;

/// A batch of 1-5 uncompressed records with short values, timestamped just before [`NOW`].
pub fn built_batch(rng: &mut Rng) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..rng.random_range(1..6))
        .map(|i| vec![b'a' + i as u8; rng.random_range(0..40)])
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
    build_batch(&refs, NOW - rng.random_range(0..100_000))
}

/// `b` (one batch) with its records compressed by `codec`, length and CRC set.
pub fn compressed(b: &[u8], codec: Codec) -> Vec<u8> {
    let mut out = b[..HEADER_BYTES].to_vec();
    out.extend_from_slice(&compression::compress(codec, &b[HEADER_BYTES..]));
    let attrs = (i16::from_be_bytes([b[21], b[22]]) & !7) | codec as i16;
    let len = (out.len() - LOG_OVERHEAD) as i32;
    batch::set_length_attributes_and_crc(&mut out, len, attrs);
    out
}

pub fn set_i32(b: &mut [u8], at: usize, v: i32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
