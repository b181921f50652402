//! Push requests and signed receipts (DESIGN §6): what a sender posts, and what the receiver
//! signs back — accepted ids and per-item rejections with stable codes — so delivery cannot be
//! denied later. The batch digest and a receipt's id use the network's content hash
//! (`crypto::hash::HashAlg`, from the directory).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::version::{SignedVersion, VersionId};
use crate::audit::SignedTreeHead;
use crate::crypto::hash::{Digest, HashAlg};
use crate::crypto::jcs;
use crate::crypto::keys::{PublicKey, Signature, SigningContext, SigningKey};
use crate::domain::NodeId;

/// `POST /peer/v1/versions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// Must name the node of the client certificate.
    pub sender: NodeId,
    /// Parents before children.
    pub versions: Vec<SignedVersion>,
    /// The sender's latest signed tree head (witnessing).
    #[serde(default)]
    pub tree_head: Option<SignedTreeHead>,
}

impl PushRequest {
    /// Digest of the ids in the request, in order: the receipt names the batch it answers.
    pub fn batch_digest(&self, alg: HashAlg) -> Digest {
        let ids: Vec<String> = self.versions.iter().map(|v| v.id.to_string()).collect();
        batch_digest(alg, &ids)
    }
}

/// Digest of a batch's version ids (lower-case hex), in order.
pub fn batch_digest(alg: HashAlg, ids: &[String]) -> Digest {
    Digest::with(alg, ids.join("\n").as_bytes())
}

/// Why a version was refused. Codes are stable: senders and people act on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    /// The id is not the hash of the content.
    IdMismatch,
    /// No key of the author verifies the signature.
    BadSignature,
    /// The signing key is revoked or was not valid at the version's time.
    KeyNotValid,
    /// The author is not in the directory.
    UnknownAuthor,
    /// The author serves neither region of the child.
    AuthorNotParty,
    /// The sending node serves neither region of the child.
    SenderNotParty,
    /// This node serves neither region of the child.
    NotParty,
    /// The author changed a field another bureau decides.
    FieldNotOwned,
    /// A parent is neither stored here nor earlier in the batch.
    UnknownParents,
    /// The stamp is too far ahead of this node's clock.
    ClockSkew,
    /// The body is not a valid record of its kind.
    InvalidRecord,
    /// A kind of document this node does not accept.
    UnsupportedKind,
    /// A case version that is not one legal step by its party.
    IllegalTransition,
    /// The version is not in its canonical form (its parents are not sorted and unique).
    NonCanonical,
}

impl RejectCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::IdMismatch => "id_mismatch",
            RejectCode::BadSignature => "bad_signature",
            RejectCode::KeyNotValid => "key_not_valid",
            RejectCode::UnknownAuthor => "unknown_author",
            RejectCode::AuthorNotParty => "author_not_party",
            RejectCode::SenderNotParty => "sender_not_party",
            RejectCode::NotParty => "not_party",
            RejectCode::FieldNotOwned => "field_not_owned",
            RejectCode::UnknownParents => "unknown_parents",
            RejectCode::ClockSkew => "clock_skew",
            RejectCode::InvalidRecord => "invalid_record",
            RejectCode::UnsupportedKind => "unsupported_kind",
            RejectCode::IllegalTransition => "illegal_transition",
            RejectCode::NonCanonical => "non_canonical",
        }
    }
}

/// One refused version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rejection {
    #[schema(value_type = String)]
    pub id: VersionId,
    pub code: RejectCode,
    pub reason: String,
}

/// What the receiver states about a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptBody {
    pub issuer: NodeId,
    pub recipient: NodeId,
    pub issued_at: DateTime<Utc>,
    pub batch: Digest,
    /// Stored now or already held (a duplicate is accepted again, never an error).
    pub accepted: Vec<VersionId>,
    pub rejected: Vec<Rejection>,
    /// The issuer's latest signed tree head.
    #[serde(default)]
    pub tree_head: Option<SignedTreeHead>,
}

/// A receipt with the issuer's signature over its canonical bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedReceipt {
    pub receipt: ReceiptBody,
    pub signature: Signature,
}

#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    #[error("cannot canonicalise the receipt: {0}")]
    Canonical(#[from] jcs::JcsError),
    #[error(transparent)]
    Sign(#[from] crate::crypto::keys::SignError),
    #[error("the receipt's signature does not verify with any key of {0}")]
    BadSignature(NodeId),
    #[error("the receipt answers another batch")]
    WrongBatch,
    #[error("the receipt was issued by {issuer} to {recipient}, not by {expected_issuer} to us")]
    WrongParties {
        issuer: NodeId,
        recipient: NodeId,
        expected_issuer: NodeId,
    },
}

impl ReceiptBody {
    pub fn sign(self, key: &SigningKey) -> Result<SignedReceipt, ReceiptError> {
        let msg = jcs::to_canonical_vec(&self)?;
        let signature = key.sign(SigningContext::Receipt, &msg)?;
        Ok(SignedReceipt {
            receipt: self,
            signature,
        })
    }
}

impl SignedReceipt {
    /// Checks the signature against the issuer's keys and that it answers `request` from `us`.
    pub fn verify(
        &self,
        keys: &[PublicKey],
        expected_issuer: &NodeId,
        us: &NodeId,
        batch: &Digest,
    ) -> Result<(), ReceiptError> {
        let r = &self.receipt;
        if &r.issuer != expected_issuer || &r.recipient != us {
            return Err(ReceiptError::WrongParties {
                issuer: r.issuer.clone(),
                recipient: r.recipient.clone(),
                expected_issuer: expected_issuer.clone(),
            });
        }
        if &r.batch != batch {
            return Err(ReceiptError::WrongBatch);
        }
        let msg = jcs::to_canonical_vec(r)?;
        if keys.iter().any(|k| {
            k.verify(SigningContext::Receipt, &msg, &self.signature)
                .is_ok()
        }) {
            Ok(())
        } else {
            Err(ReceiptError::BadSignature(r.issuer.clone()))
        }
    }

    /// Content address of the signed receipt (for storage).
    pub fn id(&self, alg: HashAlg) -> Result<Digest, ReceiptError> {
        Ok(Digest::with(alg, &jcs::to_canonical_vec(self)?))
    }
}

/// Stores a signed receipt (one this node issued or received), once; returns its id.
pub fn store(
    conn: &mut crate::storage::DbConn,
    alg: HashAlg,
    receipt: &SignedReceipt,
    at: chrono::NaiveDateTime,
) -> Result<Digest, super::LedgerError> {
    let r = &receipt.receipt;
    let id = receipt
        .id(alg)
        .map_err(|e| super::LedgerError::Internal(e.to_string()))?;
    crate::storage::exchange::insert_receipt(
        conn,
        &crate::storage::exchange::ReceiptRow {
            id: id.to_string(),
            issuer: r.issuer.to_string(),
            recipient: r.recipient.to_string(),
            issued_at: r.issued_at.naive_utc(),
            accepted: r.accepted.len() as i64,
            rejected: r.rejected.len() as i64,
            body: serde_json::to_string(receipt)
                .map_err(|e| super::LedgerError::Internal(format!("serialising a receipt: {e}")))?,
            stored_at: at,
        },
    )?;
    Ok(id)
}

/// Keeps a tree head a peer sent (witnessing, DESIGN §8) — only if one of the peer's keys in
/// the directory signed it.
pub fn witness(
    conn: &mut crate::storage::DbConn,
    dir: &crate::directory::Directory,
    peer: &NodeId,
    head: &SignedTreeHead,
    now: DateTime<Utc>,
) -> Result<bool, super::LedgerError> {
    if !dir.signing_keys_at(peer, now).contains(&head.public_key) || head.verify().is_err() {
        return Ok(false);
    }
    crate::storage::exchange::witness_head(
        conn,
        peer.as_str(),
        head.size as i64,
        &head.root,
        head.timestamp.naive_utc(),
        &head.public_key.to_string(),
        &head.signature.to_string(),
    )?;
    Ok(true)
}
