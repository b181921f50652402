//! Assembling and signing a directory document from node entries, as a directory authority's
//! tooling does: a node's entry (name, served prefixes, endpoint, pinned certificate, signing-key
//! window), the first document (serial 1), a document with one more node, and re-signing an
//! edited document with the next serial — accepting an expired current one so that it can be
//! renewed. Also the authority's key files: its base64url public key (`authority.pub`) and its
//! PKCS#8 private key, checked against each other.
//!
//! The development PKI (`devnet::pki`) and its tests use it; a real authority signs offline.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};

use super::{document, Directory, DirectoryDoc, DirectoryError, KeyWindow, NodeEntry};
use crate::crypto::{KeyError, PublicKey, SigningKey};
use crate::domain::{NodeId, RegionCode, RegionPrefix};

/// How far a signing-key window starts in the past, for clock skew and back-dated imports.
pub const KEY_WINDOW_BACKDATE_DAYS: i64 = 1;

/// Why a directory could not be assembled, signed or loaded for re-signing.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    /// The directory itself (loading, validating, signing, writing).
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The authority's private key file.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The authority's public key file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    ReadAuthority {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The authority's public key file does not hold a public key.
    #[error("{}: not a base64url Ed25519 public key: {reason}", path.display())]
    BadAuthorityPublic { path: PathBuf, reason: String },
    /// The private key is not the trusted authority's.
    #[error("{} does not belong to the trusted authority key {public}", path.display())]
    WrongAuthorityKey { path: PathBuf, public: PublicKey },
    /// The serial is at its maximum.
    #[error("directory serial cannot be raised any further")]
    SerialExhausted,
    /// The edited document does not pass validation; nothing was written.
    #[error("the edited directory is not valid; nothing was written")]
    InvalidEdit(#[source] DirectoryError),
}

/// The default prefix of a node whose id is a six-digit region code: the code with trailing
/// `00` pairs stripped (410100 → 4101, 410000 → 41, 510104 → 510104). `None` for other ids.
pub fn default_serves(id: &NodeId) -> Option<Vec<RegionPrefix>> {
    let s = id.as_str();
    if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut p = s;
    while p.len() > 2 {
        match p.strip_suffix("00") {
            Some(shorter) => p = shorter,
            None => break,
        }
    }
    RegionPrefix::parse(p).ok().map(|p| vec![p])
}

/// The directory name of a node: the region's full name for a region code, else the id.
pub fn node_name(id: &NodeId) -> String {
    RegionCode::parse(id.as_str()).map_or_else(|_| id.to_string(), |r| r.full_name())
}

/// A node's directory entry: named after its region ([`node_name`]), pinning one certificate
/// fingerprint and one signing key valid from [`KEY_WINDOW_BACKDATE_DAYS`] before `now` until
/// `now + validity`.
pub fn node_entry(
    id: &NodeId,
    serves: Vec<RegionPrefix>,
    endpoint: String,
    tls_fingerprint: String,
    signing_key: PublicKey,
    now: DateTime<Utc>,
    validity: Duration,
) -> NodeEntry {
    NodeEntry {
        id: id.clone(),
        name: node_name(id),
        serves,
        endpoint,
        endpoints: Vec::new(),
        tls_fingerprints: vec![tls_fingerprint],
        signing_keys: vec![KeyWindow {
            key: signing_key,
            valid_from: now - Duration::days(KEY_WINDOW_BACKDATE_DAYS),
            valid_until: now + validity,
        }],
    }
}

/// The first directory of an exchange: serial 1, issued `now`, expiring `now + validity`, no
/// revocations.
pub fn first_document(
    nodes: Vec<NodeEntry>,
    now: DateTime<Utc>,
    validity: Duration,
) -> DirectoryDoc {
    DirectoryDoc {
        format: super::FORMAT.to_owned(),
        serial: 1,
        issued_at: now,
        expires_at: now + validity,
        nodes,
        revoked_certificates: Vec::new(),
        revoked_keys: Vec::new(),
        hash: crate::crypto::hash::HashAlg::Sha256,
    }
}

/// Raises the serial of `doc` by one and sets `issued_at` to `now`: the next directory.
pub fn next_issue(doc: &mut DirectoryDoc, now: DateTime<Utc>) -> Result<(), AssembleError> {
    doc.serial = doc
        .serial
        .checked_add(1)
        .ok_or(AssembleError::SerialExhausted)?;
    doc.issued_at = now;
    Ok(())
}

/// Re-signs the directory at `path` after `edit` changes it, with the authority key at
/// `authority_key` (checked to belong to `authority_public`).
///
/// The current directory is loaded and verified with `authority_public` (an expired one is
/// accepted, so that an expired directory can be renewed). Before `edit` runs, the serial is
/// raised by one and `issued_at` set to now, so `edit` may still override both (to test a
/// rollback, say). If `edit` moves `expires_at` to or before `issued_at` without touching
/// `issued_at` (to expire the directory), `issued_at` is moved back to one day before
/// `expires_at`. The result must pass directory validation; it atomically replaces `path`.
pub fn resign(
    path: &Path,
    authority_key: &Path,
    authority_public: &PublicKey,
    edit: impl FnOnce(&mut DirectoryDoc),
) -> Result<(), AssembleError> {
    let authority = load_authority_key(authority_key, authority_public)?;
    let current = load_even_if_expired(path, authority_public)?;
    let mut doc = current.doc().clone();
    let now = Utc::now();
    next_issue(&mut doc, now)?;
    edit(&mut doc);
    if doc.issued_at == now && doc.expires_at <= doc.issued_at {
        doc.issued_at = doc.expires_at - Duration::days(1);
    }
    let signed = document::sign(&doc, &authority).map_err(AssembleError::InvalidEdit)?;
    document::write_signed(path, &signed)?;
    Ok(())
}

/// Loads and verifies the directory like [`Directory::load`], but accepts an expired one.
pub fn load_even_if_expired(
    path: &Path,
    authority: &PublicKey,
) -> Result<Directory, DirectoryError> {
    match Directory::load(path, authority, Utc::now()) {
        Err(DirectoryError::Expired { .. }) => {
            // The signature and every validation rule are checked before expiry, so this one
            // verified. Verify again as of its own `issued_at` (before `expires_at`, by
            // validation), which skips only the expiry check.
            let bytes = fs::read(path).map_err(|e| document::io_error("read", path, e))?;
            let unverified: document::SignedDirectory =
                serde_json::from_slice(&bytes).map_err(DirectoryError::Syntax)?;
            Directory::from_signed_json(&bytes, authority, unverified.directory.issued_at)
        }
        other => other,
    }
}

/// Reads an authority public key file (`authority.pub`: base64url Ed25519 public key).
pub fn read_authority_public(path: &Path) -> Result<PublicKey, AssembleError> {
    let text = fs::read_to_string(path).map_err(|source| AssembleError::ReadAuthority {
        path: path.to_owned(),
        source,
    })?;
    text.trim()
        .parse::<PublicKey>()
        .map_err(|e| AssembleError::BadAuthorityPublic {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

/// Loads the authority's private key and checks it belongs to `public`.
pub fn load_authority_key(path: &Path, public: &PublicKey) -> Result<SigningKey, AssembleError> {
    let key = SigningKey::load(path)?;
    if key.public_key() != *public {
        return Err(AssembleError::WrongAuthorityKey {
            path: path.to_owned(),
            public: *public,
        });
    }
    Ok(key)
}

/// The port of an `https://host:port[/...]` endpoint.
pub fn endpoint_port(endpoint: &str) -> Option<u16> {
    let rest = endpoint.strip_prefix("https://")?;
    let authority = rest.split('/').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    if host.is_empty() || (host.contains(':') && !host.ends_with(']')) {
        return None;
    }
    port.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_prefixes_follow_the_region_code() {
        let p = |s: &str| default_serves(&NodeId::parse(s).unwrap()).map(|v| v[0].to_string());
        assert_eq!(p("410100").as_deref(), Some("4101"));
        assert_eq!(p("410000").as_deref(), Some("41"));
        assert_eq!(p("510104").as_deref(), Some("510104"));
        assert_eq!(p("000000").as_deref(), Some("00"));
        assert_eq!(p("zz-1"), None);
        assert_eq!(p("41010"), None);
        assert_eq!(p("4101000"), None);
    }

    #[test]
    fn endpoint_ports() {
        assert_eq!(endpoint_port("https://[::1]:7443"), Some(7443));
        assert_eq!(endpoint_port("https://a.example:8443/x"), Some(8443));
        assert_eq!(endpoint_port("https://a.example"), None);
        assert_eq!(endpoint_port("https://[::1]"), None);
    }
}
