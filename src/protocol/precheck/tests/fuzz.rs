//! Differential mutation test: valid frames (the builders' and the requests real clients
//! sent, captured in `tests/fuzz/corpus`), randomly damaged, judged by the walker and by
//! the crate. `PRECHECK_FUZZ_ITERS` sets the number of mutated frames (default
//! [`DEFAULT_ITERS`]), `PRECHECK_FUZZ_SEED` the seed. The default run takes about 3 s in
//! a debug build; with `RUST_BACKTRACE=1` about 5 s, as every error the crate returns then
//! captures a backtrace.

use super::super::walk::{CountAt, counts};
use super::super::{Limits, schema_for};
use super::{Verdict, corpus, differential};
use kafka_protocol::messages::ApiKey;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

const DEFAULT_ITERS: usize = 300_000;
const DEFAULT_SEED: u64 = 0x5eed_cafe;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn uvarint(mut v: u32) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

/// Rewrites the count at `c` (a count of the unmutated frame, so possibly stale).
fn bump_count(rng: &mut SmallRng, f: &mut Vec<u8>, c: &CountAt) {
    if c.at + c.len > f.len() {
        return;
    }
    let wire = if c.compact {
        let old = f[c.at..c.at + c.len]
            .iter()
            .fold(0u32, |acc, b| (acc << 7) | u32::from(b & 0x7f));
        let v = match rng.random_range(0..8) {
            0 => 0,
            1 => old.wrapping_add(1),
            2 => old.wrapping_sub(1),
            3 => old.wrapping_add(rng.random_range(2..300)),
            4 => 1 << 31,
            5 => u32::MAX,
            6 => 0x80,
            _ => rng.random(),
        };
        uvarint(v)
    } else {
        let old = i32::from_be_bytes(f[c.at..c.at + 4].try_into().unwrap());
        let v: i32 = match rng.random_range(0..8) {
            0 => -1,
            1 => old.wrapping_add(1),
            2 => old.wrapping_sub(1),
            3 => old.wrapping_add(rng.random_range(2..300)),
            4 => i32::MAX,
            5 => -2,
            6 => 0,
            _ => rng.random(),
        };
        v.to_be_bytes().to_vec()
    };
    f.splice(c.at..c.at + c.len, wire);
}

fn mutate(rng: &mut SmallRng, f: &mut Vec<u8>, counts: &[CountAt]) {
    let len = f.len();
    if len == 0 {
        f.push(rng.random());
        return;
    }
    let at = rng.random_range(0..len);
    match rng.random_range(0..8) {
        0 => f[at] ^= 1 << rng.random_range(0..8),
        1 => f[at] = [0x00, 0x01, 0x7f, 0x80, 0xff, rng.random()][rng.random_range(0..6)],
        2 | 3 if !counts.is_empty() => {
            let c = counts[rng.random_range(0..counts.len())];
            bump_count(rng, f, &c);
        }
        4 => f.truncate(at),
        5 => {
            let n = rng.random_range(1..9);
            let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            f.splice(at..at, bytes);
        }
        6 => {
            let end = (at + rng.random_range(1..9)).min(len);
            f.drain(at..end);
        }
        _ => {
            let end = (at + rng.random_range(1..17)).min(len);
            let chunk = f[at..end].to_vec();
            let to = rng.random_range(0..=len);
            f.splice(to..to, chunk);
        }
    }
}

/// The request frames real clients sent (`tests/fuzz_capture.rs` records them).
fn captured() -> Vec<(ApiKey, i16, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    files.sort();
    let out: Vec<_> = files
        .iter()
        .filter_map(|p| {
            let f = std::fs::read(p).unwrap();
            let api = ApiKey::try_from(i16::from_be_bytes([f[0], f[1]])).ok()?;
            Some((api, i16::from_be_bytes([f[2], f[3]]), f))
        })
        .collect();
    assert!(
        out.len() > 100,
        "{} captured frames in {}",
        out.len(),
        dir.display()
    );
    out
}

/// Every frame a real client sent at a version the broker serves passes the walker and
/// decodes within the estimate.
#[test]
fn captured_client_frames_are_accepted() {
    let limits = Limits::default();
    let mut served = 0;
    for (api, v, f) in captured() {
        if !schema_for(api).is_some_and(|s| s.versions.contains(v)) {
            continue;
        }
        served += 1;
        assert_eq!(
            differential(&f, &limits),
            Ok(Verdict::Accepted),
            "{api:?} v{v}"
        );
    }
    assert!(served > 100, "{served} captured frames at served versions");
}

/// (a) the walker never panics (a panic fails the test), (b) whatever the crate decodes
/// the walker accepts, unless a limit stopped it, (c) whatever the walker accepts the
/// crate decodes within the estimate, or fails for a reason other than missing bytes.
#[test]
fn mutated_frames_agree_with_the_crate() {
    let iters: usize = env_or("PRECHECK_FUZZ_ITERS", DEFAULT_ITERS);
    let seed: u64 = env_or("PRECHECK_FUZZ_SEED", DEFAULT_SEED);
    let built = corpus();
    let seeds = built.len();
    let corpus: Vec<_> = built
        .into_iter()
        .chain(captured())
        .map(|(api, v, f)| {
            let c = counts(&f);
            (api, v, f, c)
        })
        .collect();
    let limits = Limits::default();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut tally = [0usize; 4];
    for i in 0..iters {
        let (api, v, base, base_counts) = &corpus[rng.random_range(0..corpus.len())];
        let mut f = base.clone();
        for _ in 0..rng.random_range(1..4) {
            mutate(&mut rng, &mut f, base_counts);
        }
        let verdict = differential(&f, &limits).unwrap_or_else(|e| {
            panic!("seed {seed:#x} iteration {i}, {api:?} v{v}, frame {f:02x?}: {e}")
        });
        tally[verdict as usize] += 1;
    }
    eprintln!(
        "{iters} mutations (seed {seed:#x}) of {seeds} built and {} captured frames: \
         accepted {}, accepted but the crate failed otherwise {}, refused {}, limits {}",
        corpus.len() - seeds,
        tally[0],
        tally[1],
        tally[2],
        tally[3]
    );
    // The mutations must reach both sides of the verdict.
    if iters >= 10_000 {
        assert!(tally[0] > iters / 100 && tally[2] > iters / 2, "{tally:?}");
    }
}
