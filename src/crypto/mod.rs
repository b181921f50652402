//! Cryptographic building blocks of hukou-sync, and nothing else:
//!
//! * [`jcs`]: RFC 8785 canonical JSON, the exact bytes a record is hashed
//!   and signed as;
//! * [`hash`]: SHA-256 [`Digest`]s of those bytes, written as lower-case hex;
//! * [`keys`]: Ed25519 record-signing keys, their 0600 key files, and
//!   domain-separated signatures (`"hukou-sync/v1/" || label || "\0" || msg`,
//!   see [`SigningContext`]);
//! * [`secret_file`]: the one writer of files holding secrets (created
//!   `0600` from the start, never overwriting);
//! * [`hlc`]: the hybrid logical clock whose [`Hlc`] stamps order record
//!   versions across bureaus;
//! * [`at_rest`]: AES-256-GCM for files the database keeps encrypted (evidence),
//!   under a key file outside the database.
//!
//! `ring` is the only cryptography library used. Nothing here does I/O
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

pub use at_rest::{AtRestError, AtRestKey};
pub use hash::{Digest, DigestParseError};
pub use hlc::{ClockSkewError, Hlc, HlcClock, HlcError, ManualClock, SystemClock, WallClock};
pub use jcs::{canonicalize, to_canonical_vec, JcsError};
pub use keys::{
    KeyError, Pkcs8Document, PublicKey, Signature, SignatureError, SigningContext, SigningKey,
};
pub use secret_file::{open_private, write_new_secret, SecretFileError};
