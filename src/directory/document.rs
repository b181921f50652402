//! The directory document itself: its serde types ([`DirectoryDoc`], [`NodeEntry`],
//! [`KeyWindow`], [`SignedDirectory`]), the strict parse-then-verify of the signed JSON
//! (`verify_signed_json`), the validation rules ([`DirectoryDoc::validate`]), and, for tooling,
//! signing ([`sign`]) and writing ([`write_signed`], and [`replace_with_bytes`] for a directory
//! fetched from a peer).
//!
//! What is signed: the authority signs the RFC 8785 (JCS) canonical bytes of the `directory`
//! member **as it appears in the file**, in [`SigningContext::Directory`]. Verification works on
//! those same received bytes and only then interprets them, so what is verified is exactly what
//! is used, and insignificant whitespace or key order never breaks a signature. [`sign`] signs
//! JCS of the serialized [`DirectoryDoc`], which is the same value.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::DirectoryError;
use crate::crypto::hash::HashAlg;
use crate::crypto::jcs;
use crate::crypto::{PublicKey, Signature, SigningContext, SigningKey};
use crate::domain::{NodeId, RegionPrefix};

/// The `format` string of the only directory format this code reads.
pub const FORMAT: &str = "hukou-sync-directory/1";

/// Length of a certificate fingerprint: lower-case hex SHA-256 of the DER.
pub const FINGERPRINT_LEN: usize = 64;

/// Mode of a file written by [`write_signed`]: the directory is public, not secret.
const DIRECTORY_FILE_MODE: u32 = 0o644;

/// The unsigned content of a directory: what the authority signs.
///
/// Deserializing one checks only its shape; [`DirectoryDoc::validate`] checks the rules, and
/// [`super::Directory::from_signed_json`] checks the signature, the expiry and the rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryDoc {
    /// Always [`FORMAT`] (`hukou-sync-directory/1`) in a valid document.
    pub format: String,
    /// Issue number, increasing with every directory the authority publishes. A node never
    /// replaces its directory with one of a lower serial (that would be a rollback).
    pub serial: u64,
    /// When the authority issued it.
    pub issued_at: DateTime<Utc>,
    /// After this instant the directory is refused. Valid documents have
    /// `expires_at > issued_at`.
    pub expires_at: DateTime<Utc>,
    /// Every node of the exchange. Valid documents have unique ids, and no served prefix,
    /// pinned fingerprint or signing key appears under two nodes.
    pub nodes: Vec<NodeEntry>,
    /// Fingerprints (64 lower-case hex) of TLS certificates that must no longer be accepted,
    /// even if still pinned. May be omitted in the file when empty.
    #[serde(default)]
    pub revoked_certificates: Vec<String>,
    /// Record-signing keys that must no longer be trusted, whatever their windows say. May be
    /// omitted in the file when empty.
    #[serde(default)]
    pub revoked_keys: Vec<PublicKey>,
    /// The network's content hash (`"sha256"` or `"sm3"`): version ids, receipt digests, the
    /// audit tree and the reconciliation summary of every node use it, never a mix. Absent
    /// means SHA-256 and is how SHA-256 is written, so a directory signed before this field
    /// existed keeps its bytes and its signature. Fixed for the life of a network: a node
    /// refuses a directory declaring another hash than its stored data uses.
    #[serde(default, skip_serializing_if = "HashAlg::is_default")]
    pub hash: HashAlg,
}

/// Most further endpoints one node may list (its processes beyond the first).
pub const MAX_EXTRA_ENDPOINTS: usize = 8;

impl NodeEntry {
    /// Every base URL of the node's peer listener, `endpoint` first.
    pub fn all_endpoints(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.endpoint.as_str()).chain(self.endpoints.iter().map(String::as_str))
    }
}

/// One node (bureau or province) of the exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    /// The node id, as carried in its TLS certificate's SAN URI `urn:hukou-sync:node:<id>`.
    pub id: NodeId,
    /// Human-readable name of the bureau (e.g. `郑州市民政局`); not blank in a valid document.
    pub name: String,
    /// Region prefixes the node serves; each prefix is served by at most one node. May be empty
    /// (a node that takes part in the exchange but no region routes to).
    pub serves: Vec<RegionPrefix>,
    /// Base URL of its peer listener; starts with `https://` in a valid document.
    pub endpoint: String,
    /// Further base URLs of the same node's peer listener — its other `serve` processes, when
    /// it runs several on one database without a load balancer in front. Senders fail over to
    /// them in order after `endpoint`. At most [`MAX_EXTRA_ENDPOINTS`], each `https://`; absent
    /// when empty, so the bytes of directories without it are unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    /// SHA-256 fingerprints (64 lower-case hex) of the TLS certificates it may present; at
    /// least one in a valid document.
    pub tls_fingerprints: Vec<String>,
    /// Its record-signing keys with their validity windows; at least one in a valid document.
    pub signing_keys: Vec<KeyWindow>,
}

/// A record-signing key and the half-open interval `[valid_from, valid_until)` in which
/// versions stamped by it are accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyWindow {
    /// The Ed25519 public key (base64url).
    pub key: PublicKey,
    /// First instant the key is valid (inclusive).
    pub valid_from: DateTime<Utc>,
    /// First instant the key is no longer valid (exclusive); after `valid_from` in a valid
    /// document.
    pub valid_until: DateTime<Utc>,
}

impl KeyWindow {
    /// Whether `at` lies in `[valid_from, valid_until)`.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.valid_from <= at && at < self.valid_until
    }
}

/// A directory and the authority's signature over JCS(`directory`): the file format.
///
/// Deserializing this type does **not** verify anything; read files with
/// [`super::Directory::from_signed_json`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedDirectory {
    /// The signed content.
    pub directory: DirectoryDoc,
    /// Ed25519 signature by the directory authority over JCS(`directory`) in
    /// [`SigningContext::Directory`].
    pub signature: Signature,
}

/// Validates `doc` and signs it with the authority key. Refuses (with the validation error) to
/// sign a document that would be refused when loaded.
pub fn sign(doc: &DirectoryDoc, authority: &SigningKey) -> Result<SignedDirectory, DirectoryError> {
    doc.validate()?;
    let canonical = jcs::to_canonical_vec(doc)?;
    Ok(SignedDirectory {
        directory: doc.clone(),
        signature: authority.sign(SigningContext::Directory, &canonical)?,
    })
}

/// Writes `signed` to `path` as pretty JSON (UTF-8, trailing newline) with mode 0644.
///
/// The file is replaced atomically: the JSON is written and fsynced to a temporary file in the
/// same directory, which is then renamed over `path`, so a node watching the file never reads
/// half a directory.
pub fn write_signed(
    path: impl AsRef<Path>,
    signed: &SignedDirectory,
) -> Result<(), DirectoryError> {
    let mut json = serde_json::to_vec_pretty(signed).map_err(DirectoryError::Serialize)?;
    json.push(b'\n');
    replace_file(path.as_ref(), &json, DIRECTORY_FILE_MODE)
}

/// Replaces the directory file at `path` with `bytes` — a signed directory exactly as it was
/// received and verified (a node that fetched a newer one from a peer) — atomically as
/// [`write_signed`] does, keeping the mode of the file replaced (0644 when there was none), so
/// that a restart loads what the node uses now.
pub fn replace_with_bytes(path: &Path, bytes: &[u8]) -> Result<(), DirectoryError> {
    let mode = fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(DIRECTORY_FILE_MODE);
    replace_file(path, bytes, mode)
}

/// Writes `bytes` to a temporary file beside `path` with `mode`, fsyncs it, renames it over
/// `path` and fsyncs the directory.
fn replace_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), DirectoryError> {
    let Some(file_name) = path.file_name() else {
        return Err(io_error(
            "write",
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"),
        ));
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    // A temporary file left by a crashed earlier run of this process id is ours to remove;
    // `create_new` below then refuses anything that appears in between.
    let _ = fs::remove_file(&tmp);
    let written = write_new_file(&tmp, bytes, mode)
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| io_error("rename into place", path, e)));
    if let Err(e) = written {
        // Best effort: the write error is the one worth reporting.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("sync the directory of", path, e))
}

/// Creates `path` (which must not exist), writes `bytes`, sets `mode` exactly (the umask may
/// have narrowed it) and fsyncs.
fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), DirectoryError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| io_error("create", path, e))?;
    file.write_all(bytes)
        .map_err(|e| io_error("write", path, e))?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| io_error("set permissions of", path, e))?;
    file.sync_all().map_err(|e| io_error("sync", path, e))
}

pub(super) fn io_error(action: &'static str, path: &Path, source: io::Error) -> DirectoryError {
    DirectoryError::Io {
        action,
        path: PathBuf::from(path),
        source,
    }
}

/// Parses a signed directory file strictly and verifies its signature; returns the document,
/// **validated** (but not checked for expiry, which needs the current time).
///
/// Order: JSON syntax → envelope (`directory` and `signature` only; no signature is
/// [`DirectoryError::NotSigned`]) → signature over JCS of the received `directory` value →
/// format string → typed parse (errors carry the JSON path) → [`DirectoryDoc::validate`].
/// Nothing in the document is interpreted before its signature has verified.
pub(super) fn verify_signed_json(
    bytes: &[u8],
    authority: &PublicKey,
) -> Result<DirectoryDoc, DirectoryError> {
    let top: Value = serde_json::from_slice(bytes).map_err(DirectoryError::Syntax)?;
    let Value::Object(mut top) = top else {
        return Err(DirectoryError::Json {
            path: "(top level)".into(),
            message: "expected an object {\"directory\": {...}, \"signature\": \"...\"}".into(),
        });
    };
    let signature = match top.remove("signature") {
        None | Some(Value::Null) => return Err(DirectoryError::NotSigned),
        Some(Value::String(s)) if s.is_empty() => return Err(DirectoryError::NotSigned),
        Some(Value::String(s)) => s.parse::<Signature>().map_err(|e| DirectoryError::Json {
            path: "signature".into(),
            message: e.to_string(),
        })?,
        Some(_) => {
            return Err(DirectoryError::Json {
                path: "signature".into(),
                message: "expected a base64url string".into(),
            })
        }
    };
    let directory = top
        .remove("directory")
        .ok_or_else(|| DirectoryError::Json {
            path: "directory".into(),
            message: "missing field `directory`".into(),
        })?;
    if let Some(extra) = top.keys().next() {
        return Err(DirectoryError::Json {
            path: extra.clone(),
            message: format!("unknown field `{extra}`, expected only `directory` and `signature`"),
        });
    }

    let canonical = jcs::canonicalize(&directory)?;
    authority
        .verify(SigningContext::Directory, &canonical, &signature)
        .map_err(|_| DirectoryError::BadSignature {
            authority: authority.fingerprint(),
        })?;

    // Checked before the typed parse so that a newer format is reported as such, not as an
    // unknown field somewhere inside it.
    if let Some(Value::String(found)) = directory.get("format") {
        if found != FORMAT {
            return Err(DirectoryError::UnsupportedFormat {
                found: found.clone(),
            });
        }
    }
    let doc: DirectoryDoc = serde_path_to_error::deserialize(directory).map_err(|e| {
        let inner = e.path().to_string();
        let path = if inner == "." {
            "directory".to_owned()
        } else {
            format!("directory.{inner}")
        };
        DirectoryError::Json {
            path,
            message: e.into_inner().to_string(),
        }
    })?;
    doc.validate()?;
    Ok(doc)
}

/// Whether `s` is 64 lower-case hex characters.
pub(super) fn is_fingerprint(s: &str) -> bool {
    s.len() == FINGERPRINT_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Why an endpoint is not acceptable, if it is not.
fn endpoint_problem(endpoint: &str) -> Option<String> {
    match endpoint.strip_prefix("https://") {
        None => Some(format!("must be an https:// URL, got {endpoint:?}")),
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            Some(format!("has no host after https://, got {endpoint:?}"))
        }
        Some(_)
            if endpoint
                .chars()
                .any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Some(format!(
                "must not contain whitespace or control characters, got {endpoint:?}"
            ))
        }
        Some(_) => None,
    }
}

impl DirectoryDoc {
    /// Checks the rules a directory must satisfy; the first failure is returned, naming the
    /// node (id and index) and the field.
    ///
    /// Rules: `format` is [`FORMAT`]; `expires_at > issued_at`; node ids unique; names not
    /// blank; no prefix served twice (by two nodes, or twice by one); endpoints `https://`;
    /// at least one fingerprint, each 64 lower-case hex and pinned for one node only; at least
    /// one signing key, each window `valid_from < valid_until`, and no key listed for two
    /// nodes; revoked certificate fingerprints 64 lower-case hex.
    pub fn validate(&self) -> Result<(), DirectoryError> {
        if self.format != FORMAT {
            return Err(DirectoryError::UnsupportedFormat {
                found: self.format.clone(),
            });
        }
        if self.expires_at <= self.issued_at {
            return Err(DirectoryError::Invalid {
                field: "expires_at".into(),
                reason: format!(
                    "must be after issued_at ({}), got {}",
                    super::rfc3339(&self.issued_at),
                    super::rfc3339(&self.expires_at)
                ),
            });
        }

        let mut ids: HashMap<&NodeId, usize> = HashMap::new();
        let mut prefixes: HashMap<&RegionPrefix, &NodeId> = HashMap::new();
        let mut fingerprints: HashMap<&str, &NodeId> = HashMap::new();
        let mut keys: HashMap<&PublicKey, &NodeId> = HashMap::new();

        for (index, node) in self.nodes.iter().enumerate() {
            let bad = |field: String, reason: String| DirectoryError::InvalidNode {
                node: node.id.to_string(),
                index,
                field,
                reason,
            };

            if let Some(first) = ids.insert(&node.id, index) {
                return Err(bad(
                    "id".into(),
                    format!("duplicate node id: nodes[{first}] has the same id"),
                ));
            }
            if node.name.trim().is_empty() {
                return Err(bad("name".into(), "must not be blank".into()));
            }
            for (j, prefix) in node.serves.iter().enumerate() {
                if let Some(other) = prefixes.insert(prefix, &node.id) {
                    let reason = if *other == node.id {
                        format!("prefix {prefix} is listed twice")
                    } else {
                        format!(
                            "prefix {prefix} is already served by node \"{other}\"; two nodes \
                             may not serve the same prefix"
                        )
                    };
                    return Err(bad(format!("serves[{j}]"), reason));
                }
            }
            if let Some(reason) = endpoint_problem(&node.endpoint) {
                return Err(bad("endpoint".into(), reason));
            }
            if node.endpoints.len() > MAX_EXTRA_ENDPOINTS {
                return Err(bad(
                    "endpoints".into(),
                    format!("at most {MAX_EXTRA_ENDPOINTS} further endpoints"),
                ));
            }
            for (k, e) in node.endpoints.iter().enumerate() {
                if let Some(reason) = endpoint_problem(e) {
                    return Err(bad(format!("endpoints[{k}]"), reason));
                }
            }
            if node.tls_fingerprints.is_empty() {
                return Err(bad(
                    "tls_fingerprints".into(),
                    "must list at least one TLS certificate fingerprint".into(),
                ));
            }
            for (j, fp) in node.tls_fingerprints.iter().enumerate() {
                let field = format!("tls_fingerprints[{j}]");
                if !is_fingerprint(fp) {
                    return Err(bad(
                        field,
                        format!(
                            "must be {FINGERPRINT_LEN} lower-case hex characters (SHA-256 of the \
                             certificate DER), got {fp:?}"
                        ),
                    ));
                }
                if let Some(other) = fingerprints.insert(fp, &node.id) {
                    let reason = if *other == node.id {
                        format!("fingerprint {fp} is listed twice")
                    } else {
                        format!("fingerprint {fp} is already pinned for node \"{other}\"")
                    };
                    return Err(bad(field, reason));
                }
            }
            if node.signing_keys.is_empty() {
                return Err(bad(
                    "signing_keys".into(),
                    "must list at least one record-signing key".into(),
                ));
            }
            for (j, window) in node.signing_keys.iter().enumerate() {
                if window.valid_from >= window.valid_until {
                    return Err(bad(
                        format!("signing_keys[{j}].valid_until"),
                        format!(
                            "must be after valid_from ({}), got {}",
                            super::rfc3339(&window.valid_from),
                            super::rfc3339(&window.valid_until)
                        ),
                    ));
                }
                // The same key may appear in several windows of one node, never under two.
                if let Some(other) = keys.insert(&window.key, &node.id) {
                    if *other != node.id {
                        return Err(bad(
                            format!("signing_keys[{j}].key"),
                            format!(
                                "key {} is already listed for node \"{other}\"; a record-signing \
                                 key belongs to one node",
                                window.key
                            ),
                        ));
                    }
                }
            }
        }

        for (j, fp) in self.revoked_certificates.iter().enumerate() {
            if !is_fingerprint(fp) {
                return Err(DirectoryError::Invalid {
                    field: format!("revoked_certificates[{j}]"),
                    reason: format!(
                        "must be {FINGERPRINT_LEN} lower-case hex characters, got {fp:?}"
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{fp, node, sample_doc, t};
    use super::*;

    fn invalid_node_message(doc: &DirectoryDoc) -> (String, String, String) {
        match doc.validate() {
            Err(e @ DirectoryError::InvalidNode { .. }) => {
                let msg = e.to_string();
                let DirectoryError::InvalidNode { node, field, .. } = e else {
                    unreachable!()
                };
                (node, field, msg)
            }
            other => panic!("expected InvalidNode, got {other:?}"),
        }
    }

    #[test]
    fn sample_is_valid_and_signs() {
        let (key, _) = SigningKey::generate().unwrap();
        let doc = sample_doc(3);
        doc.validate().unwrap();
        let signed = sign(&doc, &key).unwrap();
        let bytes = jcs::to_canonical_vec(&signed.directory).unwrap();
        key.public_key()
            .verify(SigningContext::Directory, &bytes, &signed.signature)
            .unwrap();
        // The parse path verifies the same bytes.
        let json = serde_json::to_vec_pretty(&signed).unwrap();
        assert_eq!(verify_signed_json(&json, &key.public_key()).unwrap(), doc);
    }

    #[test]
    fn sign_refuses_invalid_document() {
        let (key, _) = SigningKey::generate().unwrap();
        let mut doc = sample_doc(1);
        doc.nodes[0].endpoint = "http://127.0.0.1:7443".into();
        assert!(matches!(
            sign(&doc, &key),
            Err(DirectoryError::InvalidNode { .. })
        ));
    }

    #[test]
    fn duplicate_node_id_names_node_and_field() {
        let mut doc = sample_doc(1);
        let mut dup = node("410100", &["4102"], 9);
        dup.name = "another".into();
        doc.nodes.push(dup);
        let (node_id, field, msg) = invalid_node_message(&doc);
        assert_eq!((node_id.as_str(), field.as_str()), ("410100", "id"));
        assert!(msg.contains("node \"410100\""), "{msg}");
        assert!(msg.contains("duplicate node id"), "{msg}");
    }

    #[test]
    fn duplicate_prefix_names_node_and_field() {
        let mut doc = sample_doc(1);
        doc.nodes.push(node("zhengzhou-2", &["5101", "4101"], 9));
        let (node_id, field, msg) = invalid_node_message(&doc);
        assert_eq!(
            (node_id.as_str(), field.as_str()),
            ("zhengzhou-2", "serves[1]")
        );
        assert!(msg.contains("already served by node \"410100\""), "{msg}");

        let mut doc = sample_doc(1);
        doc.nodes[0]
            .serves
            .push(RegionPrefix::parse("4101").unwrap());
        let (_, field, msg) = invalid_node_message(&doc);
        assert_eq!(field, "serves[1]");
        assert!(msg.contains("listed twice"), "{msg}");
    }

    #[test]
    fn bad_fingerprints_name_node_and_field() {
        for bad in [
            "ABCDEF".repeat(11)[..64].to_owned(),
            "ab".into(),
            "g".repeat(64),
        ] {
            let mut doc = sample_doc(1);
            doc.nodes[1].tls_fingerprints.push(bad.clone());
            let (node_id, field, msg) = invalid_node_message(&doc);
            assert_eq!(
                (node_id.as_str(), field.as_str()),
                ("410000", "tls_fingerprints[1]")
            );
            assert!(msg.contains("lower-case hex"), "{msg}");
            assert!(msg.contains(&bad), "{msg}");
        }
        let mut doc = sample_doc(1);
        doc.nodes[1].tls_fingerprints.clear();
        let (_, field, _) = invalid_node_message(&doc);
        assert_eq!(field, "tls_fingerprints");

        let mut doc = sample_doc(1);
        let pinned = doc.nodes[0].tls_fingerprints[0].clone();
        doc.nodes[1].tls_fingerprints.push(pinned);
        let (_, _, msg) = invalid_node_message(&doc);
        assert!(msg.contains("already pinned for node \"410100\""), "{msg}");

        let mut doc = sample_doc(1);
        doc.revoked_certificates.push("XYZ".into());
        let err = doc.validate().unwrap_err();
        assert!(err.to_string().contains("revoked_certificates[0]"), "{err}");
    }

    #[test]
    fn further_endpoints_are_checked_and_absent_when_empty() {
        let mut doc = sample_doc(1);
        let without = crate::crypto::jcs::to_canonical_vec(&doc).unwrap();
        assert!(!String::from_utf8_lossy(&without).contains("endpoints"));
        doc.nodes[0].endpoints = vec!["https://127.0.0.1:7444".into()];
        doc.validate().unwrap();
        assert_eq!(
            doc.nodes[0].all_endpoints().collect::<Vec<_>>(),
            ["https://127.0.0.1:7443", "https://127.0.0.1:7444"]
        );
        doc.nodes[0].endpoints.push("http://127.0.0.1:7445".into());
        let (_, field, _) = invalid_node_message(&doc);
        assert_eq!(field, "endpoints[1]");
        doc.nodes[0].endpoints = vec!["https://127.0.0.1:7444".into(); MAX_EXTRA_ENDPOINTS + 1];
        let (_, field, _) = invalid_node_message(&doc);
        assert_eq!(field, "endpoints");
    }

    #[test]
    fn http_endpoint_names_node_and_field() {
        for bad in [
            "http://127.0.0.1:7443",
            "https://",
            "127.0.0.1:7443",
            "https://a b",
        ] {
            let mut doc = sample_doc(1);
            doc.nodes[0].endpoint = bad.into();
            let (node_id, field, msg) = invalid_node_message(&doc);
            assert_eq!((node_id.as_str(), field.as_str()), ("410100", "endpoint"));
            assert!(msg.contains("410100") && msg.contains("endpoint"), "{msg}");
        }
    }

    #[test]
    fn other_rules() {
        let mut doc = sample_doc(1);
        doc.expires_at = doc.issued_at;
        let err = doc.validate().unwrap_err();
        assert!(err.to_string().contains("expires_at"), "{err}");

        let mut doc = sample_doc(1);
        doc.format = "hukou-sync-directory/2".into();
        assert!(matches!(
            doc.validate(),
            Err(DirectoryError::UnsupportedFormat { .. })
        ));

        let mut doc = sample_doc(1);
        doc.nodes[0].signing_keys.clear();
        assert_eq!(invalid_node_message(&doc).1, "signing_keys");

        let mut doc = sample_doc(1);
        doc.nodes[0].signing_keys[0].valid_until = doc.nodes[0].signing_keys[0].valid_from;
        assert_eq!(invalid_node_message(&doc).1, "signing_keys[0].valid_until");

        let mut doc = sample_doc(1);
        let key = doc.nodes[0].signing_keys[0].clone();
        doc.nodes[1].signing_keys.push(key.clone());
        assert_eq!(invalid_node_message(&doc).1, "signing_keys[1].key");
        // The same key in two windows of one node is fine.
        let mut doc = sample_doc(1);
        let mut later = key;
        later.valid_from = t("2027-01-01T00:00:00Z");
        later.valid_until = t("2028-01-01T00:00:00Z");
        doc.nodes[0].signing_keys.push(later);
        doc.validate().unwrap();

        let mut doc = sample_doc(1);
        doc.nodes[0].name = "  ".into();
        assert_eq!(invalid_node_message(&doc).1, "name");
    }

    #[test]
    fn strict_parse_reports_json_path() {
        let (key, _) = SigningKey::generate().unwrap();
        let signed = sign(&sample_doc(1), &key).unwrap();
        let mut value = serde_json::to_value(&signed).unwrap();
        value["directory"]["nodes"][0]["colour"] = "red".into();
        // Re-sign the modified content so the failure is the parse, not the signature.
        let canonical = jcs::canonicalize(&value["directory"]).unwrap();
        value["signature"] = key
            .sign(SigningContext::Directory, &canonical)
            .unwrap()
            .to_string()
            .into();
        let err = verify_signed_json(&serde_json::to_vec(&value).unwrap(), &key.public_key())
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DirectoryError::Json { .. }), "{msg}");
        assert!(msg.contains("directory.nodes[0]"), "{msg}");
        assert!(msg.contains("colour"), "{msg}");

        let err = verify_signed_json(b"{\"directory\": ", &key.public_key()).unwrap_err();
        assert!(matches!(err, DirectoryError::Syntax(_)), "{err}");
        assert!(err.to_string().contains("line 1"), "{err}");

        let mut value = serde_json::to_value(&signed).unwrap();
        value["extra"] = 1.into();
        let err = verify_signed_json(&serde_json::to_vec(&value).unwrap(), &key.public_key())
            .unwrap_err();
        assert!(err.to_string().contains("unknown field `extra`"), "{err}");
    }

    #[test]
    fn write_signed_is_pretty_and_0644() {
        let (key, _) = SigningKey::generate().unwrap();
        let signed = sign(&sample_doc(1), &key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("directory.json");
        write_signed(&path, &signed).unwrap();
        // Overwrites an existing file.
        write_signed(&path, &signed).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\n  \"directory\": {"), "{text}");
        assert!(text.contains("郑州市民政局"));
        assert!(text.ends_with("}\n"));
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
        let back: SignedDirectory = serde_json::from_str(&text).unwrap();
        assert_eq!(back, signed);
        assert!(is_fingerprint(&fp(1)));
    }
}
