//! In-process fuzzers of what the broker reads from clients:
//! - record batches (from the corpus's Produce requests, compressed ones included, and
//!   built ones), mutated, judged by the broker's admission (`validate_batches`,
//!   `check_headers`, `walk_all` with the full budget): whatever it accepts must decode
//!   with `kafka_protocol`'s `RecordBatchDecoder` into the records its headers announce,
//!   once given offsets (and the broker's timestamp on LogAppendTime topics) as the log
//!   gives them, and must survive recompression to any codec;
//! - the decompressors, on mutated compressed payloads: no panic, output never above the
//!   limit, the whole and the streaming decoder agree.
//!
//! Segment recovery has its own fuzzer, `tests/fuzz_segments.rs`.
//!
//! `FUZZ_SEED` sets the seed, `FUZZ_BATCH_ITERS` and `FUZZ_CODEC_ITERS` the iterations
//! (defaults: about 6 s each in a debug build). A failure writes its input to
//! `target/fuzz-failures/` and prints the seed. Long run:
//! `FUZZ_BATCH_ITERS=2000000 FUZZ_CODEC_ITERS=200000 cargo test --test fuzz_records -- --nocapture`

mod fuzz_support;

use bytes::Bytes;
use fuzz_support::{NOW, Rng, built_batch, compressed, env_or, mutate, rng, save_failure, set_i32};
use kafka_protocol::messages::{ApiKey, ProduceRequest, RequestHeader};
use kafka_protocol::protocol::Decodable;
use kafka_protocol::records::RecordBatchDecoder;
use rand::RngExt;
use ringbroker::compression::{self, ALL_CODECS, Codec};
use ringbroker::config::LogConfig;
use ringbroker::protocol::batch::{self, HEADER_BYTES, LOG_OVERHEAD};
use ringbroker::storage::admit::{self, WalkBudget};
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};

const DEFAULT_SEED: u64 = 0x7ec0_4d5e;

/// The records fields of every Produce request in the corpus.
fn corpus_records() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for s in fuzz_support::corpus() {
        if s.api != ApiKey::Produce as i16 {
            continue;
        }
        let mut buf = Bytes::from(s.frame);
        let hv = ApiKey::Produce.request_header_version(s.version);
        let Ok(req) = RequestHeader::decode(&mut buf, hv)
            .and_then(|_| ProduceRequest::decode(&mut buf, s.version))
        else {
            continue;
        };
        for t in req.topic_data {
            for p in t.partition_data {
                out.extend(p.records.map(|r| r.to_vec()));
            }
        }
    }
    out
}

/// Splits concatenated batches by their length fields (as far as they hold).
fn split(blob: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some((_, len)) = blob.get(at..).and_then(batch::peek_offset_and_size) {
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| (at + LOG_OVERHEAD).checked_add(l))
            .filter(|&e| e <= blob.len() && len >= 49);
        let Some(end) = end else { break };
        out.push(blob[at..end].to_vec());
        at = end;
    }
    if at < blob.len() || out.is_empty() {
        out.push(blob[at..].to_vec());
    }
    out
}

/// Sets the length field to the batch's size and recomputes the CRC.
fn fix(b: &mut [u8]) {
    if b.len() >= HEADER_BYTES {
        let len = (b.len() - LOG_OVERHEAD) as i32;
        let attrs = i16::from_be_bytes([b[21], b[22]]);
        batch::set_length_attributes_and_crc(b, len, attrs);
    }
}

/// Changes a header field the admission rules look at.
fn mutate_header(rng: &mut Rng, b: &mut [u8]) {
    let count = i32::from_be_bytes([b[57], b[58], b[59], b[60]]);
    match rng.random_range(0..7) {
        0 => {
            // Count and last offset delta change together, or apart.
            let n = [
                0,
                1,
                count.wrapping_sub(1),
                count.wrapping_add(1),
                i32::MAX,
                -1,
            ][rng.random_range(0..6)];
            set_i32(b, 57, n);
            if rng.random_bool(0.7) {
                set_i32(b, 23, n.wrapping_sub(1));
            }
        }
        1 => {
            let bits: i16 = rng.random_range(0..0x80);
            b[21..23].copy_from_slice(&bits.to_be_bytes());
        }
        2 | 3 => {
            let at = [27, 35][rng.random_range(0..2)];
            let ts = [-1, 0, i64::MAX, i64::MIN, NOW + 7_200_000, NOW][rng.random_range(0..6)];
            b[at..at + 8].copy_from_slice(&ts.to_be_bytes());
        }
        4 => {
            let pid = [-1i64, 0, 5, i64::MAX][rng.random_range(0..4)];
            batch::set_producer(b, pid, rng.random(), rng.random());
        }
        5 => b[16] = [0, 1, 2, 3][rng.random_range(0..4)],
        _ => b[..8].copy_from_slice(&rng.random::<i64>().to_be_bytes()),
    }
}

/// A mutated records field: one of its batches changed in its header, its compressed
/// payload, or its records (decompressed, mutated and compressed again), and the whole
/// field sometimes mutated as bytes; lengths and CRCs are fixed in half the cases.
fn mutated_blob(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut batches = split(&seeds[rng.random_range(0..seeds.len())]);
    if rng.random_ratio(1, 5) {
        batches.extend(split(&seeds[rng.random_range(0..seeds.len())]));
    }
    let i = rng.random_range(0..batches.len());
    let b = &mut batches[i];
    let other = seeds[rng.random_range(0..seeds.len())].clone();
    if b.len() >= HEADER_BYTES {
        let codec = Codec::from_attributes(i16::from_be_bytes([b[21], b[22]]));
        for _ in 0..rng.random_range(1..4) {
            if b.len() < HEADER_BYTES {
                break;
            }
            match rng.random_range(0..6) {
                0 => mutate_header(rng, b),
                1 | 2 => match codec {
                    Ok(c) if c != Codec::None && rng.random_bool(0.7) => {
                        if let Ok(mut plain) =
                            compression::decompress(c, &b[HEADER_BYTES..], 1 << 20)
                        {
                            mutate(rng, &mut plain, 0, &other);
                            b.truncate(HEADER_BYTES);
                            b.extend_from_slice(&compression::compress(c, &plain));
                        }
                    }
                    _ => {
                        let mut recs = b.split_off(HEADER_BYTES);
                        mutate(rng, &mut recs, 0, &other);
                        b.extend_from_slice(&recs);
                    }
                },
                3 => {
                    let c = ALL_CODECS[rng.random_range(0..ALL_CODECS.len())];
                    if let Ok(from) = codec
                        && let Ok(plain) =
                            compression::decompress(from, &b[HEADER_BYTES..], 1 << 20)
                    {
                        let mut none = b[..HEADER_BYTES].to_vec();
                        none.extend_from_slice(&plain);
                        *b = compressed(&none, c);
                    }
                }
                _ => mutate(rng, b, 0, &other),
            }
        }
        if rng.random_bool(0.5) {
            fix(b);
        }
    }
    let mut blob: Vec<u8> = batches.concat();
    if rng.random_ratio(1, 6) {
        mutate(rng, &mut blob, 0, &other);
    }
    blob
}

/// Admission as the log runs it, with the full (off-reactor) budget.
fn admitted(blob: &[u8], config: &LogConfig) -> Option<Vec<(batch::BatchHeader, usize)>> {
    let headers = batch::validate_batches(blob).ok()?;
    admit::check_headers(&headers, config, NOW, None).ok()?;
    let full = WalkBudget {
        bytes: compression::decompressed_limit(config.max_batch_bytes) as u64,
        is_inline: false,
    };
    match admit::walk_all(&headers, blob, config, NOW, full) {
        Ok(true) => Some(headers.iter().map(|(h, r)| (*h, r.len())).collect()),
        _ => None,
    }
}

/// Whether the crate's error is `std::str::Utf8Error` (its two messages): in record
/// decoding it checks UTF-8 of header keys only.
fn is_utf8_error(e: &anyhow::Error) -> bool {
    let m = format!("{e:#}");
    m.contains("invalid utf-8 sequence") || m.contains("incomplete utf-8 byte sequence")
}

/// What an admitted records field must satisfy; `Err` says how it does not, `Ok(false)`
/// that only the crate's UTF-8 check of header keys refused it. The batches
/// are first given what the log gives them: offsets from 1000 on, and the broker's
/// timestamp on a LogAppendTime topic.
fn check_admitted(
    rng: &mut Rng,
    blob: &[u8],
    headers: &[(batch::BatchHeader, usize)],
    config: &LogConfig,
) -> Result<bool, String> {
    let mut stored = blob.to_vec();
    let (mut at, mut next) = (0, 1000i64);
    let mut headers = headers.to_vec();
    for (h, len) in &mut headers {
        batch::set_base_offset(&mut stored[at..], next);
        if config.log_append_time {
            batch::set_log_append_time(&mut stored[at..at + *len], NOW);
        }
        h.base_offset = next;
        next += i64::from(h.record_count);
        at += *len;
    }
    let (blob, headers) = (&stored[..], &headers[..]);
    let decoded =
        catch_unwind(|| RecordBatchDecoder::decode_all(&mut Bytes::copy_from_slice(blob)))
            .map_err(|_| "the crate's decoder panicked".to_string())?;
    let decoded = match decoded {
        Ok(d) => d,
        // The one way the crate is stricter than Kafka (see `header_keys_need_not_be_utf8`).
        Err(e) if is_utf8_error(&e) => return Ok(false),
        Err(e) => return Err(format!("admitted, but the crate does not decode it: {e:#}")),
    };
    if decoded.len() != headers.len() {
        return Err(format!(
            "{} batches decoded, {} admitted",
            decoded.len(),
            headers.len()
        ));
    }
    let mut at = 0;
    for (set, (h, len)) in decoded.iter().zip(headers) {
        if set.records.len() != h.record_count as usize {
            return Err(format!(
                "{} records decoded, header says {}",
                set.records.len(),
                h.record_count
            ));
        }
        for (i, r) in set.records.iter().enumerate() {
            if r.offset != h.base_offset.wrapping_add(i as i64) {
                return Err(format!("record {i} decodes at offset {}", r.offset));
            }
        }
        let one = &blob[at..at + len];
        at += len;
        let target = ALL_CODECS[rng.random_range(0..ALL_CODECS.len())];
        let limit = compression::decompressed_limit(1 << 20);
        let re = catch_unwind(AssertUnwindSafe(|| {
            let _ = batch::record_timestamps(one);
            compression::recompress_batch(h, one, target, limit)
        }))
        .map_err(|_| "recompression or record timestamps panicked".to_string())?;
        if let Ok(Some(out)) = re {
            batch::validate_batch(&out).map_err(|e| format!("recompressed batch: {e}"))?;
            RecordBatchDecoder::decode_all(&mut Bytes::from(out))
                .map_err(|e| format!("recompressed batch does not decode: {e:#}"))?;
        }
    }
    Ok(true)
}

/// A batch of one record whose only header key is the byte 0xff (not UTF-8).
fn batch_with_header_key_ff() -> Vec<u8> {
    let mut body = vec![0u8]; // attributes
    for v in [0, 0, -1, 1] {
        batch::put_varlong(&mut body, v); // timestamp and offset delta, null key, value length
    }
    body.push(b'v');
    for v in [1, 1] {
        batch::put_varlong(&mut body, v); // one header, its key length
    }
    body.push(0xff);
    batch::put_varlong(&mut body, -1); // null header value
    let mut b = fuzz_support::built_batch(&mut rng(1));
    b.truncate(HEADER_BYTES);
    set_i32(&mut b, 23, 0);
    set_i32(&mut b, 57, 1);
    batch::put_varlong(&mut b, body.len() as i64);
    b.extend_from_slice(&body);
    let len = (b.len() - LOG_OVERHEAD) as i32;
    batch::set_length_attributes_and_crc(&mut b, len, 0);
    b
}

/// Kafka takes header keys that are not UTF-8 (Java decodes them with replacement
/// characters, librdkafka does not look at them), and so does the broker: the record
/// framing is sound. kafka-protocol's decoder refuses them; the fuzzer lets exactly that
/// refusal pass, and this test fails if either side changes.
#[test]
fn header_keys_need_not_be_utf8() {
    let b = batch_with_header_key_ff();
    assert!(admitted(&b, &LogConfig::default()).is_some(), "admitted");
    let e = RecordBatchDecoder::decode_all(&mut Bytes::from(b)).expect_err("the crate refuses");
    assert!(is_utf8_error(&e), "{e:#}");
}

#[test]
fn admitted_batches_decode_as_consumers_read_them() {
    let seed = env_or("FUZZ_SEED", DEFAULT_SEED);
    let iters = env_or("FUZZ_BATCH_ITERS", 40_000);
    let mut rng = rng(seed);
    let mut seeds = corpus_records();
    let corpus_n = seeds.len();
    for codec in ALL_CODECS {
        for _ in 0..4 {
            let b = built_batch(&mut rng);
            seeds.push(compressed(&b, codec));
        }
    }
    let compressed_n = seeds
        .iter()
        .filter(|b| b.len() > 22 && b[22] & 7 != 0)
        .count();
    let (mut accepted, mut refused, mut non_utf8) = (0u64, 0u64, 0u64);
    let started = std::time::Instant::now();
    for i in 0..iters {
        let blob = mutated_blob(&mut rng, &seeds);
        let config = LogConfig {
            log_append_time: rng.random_ratio(1, 4),
            ..LogConfig::default()
        };
        let verdict =
            catch_unwind(AssertUnwindSafe(|| admitted(&blob, &config))).unwrap_or_else(|_| {
                let dir = save_failure("batch", seed, &[(format!("{i}.bin"), blob.clone())]);
                panic!(
                    "FUZZ_SEED={seed:#x} iteration {i}: admission panicked; records in {}",
                    dir.display()
                )
            });
        let Some(headers) = verdict else {
            refused += 1;
            continue;
        };
        accepted += 1;
        let checked = check_admitted(&mut rng, &blob, &headers, &config);
        if let Ok(false) = checked {
            non_utf8 += 1;
        }
        if let Err(why) = checked {
            let dir = save_failure("batch", seed, &[(format!("{i}.bin"), blob.clone())]);
            panic!(
                "FUZZ_SEED={seed:#x} iteration {i}: {why}; records in {}",
                dir.display()
            );
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{iters} mutated records fields ({corpus_n} from the corpus, {compressed_n} compressed \
         seeds) in {secs:.1} s ({:.0}/s): {accepted} admitted ({non_utf8} with a header key only \
         the crate refuses as not UTF-8), {refused} refused",
        iters as f64 / secs
    );
    assert!(
        accepted > iters / 50 && refused > iters / 4,
        "{accepted} {refused}"
    );
}

/// Reads `r` in random-sized chunks until it ends, fails or passes `cap` bytes.
fn read_stream(rng: &mut Rng, mut r: impl Read, cap: usize) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    while out.len() <= cap {
        let want = rng.random_range(1..=chunk.len());
        match r.read(&mut chunk[..want]) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(_) => return (out, false),
        }
    }
    (out, false)
}

#[test]
fn decompressors_stay_within_their_limit() {
    let seed = env_or("FUZZ_SEED", DEFAULT_SEED);
    let iters = env_or("FUZZ_CODEC_ITERS", 6_000);
    let mut rng = rng(seed ^ 0xc0dec);
    // Compressed payloads: the corpus's, and every codec over built records.
    let mut seeds: Vec<(Codec, Vec<u8>)> = Vec::new();
    for blob in corpus_records() {
        for b in split(&blob) {
            if let Some(Ok(c)) = b
                .get(21..23)
                .map(|a| Codec::from_attributes(i16::from_be_bytes([a[0], a[1]])))
            {
                seeds.push((c, b[HEADER_BYTES.min(b.len())..].to_vec()));
            }
        }
    }
    for codec in ALL_CODECS {
        for _ in 0..6 {
            let b = built_batch(&mut rng);
            seeds.push((codec, compression::compress(codec, &b[HEADER_BYTES..])));
        }
        seeds.push((codec, compression::compress(codec, &vec![0u8; 300_000])));
    }
    let (mut ok, mut err, mut agree) = (0u64, 0u64, 0u64);
    let started = std::time::Instant::now();
    for i in 0..iters {
        let (codec, base) = &seeds[rng.random_range(0..seeds.len())];
        let mut data = base.clone();
        let other = seeds[rng.random_range(0..seeds.len())].1.clone();
        for _ in 0..rng.random_range(0..4) {
            mutate(&mut rng, &mut data, 0, &other);
        }
        // Sometimes decoded as another codec.
        let codec = if rng.random_ratio(1, 8) {
            ALL_CODECS[rng.random_range(0..ALL_CODECS.len())]
        } else {
            *codec
        };
        let limit = [0, 1, 100, 4096, 65_536, 200_000, 1 << 20][rng.random_range(0..7)];
        let fail = |what: String| -> ! {
            let dir = save_failure(
                "codec",
                seed,
                &[(format!("{i}-{}.bin", codec.name()), data.clone())],
            );
            panic!(
                "FUZZ_SEED={seed:#x} iteration {i}, {codec:?} limit {limit}: {what}; input in {}",
                dir.display()
            )
        };
        let whole = catch_unwind(|| compression::decompress(codec, &data, limit))
            .unwrap_or_else(|_| fail("decompress panicked".into()));
        match &whole {
            Ok(out) if out.len() > limit => fail(format!("{} bytes out", out.len())),
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
        let mut srng = rng.clone();
        let streamed = catch_unwind(AssertUnwindSafe(|| {
            compression::reader(codec, &data, limit).map(|r| read_stream(&mut srng, r, limit))
        }))
        .unwrap_or_else(|_| fail("the streaming reader panicked".into()));
        if let Ok((out, ended)) = streamed {
            if codec == Codec::Snappy && out.len() > limit {
                fail(format!("the snappy reader gave {} bytes", out.len()));
            }
            match &whole {
                Ok(w) if ended => {
                    if *w != out {
                        fail("the whole and the streamed output differ".into());
                    }
                    agree += 1;
                }
                Err(e) if ended && out.len() <= limit => {
                    fail(format!("streamed whole, but decompress says {e}"))
                }
                _ => {}
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{iters} decompressions in {secs:.1} s ({:.0}/s): {ok} ok, {err} refused, {agree} \
         streamed alike",
        iters as f64 / secs
    );
    assert!(ok > iters / 20 && err > iters / 20, "{ok} {err}");
}
