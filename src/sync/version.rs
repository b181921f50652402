//! Versions (DESIGN §3): immutable full snapshots of a document, content-addressed by the SHA-256
//! of their RFC 8785 canonical bytes and signed by their author.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::crypto::hash::Digest;
use crate::crypto::hlc::Hlc;
use crate::crypto::jcs;
use crate::crypto::keys::{PublicKey, Signature, SigningContext, SigningKey};
use crate::domain::NodeId;
use crate::storage::records::VersionRow;

/// Kind of document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    Child,
    Case,
}

impl DocKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Child => "child",
            DocKind::Case => "case",
        }
    }
}

impl FromStr for DocKind {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, VersionError> {
        match s {
            "child" => Ok(DocKind::Child),
            "case" => Ok(DocKind::Case),
            other => Err(VersionError::Corrupt(format!("unknown kind {other:?}"))),
        }
    }
}

/// A version id: the SHA-256 of the version's canonical bytes, lower-case hex on the wire.
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

    pub fn id(&self) -> Result<VersionId, VersionError> {
        Ok(VersionId(Digest::of(&jcs::to_canonical_vec(self)?)))
    }

    /// Computes the id and signs `"hukou-sync/v1/version\0" || id`.
    pub fn sign(self, key: &SigningKey) -> Result<SignedVersion, VersionError> {
        let id = self.id()?;
        let signature = key.sign(SigningContext::Version, id.0.as_bytes());
        Ok(SignedVersion {
            id,
            version: self,
            signature,
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
}

impl SignedVersion {
    /// Checks that the id is the hash of the content and the signature is the key's.
    pub fn verify(&self, key: &PublicKey) -> Result<(), IntegrityError> {
        let id = self
            .version
            .id()
            .map_err(|e| IntegrityError::Canonical(e.to_string()))?;
        if id != self.id {
            return Err(IntegrityError::IdMismatch);
        }
        key.verify(
            SigningContext::Version,
            self.id.0.as_bytes(),
            &self.signature,
        )
        .map_err(|_| IntegrityError::BadSignature)
    }

    pub fn to_row(&self, stored_at: NaiveDateTime) -> VersionRow {
        VersionRow {
            id: self.id.to_string(),
            kind: self.version.kind.as_str().to_owned(),
            doc_id: self.version.doc_id.clone(),
            author_node: self.version.author_node.to_string(),
            hlc: self.version.hlc.to_i64(),
            parents: serde_json::to_string(&self.version.parents).unwrap_or_else(|_| "[]".into()),
            body: self.version.body.to_string(),
            resolution: i64::from(self.version.resolution),
            signature: Some(self.signature.to_string()),
            stored_at,
        }
    }

    pub fn from_row(row: &VersionRow) -> Result<Self, VersionError> {
        let bad = |what: &str| VersionError::Corrupt(format!("version {}: {what}", row.id));
        Ok(Self {
            id: row.id.parse()?,
            version: Version {
                kind: row.kind.parse()?,
                doc_id: row.doc_id.clone(),
                parents: serde_json::from_str(&row.parents).map_err(|_| bad("parents"))?,
                author_node: NodeId::parse(&row.author_node).map_err(|_| bad("author"))?,
                hlc: Hlc::from_i64(row.hlc).map_err(|_| bad("hlc"))?,
                resolution: row.resolution != 0,
                body: serde_json::from_str(&row.body).map_err(|_| bad("body"))?,
            },
            signature: row
                .signature
                .as_deref()
                .ok_or_else(|| bad("missing signature"))?
                .parse()
                .map_err(|_| bad("signature"))?,
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
