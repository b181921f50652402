//! Versions (DESIGN §3): immutable full snapshots of a document, content-addressed by the
//! network's content hash (SHA-256, or SM3 when the directory declares `"hash": "sm3"`; see
//! `crypto::hash`) of their RFC 8785 canonical bytes and signed by their author — with a key of either suite
//! (`ed25519`, `sm2-sm3`), and during a migration between suites a second time with a key of the
//! other (`second_signature`, absent from the JSON otherwise, so a version signed once has the
//! same bytes as before dual signatures existed).

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::crypto::hash::{Digest, HashAlg};
use crate::crypto::hlc::Hlc;
use crate::crypto::jcs;
use crate::crypto::keys::{PublicKey, Signature, SigningContext, SigningKey};
use crate::domain::NodeId;
use crate::storage::records::{StoredVersion, VersionRow};

pub use crate::domain::DocKind;

impl From<crate::domain::UnknownDocKind> for VersionError {
    fn from(e: crate::domain::UnknownDocKind) -> Self {
        VersionError::Corrupt(e.to_string())
    }
}

/// A version id: the network's content hash (SHA-256 or SM3) of the version's canonical bytes, lower-case hex on the wire.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VersionId(pub Digest);

impl VersionId {
    pub fn short(&self) -> String {
        self.to_string()[..12].to_owned()
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}
impl fmt::Debug for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VersionId({})", self.short())
    }
}
impl FromStr for VersionId {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, VersionError> {
        s.parse::<Digest>()
            .map(VersionId)
            .map_err(|e| VersionError::Corrupt(format!("bad version id: {e}")))
    }
}

/// The signed content of a version. Field order does not matter: the id is taken over the JCS
/// form, which sorts keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Version {
    pub kind: DocKind,
    pub doc_id: String,
    /// Invariant: sorted and without duplicates, so the same parents give the same id.
    pub parents: Vec<VersionId>,
    pub author_node: NodeId,
    pub hlc: Hlc,
    /// A conflict resolution (DESIGN §4).
    #[serde(default)]
    pub resolution: bool,
    pub body: Value,
}

/// Errors building, signing or reading versions.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    #[error("cannot canonicalise the version: {0}")]
    Canonical(#[from] jcs::JcsError),
    #[error("stored version is corrupt: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Sign(#[from] crate::crypto::keys::SignError),
}

impl Version {
    /// Sorts and de-duplicates the parents (the invariant on `parents`).
    pub fn new(
        kind: DocKind,
        doc_id: String,
        mut parents: Vec<VersionId>,
        author_node: NodeId,
        hlc: Hlc,
        body: Value,
    ) -> Self {
        parents.sort();
        parents.dedup();
        Self {
            kind,
            doc_id,
            parents,
            author_node,
            hlc,
            resolution: false,
            body,
        }
    }

    /// The id under the network's content hash `alg`.
    pub fn id(&self, alg: HashAlg) -> Result<VersionId, VersionError> {
        Ok(VersionId(Digest::with(alg, &self.canonical_bytes()?)))
    }

    /// The RFC 8785 bytes of the version: the same bytes as `jcs::to_canonical_vec(self)`
    /// (tested), written member by member so the body is not copied into a new `Value` first.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, VersionError> {
        let mut out = Vec::with_capacity(1024);
        // Members in RFC 8785 order: the names are ASCII, so byte order is UTF-16 order.
        out.extend_from_slice(b"{\"author_node\":");
        jcs::write_str(&mut out, self.author_node.as_str());
        out.extend_from_slice(b",\"body\":");
        jcs::write_member_value(&mut out, &self.body)?;
        out.extend_from_slice(b",\"doc_id\":");
        jcs::write_str(&mut out, &self.doc_id);
        out.extend_from_slice(b",\"hlc\":");
        jcs::write_str(&mut out, &self.hlc.to_string());
        out.extend_from_slice(b",\"kind\":");
        jcs::write_str(&mut out, self.kind.as_str());
        out.extend_from_slice(b",\"parents\":[");
        for (i, p) in self.parents.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            jcs::write_str(&mut out, &p.to_string());
        }
        out.extend_from_slice(b"],\"resolution\":");
        out.extend_from_slice(if self.resolution { b"true" } else { b"false" });
        out.push(b'}');
        Ok(out)
    }

    /// Computes the id and signs `"hukou-sync/v1/version\0" || id`.
    pub fn sign(self, key: &SigningKey, alg: HashAlg) -> Result<SignedVersion, VersionError> {
        let id = self.id(alg)?;
        let signature = key.sign(SigningContext::Version, id.0.as_bytes())?;
        Ok(SignedVersion {
            id,
            version: self,
            signature,
            second_signature: None,
        })
    }
}

/// A version with its id and its author's signature, as stored and as sent to peers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedVersion {
    pub id: VersionId,
    pub version: Version,
    pub signature: Signature,
    /// The author's second signature, by its key of the other suite, during a migration
    /// window. When present it must verify as well as `signature`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_signature: Option<Signature>,
}

impl SignedVersion {
    /// Adds a second signature by `key` (a key of the other suite, during a migration).
    pub fn countersign(mut self, key: &SigningKey) -> Result<Self, VersionError> {
        self.second_signature = Some(key.sign(SigningContext::Version, self.id.0.as_bytes())?);
        Ok(self)
    }

    /// Every signature the version carries: the first, then the second if any.
    pub fn signatures(&self) -> impl Iterator<Item = &Signature> {
        std::iter::once(&self.signature).chain(self.second_signature.as_ref())
    }

    /// Whether every signature of the version verifies with one of `keys` (a signature is
    /// checked only with keys of its own suite), and a second signature is of the other suite.
    pub fn signatures_verify(&self, keys: &[PublicKey]) -> bool {
        let dual_of_one_suite = self
            .second_signature
            .is_some_and(|s| s.suite() == self.signature.suite());
        !dual_of_one_suite
            && self.signatures().all(|sig| {
                keys.iter().any(|k| {
                    k.verify(SigningContext::Version, self.id.0.as_bytes(), sig)
                        .is_ok()
                })
            })
    }

    /// Checks that the id is the hash of the content and every signature is the key's.
    pub fn verify(&self, key: &PublicKey, alg: HashAlg) -> Result<(), IntegrityError> {
        let id = self
            .version
            .id(alg)
            .map_err(|e| IntegrityError::Canonical(e.to_string()))?;
        if id != self.id {
            return Err(IntegrityError::IdMismatch);
        }
        if self.signatures_verify(std::slice::from_ref(key)) {
            Ok(())
        } else {
            Err(IntegrityError::BadSignature)
        }
    }

    pub fn to_row(&self, stored_at: NaiveDateTime) -> VersionRow {
        VersionRow {
            id: self.id.to_string(),
            kind: self.version.kind.as_str().to_owned(),
            doc_id: self.version.doc_id.clone(),
            author_node: self.version.author_node.to_string(),
            hlc: self.version.hlc.to_i64(),
            // A JSON array of 64-digit hex strings, written directly: it cannot fail.
            parents: format!(
                "[{}]",
                self.version
                    .parents
                    .iter()
                    .map(|p| format!("\"{p}\""))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            body: crate::crypto::jcs::compact(&self.version.body),
            resolution: i64::from(self.version.resolution),
            signature: Some(self.signature.to_string()),
            stored_at,
            second_signature: self.second_signature.map(|s| s.to_string()),
        }
    }

    /// The version `stored` holds; its body parsed.
    pub fn from_stored(stored: &StoredVersion) -> Result<Self, VersionError> {
        Ok(Self {
            id: VersionId(stored.id),
            version: Version {
                kind: stored.kind,
                doc_id: stored.doc_id.clone(),
                parents: stored.parents.iter().copied().map(VersionId).collect(),
                author_node: stored.author_node.clone(),
                hlc: stored.hlc,
                resolution: stored.resolution,
                body: serde_json::from_str(stored.body.as_str())
                    .map_err(|_| VersionError::Corrupt(format!("version {}: body", stored.id)))?,
            },
            signature: stored.signature,
            second_signature: stored.second_signature,
        })
    }
}

/// Why a received version cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntegrityError {
    #[error("cannot canonicalise: {0}")]
    Canonical(String),
    #[error("the id does not match the content")]
    IdMismatch,
    #[error("the signature does not verify")]
    BadSignature,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_body() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            // JCS refuses integers it cannot write exactly (beyond 2^53).
            (-(1i64 << 53)..=(1i64 << 53)).prop_map(Value::from),
            (-1e15f64..1e15).prop_map(Value::from),
            // Escapes, CJK, astral-plane characters (UTF-16 order differs from UTF-8 there).
            "[a-z\"\\\\\n\t\u{1}é姓名\u{1F600}\u{FF01}]{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[a-z_姓\u{1F600}\u{FF01}]{0,8}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The member-by-member canonical form is exactly the generic RFC 8785 form, so ids
        /// (and every signature over them) are unchanged.
        #[test]
        fn canonical_bytes_are_the_generic_jcs_bytes(
            body in arb_body(),
            parents in prop::collection::vec(any::<[u8; 32]>(), 0..3),
            wall in 0..=crate::crypto::hlc::MAX_WALL_MS,
            counter in any::<u16>(),
            case in any::<bool>(),
            resolution in any::<bool>(),
        ) {
            let mut v = Version::new(
                if case { DocKind::Case } else { DocKind::Child },
                "11010520140101001X\"\\u{1}".into(),
                parents.into_iter().map(|b| VersionId(Digest(b))).collect(),
                NodeId::parse("410100").unwrap(),
                Hlc::new(wall, counter).unwrap(),
                body,
            );
            v.resolution = resolution;
            prop_assert_eq!(v.canonical_bytes().unwrap(), jcs::to_canonical_vec(&v).unwrap());
        }
    }
}
