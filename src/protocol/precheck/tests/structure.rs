//! Structural edits of valid frames: every strict prefix, and every count inflated.

use super::super::walk::{CountAt, counts};
use super::super::{Limits, PrecheckError, check_request};
use super::{Verdict, corpus, differential};

/// Every strict prefix of every corpus frame: the walker refuses it unless it is itself a
/// complete request, and its verdict agrees with the crate's decode: accepted prefixes
/// never run the crate out of bytes, refused ones never decode.
#[test]
fn every_strict_prefix_is_refused_or_complete() {
    let mut refused = 0usize;
    for (api, v, frame) in corpus() {
        for n in 0..frame.len() {
            let prefix = &frame[..n];
            let what = format!("{api:?} v{v}, {n} of {} bytes", frame.len());
            match differential(prefix, &Limits::default()) {
                Ok(Verdict::Refused) => refused += 1,
                // A strict prefix is complete only when the body could end there; no
                // builder frame has such a prefix.
                other => panic!("{what}: {other:?}"),
            }
        }
    }
    eprintln!("{refused} strict prefixes refused");
    assert!(refused > 20_000, "{refused} prefixes refused");
}

/// `frame` with the count at `c` replaced by `wire`.
fn splice(frame: &[u8], c: &CountAt, wire: &[u8]) -> Vec<u8> {
    let mut f = frame[..c.at].to_vec();
    f.extend_from_slice(wire);
    f.extend_from_slice(&frame[c.at + c.len..]);
    f
}

/// Every array count and tagged-field count of every corpus frame, rewritten to
/// 2^31 - 1 (and to the largest compact count), is refused at that count, by the walker
/// alone: nothing here decodes with the crate, so nothing reserves what the count claims.
#[test]
fn every_count_inflated_to_2_pow_31_is_refused() {
    let mut inflated = 0usize;
    for (api, v, frame) in corpus() {
        for c in counts(&frame) {
            let wires: &[&[u8]] = if c.compact {
                &[
                    &[0x80, 0x80, 0x80, 0x80, 0x08],
                    &[0xff, 0xff, 0xff, 0xff, 0x0f],
                ]
            } else {
                &[&[0x7f, 0xff, 0xff, 0xff]]
            };
            for wire in wires {
                let f = splice(&frame, &c, wire);
                let e = check_request(&f, &Limits::default()).unwrap_err();
                match e {
                    PrecheckError::ArrayTooLong { at, count, .. } => {
                        assert_eq!(at, c.at, "{api:?} v{v} {c:?}: {e}");
                        assert!(count >= (1 << 31) - 1, "{api:?} v{v} {c:?}: {e}");
                    }
                    other => panic!("{api:?} v{v} {c:?}: {other}"),
                }
                inflated += 1;
            }
        }
    }
    eprintln!("{inflated} inflated counts refused");
    assert!(inflated > 1_000, "{inflated} counts inflated");
}

/// A count one more than the elements present: the walker and the crate agree, and
/// nearly always both refuse (the extra element reads into what follows).
#[test]
fn every_count_bumped_by_one_agrees_with_the_crate() {
    let (mut refused, mut total) = (0usize, 0usize);
    for (api, v, frame) in corpus() {
        for c in counts(&frame).iter().filter(|c| !c.tagged) {
            let f = if c.compact {
                let n = frame[c.at];
                if n == 0 || n >= 0x7f {
                    continue; // null, or a multi-byte count: not in the corpus
                }
                splice(&frame, c, &[n + 1])
            } else {
                let n = i32::from_be_bytes(frame[c.at..c.at + 4].try_into().unwrap());
                if n < 0 {
                    continue;
                }
                splice(&frame, c, &(n + 1).to_be_bytes())
            };
            total += 1;
            match differential(&f, &Limits::default()) {
                Ok(Verdict::Refused) => refused += 1,
                Ok(_) => {}
                Err(e) => panic!("{api:?} v{v} {c:?}: {e}"),
            }
        }
    }
    eprintln!("{refused} of {total} counts bumped by one refused");
    assert!(refused * 10 >= total * 9, "{refused} of {total} refused");
}
