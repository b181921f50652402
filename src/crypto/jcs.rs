//! RFC 8785 JSON Canonicalization Scheme (JCS): the one byte string that a
//! JSON value is hashed and signed as.
//!
//! Two bureaus that hold the same record must derive the same bytes, or their
//! digests and signatures will not match. The rules (RFC 8785 §3.2):
//!
//! * no whitespace between tokens;
//! * object members sorted by their names compared as arrays of UTF-16 code
//!   units (§3.2.3), which is *not* the UTF-8 byte or code point order once
//!   names hold characters above U+FFFF;
//! * strings escaped as §3.2.2.2: only `\"`, `\\`, `\b`, `\f`, `\n`, `\r`,
//!   `\t`, and `\u00xx` with lower-case hex for the other control characters
//!   below U+0020; every other character, `/`, DEL and U+2028 included, is
//!   written as its literal UTF-8;
//! * numbers as ECMAScript `Number.prototype.toString` writes the IEEE-754
//!   double (§3.2.2.3), delegated to the `ryu-js` crate.
//!
//! Parsing matters as much as writing: without serde_json's
//! `float_roundtrip` feature, `serde_json::from_str` may parse a decimal
//! number one unit in the last place away from the correctly rounded double
//! (it turns `333333333.33333329` into the double written `333333333.33333325`),
//! and two bureaus would then hash the same text differently. The crate must
//! depend on `serde_json` with `features = ["float_roundtrip"]`; the test
//! `serde_json_parses_floats_correctly` fails without it.
//!
//! What this module cannot see: [`serde_json::Value`] has already dropped
//! duplicate member names (the last one wins) and has already rounded a
//! fractional number to the nearest double when the text was parsed.
//!
//! Integers are the exception: serde_json keeps them as exact `u64`/`i64`.
//! An integer of magnitude above 2^53 is written as ECMAScript would write
//! the nearest double, and refused with [`JcsError::InexactInteger`] whenever
//! that text would denote a different integer: `9007199254740993` (2^53 + 1)
//! is an error rather than being silently signed as `9007199254740992`.
//! Integers a double holds exactly are accepted (2^60 is written
//! `1152921504606847000`, the same double). So is an integer whose decimal
//! text is already the ECMAScript text of its nearest double, such as
//! `3340528872181026300`: that is exactly how this module writes the double
//! 3.3405288721810263e18, and refusing it would make canonical output that
//! holds such a double impossible to canonicalize again after parsing. Such
//! an integer keeps its text unchanged, so nothing is rounded silently.

use serde::Serialize;
use serde_json::{Map, Number, Value};

/// Largest magnitude below which every integer has an exact double: 2^53.
const MAX_SAFE_MAGNITUDE: u64 = 1 << 53;

/// Deepest nesting of arrays and objects [`canonicalize`] accepts.
///
/// serde_json refuses to parse anything deeper than 128 levels, so every value
/// that came off the wire fits; the limit only stops a value built in memory
/// from exhausting the stack in this recursive writer.
pub const MAX_DEPTH: usize = 128;

/// Why a value has no RFC 8785 canonical form.
#[derive(Debug, thiserror::Error)]
pub enum JcsError {
    /// An integer beyond ±2^53 that no IEEE-754 double represents exactly,
    /// and whose nearest double is written as a different integer: signing
    /// it would sign a different number.
    #[error("integer {0} is beyond ±2^53 and no IEEE-754 double holds it, so it has no RFC 8785 form; send it as a string")]
    InexactInteger(String),
    /// A number that is not a finite double (possible only with serde_json
    /// features that keep arbitrary number text).
    #[error("number {0} is not a finite IEEE-754 double and has no RFC 8785 form")]
    NonFiniteNumber(String),
    /// Arrays and objects nested deeper than [`MAX_DEPTH`].
    #[error("JSON value is nested deeper than {MAX_DEPTH} arrays/objects")]
    TooDeep,
    /// The Rust value could not be turned into JSON (for example a map with
    /// non-string keys, or a `Serialize` impl that failed).
    #[error("value cannot be represented as JSON: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// The RFC 8785 canonical UTF-8 bytes of `value`.
pub fn canonicalize(value: &Value) -> Result<Vec<u8>, JcsError> {
    let mut out = Vec::new();
    write_value(&mut out, value, 0)?;
    Ok(out)
}

/// Serializes `v` with serde_json and returns the canonical bytes of the
/// result; see [`canonicalize`].
///
/// Caveat inherited from serde_json: a non-finite `f64`/`f32` field (NaN,
/// ±infinity) is turned into `null` by `serde_json::to_value` before this
/// module sees it. Types that are signed should not carry floats that can
/// be non-finite.
pub fn to_canonical_vec<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, JcsError> {
    canonicalize(&serde_json::to_value(v)?)
}

/// Appends the canonical bytes of `value`, a member of a top-level object whose other members
/// the caller writes itself (a fixed-shape object, in sorted order): the same bytes
/// [`to_canonical_vec`] writes for that member, without first copying it into a `Value`.
pub fn write_member_value(out: &mut Vec<u8>, value: &Value) -> Result<(), JcsError> {
    write_value(out, value, 1)
}

/// Appends `s` as a canonical JSON string.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    write_string(out, s)
}

fn write_value(out: &mut Vec<u8>, value: &Value, depth: usize) -> Result<(), JcsError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(out, n)?,
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            let depth = deeper(depth)?;
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item, depth)?;
            }
            out.push(b']');
        }
        Value::Object(members) => write_object(out, members, deeper(depth)?)?,
    }
    Ok(())
}

fn deeper(depth: usize) -> Result<usize, JcsError> {
    if depth >= MAX_DEPTH {
        Err(JcsError::TooDeep)
    } else {
        Ok(depth + 1)
    }
}

fn write_object(
    out: &mut Vec<u8>,
    members: &Map<String, Value>,
    depth: usize,
) -> Result<(), JcsError> {
    let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
    // RFC 8785 §3.2.3: compare names as arrays of UTF-16 code units.
    // Names are unique within a Map, so an unstable sort is deterministic.
    sorted.sort_unstable_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    out.push(b'{');
    for (i, (name, member)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(out, name);
        out.push(b':');
        write_value(out, member, depth)?;
    }
    out.push(b'}');
    Ok(())
}

/// RFC 8785 §3.2.2.2 (which defers to ECMAScript `JSON.stringify`'s
/// QuoteJSONString). A Rust `str` cannot hold a lone surrogate, so the
/// lone-surrogate escape case of ECMAScript never arises.
fn write_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    // Copy runs of bytes that need no escape in one go. Every byte that needs
    // an escape is ASCII, so run boundaries always fall on char boundaries.
    let mut run_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            0x08 => Some(b"\\b"),
            0x0c => Some(b"\\f"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0x00..=0x1f => Some(b""), // \u00xx, written below
            _ => None,
        };
        let Some(escape) = escape else { continue };
        // Invariant: run_start <= i < bytes.len() (run_start only ever
        // becomes a previous i + 1), so the slice cannot panic.
        out.extend_from_slice(&bytes[run_start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0x0f)]);
        } else {
            out.extend_from_slice(escape);
        }
        run_start = i + 1;
    }
    // Invariant: run_start <= bytes.len(), as above.
    out.extend_from_slice(&bytes[run_start..]);
    out.push(b'"');
}

/// RFC 8785 §3.2.2.3: the number as ECMAScript writes the double.
fn write_number(out: &mut Vec<u8>, n: &Number) -> Result<(), JcsError> {
    if let Some(u) = n.as_u64() {
        write_integer(out, false, u)
    } else if let Some(i) = n.as_i64() {
        // as_u64 failed, so i is negative.
        write_integer(out, i < 0, i.unsigned_abs())
    } else {
        match n.as_f64() {
            Some(f) => write_f64(out, f).map_err(|()| JcsError::NonFiniteNumber(n.to_string())),
            None => Err(JcsError::NonFiniteNumber(n.to_string())),
        }
    }
}

/// Writes the integer `±magnitude` as ECMAScript writes the nearest double,
/// or refuses it if that text would denote a different integer (module docs).
fn write_integer(out: &mut Vec<u8>, negative: bool, magnitude: u64) -> Result<(), JcsError> {
    let sign = if negative && magnitude != 0 { "-" } else { "" };
    if magnitude <= MAX_SAFE_MAGNITUDE {
        // Every integer up to 2^53 is an exact double, and ECMAScript writes
        // such a double as its plain decimal integer (no exponent below 1e21).
        out.extend_from_slice(format!("{sign}{magnitude}").as_bytes());
        return Ok(());
    }
    // `as` rounds to the nearest double, ties to even, as JSON.parse does.
    // ECMAScript writes the *shortest* digits that round-trip, padded with
    // zeros (2^60 is "1152921504606847000"), so this goes through the double
    // formatter rather than `to_string`.
    #[allow(clippy::cast_precision_loss)]
    let nearest = magnitude as f64;
    let mut text = Vec::new();
    let inexact = || JcsError::InexactInteger(format!("{sign}{magnitude}"));
    write_f64(&mut text, if negative { -nearest } else { nearest }).map_err(|()| inexact())?;
    // A double holds an integer exactly iff its odd part fits in the 53-bit
    // significand (every u64 is far inside the exponent range).
    let exact = magnitude >> magnitude.trailing_zeros() < MAX_SAFE_MAGNITUDE;
    if !exact && text != format!("{sign}{magnitude}").as_bytes() {
        return Err(inexact());
    }
    out.extend_from_slice(&text);
    Ok(())
}

/// Writes a finite double as ECMAScript `Number.prototype.toString` does
/// (`-0` is written `0`); `Err(())` for NaN and the infinities.
fn write_f64(out: &mut Vec<u8>, f: f64) -> Result<(), ()> {
    if !f.is_finite() {
        return Err(());
    }
    let mut buf = ryu_js::Buffer::new();
    out.extend_from_slice(buf.format_finite(f).as_bytes());
    Ok(())
}

/// The compact JSON text of `value`, as its `Display` writes it (stored bodies and audit
/// details are this text, and the audit check hashes it again): written straight into a
/// buffer, which is several times faster than `to_string()` through the formatter on the write
/// path of every version. Serialising a [`Value`] cannot fail (its keys are strings); were it
/// to, the formatter's text is returned, which is the same.
pub fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| value.to_string())
}

/// A member name that appears twice in one object of `json`, the first such found (depth
/// first, in text order); `None` when every object's names are unique. RFC 8259 leaves
/// duplicate names to the parser, and [`Value`] keeps the last: a body that is hashed, signed or
/// acted on must have one meaning, so admin and peer bodies are refused when this finds one.
/// Errors are the JSON's syntax errors. Nesting is bounded by serde_json's recursion limit (128).
pub fn first_duplicate_key(json: &[u8]) -> Result<Option<String>, serde_json::Error> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_slice(json);
    let found = dup::Walk.deserialize(&mut de)?;
    de.end()?;
    Ok(found)
}

/// The walk behind [`first_duplicate_key`]: visits every value, keeps nothing but each object's
/// member names.
mod dup {
    use std::borrow::Cow;
    use std::collections::HashSet;
    use std::fmt;

    use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

    /// Deserialises any value, yielding the first duplicate name inside it.
    pub struct Walk;

    impl<'de> DeserializeSeed<'de> for Walk {
        type Value = Option<String>;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Walk {
        type Value = Option<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(inner) = seq.next_element_seed(Walk)? {
                found = found.or(inner);
            }
            Ok(found)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut names = Names::default();
            let mut found = None;
            while let Some(Name(name)) = map.next_key::<Name<'de>>()? {
                let inner = map.next_value_seed(Walk)?;
                if found.is_none() {
                    if names.insert(name.clone()) {
                        found = inner;
                    } else {
                        found = Some(name.into_owned());
                    }
                }
            }
            Ok(found)
        }
    }

    /// A member name, borrowed from the text when it holds no escape (most do: no copy).
    struct Name<'de>(Cow<'de, str>);

    impl<'de> de::Deserialize<'de> for Name<'de> {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Name<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a member name")
                }
                fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                    Ok(Name(Cow::Borrowed(v)))
                }
                fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                    Ok(Name(Cow::Owned(v.to_owned())))
                }
                fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                    Ok(Name(Cow::Owned(v)))
                }
            }
            d.deserialize_str(V)
        }
    }

    /// The names of one object seen so far: a short list searched in order while the object is
    /// small (most are: no hashing, no table), a hash set once it is not, so a body of many
    /// names still costs linear time.
    #[derive(Default)]
    struct Names<'de> {
        few: Vec<Cow<'de, str>>,
        many: HashSet<Cow<'de, str>>,
    }

    /// Past this many names, an object's names go into the hash set.
    const FEW: usize = 16;

    impl<'de> Names<'de> {
        /// Adds `name`; false when it was there already.
        fn insert(&mut self, name: Cow<'de, str>) -> bool {
            if self.many.is_empty() {
                if self.few.contains(&name) {
                    return false;
                }
                if self.few.len() < FEW {
                    self.few.push(name);
                    return true;
                }
                self.many.extend(self.few.drain(..));
            }
            self.many.insert(name)
        }
    }
}

#[cfg(test)]
mod tests {
    //! Test data sources:
    //!
    //! * RFC 8785 (June 2020) §3.2.2 and §3.2.3 examples and the Appendix B
    //!   number table, copied from the RFC text.
    //! * cyberphone/json-canonicalization (the RFC authors' reference
    //!   implementations), commit 19d51d7fe467d4706a3ff08adf8a748f29fc21e0,
    //!   `testdata/input/*.json` and `testdata/output/*.json`, embedded below
    //!   byte for byte (Apache-2.0), and the deterministic number generator of
    //!   `testdata/numgen.go` / `testdata/README.md` ("ES6 Numbers") whose
    //!   output for the first N lines of `es6testfile100m.txt` is pinned there
    //!   by SHA-256.

    use super::super::hash::to_hex;
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn canon_str(input: &str) -> String {
        let value: Value = serde_json::from_str(input).unwrap();
        String::from_utf8(canonicalize(&value).unwrap()).unwrap()
    }

    fn number(f: f64) -> Result<String, JcsError> {
        let n = Number::from_f64(f).ok_or_else(|| JcsError::NonFiniteNumber(f.to_string()))?;
        Ok(String::from_utf8(canonicalize(&Value::Number(n))?).unwrap())
    }

    // ---- cyberphone/json-canonicalization testdata ----------------------

    const CYBERPHONE: &[(&str, &str, &str)] = &[
        (
            "arrays",
            "[\n  56,\n  {\n    \"d\": true,\n    \"10\": null,\n    \"1\": [ ]\n  }\n]\n",
            r#"[56,{"1":[],"10":null,"d":true}]"#,
        ),
        (
            "french",
            "{\n  \"peach\": \"This sorting order\",\n  \"p\u{e9}ch\u{e9}\": \"is wrong according to French\",\n  \"p\u{ea}che\": \"but canonicalization MUST\",\n  \"sin\":   \"ignore locale\"\n}\n",
            "{\"peach\":\"This sorting order\",\"p\u{e9}ch\u{e9}\":\"is wrong according to French\",\"p\u{ea}che\":\"but canonicalization MUST\",\"sin\":\"ignore locale\"}",
        ),
        (
            "structures",
            "{\n  \"1\": {\"f\": {\"f\": \"hi\",\"F\": 5} ,\"\\n\": 56.0},\n  \"10\": { },\n  \"\": \"empty\",\n  \"a\": { },\n  \"111\": [ {\"e\": \"yes\",\"E\": \"no\" } ],\n  \"A\": { }\n}",
            r#"{"":"empty","1":{"\n":56,"f":{"F":5,"f":"hi"}},"10":{},"111":[{"E":"no","e":"yes"}],"A":{},"a":{}}"#,
        ),
        (
            "unicode",
            "{\n  \"Unnormalized Unicode\":\"A\\u030a\"\n}\n",
            "{\"Unnormalized Unicode\":\"A\u{30a}\"}",
        ),
        (
            "values",
            "{\n  \"numbers\": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n  \"string\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n  \"literals\": [null, true, false]\n}\n",
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#,
        ),
        (
            "weird",
            "{\n  \"\\u20ac\": \"Euro Sign\",\n  \"\\r\": \"Carriage Return\",\n  \"\\u000a\": \"Newline\",\n  \"1\": \"One\",\n  \"\\u0080\": \"Control\\u007f\",\n  \"\\ud83d\\ude02\": \"Smiley\",\n  \"\\u00f6\": \"Latin Small Letter O With Diaeresis\",\n  \"\\ufb33\": \"Hebrew Letter Dalet With Dagesh\",\n  \"</script>\": \"Browser Challenge\"\n}\n",
            "{\"\\n\":\"Newline\",\"\\r\":\"Carriage Return\",\"1\":\"One\",\"</script>\":\"Browser Challenge\",\"\u{80}\":\"Control\u{7f}\",\"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\"\u{1f602}\":\"Smiley\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}",
        ),
    ];

    #[test]
    fn compact_text_is_the_display_text() {
        for text in [
            r#"{"b":[1,2.5,-0.0,1e300,null,true],"a":{"\u2028":"\"\\\n\u0001/é😀"},"c":""}"#,
            "[]",
            "{}",
            "12345678901234567890",
            r#""x""#,
        ] {
            let v: Value = serde_json::from_str(text).unwrap();
            assert_eq!(compact(&v), v.to_string(), "{text}");
        }
    }

    #[test]
    fn cyberphone_testdata() {
        for (name, input, expected) in CYBERPHONE {
            assert_eq!(canon_str(input), *expected, "testdata/output/{name}.json");
        }
    }

    /// `testdata/outhex/values.txt`: the §3.2.4 UTF-8 byte listing.
    #[test]
    fn cyberphone_values_outhex() {
        let hex = "7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72 \
                   75 65 2c 66 61 6c 73 65 5d 2c 22 6e 75 6d 62 65 72 73 22 3a \
                   5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 2c 31 \
                   65 2b 33 30 2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37 \
                   5d 2c 22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30 \
                   30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d";
        let expected: Vec<u8> = hex
            .split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect();
        let value: Value = serde_json::from_str(CYBERPHONE[4].1).unwrap();
        assert_eq!(canonicalize(&value).unwrap(), expected);
    }

    // ---- RFC 8785 examples -----------------------------------------------

    /// RFC 8785 §3.2.3 sorting example: U+1F600 (UTF-16 D83D DE00) sorts
    /// before U+FB33, the reverse of code point and UTF-8 byte order.
    #[test]
    fn rfc8785_sorting_example() {
        let input = r#"{
            "\u20ac": "Euro Sign",
            "\r": "Carriage Return",
            "\ufb33": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\ud83d\ude00": "Emoji: Grinning Face",
            "\u0080": "Control",
            "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        assert_eq!(
            canon_str(input),
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
             \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
             \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
        );
    }

    /// RFC 8785 Appendix B: IEEE-754 bit patterns and their canonical text.
    const APPENDIX_B: &[(u64, &str)] = &[
        (0x0000000000000000, "0"),
        (0x8000000000000000, "0"),
        (0x0000000000000001, "5e-324"),
        (0x8000000000000001, "-5e-324"),
        (0x7fefffffffffffff, "1.7976931348623157e+308"),
        (0xffefffffffffffff, "-1.7976931348623157e+308"),
        (0x4340000000000000, "9007199254740992"),
        (0xc340000000000000, "-9007199254740992"),
        (0x4430000000000000, "295147905179352830000"),
        (0x44b52d02c7e14af5, "9.999999999999997e+22"),
        (0x44b52d02c7e14af6, "1e+23"),
        (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
        (0x444b1ae4d6e2ef4e, "999999999999999700000"),
        (0x444b1ae4d6e2ef4f, "999999999999999900000"),
        (0x444b1ae4d6e2ef50, "1e+21"),
        (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
        (0x3eb0c6f7a0b5ed8d, "0.000001"),
        (0x41b3de4355555553, "333333333.3333332"),
        (0x41b3de4355555554, "333333333.33333325"),
        (0x41b3de4355555555, "333333333.3333333"),
        (0x41b3de4355555556, "333333333.3333334"),
        (0x41b3de4355555557, "333333333.33333343"),
        (0xbecbf647612f3696, "-0.0000033333333333333333"),
        (0x43143ff3c1cb0959, "1424953923781206.2"),
    ];

    #[test]
    fn rfc8785_appendix_b_numbers() {
        for &(bits, expected) in APPENDIX_B {
            let f = f64::from_bits(bits);
            assert_eq!(number(f).unwrap(), expected, "bits {bits:016x}");
            // The same text, parsed as JSON, canonicalizes to itself.
            assert_eq!(canon_str(expected), expected, "parsed {expected}");
        }
    }

    /// Guards the `float_roundtrip` feature of serde_json (module docs).
    #[test]
    fn serde_json_parses_floats_correctly() {
        for (text, bits) in [
            ("333333333.33333329", 0x41b3de4355555555_u64),
            ("9.999999999999997e+22", 0x44b52d02c7e14af5),
        ] {
            let parsed: f64 = serde_json::from_str(text).unwrap();
            assert_eq!(
                parsed.to_bits(),
                bits,
                "serde_json misparsed {text}: enable serde_json's `float_roundtrip` feature"
            );
        }
    }

    #[test]
    fn appendix_b_nan_and_infinity_have_no_form() {
        // serde_json's Value cannot hold them at all; the formatter refuses
        // them too.
        for bits in [
            0x7fffffffffffffff_u64,
            0x7ff0000000000000,
            0xfff0000000000000,
        ] {
            let f = f64::from_bits(bits);
            assert!(Number::from_f64(f).is_none());
            assert_eq!(write_f64(&mut Vec::new(), f), Err(()));
        }
    }

    /// Regenerates the first million lines of cyberphone's
    /// `es6testfile100m.txt` (the algorithm of `testdata/numgen.go`: 168
    /// edge cases, 2000 consecutive subnormal-boundary doubles, then the
    /// little-endian u64s of a SHA-256 chain that are finite non-zero
    /// doubles), writing each number with this module, and checks the SHA-256
    /// of the first 10^3 ... 10^6 lines against the table in
    /// `testdata/README.md`.
    #[test]
    fn es6testfile_first_million_lines() {
        const CHECKPOINTS: [(usize, &str); 4] = [
            (
                1_000,
                "be18b62b6f69cdab33a7e0dae0d9cfa869fda80ddc712221570f9f40a5878687",
            ),
            (
                10_000,
                "b9f7a8e75ef22a835685a52ccba7f7d6bdc99e34b010992cbc5864cd12be6892",
            ),
            (
                100_000,
                "22776e6d4b49fa294a0d0f349268e5c28808fe7e0cb2bcbe28f63894e494d4c7",
            ),
            (
                1_000_000,
                "49415fee2c56c77864931bd3624faad425c3c577d6d74e89a83bc725506dad16",
            ),
        ];
        #[rustfmt::skip]
        const STATIC: [u64; 168] = [
            0x0000000000000000, 0x8000000000000000, 0x0000000000000001, 0x8000000000000001,
            0xc46696695dbd1cc3, 0xc43211ede4974a35, 0xc3fce97ca0f21056, 0xc3c7213080c1a6ac,
            0xc39280f39a348556, 0xc35d9b1f5d20d557, 0xc327af4c4a80aaac, 0xc2f2f2a36ecd5556,
            0xc2be51057e155558, 0xc28840d131aaaaac, 0xc253670dc1555557, 0xc21f0b4935555557,
            0xc1e8d5d42aaaaaac, 0xc1b3de4355555556, 0xc17fca0555555556, 0xc1496e6aaaaaaaab,
            0xc114585555555555, 0xc0e046aaaaaaaaab, 0xc0aa0aaaaaaaaaaa, 0xc074d55555555555,
            0xc040aaaaaaaaaaab, 0xc00aaaaaaaaaaaab, 0xbfd5555555555555, 0xbfa1111111111111,
            0xbf6b4e81b4e81b4f, 0xbf35d867c3ece2a5, 0xbf0179ec9cbd821e, 0xbecbf647612f3696,
            0xbe965e9f80f29212, 0xbe61e54c672874db, 0xbe2ca213d840baf8, 0xbdf6e80fe033c8c6,
            0xbdc2533fe68fd3d2, 0xbd8d51ffd74c861c, 0xbd5774ccac3d3817, 0xbd22c3d6f030f9ac,
            0xbcee0624b3818f79, 0xbcb804ea293472c7, 0xbc833721ba905bd3, 0xbc4ebe9c5db3c61e,
            0xbc18987d17c304e5, 0xbbe3ad30dfcf371d, 0xbbaf7b816618582f, 0xbb792f9ab81379bf,
            0xbb442615600f9499, 0xbb101e77800c76e1, 0xbad9ca58cce0be35, 0xbaa4a1e0a3e6fe90,
            0xba708180831f320d, 0xba3a68cd9e985016, 0x446696695dbd1cc3, 0x443211ede4974a35,
            0x43fce97ca0f21056, 0x43c7213080c1a6ac, 0x439280f39a348556, 0x435d9b1f5d20d557,
            0x4327af4c4a80aaac, 0x42f2f2a36ecd5556, 0x42be51057e155558, 0x428840d131aaaaac,
            0x4253670dc1555557, 0x421f0b4935555557, 0x41e8d5d42aaaaaac, 0x41b3de4355555556,
            0x417fca0555555556, 0x41496e6aaaaaaaab, 0x4114585555555555, 0x40e046aaaaaaaaab,
            0x40aa0aaaaaaaaaaa, 0x4074d55555555555, 0x4040aaaaaaaaaaab, 0x400aaaaaaaaaaaab,
            0x3fd5555555555555, 0x3fa1111111111111, 0x3f6b4e81b4e81b4f, 0x3f35d867c3ece2a5,
            0x3f0179ec9cbd821e, 0x3ecbf647612f3696, 0x3e965e9f80f29212, 0x3e61e54c672874db,
            0x3e2ca213d840baf8, 0x3df6e80fe033c8c6, 0x3dc2533fe68fd3d2, 0x3d8d51ffd74c861c,
            0x3d5774ccac3d3817, 0x3d22c3d6f030f9ac, 0x3cee0624b3818f79, 0x3cb804ea293472c7,
            0x3c833721ba905bd3, 0x3c4ebe9c5db3c61e, 0x3c18987d17c304e5, 0x3be3ad30dfcf371d,
            0x3baf7b816618582f, 0x3b792f9ab81379bf, 0x3b442615600f9499, 0x3b101e77800c76e1,
            0x3ad9ca58cce0be35, 0x3aa4a1e0a3e6fe90, 0x3a708180831f320d, 0x3a3a68cd9e985016,
            0x4024000000000000, 0x4014000000000000, 0x3fe0000000000000, 0x3fa999999999999a,
            0x3f747ae147ae147b, 0x3f40624dd2f1a9fc, 0x3f0a36e2eb1c432d, 0x3ed4f8b588e368f1,
            0x3ea0c6f7a0b5ed8d, 0x3e6ad7f29abcaf48, 0x3e35798ee2308c3a, 0x3ed539223589fa95,
            0x3ed4ff26cd5a7781, 0x3ed4f95a762283ff, 0x3ed4f8c60703520c, 0x3ed4f8b72f19cd0d,
            0x3ed4f8b5b31c0c8d, 0x3ed4f8b58d1c461a, 0x3ed4f8b5894f7f0e, 0x3ed4f8b588ee37f3,
            0x3ed4f8b588e47da4, 0x3ed4f8b588e3849c, 0x3ed4f8b588e36bb5, 0x3ed4f8b588e36937,
            0x3ed4f8b588e368f8, 0x3ed4f8b588e368f1, 0x3ff0000000000000, 0xbff0000000000000,
            0xbfeffffffffffffa, 0xbfeffffffffffffb, 0x3feffffffffffffa, 0x3feffffffffffffb,
            0x3feffffffffffffc, 0x3feffffffffffffe, 0xbfefffffffffffff, 0xbfefffffffffffff,
            0x3fefffffffffffff, 0x3fefffffffffffff, 0x3fd3333333333332, 0x3fd3333333333333,
            0x3fd3333333333334, 0x0010000000000000, 0x000ffffffffffffd, 0x000fffffffffffff,
            0x7fefffffffffffff, 0xffefffffffffffff, 0x4340000000000000, 0xc340000000000000,
            0x4430000000000000, 0x44b52d02c7e14af5, 0x44b52d02c7e14af6, 0x44b52d02c7e14af7,
            0x444b1ae4d6e2ef4e, 0x444b1ae4d6e2ef4f, 0x444b1ae4d6e2ef50, 0x3eb0c6f7a0b5ed8c,
            0x3eb0c6f7a0b5ed8d, 0x41b3de4355555553, 0x41b3de4355555554, 0x41b3de4355555555,
            0x41b3de4355555556, 0x41b3de4355555557, 0xbecbf647612f3696, 0x43143ff3c1cb0959,
        ];
        const SERIAL: u64 = 2000;

        let mut block = [0u8; 32];
        let mut pending: Vec<u64> = Vec::new();
        let mut file_hash = ring::digest::Context::new(&ring::digest::SHA256);
        let mut line = Vec::with_capacity(64);
        let mut checkpoints = CHECKPOINTS.iter().peekable();
        for idx in 0..CHECKPOINTS[3].0 {
            let bits = if let Some(&bits) = STATIC.get(idx) {
                bits
            } else if idx < STATIC.len() + SERIAL as usize {
                0x0010000000000000 + (idx - STATIC.len()) as u64
            } else {
                // Next little-endian u64 of the SHA-256 chain that is a
                // finite, non-zero double.
                loop {
                    if pending.is_empty() {
                        block = super::super::hash::Digest::of(&block).0;
                        pending = block
                            .chunks_exact(8)
                            .rev()
                            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                            .collect();
                    }
                    let bits = pending.pop().unwrap();
                    let f = f64::from_bits(bits);
                    if f != 0.0 && f.is_finite() {
                        break bits;
                    }
                }
            };
            line.clear();
            line.extend_from_slice(format!("{bits:x},").as_bytes());
            write_f64(&mut line, f64::from_bits(bits)).unwrap();
            line.push(b'\n');
            file_hash.update(&line);
            if let Some(&&(lines, want)) = checkpoints.peek() {
                if idx + 1 == lines {
                    let got = to_hex(file_hash.clone().finish().as_ref());
                    assert_eq!(got, want, "SHA-256 of the first {lines} lines");
                    checkpoints.next();
                }
            }
        }
        assert!(checkpoints.next().is_none());
    }

    // ---- integers ----------------------------------------------------------

    #[test]
    fn integers_up_to_2_pow_53_are_plain() {
        assert_eq!(canon_str("9007199254740992"), "9007199254740992");
        assert_eq!(canon_str("-9007199254740992"), "-9007199254740992");
        assert_eq!(canon_str("0"), "0");
        assert_eq!(canon_str("-0"), "0");
        assert_eq!(canon_str("-0.0"), "0");
        assert_eq!(canon_str("1.0"), "1");
        assert_eq!(canon_str("100e-2"), "1");
        assert_eq!(canon_str("[1, -1, 42]"), "[1,-1,42]");
    }

    #[test]
    fn exact_large_integers_are_written_as_ecmascript_does() {
        // 2^54 and 2^60: exact doubles, shortest round-trip digits.
        assert_eq!(canon_str("18014398509481984"), "18014398509481984");
        assert_eq!(canon_str("1152921504606846976"), "1152921504606847000");
        assert_eq!(canon_str("-9223372036854775808"), "-9223372036854776000");
        // 2^64 - 2^11 is the largest u64 a double holds exactly.
        assert_eq!(
            canonicalize(&json!(18446744073709549568_u64)).unwrap(),
            b"18446744073709550000"
        );
    }

    #[test]
    fn large_integers_already_in_ecmascript_form_are_kept() {
        // The double 0x43c72df8a7ba24a7 is 3340528872181026304 exactly and
        // ECMAScript writes it 3340528872181026300; that text parses back as
        // a u64 that no double holds, yet it must canonicalize to itself.
        let f = 3340528872181026300_f64;
        assert_eq!(number(f).unwrap(), "3340528872181026300");
        assert_eq!(canon_str("3340528872181026300"), "3340528872181026300");
        assert_eq!(canon_str("-3340528872181026300"), "-3340528872181026300");
        // Its neighbours that would be rewritten are refused.
        assert!(canonicalize(&json!(3340528872181026301_u64)).is_err());
        assert!(canonicalize(&json!(3340528872181026304_u64)).is_ok());
    }

    #[test]
    fn inexact_large_integers_are_refused() {
        for text in [
            "9007199254740993",
            "-9007199254740993",
            "18446744073709551615",
            "9223372036854775807",
            "-9223372036854775807",
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            match canonicalize(&value) {
                Err(JcsError::InexactInteger(n)) => assert_eq!(n, text),
                other => panic!("{text}: expected InexactInteger, got {other:?}"),
            }
        }
        let err = to_canonical_vec(&json!({"id": u64::MAX})).unwrap_err();
        assert!(err.to_string().contains("18446744073709551615"), "{err}");
    }

    // ---- strings -----------------------------------------------------------

    #[test]
    fn string_escapes() {
        let all_controls: String = (0u8..0x20).map(char::from).collect();
        assert_eq!(
            String::from_utf8(canonicalize(&Value::String(all_controls)).unwrap()).unwrap(),
            "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\
             \\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\
             \\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\""
        );
        // Everything from U+0020 up is literal: '/', DEL, U+2028, '<', non-BMP.
        let literal = " !/<>&'\u{7f}\u{80}\u{2028}\u{2029}\u{fffd}\u{10ffff}";
        assert_eq!(
            canonicalize(&json!(literal)).unwrap(),
            format!("\"{literal}\"").into_bytes()
        );
        assert_eq!(
            canonicalize(&json!("a\"b\\c")).unwrap(),
            br#""a\"b\\c""#.to_vec()
        );
        assert_eq!(canonicalize(&json!("")).unwrap(), b"\"\"".to_vec());
    }

    #[test]
    fn keys_sort_by_utf16_not_utf8() {
        // U+FF61 is one UTF-16 unit 0xFF61; U+10000 is D800 DC00. By UTF-8
        // bytes (EF BD A1 vs F0 90 80 80) U+FF61 sorts first; by UTF-16 last.
        let v = json!({"\u{ff61}": 1, "\u{10000}": 2, "a": 3, "": 4, "aa": 5, "B": 6});
        assert_eq!(
            String::from_utf8(canonicalize(&v).unwrap()).unwrap(),
            "{\"\":4,\"B\":6,\"a\":3,\"aa\":5,\"\u{10000}\":2,\"\u{ff61}\":1}"
        );
    }

    #[test]
    fn duplicate_names_keep_the_last_as_serde_json_does() {
        assert_eq!(canon_str(r#"{"a":1,"a":2}"#), r#"{"a":2}"#);
    }

    // ---- structure -----------------------------------------------------------

    #[test]
    fn to_canonical_vec_of_a_struct() {
        #[derive(Serialize)]
        struct Record<'a> {
            zeta: u32,
            alpha: &'a str,
            nested: Vec<Option<bool>>,
            ratio: f64,
        }
        let bytes = to_canonical_vec(&Record {
            zeta: 7,
            alpha: "x",
            nested: vec![Some(true), None],
            ratio: 0.5,
        })
        .unwrap();
        assert_eq!(
            bytes,
            br#"{"alpha":"x","nested":[true,null],"ratio":0.5,"zeta":7}"#.to_vec()
        );
    }

    #[test]
    fn to_canonical_vec_reports_serialize_errors() {
        // A map whose keys are not strings has no JSON form.
        let mut m = std::collections::BTreeMap::new();
        m.insert(vec![1u8], 1);
        assert!(matches!(to_canonical_vec(&m), Err(JcsError::Serialize(_))));
    }

    #[test]
    fn non_finite_floats_become_null_in_serde_json() {
        // Documented on `to_canonical_vec`: serde_json, not this module,
        // decides this.
        assert_eq!(to_canonical_vec(&[f64::NAN]).unwrap(), b"[null]".to_vec());
    }

    #[test]
    fn nesting_limit() {
        // serde_json's own parse limit fits inside MAX_DEPTH.
        let mut deepest = None;
        for depth in (1..=MAX_DEPTH + 1).rev() {
            let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                deepest = Some((v, text));
                break;
            }
        }
        let (value, text) = deepest.unwrap();
        assert_eq!(canonicalize(&value).unwrap(), text.into_bytes());

        let mut v = json!(null);
        for _ in 0..MAX_DEPTH {
            v = json!([v]);
        }
        assert!(canonicalize(&v).is_ok());
        let too_deep = json!({ "k": v });
        assert!(matches!(canonicalize(&too_deep), Err(JcsError::TooDeep)));
    }

    // ---- properties ----------------------------------------------------------

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-(1i64 << 53)..=(1i64 << 53)).prop_map(|i| json!(i)),
            any::<f64>()
                .prop_filter_map("finite", Number::from_f64)
                .prop_map(Value::Number),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Canonical text is valid JSON whose canonical form is itself.
        #[test]
        fn canonical_form_is_a_fixed_point(v in arb_json()) {
            let once = canonicalize(&v).unwrap();
            let reparsed: Value = serde_json::from_slice(&once).unwrap();
            prop_assert_eq!(canonicalize(&reparsed).unwrap(), once);
        }

        /// Finite doubles survive the trip through canonical text exactly.
        #[test]
        fn doubles_round_trip(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
            let text = number(f).unwrap();
            let back: f64 = text.parse().unwrap();
            prop_assert!(back == f, "{} -> {} -> {}", f, text, back);
        }

        /// Member order in the input never matters.
        #[test]
        fn member_order_is_irrelevant(
            members in prop::collection::vec((any::<String>(), any::<i32>()), 0..12)
        ) {
            let forward: Map<String, Value> =
                members.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            let backward: Map<String, Value> =
                members.iter().rev().map(|(k, v)| (k.clone(), json!(v))).collect();
            // Duplicate names keep different values in the two orders; only
            // compare when names are unique.
            prop_assume!(forward.len() == members.len());
            prop_assert_eq!(
                canonicalize(&Value::Object(forward)).unwrap(),
                canonicalize(&Value::Object(backward)).unwrap()
            );
        }
    }

    #[test]
    fn duplicate_member_names_are_found_at_any_depth() {
        assert_eq!(first_duplicate_key(br#"{"a":1,"b":2}"#).unwrap(), None);
        assert_eq!(
            first_duplicate_key(br#"{"a":1,"a":2}"#).unwrap().as_deref(),
            Some("a")
        );
        assert_eq!(
            first_duplicate_key(br#"{"x":[{"k":1},{"k":1,"k":2}]}"#)
                .unwrap()
                .as_deref(),
            Some("k")
        );
        // Escapes name the same member.
        assert_eq!(
            first_duplicate_key(br#"{"a":1,"\u0061":2}"#)
                .unwrap()
                .as_deref(),
            Some("a")
        );
        assert_eq!(first_duplicate_key(b"[1,2,3]").unwrap(), None);
        // Objects past the short list (16 names) are checked alike: a repeat of an early name,
        // of a late one, and none; the first repeat in text order is the one named.
        let object = |names: &[String]| {
            let members: Vec<String> = names.iter().map(|n| format!("\"{n}\":0")).collect();
            format!("{{{}}}", members.join(","))
        };
        let mut names: Vec<String> = (0..40).map(|i| format!("n{i}")).collect();
        assert_eq!(
            first_duplicate_key(object(&names).as_bytes()).unwrap(),
            None
        );
        names.push("n3".into());
        names.push("n30".into());
        assert_eq!(
            first_duplicate_key(object(&names).as_bytes())
                .unwrap()
                .as_deref(),
            Some("n3")
        );
        names.remove(40);
        assert_eq!(
            first_duplicate_key(object(&names).as_bytes())
                .unwrap()
                .as_deref(),
            Some("n30")
        );
        assert!(first_duplicate_key(b"{\"a\":").is_err());
        assert!(first_duplicate_key(b"{} x").is_err());
    }
}
