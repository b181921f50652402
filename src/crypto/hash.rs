//! Hashing: SHA-256 ([`Digest::of`], through `ring::digest`) and SM3 ([`Digest::sm3_of`],
//! GB/T 32905-2016, through RustCrypto's `sm3`, tested here against the standard's examples).
//!
//! A network's **content hash** ([`HashAlg`]) is declared once in its signed directory: the
//! hash of version ids, receipt digests and ids, the audit tree and the reconciliation summary.
//! [`Digest::with`] and [`Hasher`] compute it; the value is passed explicitly (from the loaded
//! directory into [`crate::sync::LocalNode`], or recorded beside the audit log in the
//! database), never held in a process-wide global, so one process can run several networks.
//! What is not a content id stays SHA-256 whatever the network declares ([`Digest::of`]):
//! evidence file names, TLS certificate fingerprints, token and secret hashes.
//!
//! The [`Digest`] value, its hex text form and the hex helpers live in `domain::digest` (pure
//! values), re-exported here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use crate::domain::digest::{to_hex, Digest, DigestParseError, DIGEST_HEX_LEN, DIGEST_LEN};

/// The hash of a network's content ids and audit tree, declared in its directory (`"hash"`).
/// Both produce 32-byte digests, so every stored column and wire field keeps its shape; what
/// differs is only which function made them, and one network never mixes the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlg {
    /// SHA-256 (FIPS 180-4): the default, and what a directory without a `hash` field means.
    #[default]
    Sha256,
    /// SM3 (GB/T 32905-2016), for networks assessed under GB/T 39786 (密评).
    Sm3,
}

impl HashAlg {
    /// The text form: `sha256` or `sm3` (as in the directory, the CLI and the database).
    pub fn as_str(self) -> &'static str {
        match self {
            HashAlg::Sha256 => "sha256",
            HashAlg::Sm3 => "sm3",
        }
    }

    /// The hash a new network of signature suite `suite` declares unless told otherwise: SM3
    /// beside SM2 (the 商用密码 pair a 密评 assessment expects), SHA-256 beside Ed25519.
    pub fn default_for(suite: crate::crypto::keys::Suite) -> Self {
        match suite {
            crate::crypto::keys::Suite::Ed25519 => HashAlg::Sha256,
            crate::crypto::keys::Suite::Sm2Sm3 => HashAlg::Sm3,
        }
    }

    /// Whether this is the default (SHA-256), which a directory leaves unwritten so that every
    /// directory signed before SM3 existed keeps its exact bytes and signature.
    pub fn is_default(&self) -> bool {
        *self == HashAlg::Sha256
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that names no content hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hash {0:?}: expected sha256 or sm3")]
pub struct UnknownHashAlg(pub String);

impl FromStr for HashAlg {
    type Err = UnknownHashAlg;
    fn from_str(s: &str) -> Result<Self, UnknownHashAlg> {
        match s {
            "sha256" => Ok(HashAlg::Sha256),
            "sm3" => Ok(HashAlg::Sm3),
            other => Err(UnknownHashAlg(other.to_owned())),
        }
    }
}

/// An incremental hash of either algorithm (the Merkle and summary trees hash several parts).
pub enum Hasher {
    Sha256(ring::digest::Context),
    Sm3(sm3::Sm3),
}

impl Hasher {
    pub fn new(alg: HashAlg) -> Self {
        match alg {
            HashAlg::Sha256 => Hasher::Sha256(ring::digest::Context::new(&ring::digest::SHA256)),
            HashAlg::Sm3 => Hasher::Sm3(<sm3::Sm3 as sm3::Digest>::new()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(c) => c.update(bytes),
            Hasher::Sm3(c) => sm3::Digest::update(c, bytes),
        }
    }

    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(c) => {
                let mut out = [0u8; DIGEST_LEN];
                // Invariant: a SHA-256 output is always exactly 32 bytes.
                out.copy_from_slice(c.finish().as_ref());
                Digest(out)
            }
            Hasher::Sm3(c) => Digest(sm3::Digest::finalize(c).into()),
        }
    }
}

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

    /// SHA-256 of everything `r` yields, read in 64 KiB pieces (a file of any size in bounded
    /// memory).
    pub fn of_reader(mut r: impl std::io::Read) -> std::io::Result<Self> {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = r.read(&mut buf)?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
        }
        let mut out = [0u8; DIGEST_LEN];
        // Invariant: as in `of`, the output is exactly 32 bytes.
        out.copy_from_slice(ctx.finish().as_ref());
        Ok(Digest(out))
    }

    /// SM3 (GB/T 32905-2016) of `bytes`: like SHA-256, a 256-bit digest.
    pub fn sm3_of(bytes: &[u8]) -> Self {
        use sm3::Digest as _;
        Digest(sm3::Sm3::digest(bytes).into())
    }

    /// The network's content hash `alg` of `bytes` (content ids: see the module docs).
    pub fn with(alg: HashAlg, bytes: &[u8]) -> Self {
        match alg {
            HashAlg::Sha256 => Self::of(bytes),
            HashAlg::Sm3 => Self::sm3_of(bytes),
        }
    }
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
        assert_eq!(Digest::of_reader(&b""[..]).unwrap().to_string(), EMPTY);
        let big = vec![b'a'; 200_000];
        assert_eq!(Digest::of_reader(&big[..]).unwrap(), Digest::of(&big));
        assert_eq!(Digest::of(b"abc").to_string(), ABC);
        assert_eq!(
            Digest::of(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").to_string(),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    /// GB/T 32905-2016 Appendix A: example 1 (`abc`) and example 2 (`abcd` sixteen times).
    #[test]
    fn sm3_known_answers() {
        assert_eq!(
            Digest::sm3_of(b"abc").to_string(),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        assert_eq!(
            Digest::sm3_of("abcd".repeat(16).as_bytes()).to_string(),
            "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
        );
        assert_ne!(Digest::sm3_of(b"abc"), Digest::of(b"abc"));
    }

    #[test]
    fn content_hash_by_algorithm() {
        assert_eq!(Digest::with(HashAlg::Sha256, b"abc").to_string(), ABC);
        assert_eq!(Digest::with(HashAlg::Sm3, b"abc"), Digest::sm3_of(b"abc"));
        for alg in [HashAlg::Sha256, HashAlg::Sm3] {
            let mut h = Hasher::new(alg);
            h.update(b"ab");
            h.update(b"c");
            assert_eq!(h.finish(), Digest::with(alg, b"abc"));
            assert_eq!(alg.as_str().parse::<HashAlg>(), Ok(alg));
            let json = serde_json::to_string(&alg).unwrap();
            assert_eq!(json, format!("\"{alg}\""));
        }
        assert_eq!(HashAlg::default(), HashAlg::Sha256);
        assert!("SM3".parse::<HashAlg>().is_err());
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
