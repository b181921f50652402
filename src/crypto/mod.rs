//! Cryptographic building blocks of hukou-sync, and nothing else:
//!
//! * [`jcs`]: RFC 8785 canonical JSON, the exact bytes a record is hashed
//!   and signed as;
//! * [`hash`]: SHA-256 [`Digest`]s of those bytes, written as lower-case hex (and SM3);
//! * [`keys`]: the one signer/verifier interface: record-signing keys of two [`Suite`]s
//!   (Ed25519, and SM2 over SM3), their 0600 key files, and domain-separated signatures
//!   (`"hukou-sync/v1/" || label || "\0" || msg`, see [`SigningContext`]);
//! * [`secret_file`]: the one writer of files holding secrets (created
//!   `0600` from the start, never overwriting);
//! * [`hlc`]: the hybrid logical clock whose [`Hlc`] stamps order record
//!   versions across bureaus;
//! * [`at_rest`]: AES-256-GCM for files the database keeps encrypted (evidence),
//!   under a key file outside the database.
//!
//! `ring` is the cryptography library used for Ed25519, SHA-256 and AES-GCM; RustCrypto's `sm2`
//! and `sm3` (pure Rust) for SM2 and SM3. Nothing here does I/O
//! except reading and writing key files, and nothing here knows about
//! records, bureaus or the database.

pub mod at_rest;
pub mod hash;
pub mod hlc;
pub mod jcs;
pub mod keys;
pub mod secret_file;

/// The bounded fuzz driver and its targets (test builds only).
#[cfg(test)]
pub(crate) mod fuzz;

/// SM2/SM3 checked against the system's OpenSSL 3 (test builds only).
#[cfg(test)]
mod openssl_interop;

pub use at_rest::{AtRestError, AtRestKey};
pub use hash::{Digest, DigestParseError};
pub use hlc::{ClockSkewError, Hlc, HlcClock, HlcError, ManualClock, SystemClock, WallClock};
pub use jcs::{canonicalize, to_canonical_vec, JcsError};
pub use keys::{
    KeyError, Pkcs8Document, PublicKey, Signature, SignatureError, SigningContext, SigningKey,
    Suite, UnknownSuite,
};
pub use secret_file::{open_private, write_new_secret, SecretFileError};
