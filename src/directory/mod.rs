//! The **signed directory** (DESIGN §2), like X-Road's global configuration: a JSON document,
//! signed with Ed25519 by a directory authority, listing every node of the exchange. This
//! module owns loading and verifying it, answering "which node serves this region" (longest
//! prefix), "is this TLS peer a node we know" and "which keys may have signed this version",
//! and swapping in a newer directory while the node runs.
//!
//! - [`assemble`]: building node entries and documents, and re-signing an edited document with
//!   the next serial (the authority's tooling, the development PKI);
//! - [`document`]: the file format (serde types), strict parsing, validation, signing and
//!   writing (for tooling);
//! - this file: the verified, immutable [`Directory`] with its lookups, the errors, and the
//!   reloadable [`DirectoryHandle`];
//! - [`watch`]: the [`Watcher`] that reloads the file when it changed (its loop, with `SIGHUP`,
//!   is the job `jobs::directory`);
//! - [`fetch`]: judging a directory offered by a peer (`GET /peer/v1/directory`): only a newer
//!   serial that verifies as on load is taken (the loop that asks the peers is the job
//!   `jobs::directory_fetch`).
//!
//! # File format
//!
//! ```json
//! {
//!   "directory": {
//!     "format": "hukou-sync-directory/1",
//!     "serial": 3,
//!     "issued_at": "2026-11-23T08:00:00Z",
//!     "expires_at": "2026-12-23T08:00:00Z",
//!     "nodes": [
//!       { "id": "410100", "name": "郑州市民政局", "serves": ["4101"],
//!         "endpoint": "https://127.0.0.1:7443",
//!         "tls_fingerprints": ["9f2c…(64 lower-case hex: SHA-256 of the certificate DER)"],
//!         "signing_keys": [ { "key": "(43 chars base64url Ed25519 public key)",
//!                             "valid_from": "2026-01-01T00:00:00Z",
//!                             "valid_until": "2027-01-01T00:00:00Z" } ] },
//!       { "id": "410000", "name": "河南省民政厅", "serves": ["41"], "...": "..." },
//!       { "id": "national", "name": "全国流动儿童数据交换中心", "serves": ["*"], "...": "..." }
//!     ],
//!     "revoked_certificates": ["(64 lower-case hex fingerprint)"],
//!     "revoked_keys": ["(base64url public key)"]
//!   },
//!   "signature": "(86 chars base64url Ed25519 signature)"
//! }
//! ```
//!
//! `signature` is the authority's Ed25519 signature over the RFC 8785 (JCS) canonical bytes of
//! the `directory` value, in [`SigningContext::Directory`](crate::crypto::SigningContext), i.e.
//! over `"hukou-sync/v1/directory\0" || JCS(directory)`. Whitespace and key order in the file
//! therefore do not matter; any change of content does. Every object is parsed with
//! `deny_unknown_fields`; `revoked_certificates` and `revoked_keys` may be omitted when empty.
//!
//! # Trust rules
//!
//! - A directory is accepted only if its signature verifies with the configured authority key,
//!   it is not expired (`now < expires_at`), and it passes [`DirectoryDoc::validate`]. An
//!   unsigned, wrongly signed, expired or invalid directory is refused with a
//!   [`DirectoryError`] that says which.
//! - A running node replaces its directory only with one whose serial is at least the current
//!   one ([`DirectoryHandle::reload_from`]); a lower serial is a rollback and is refused. On any
//!   error the current directory stays.
//! - Routing: the node for a region is the one serving the **longest** matching prefix; `*`
//!   matches every region with length 0, so it is the fallback.
//! - A TLS peer is the node named by its verified certificate's SAN; it is accepted only if the
//!   directory is not expired, the node is listed, the certificate's fingerprint is pinned for
//!   that node and not revoked ([`Directory::authenticate_peer`]).
//! - A version stamped at instant `at` verifies only with keys of its author whose window
//!   `[valid_from, valid_until)` contains `at` and that are not revoked
//!   ([`Directory::signing_keys_at`]).
//! - `issued_at` in the future is not refused: authority and node clocks may differ, and a
//!   directory only ever narrows what a node accepts to what the authority signed.

pub mod assemble;
pub mod document;
pub mod fetch;
pub mod watch;

#[cfg(test)]
mod fuzz;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use chrono::{DateTime, SecondsFormat, Utc};

use crate::crypto::{JcsError, PublicKey};
use crate::domain::{NodeId, RegionCode};

pub use document::{
    replace_with_bytes, sign, write_signed, DirectoryDoc, KeyWindow, NodeEntry, SignedDirectory,
    FINGERPRINT_LEN, FORMAT,
};
pub use watch::{WatchEvent, Watcher};

/// Largest directory file read. A directory of every county bureau in China (about 3,000
/// nodes of well under 1 KiB each) is a few MiB; anything beyond this is not a directory.
pub const MAX_DIRECTORY_FILE_LEN: u64 = 64 * 1024 * 1024;

/// Why a directory was refused (or could not be written).
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The authority's key could not sign.
    #[error(transparent)]
    Sign(#[from] crate::crypto::keys::SignError),
    /// Reading or writing the directory file failed.
    #[error("could not {action} directory file {}: {source}", path.display())]
    Io {
        /// What was being done: "read", "write", "rename into place"...
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The file is far larger than any directory.
    #[error("directory file {} is larger than {MAX_DIRECTORY_FILE_LEN} bytes; refusing to read it", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// Not JSON at all (the message carries line and column).
    #[error("directory is not valid JSON: {0}")]
    Syntax(#[source] serde_json::Error),
    /// JSON that does not have the directory's shape.
    #[error("directory JSON is not in the hukou-sync-directory/1 format at `{path}`: {message}")]
    Json {
        /// Where, e.g. `directory.nodes[2].serves[0]`.
        path: String,
        /// What is wrong there.
        message: String,
    },
    /// The file has no `signature` (or an empty one).
    #[error(
        "directory is not signed: expected {{\"directory\": {{...}}, \"signature\": \"<base64url>\"}} \
         with the directory authority's signature"
    )]
    NotSigned,
    /// The signature is not the trusted authority's over this content.
    #[error(
        "directory signature does not verify with the trusted authority key (key {authority}); \
         the file was altered or signed by another authority"
    )]
    BadSignature {
        /// [`PublicKey::fingerprint`] of the configured authority key.
        authority: String,
    },
    /// A `format` this code does not read.
    #[error("directory format {found:?} is not supported; expected {FORMAT:?}")]
    UnsupportedFormat {
        /// The format string found.
        found: String,
    },
    /// `now >= expires_at`.
    #[error(
        "directory expired at {} (it is now {}); install a newer directory from the directory \
         authority", rfc3339(.expires_at), rfc3339(.now)
    )]
    Expired {
        /// The directory's expiry.
        expires_at: DateTime<Utc>,
        /// The time it was checked at.
        now: DateTime<Utc>,
    },
    /// A document-level rule is broken.
    #[error("invalid directory: `{field}` {reason}")]
    Invalid {
        /// The field, e.g. `expires_at` or `revoked_certificates[3]`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A rule about one node entry is broken.
    #[error("invalid directory entry for node \"{node}\" (nodes[{index}]): `{field}` {reason}")]
    InvalidNode {
        /// The node's id as written.
        node: String,
        /// Its position in `nodes`.
        index: usize,
        /// The field, e.g. `endpoint` or `tls_fingerprints[1]`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A directory older than the one in use.
    #[error(
        "directory serial {offered} is lower than the current serial {current}; refusing to roll \
         back the directory"
    )]
    Rollback {
        /// Serial in use.
        current: u64,
        /// Serial offered.
        offered: u64,
    },
    /// A reload declaring another content hash than the directory in use: a network's hash
    /// is fixed for its life (its stored ids and audit tree were made with it).
    #[error(
        "the directory declares the content hash {offered} but the network uses {current}; a \
         network's hash cannot change"
    )]
    HashChanged {
        /// Hash in use.
        current: crate::crypto::hash::HashAlg,
        /// Hash offered.
        offered: crate::crypto::hash::HashAlg,
    },
    /// The content has no canonical form (e.g. an integer beyond 2^53), so it cannot be signed.
    #[error("directory has no canonical (RFC 8785) form: {0}")]
    Canonical(#[from] JcsError),
    /// Serializing a directory to JSON failed.
    #[error("could not serialize the directory: {0}")]
    Serialize(#[source] serde_json::Error),
}

/// `2026-12-23T08:00:00Z`: RFC 3339 in UTC with `Z`, as in the file.
fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Why a TLS peer is not accepted as a node. [`PeerRefusal::code`] is the stable code for
/// problem+json responses and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PeerRefusal {
    /// The certificate's node id is not in the directory.
    #[error("the peer's node id is not in the directory")]
    UnknownNode,
    /// The node is listed, but this certificate's fingerprint is not pinned for it.
    #[error("the peer's TLS certificate is not pinned for its node in the directory")]
    FingerprintNotPinned,
    /// The certificate's fingerprint is on the directory's revocation list.
    #[error("the peer's TLS certificate is revoked in the directory")]
    CertificateRevoked,
    /// The directory in use has expired; no peer is accepted until a fresh one is installed.
    #[error("the directory has expired; no peer is accepted until a newer one is installed")]
    DirectoryExpired,
}

impl PeerRefusal {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            PeerRefusal::UnknownNode => "unknown_node",
            PeerRefusal::FingerprintNotPinned => "certificate_not_pinned",
            PeerRefusal::CertificateRevoked => "certificate_revoked",
            PeerRefusal::DirectoryExpired => "directory_expired",
        }
    }
}

/// A verified directory: signature checked against the authority key, not expired when loaded,
/// valid. Immutable; share it in an [`Arc`] (see [`DirectoryHandle`]).
#[derive(Debug)]
pub struct Directory {
    /// Invariant: signed by the trusted authority, validated ([`DirectoryDoc::validate`]), and
    /// not expired at the instant it was loaded.
    doc: DirectoryDoc,
    /// Node id → index into `doc.nodes`. Invariant: exactly the ids of `doc.nodes` (unique by
    /// validation), every index in range.
    by_id: HashMap<NodeId, usize>,
    /// Served prefix digits (`""` for `*`) → index into `doc.nodes`. Invariant: one entry per
    /// served prefix (unique by validation), every index in range.
    routes: HashMap<String, usize>,
    /// `doc.revoked_certificates`, for lookup (all lower-case by validation).
    revoked_certificates: HashSet<String>,
    /// `doc.revoked_keys`, for lookup.
    revoked_keys: HashSet<PublicKey>,
    /// The signed JSON `doc` was verified from, byte for byte: what this node answers a peer
    /// asking for its directory (a re-serialized document could differ from what the
    /// authority signed, e.g. in how a time is written, and would no longer verify).
    signed_json: Arc<[u8]>,
}

impl Directory {
    /// Parses and verifies a signed directory file's bytes: the signature against the trusted
    /// `authority` key, not expired at `now`, and every validation rule. See the module docs
    /// for the format and [`document`] for the order of checks.
    pub fn from_signed_json(
        bytes: &[u8],
        authority: &PublicKey,
        now: DateTime<Utc>,
    ) -> Result<Directory, DirectoryError> {
        let doc = document::verify_signed_json(bytes, authority)?;
        if now >= doc.expires_at {
            return Err(DirectoryError::Expired {
                expires_at: doc.expires_at,
                now,
            });
        }
        Ok(Directory::index(doc, bytes))
    }

    /// Reads the file at `path` (at most [`MAX_DIRECTORY_FILE_LEN`] bytes) and verifies it as
    /// [`Directory::from_signed_json`] does. For start-up; a running node uses
    /// [`DirectoryHandle::reload_from`].
    pub fn load(
        path: &Path,
        authority: &PublicKey,
        now: DateTime<Utc>,
    ) -> Result<Directory, DirectoryError> {
        let file = File::open(path).map_err(|e| document::io_error("open", path, e))?;
        let mut bytes = Vec::new();
        file.take(MAX_DIRECTORY_FILE_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| document::io_error("read", path, e))?;
        if bytes.len() as u64 > MAX_DIRECTORY_FILE_LEN {
            return Err(DirectoryError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        Directory::from_signed_json(&bytes, authority, now)
    }

    /// Reads and verifies a directory file as [`Directory::load`] does, except that an expired
    /// directory is accepted: for checking signatures offline (checkpoints, witness evidence),
    /// where the question is which keys a node had, not whether to talk to it now.
    pub fn load_for_verification(
        path: &Path,
        authority: &PublicKey,
    ) -> Result<Directory, DirectoryError> {
        let file = File::open(path).map_err(|e| document::io_error("open", path, e))?;
        let mut bytes = Vec::new();
        file.take(MAX_DIRECTORY_FILE_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| document::io_error("read", path, e))?;
        if bytes.len() as u64 > MAX_DIRECTORY_FILE_LEN {
            return Err(DirectoryError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        let doc = document::verify_signed_json(&bytes, authority)?;
        Ok(Directory::index(doc, &bytes))
    }

    /// Builds the lookup tables of a verified, validated document; `signed_json` is the file
    /// it was verified from.
    fn index(doc: DirectoryDoc, signed_json: &[u8]) -> Directory {
        let mut by_id = HashMap::with_capacity(doc.nodes.len());
        let mut routes = HashMap::new();
        for (i, node) in doc.nodes.iter().enumerate() {
            by_id.insert(node.id.clone(), i);
            for prefix in &node.serves {
                routes.insert(prefix.digits().to_owned(), i);
            }
        }
        Directory {
            revoked_certificates: doc.revoked_certificates.iter().cloned().collect(),
            revoked_keys: doc.revoked_keys.iter().copied().collect(),
            by_id,
            routes,
            doc,
            signed_json: Arc::from(signed_json),
        }
    }

    /// The signed directory file this directory was verified from, byte for byte (what a peer
    /// asking `GET /peer/v1/directory` receives, and what a node writes to its file when it
    /// takes this directory from a peer).
    pub fn signed_json(&self) -> &Arc<[u8]> {
        &self.signed_json
    }

    /// The verified document.
    pub fn doc(&self) -> &DirectoryDoc {
        &self.doc
    }

    /// The directory's serial.
    pub fn serial(&self) -> u64 {
        self.doc.serial
    }

    /// The network's content hash, as the directory declares it (SHA-256 when it says none).
    pub fn hash(&self) -> crate::crypto::hash::HashAlg {
        self.doc.hash
    }

    /// When the authority issued it.
    pub fn issued_at(&self) -> DateTime<Utc> {
        self.doc.issued_at
    }

    /// When it expires.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.doc.expires_at
    }

    /// Whether it has expired at `now` (`now >= expires_at`).
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.doc.expires_at
    }

    /// The entry of node `id`, if listed.
    pub fn node(&self, id: &NodeId) -> Option<&NodeEntry> {
        self.by_id.get(id).and_then(|&i| self.doc.nodes.get(i))
    }

    /// Every node, in the order of the document.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeEntry> {
        self.doc.nodes.iter()
    }

    /// The node serving `region`: the one with the longest matching prefix; `*` (the empty
    /// prefix) matches everything with length 0. `None` if no prefix matches.
    pub fn route(&self, region: &RegionCode) -> Option<&NodeEntry> {
        let code = region.as_str();
        (0..=code.len())
            .rev()
            .filter_map(|len| code.get(..len))
            .find_map(|prefix| self.routes.get(prefix))
            .and_then(|&i| self.doc.nodes.get(i))
    }

    /// The node behind a verified TLS client certificate, given the node id from its SAN URI
    /// and its fingerprint ([`crate::tls::fingerprint`]): the directory must not be expired at
    /// `now`, the node must be listed, the fingerprint must not be revoked and must be pinned
    /// for that node. The fingerprint is compared case-insensitively.
    pub fn authenticate_peer(
        &self,
        san_node_id: &str,
        cert_fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<&NodeEntry, PeerRefusal> {
        if self.is_expired(now) {
            return Err(PeerRefusal::DirectoryExpired);
        }
        let node = NodeId::parse(san_node_id)
            .ok()
            .and_then(|id| self.node(&id))
            .ok_or(PeerRefusal::UnknownNode)?;
        let fingerprint = cert_fingerprint.to_ascii_lowercase();
        if self.revoked_certificates.contains(&fingerprint) {
            return Err(PeerRefusal::CertificateRevoked);
        }
        if !node.tls_fingerprints.contains(&fingerprint) {
            return Err(PeerRefusal::FingerprintNotPinned);
        }
        Ok(node)
    }

    /// The record-signing keys of `node` whose window `[valid_from, valid_until)` contains `at`
    /// and that are not revoked, without duplicates: the keys that may verify a version stamped
    /// at `at`. Empty for an unknown node. (Expiry of the directory itself is the caller's
    /// concern: see [`Directory::is_expired`].)
    pub fn signing_keys_at(&self, node: &NodeId, at: DateTime<Utc>) -> Vec<PublicKey> {
        let mut keys = Vec::new();
        if let Some(entry) = self.node(node) {
            for window in &entry.signing_keys {
                if window.contains(at)
                    && !self.revoked_keys.contains(&window.key)
                    && !keys.contains(&window.key)
                {
                    keys.push(window.key);
                }
            }
        }
        keys
    }

    /// The keys that may sign `node`'s notes (checkpoints, cosignatures): every record-signing
    /// key the directory lists for it and has not revoked, whatever its window (a checkpoint is
    /// checked by who signed it, not by when). Empty for an unknown node.
    pub fn note_keys(&self, node: &NodeId) -> Vec<PublicKey> {
        let mut keys = Vec::new();
        if let Some(entry) = self.node(node) {
            for w in &entry.signing_keys {
                if !self.revoked_keys.contains(&w.key) && !keys.contains(&w.key) {
                    keys.push(w.key);
                }
            }
        }
        keys
    }

    /// Whether `key` is on the directory's revocation list.
    pub fn is_key_revoked(&self, key: &PublicKey) -> bool {
        self.revoked_keys.contains(key)
    }
}

/// What [`DirectoryHandle::reload_from`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The file holds the directory already in use (same serial, same content).
    Unchanged,
    /// The new directory is in use.
    Replaced {
        /// Serial of the directory replaced.
        old_serial: u64,
        /// Serial of the directory now in use.
        new_serial: u64,
    },
}

/// The directory in use, shared by every part of the node and swapped atomically on reload.
/// Cloning shares the same directory.
#[derive(Debug, Clone)]
pub struct DirectoryHandle {
    /// Invariant: always holds a verified directory; replaced only by one with a serial at
    /// least as high.
    inner: Arc<RwLock<Arc<Directory>>>,
}

impl DirectoryHandle {
    /// A handle holding `d`.
    pub fn new(d: Directory) -> Self {
        DirectoryHandle {
            inner: Arc::new(RwLock::new(Arc::new(d))),
        }
    }

    /// The directory in use now. Hold the returned `Arc` for the duration of one decision so
    /// that it is made against one directory.
    pub fn current(&self) -> Arc<Directory> {
        // A poisoned lock can only come from a panic while holding the write guard, and the
        // only thing done under it is assigning an `Arc`, so the value is always whole.
        Arc::clone(&self.inner.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Loads the file at `path`, verifies it (authority signature, expiry at `now`, rules) and
    /// installs it with [`DirectoryHandle::install`]. On any error the current directory stays.
    pub fn reload_from(
        &self,
        path: &Path,
        authority: &PublicKey,
        now: DateTime<Utc>,
    ) -> Result<ReloadOutcome, DirectoryError> {
        let new = Directory::load(path, authority, now)?;
        self.install(new)
    }

    /// Installs an already verified directory if its serial is at least the current one: the
    /// same serial and content is [`ReloadOutcome::Unchanged`]; a lower serial is refused as
    /// [`DirectoryError::Rollback`] and the current directory stays.
    pub fn install(&self, new: Directory) -> Result<ReloadOutcome, DirectoryError> {
        // See `current` on poisoning. The serial comparison is made under the write lock, so
        // concurrent reloads cannot interleave into a rollback.
        let mut guard = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let old_serial = guard.serial();
        let new_serial = new.serial();
        if new_serial < old_serial {
            return Err(DirectoryError::Rollback {
                current: old_serial,
                offered: new_serial,
            });
        }
        if new.hash() != guard.hash() {
            return Err(DirectoryError::HashChanged {
                current: guard.hash(),
                offered: new.hash(),
            });
        }
        if new_serial == old_serial {
            if new.doc == guard.doc {
                return Ok(ReloadOutcome::Unchanged);
            }
            tracing::warn!(
                serial = new_serial,
                "the directory authority issued different content under the same serial; \
                 using the newly loaded one"
            );
        }
        *guard = Arc::new(new);
        Ok(ReloadOutcome::Replaced {
            old_serial,
            new_serial,
        })
    }
}

/// Documents, keys and times shared by the tests of this module and its children.
#[cfg(test)]
pub(crate) mod testutil {
    use chrono::{DateTime, Utc};

    use super::{DirectoryDoc, KeyWindow, NodeEntry, FORMAT};
    use crate::crypto::PublicKey;
    use crate::domain::{NodeId, RegionPrefix};

    pub fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// The "current time" of the tests: an hour after the sample was issued.
    pub fn now() -> DateTime<Utc> {
        t("2026-11-23T09:00:00Z")
    }

    /// A distinct well-formed fingerprint per seed.
    pub fn fp(seed: u8) -> String {
        format!("{seed:02x}").repeat(32)
    }

    /// A distinct public key per seed (not necessarily a curve point; never verified with).
    pub fn key(seed: u8) -> PublicKey {
        PublicKey::from_bytes([seed; 32])
    }

    /// A valid node entry; `seed` picks its fingerprint and key.
    pub fn node(id: &str, serves: &[&str], seed: u8) -> NodeEntry {
        NodeEntry {
            id: NodeId::parse(id).unwrap(),
            name: format!("node {id}"),
            serves: serves
                .iter()
                .map(|p| RegionPrefix::parse(p).unwrap())
                .collect(),
            endpoint: "https://127.0.0.1:7443".into(),
            endpoints: Vec::new(),
            tls_fingerprints: vec![fp(seed)],
            signing_keys: vec![KeyWindow {
                key: key(seed),
                valid_from: t("2026-01-01T00:00:00Z"),
                valid_until: t("2027-01-01T00:00:00Z"),
            }],
        }
    }

    /// A city node `410100` serving `4101` (seed 1) and a province node `410000` serving `41`
    /// (seed 2), issued 2026-11-23T08:00Z, expiring a month later.
    pub fn sample_doc(serial: u64) -> DirectoryDoc {
        let mut city = node("410100", &["4101"], 1);
        city.name = "郑州市民政局".into();
        let mut province = node("410000", &["41"], 2);
        province.name = "河南省民政厅".into();
        DirectoryDoc {
            format: FORMAT.into(),
            serial,
            issued_at: t("2026-11-23T08:00:00Z"),
            expires_at: t("2026-12-23T08:00:00Z"),
            nodes: vec![city, province],
            revoked_certificates: vec![],
            revoked_keys: vec![],
            hash: crate::crypto::hash::HashAlg::Sha256,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::{fp, key, node, now, sample_doc, t};
    use super::*;
    use crate::crypto::SigningKey;

    fn authority() -> SigningKey {
        SigningKey::generate().unwrap().0
    }

    fn signed_json(doc: &DirectoryDoc, key: &SigningKey) -> Vec<u8> {
        serde_json::to_vec_pretty(&sign(doc, key).unwrap()).unwrap()
    }

    fn load(doc: &DirectoryDoc) -> Directory {
        let key = authority();
        Directory::from_signed_json(&signed_json(doc, &key), &key.public_key(), now()).unwrap()
    }

    fn code(s: &str) -> RegionCode {
        RegionCode::parse(s).unwrap()
    }

    fn id(s: &str) -> NodeId {
        NodeId::parse(s).unwrap()
    }

    #[test]
    fn round_trip() {
        let key = authority();
        let doc = sample_doc(3);
        let d = Directory::from_signed_json(&signed_json(&doc, &key), &key.public_key(), now())
            .unwrap();
        assert_eq!(d.doc(), &doc);
        assert_eq!(d.serial(), 3);
        assert_eq!(d.issued_at(), t("2026-11-23T08:00:00Z"));
        assert_eq!(d.expires_at(), t("2026-12-23T08:00:00Z"));
        assert!(!d.is_expired(now()));
        assert!(d.is_expired(d.expires_at()));
        assert_eq!(d.node(&id("410100")).unwrap().name, "郑州市民政局");
        assert!(d.node(&id("510100")).is_none());
        let ids: Vec<_> = d.nodes().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["410100", "410000"]);
        // Whitespace and key order are not signed: compact JSON verifies too.
        let compact = serde_json::to_vec(&sign(&doc, &key).unwrap()).unwrap();
        Directory::from_signed_json(&compact, &key.public_key(), now()).unwrap();
    }

    #[test]
    fn wrong_authority_is_refused() {
        let json = signed_json(&sample_doc(1), &authority());
        let err = Directory::from_signed_json(&json, &authority().public_key(), now()).unwrap_err();
        assert!(matches!(err, DirectoryError::BadSignature { .. }), "{err}");
        assert!(err
            .to_string()
            .starts_with("directory signature does not verify with the trusted authority key"));
    }

    #[test]
    fn altered_byte_is_refused() {
        let key = authority();
        let json = String::from_utf8(signed_json(&sample_doc(1), &key)).unwrap();
        for (from, to) in [
            ("127.0.0.1:7443", "127.0.0.1:7444"),
            ("\"serial\": 1", "\"serial\": 9"),
            ("\"4101\"", "\"4102\""),
        ] {
            assert!(json.contains(from), "{from}");
            let altered = json.replacen(from, to, 1);
            assert_eq!(altered.len(), json.len());
            let err = Directory::from_signed_json(altered.as_bytes(), &key.public_key(), now())
                .unwrap_err();
            assert!(matches!(err, DirectoryError::BadSignature { .. }), "{err}");
        }
    }

    #[test]
    fn unsigned_is_refused() {
        let key = authority();
        let signed = sign(&sample_doc(1), &key).unwrap();
        let mut value = serde_json::to_value(&signed).unwrap();
        value.as_object_mut().unwrap().remove("signature");
        let err = Directory::from_signed_json(
            &serde_json::to_vec(&value).unwrap(),
            &key.public_key(),
            now(),
        )
        .unwrap_err();
        assert!(matches!(err, DirectoryError::NotSigned));
        assert!(
            err.to_string().starts_with("directory is not signed"),
            "{err}"
        );

        // A bare document (no envelope) and an empty signature are "not signed" too.
        let bare = serde_json::to_vec(&signed.directory).unwrap();
        let err = Directory::from_signed_json(&bare, &key.public_key(), now()).unwrap_err();
        assert!(matches!(err, DirectoryError::NotSigned), "{err}");
        value["signature"] = "".into();
        let err = Directory::from_signed_json(
            &serde_json::to_vec(&value).unwrap(),
            &key.public_key(),
            now(),
        )
        .unwrap_err();
        assert!(matches!(err, DirectoryError::NotSigned), "{err}");
    }

    #[test]
    fn expired_is_refused() {
        let key = authority();
        let doc = sample_doc(1);
        let json = signed_json(&doc, &key);
        let err =
            Directory::from_signed_json(&json, &key.public_key(), doc.expires_at).unwrap_err();
        assert!(matches!(err, DirectoryError::Expired { .. }), "{err}");
        assert!(
            err.to_string().starts_with(
                "directory expired at 2026-12-23T08:00:00Z (it is now 2026-12-23T08:00:00Z)"
            ),
            "{err}"
        );
    }

    #[test]
    fn unsupported_format_is_reported_after_the_signature() {
        let key = authority();
        let mut doc = sample_doc(1);
        doc.format = "hukou-sync-directory/2".into();
        let canonical = crate::crypto::to_canonical_vec(&doc).unwrap();
        let signed = SignedDirectory {
            signature: key
                .sign(crate::crypto::SigningContext::Directory, &canonical)
                .unwrap(),
            directory: doc,
        };
        let json = serde_json::to_vec(&signed).unwrap();
        let err = Directory::from_signed_json(&json, &key.public_key(), now()).unwrap_err();
        assert!(
            matches!(err, DirectoryError::UnsupportedFormat { .. }),
            "{err}"
        );
        // With the wrong key, the signature is what is reported.
        let err = Directory::from_signed_json(&json, &authority().public_key(), now()).unwrap_err();
        assert!(matches!(err, DirectoryError::BadSignature { .. }), "{err}");
    }

    #[test]
    fn longest_prefix_routing() {
        let d = load(&sample_doc(1));
        assert_eq!(d.route(&code("410105")).unwrap().id.as_str(), "410100");
        assert_eq!(d.route(&code("410305")).unwrap().id.as_str(), "410000");
        assert!(d.route(&code("510104")).is_none());

        let mut doc = sample_doc(1);
        doc.nodes.push(node("national", &["*"], 3));
        doc.nodes.push(node("410105", &["410105"], 4));
        let d = load(&doc);
        assert_eq!(d.route(&code("410105")).unwrap().id.as_str(), "410105");
        assert_eq!(d.route(&code("410102")).unwrap().id.as_str(), "410100");
        assert_eq!(d.route(&code("410305")).unwrap().id.as_str(), "410000");
        assert_eq!(d.route(&code("510104")).unwrap().id.as_str(), "national");
    }

    #[test]
    fn authenticate_peer_cases() {
        let mut doc = sample_doc(1);
        doc.nodes[0].tls_fingerprints.push(fp(7));
        doc.revoked_certificates.push(fp(7));
        doc.revoked_certificates.push(fp(8));
        let d = load(&doc);
        let ok = d.authenticate_peer("410100", &fp(1), now()).unwrap();
        assert_eq!(ok.id.as_str(), "410100");
        assert!(d
            .authenticate_peer("410100", &fp(1).to_uppercase(), now())
            .is_ok());
        let refusal = |node: &str, fingerprint: &str| {
            d.authenticate_peer(node, fingerprint, now()).unwrap_err()
        };
        assert_eq!(refusal("510100", &fp(1)), PeerRefusal::UnknownNode);
        assert_eq!(refusal("Not A Node", &fp(1)), PeerRefusal::UnknownNode);
        assert_eq!(refusal("410100", &fp(2)), PeerRefusal::FingerprintNotPinned);
        assert_eq!(refusal("410100", &fp(7)), PeerRefusal::CertificateRevoked);
        assert_eq!(refusal("410000", &fp(8)), PeerRefusal::CertificateRevoked);
        assert_eq!(
            d.authenticate_peer("410100", &fp(1), d.expires_at()),
            Err(PeerRefusal::DirectoryExpired)
        );
        let codes: Vec<_> = [
            PeerRefusal::UnknownNode,
            PeerRefusal::FingerprintNotPinned,
            PeerRefusal::CertificateRevoked,
            PeerRefusal::DirectoryExpired,
        ]
        .iter()
        .map(PeerRefusal::code)
        .collect();
        assert_eq!(
            codes,
            [
                "unknown_node",
                "certificate_not_pinned",
                "certificate_revoked",
                "directory_expired"
            ]
        );
    }

    #[test]
    fn authenticate_peer_with_a_real_certificate() {
        use crate::tls::{fingerprint, node_id_of, pki};
        let ca = pki::generate_ca("test exchange CA").unwrap();
        let issued = pki::issue_node_cert(&ca, "410100", pki::DEFAULT_HOSTS).unwrap();
        let cert = pki::load_certs_from_pem(&issued.cert_pem)
            .unwrap()
            .remove(0);
        let other = pki::issue_node_cert(&ca, "410100", pki::DEFAULT_HOSTS).unwrap();
        let other = pki::load_certs_from_pem(&other.cert_pem).unwrap().remove(0);

        let mut doc = sample_doc(1);
        doc.nodes[0].tls_fingerprints = vec![fingerprint(&cert)];
        let d = load(&doc);
        let san = node_id_of(&cert).unwrap();
        assert_eq!(
            d.authenticate_peer(&san, &fingerprint(&cert), now())
                .unwrap()
                .id
                .as_str(),
            "410100"
        );
        // Same node id, same CA, but not the pinned certificate.
        assert_eq!(
            d.authenticate_peer(&node_id_of(&other).unwrap(), &fingerprint(&other), now()),
            Err(PeerRefusal::FingerprintNotPinned)
        );
    }

    #[test]
    fn signing_keys_honour_windows_and_revocation() {
        let mut doc = sample_doc(1);
        // 410100: key 1 for 2026; key 5 from mid-2026 to 2028; key 6 likewise but revoked.
        let window = |seed, from, until| KeyWindow {
            key: key(seed),
            valid_from: t(from),
            valid_until: t(until),
        };
        doc.nodes[0]
            .signing_keys
            .push(window(5, "2026-07-01T00:00:00Z", "2028-01-01T00:00:00Z"));
        doc.nodes[0]
            .signing_keys
            .push(window(6, "2026-07-01T00:00:00Z", "2028-01-01T00:00:00Z"));
        // Key 5 listed again with an overlapping window: returned once.
        doc.nodes[0]
            .signing_keys
            .push(window(5, "2026-06-01T00:00:00Z", "2026-08-01T00:00:00Z"));
        doc.revoked_keys.push(key(6));
        let d = load(&doc);
        let city = id("410100");
        assert!(d
            .signing_keys_at(&city, t("2025-12-31T23:59:59Z"))
            .is_empty());
        assert_eq!(
            d.signing_keys_at(&city, t("2026-01-01T00:00:00Z")),
            [key(1)]
        );
        assert_eq!(
            d.signing_keys_at(&city, t("2026-07-15T00:00:00Z")),
            [key(1), key(5)]
        );
        // valid_until is exclusive.
        assert_eq!(
            d.signing_keys_at(&city, t("2027-01-01T00:00:00Z")),
            [key(5)]
        );
        assert!(d
            .signing_keys_at(&city, t("2028-01-01T00:00:00Z"))
            .is_empty());
        assert!(d.signing_keys_at(&id("510100"), now()).is_empty());
        assert_eq!(d.signing_keys_at(&id("410000"), now()), [key(2)]);
        assert!(d.is_key_revoked(&key(6)));
        assert!(!d.is_key_revoked(&key(5)));
    }

    #[test]
    fn reload_rules() {
        let key = authority();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("directory.json");
        let write = |doc: &DirectoryDoc| write_signed(&path, &sign(doc, &key).unwrap()).unwrap();

        write(&sample_doc(3));
        let handle =
            DirectoryHandle::new(Directory::load(&path, &key.public_key(), now()).unwrap());
        let shared = handle.clone();
        let auth = key.public_key();

        // Same serial, same content.
        assert_eq!(
            handle.reload_from(&path, &auth, now()).unwrap(),
            ReloadOutcome::Unchanged
        );

        // Higher serial replaces, visible through every clone.
        let before = handle.current();
        write(&sample_doc(4));
        assert_eq!(
            handle.reload_from(&path, &auth, now()).unwrap(),
            ReloadOutcome::Replaced {
                old_serial: 3,
                new_serial: 4
            }
        );
        assert_eq!(shared.current().serial(), 4);
        assert_eq!(before.serial(), 3, "an Arc already taken stays as it was");

        // Lower serial is a rollback.
        write(&sample_doc(2));
        let err = handle.reload_from(&path, &auth, now()).unwrap_err();
        assert!(
            matches!(
                err,
                DirectoryError::Rollback {
                    current: 4,
                    offered: 2
                }
            ),
            "{err}"
        );
        assert_eq!(handle.current().serial(), 4);

        // Invalid files keep the current directory.
        std::fs::write(&path, b"{ not json").unwrap();
        assert!(matches!(
            handle.reload_from(&path, &auth, now()),
            Err(DirectoryError::Syntax(_))
        ));
        write_signed(&path, &sign(&sample_doc(9), &authority()).unwrap()).unwrap();
        assert!(matches!(
            handle.reload_from(&path, &auth, now()),
            Err(DirectoryError::BadSignature { .. })
        ));
        write(&sample_doc(9));
        assert!(matches!(
            handle.reload_from(&path, &auth, t("2030-01-01T00:00:00Z")),
            Err(DirectoryError::Expired { .. })
        ));
        std::fs::remove_file(&path).unwrap();
        let err = handle.reload_from(&path, &auth, now()).unwrap_err();
        assert!(matches!(err, DirectoryError::Io { .. }), "{err}");
        assert!(err.to_string().contains("directory.json"), "{err}");
        assert_eq!(handle.current().serial(), 4);

        // Same serial, different content: the newer load wins.
        let mut doc = sample_doc(4);
        doc.nodes[0].endpoint = "https://10.0.0.1:7443".into();
        write(&doc);
        assert_eq!(
            handle.reload_from(&path, &auth, now()).unwrap(),
            ReloadOutcome::Replaced {
                old_serial: 4,
                new_serial: 4
            }
        );
        assert_eq!(
            handle.current().node(&id("410100")).unwrap().endpoint,
            "https://10.0.0.1:7443"
        );
    }
}
