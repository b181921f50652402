//! Digests as values: the 32-byte [`Digest`] that names canonical record bytes and evidence
//! files, its one strict lower-case hex spelling, and the crate's hex helpers (no hex crate).
//! Pure: computing a digest is `crypto::hash`'s job (`Digest::of`).

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};

/// Length in bytes of a SHA-256 digest.
pub const DIGEST_LEN: usize = 32;

/// Length of a digest's hex text form: two characters per byte.
pub const DIGEST_HEX_LEN: usize = 2 * DIGEST_LEN;

/// A SHA-256 digest.
///
/// Text form (Display, FromStr, serde): exactly 64 lower-case hex characters.
/// Parsing is strict: upper-case hex, whitespace, a `0x` prefix or any other
/// length is an error, so one digest has exactly one spelling and string
/// comparison of two spellings agrees with byte comparison.
///
/// The derived `Ord` compares the bytes, which is also the order of the hex
/// strings.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; DIGEST_LEN]);

impl Digest {
    /// The 32 digest bytes.
    pub fn as_bytes(&self) -> &[u8; DIGEST_LEN] {
        &self.0
    }
}

impl AsRef<[u8]> for Digest {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<[u8; DIGEST_LEN]> for Digest {
    fn from(bytes: [u8; DIGEST_LEN]) -> Self {
        Digest(bytes)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; DIGEST_HEX_LEN];
        for (pair, byte) in buf.chunks_exact_mut(2).zip(self.0.iter()) {
            pair[0] = HEX_DIGITS[usize::from(byte >> 4)];
            pair[1] = HEX_DIGITS[usize::from(byte & 0x0f)];
        }
        // `buf` holds only ASCII hex digits, so it is valid UTF-8; the
        // fallible conversion keeps this path panic-free regardless.
        let s = std::str::from_utf8(&buf).map_err(|_| fmt::Error)?;
        f.write_str(s)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// Why a string is not a digest's text form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestParseError {
    /// The string is not exactly 64 characters (bytes) long.
    #[error(
        "SHA-256 digest must be exactly {DIGEST_HEX_LEN} lower-case hex characters, got {0} bytes"
    )]
    WrongLength(usize),
    /// A character other than `0-9` / `a-f`; upper-case hex is refused so
    /// that every digest has one spelling.
    #[error(
        "SHA-256 digest has {found:?} at byte {index}: only lower-case hex (0-9, a-f) is accepted"
    )]
    InvalidCharacter {
        /// Byte offset of the offending character.
        index: usize,
        /// The offending character.
        found: char,
    },
}

impl FromStr for Digest {
    type Err = DigestParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; DIGEST_LEN];
        decode_lower_hex(s, &mut out)?;
        Ok(Digest(out))
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DigestVisitor;

        impl Visitor<'_> for DigestVisitor {
            type Value = Digest;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a SHA-256 digest as 64 lower-case hex characters")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Digest, E> {
                v.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(DigestVisitor)
    }
}

/// Lower-case hex digits, indexed by nibble value.
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lower-case hex of `bytes` (two characters per byte).
pub fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 * bytes.len());
    for byte in bytes {
        s.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
        s.push(char::from(HEX_DIGITS[usize::from(byte & 0x0f)]));
    }
    s
}

/// Decodes exactly `2 * out.len()` lower-case hex characters into `out`.
fn decode_lower_hex(s: &str, out: &mut [u8]) -> Result<(), DigestParseError> {
    let bytes = s.as_bytes();
    if bytes.len() != 2 * out.len() {
        return Err(DigestParseError::WrongLength(bytes.len()));
    }
    let nibble = |index: usize| -> Result<u8, DigestParseError> {
        // Invariant: callers pass index < 2 * out.len() == bytes.len()
        // (checked just above), so the indexing cannot panic.
        match bytes[index] {
            b @ b'0'..=b'9' => Ok(b - b'0'),
            b @ b'a'..=b'f' => Ok(b - b'a' + 10),
            _ => Err(DigestParseError::InvalidCharacter {
                index,
                // `index` is a byte offset; when it falls inside a multi-byte
                // character report U+FFFD rather than slicing mid-character.
                found: s
                    .get(index..)
                    .and_then(|rest| rest.chars().next())
                    .unwrap_or(char::REPLACEMENT_CHARACTER),
            }),
        }
    };
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = (nibble(2 * i)? << 4) | nibble(2 * i + 1)?;
    }
    Ok(())
}
