//! A bounded fuzz driver for the parsers of outside input, and the targets of this module's own
//! parsers (the HLC stamp, canonical JSON). Test builds only.
//!
//! Each target is a function of bytes that must not panic and must keep its output bounded by
//! its input. [`check`] feeds it inputs made from a seeded generator: fresh bytes, and the
//! target's corpus of valid inputs with random edits (the mutations find the deep paths random
//! bytes never reach); structured targets read their inputs through `arbitrary`. Under
//! `cargo test` each target runs a bounded number of inputs; run longer with
//! `HUKOU_FUZZ_ITERATIONS=1000000 cargo test --lib fuzz` (or `HUKOU_FUZZ_SECS=600` for a time
//! budget per target, `HUKOU_FUZZ_SEED` for another sequence). A failing input is printed as
//! hex with its seed and iteration, so it can be replayed as a unit test.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};

/// Longest input a target receives: the bound the allocation checks scale with.
pub const MAX_INPUT: usize = 16 * 1024;

/// SplitMix64: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that make parsers take their less-travelled branches.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b",",
    b":",
    b"{",
    b"}",
    b"[",
    b"]",
    b"null",
    b"-",
    b"1e999",
    b"-0",
    b"9007199254740993",
    b"\n",
    b"\r\n",
    b"\xEF\xBB\xBF",
    b"\xff",
    b"\xe9",
    b"\xe2\x80\xae",
    b"=",
    b"0000",
    b"9999",
    b"ffff",
    b"+",
    b"Z",
    b"T",
    b".",
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..=rng.below(8) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let end = (at + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                out.splice(at..at, t.iter().copied());
            }
            3 if !out.is_empty() => {
                // Repeat a slice: long strings, deep nesting, many rows.
                let start = rng.below(out.len());
                let end = (start + 1 + rng.below(64)).min(out.len());
                let piece = out[start..end].to_vec();
                for _ in 0..rng.below(32) {
                    out.splice(at..at, piece.iter().copied());
                }
            }
            4 => out.truncate(at),
            _ => {
                let b = rng.next() as u8;
                out.insert(at, b);
            }
        }
    }
    out.truncate(MAX_INPUT);
    out
}

fn fresh(rng: &mut Rng) -> Vec<u8> {
    let len = if rng.below(8) == 0 {
        rng.below(MAX_INPUT)
    } else {
        rng.below(256)
    };
    (0..len).map(|_| rng.next() as u8).collect()
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Runs `target` on `default_iterations` inputs (or as `HUKOU_FUZZ_*` say). Half are fresh
/// bytes, half edited copies of the corpus; a panic names the input.
pub fn check(name: &str, default_iterations: u64, corpus: &[&[u8]], target: impl Fn(&[u8])) {
    let seed = env_number("HUKOU_FUZZ_SEED").unwrap_or_else(|| {
        name.bytes().fold(0xCBF2_9CE4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
        })
    });
    let iterations = env_number("HUKOU_FUZZ_ITERATIONS").unwrap_or(default_iterations);
    let budget = env_number("HUKOU_FUZZ_SECS").map(Duration::from_secs);
    let started = Instant::now();
    let mut rng = Rng(seed);
    for seed_input in corpus {
        target(seed_input);
    }
    let mut i = 0u64;
    loop {
        match budget {
            Some(b) if started.elapsed() >= b => break,
            None if i >= iterations => break,
            _ => {}
        }
        let input = if corpus.is_empty() || rng.below(2) == 0 {
            fresh(&mut rng)
        } else {
            let pick = rng.below(corpus.len());
            mutate(&mut rng, corpus[pick])
        };
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(&input))) {
            let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
            eprintln!(
                "fuzz target {name} panicked at iteration {i} (seed {seed}) on input (hex): {hex}"
            );
            resume_unwind(panic);
        }
        i += 1;
    }
}

/// A value of `T` read from the bytes through `arbitrary` (`None` when they run out).
pub fn arbitrary<'a, T: Arbitrary<'a>>(bytes: &'a [u8]) -> Option<T> {
    T::arbitrary(&mut Unstructured::new(bytes)).ok()
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::time::Duration;

    use serde_json::Value;

    use super::{arbitrary, check};
    use crate::crypto::hlc::{HlcClock, ManualClock, MAX_WALL_MS};
    use crate::crypto::{jcs, Hlc};

    #[test]
    fn hlc_text_parses_only_canonical_stamps() {
        check(
            "hlc_text",
            20_000,
            &[
                b"2026-11-23T08:49:35.123Z+0003",
                b"1970-01-01T00:00:00.000Z+0000",
            ],
            |bytes| {
                let Ok(text) = std::str::from_utf8(bytes) else {
                    return;
                };
                if let Ok(h) = Hlc::from_str(text) {
                    assert_eq!(
                        h.to_string(),
                        text,
                        "a stamp is read only in its own spelling"
                    );
                    assert_eq!(Hlc::from_i64(h.to_i64()), Ok(h));
                }
                if let Ok(h) = serde_json::from_str::<Hlc>(&format!("{text:?}")) {
                    assert_eq!(h.to_string(), text);
                }
            },
        );
    }

    #[test]
    fn hlc_clock_observes_any_stamp() {
        check("hlc_observe", 20_000, &[], |bytes| {
            let Some((local, packed, counter, later)) = arbitrary::<(i64, i64, u16, i64)>(bytes)
            else {
                return;
            };
            let _ = Hlc::from_i64(packed);
            let Ok(remote) = Hlc::new(packed.rem_euclid(MAX_WALL_MS + 1), counter) else {
                return;
            };
            let wall = ManualClock::new(local);
            let clock = HlcClock::new(wall.clone(), Duration::from_secs(300));
            let before = clock.now();
            // Strictly increasing until it saturates at Hlc::MAX (year 6429).
            let mut last = before;
            if let Ok(after) = clock.observe(remote) {
                assert!(after == Hlc::MAX || (after > before && after > remote));
                last = after;
            }
            wall.set(later);
            let next = clock.now();
            assert!(next == Hlc::MAX || next > last, "the clock never goes back");
        });
    }

    /// Canonical bytes are valid JSON of the same value, and canonical again.
    fn canonical_roundtrip(value: &Value, input_len: usize) {
        let Ok(bytes) = jcs::canonicalize(value) else {
            return;
        };
        assert!(
            bytes.len() <= 8 * input_len + 64,
            "{} canonical bytes from {input_len} input bytes",
            bytes.len()
        );
        let again: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(jcs::canonicalize(&again).unwrap(), bytes);
    }

    #[test]
    fn canonical_json_of_any_text() {
        check(
            "jcs_text",
            5_000,
            &[
                br#"{"b":[1,2.5,-0,1e21,"x\u0000\ud83d\ude00"],"a":{"c":null,"\u00e9":true}}"#,
                b"[9007199254740993, 1e-7, 123456789012345680000, 5e-324]",
                br#"{"version":{"parents":[],"hlc":"2026-11-23T08:49:35.123Z+0003"}}"#,
            ],
            |bytes| {
                if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
                    canonical_roundtrip(&value, bytes.len());
                }
            },
        );
    }

    #[test]
    fn canonical_json_of_any_value() {
        fn value(u: &mut arbitrary::Unstructured<'_>, depth: u32) -> arbitrary::Result<Value> {
            Ok(match u.int_in_range(0..=6)? {
                0 => Value::Null,
                1 => Value::Bool(u.arbitrary()?),
                2 => Value::from(u.arbitrary::<i64>()?),
                3 => {
                    serde_json::Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number)
                }
                4 => Value::String(u.arbitrary()?),
                5 if depth < 8 => Value::Array(
                    (0..u.int_in_range(0..=4)?)
                        .map(|_| value(u, depth + 1))
                        .collect::<arbitrary::Result<_>>()?,
                ),
                _ if depth < 8 => {
                    let mut map = serde_json::Map::new();
                    for _ in 0..u.int_in_range(0..=4)? {
                        map.insert(u.arbitrary()?, value(u, depth + 1)?);
                    }
                    Value::Object(map)
                }
                _ => Value::Null,
            })
        }
        check("jcs_value", 5_000, &[], |bytes| {
            let mut u = arbitrary::Unstructured::new(bytes);
            if let Ok(v) = value(&mut u, 0) {
                canonical_roundtrip(&v, bytes.len());
            }
        });
    }
}
