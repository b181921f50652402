//! SHA-256 digests: the [`Digest`] type that names canonical record bytes,
//! its strict lower-case hex text form, and the crate's hand-written hex
//! helpers (no hex crate).
//!
//! Hashing goes through `ring::digest`, the only crypto library this crate
//! uses.

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
    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let d = ring::digest::digest(&ring::digest::SHA256, bytes);
        let mut out = [0u8; DIGEST_LEN];
        // Invariant: a SHA-256 output is always exactly 32 bytes, so
        // `copy_from_slice` (which panics only on a length mismatch) cannot
        // panic here.
        out.copy_from_slice(d.as_ref());
        Digest(out)
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    // FIPS 180-2 / NIST CAVP SHA-256 examples.
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn known_answers() {
        assert_eq!(Digest::of(b"").to_string(), EMPTY);
        assert_eq!(Digest::of(b"abc").to_string(), ABC);
        assert_eq!(
            Digest::of(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").to_string(),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn parse_round_trip() {
        let d: Digest = ABC.parse().unwrap();
        assert_eq!(d, Digest::of(b"abc"));
        assert_eq!(d.to_string(), ABC);
        assert_eq!(d.as_bytes()[0], 0xba);
        assert_eq!(format!("{d:?}"), format!("Digest({ABC})"));
    }

    #[test]
    fn parse_is_strict() {
        assert_eq!(
            ABC.to_uppercase().parse::<Digest>(),
            Err(DigestParseError::InvalidCharacter {
                index: 0,
                found: 'B'
            })
        );
        assert_eq!(
            ABC[..63].parse::<Digest>(),
            Err(DigestParseError::WrongLength(63))
        );
        assert_eq!(
            format!("{ABC}0").parse::<Digest>(),
            Err(DigestParseError::WrongLength(65))
        );
        assert!(format!(" {}", &ABC[1..]).parse::<Digest>().is_err());
        assert!(format!("0x{}", &ABC[2..]).parse::<Digest>().is_err());
        assert_eq!("".parse::<Digest>(), Err(DigestParseError::WrongLength(0)));
        // A multi-byte character of the right byte length is refused, not
        // sliced mid-character.
        let with_e_acute = format!("é{}", &ABC[2..]);
        assert_eq!(with_e_acute.len(), 64);
        assert_eq!(
            with_e_acute.parse::<Digest>(),
            Err(DigestParseError::InvalidCharacter {
                index: 0,
                found: 'é'
            })
        );
        assert!(format!("a{}", &with_e_acute[..63])
            .parse::<Digest>()
            .is_err());
    }

    #[test]
    fn serde_as_hex_string() {
        let d = Digest::of(b"abc");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{ABC}\""));
        let back: Digest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
        let upper = format!("\"{}\"", ABC.to_uppercase());
        assert!(serde_json::from_str::<Digest>(&upper).is_err());
        assert!(serde_json::from_str::<Digest>("[1,2]").is_err());
    }

    #[test]
    fn order_matches_hex_order() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        assert_eq!(a.cmp(&b), a.to_string().cmp(&b.to_string()));
    }

    #[test]
    fn to_hex_matches_display() {
        let d = Digest::of(b"abc");
        assert_eq!(to_hex(d.as_bytes()), d.to_string());
        assert_eq!(to_hex(&[0x00, 0x0f, 0xf0, 0xff]), "000ff0ff");
    }
}
