//! Appending to the log, signing tree heads, and serving events with proofs.
//!
//! The tree's hash is the network's content hash as recorded in the database beside the log
//! (`storage::audit::content_hash`, bound at start to what the directory declares): the log
//! describes itself, so every reader of the stored tree (appends, heads, proofs, `audit
//! verify`) uses the hash it was built with without being told.

use std::cell::RefCell;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::checkpoint::{Checkpoint, Note};
use super::event::{truncate_ms, Actor, Event, LeafEvent, Outcome};
use super::merkle::{self, Hash, SubtreeSource};
use crate::crypto::hash::{Digest, HashAlg};
use crate::crypto::hlc::Hlc;
use crate::crypto::jcs;
use crate::crypto::keys::{PublicKey, Signature, SigningContext, SigningKey};
use crate::storage::audit::{
    self as repo, AuditEventRow, EventFilter, StoredTreeHead, TreeHeadRow,
};
use crate::storage::{DbConn, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot canonicalise an audit event: {0}")]
    Canonical(#[from] jcs::JcsError),
    #[error("stored audit data is inconsistent: {0}")]
    Corrupt(String),
    #[error("no event {0}")]
    NoSuchEvent(i64),
    #[error("no signed tree head yet")]
    NoTreeHead,
    #[error("invalid range: {0}")]
    Range(String),
    #[error(transparent)]
    Note(#[from] super::checkpoint::NoteError),
}

/// Appends one event. Call inside the transaction of the action it records.
pub fn append(
    conn: &mut DbConn,
    hlc: Hlc,
    now: DateTime<Utc>,
    event: &Event,
) -> Result<i64, AuditError> {
    let seqs = append_many(conn, &[hlc], now, std::slice::from_ref(event))?;
    Ok(seqs)
}

/// Appends events in order (one HLC stamp each); returns the first sequence number. Call inside
/// the transaction of the actions they record.
pub fn append_many(
    conn: &mut DbConn,
    hlcs: &[Hlc],
    now: DateTime<Utc>,
    events: &[Event],
) -> Result<i64, AuditError> {
    let start = repo::begin_append(conn)?;
    let (first, alg) = (start.size, start.alg);
    let at = truncate_ms(now);
    let mut rows = Vec::with_capacity(events.len());
    let mut leaves = Vec::with_capacity(events.len());
    for (i, (event, hlc)) in events.iter().zip(hlcs).enumerate() {
        let details = crate::crypto::jcs::compact(&event.details);
        let leaf = LeafEvent {
            seq: first + i as i64,
            hlc: *hlc,
            at,
            actor: event.actor.clone(),
            action: event.action.to_owned(),
            object_kind: event.object.as_ref().map(|o| o.0.clone()),
            object_id: event.object.as_ref().map(|o| o.1.clone()),
            purpose: event.purpose.clone(),
            outcome: event.outcome,
            details_digest: Digest::with(alg, details.as_bytes()),
        };
        let leaf_hash = merkle::leaf_hash(alg, &leaf.canonical_bytes()?);
        leaves.push(leaf_hash);
        rows.push(row_of(&leaf, details, &leaf_hash));
    }
    let nodes = completed_nodes(start.edge, alg, first, &leaves)?;
    repo::insert_appended(conn, &rows, &nodes)?;
    Ok(first)
}

fn row_of(leaf: &LeafEvent, details: String, leaf_hash: &Hash) -> AuditEventRow {
    AuditEventRow {
        seq: leaf.seq,
        hlc: leaf.hlc.to_i64(),
        at: leaf.at.naive_utc(),
        actor_kind: leaf.actor.kind.as_str().to_owned(),
        actor_id: leaf.actor.id.clone(),
        via: leaf.actor.via.as_str().to_owned(),
        action: leaf.action.clone(),
        object_kind: leaf.object_kind.clone(),
        object_id: leaf.object_id.clone(),
        purpose: leaf.purpose.clone(),
        outcome: leaf.outcome.as_str().to_owned(),
        details,
        details_digest: leaf.details_digest.to_string(),
        leaf_hash: merkle::to_hex(leaf_hash),
    }
}

/// Rebuilds the committed form of a stored event from its columns (not from `leaf_hash`).
pub fn leaf_of(row: &AuditEventRow) -> Result<LeafEvent, AuditError> {
    let bad = |what: &str| AuditError::Corrupt(format!("event {}: bad {what}", row.seq));
    Ok(LeafEvent {
        seq: row.seq,
        hlc: Hlc::from_i64(row.hlc).map_err(|_| bad("hlc"))?,
        at: row.at.and_utc(),
        actor: Actor {
            kind: serde_json::from_value(Value::String(row.actor_kind.clone()))
                .map_err(|_| bad("actor kind"))?,
            id: row.actor_id.clone(),
            via: serde_json::from_value(Value::String(row.via.clone())).map_err(|_| bad("via"))?,
            scope: crate::domain::Scope::whole_node(),
        },
        action: row.action.clone(),
        object_kind: row.object_kind.clone(),
        object_id: row.object_id.clone(),
        purpose: row.purpose.clone(),
        outcome: serde_json::from_value::<Outcome>(Value::String(row.outcome.clone()))
            .map_err(|_| bad("outcome"))?,
        details_digest: row
            .details_digest
            .parse()
            .map_err(|_| bad("details digest"))?,
    })
}

/// The complete subtrees (level >= 1) that appending `leaves` at `first` finishes, from the
/// stored hashes of the right edge of the tree of size `first` ([`repo::right_edge`]).
fn completed_nodes(
    mut stored: std::collections::HashMap<(i64, i64), crate::domain::digest::Digest>,
    alg: HashAlg,
    first: i64,
    leaves: &[Hash],
) -> Result<Vec<(i64, i64, String)>, AuditError> {
    let edge = repo::right_edge(first);
    let mut stack: Vec<(u32, i64, Hash)> = Vec::with_capacity(edge.len() + 1);
    for (level, idx) in edge {
        let hash = stored
            .remove(&(level, idx))
            .ok_or_else(|| AuditError::Corrupt(format!("missing subtree ({level}, {idx})")))?;
        let level = u32::try_from(level)
            .map_err(|_| AuditError::Corrupt(format!("subtree level {level}")))?;
        stack.push((level, idx, hash.0));
    }
    let mut out = Vec::new();
    for (i, leaf) in leaves.iter().enumerate() {
        stack.push((0, first + i as i64, *leaf));
        while stack.len() >= 2 && stack[stack.len() - 1].0 == stack[stack.len() - 2].0 {
            // The loop condition guarantees two elements; a failure here is a bug, reported.
            let (Some((level, idx, right)), Some((_, _, left))) = (stack.pop(), stack.pop()) else {
                return Err(AuditError::Corrupt("subtree stack underflow".into()));
            };
            let hash = merkle::node_hash(alg, &left, &right);
            out.push((i64::from(level + 1), idx >> 1, merkle::to_hex(&hash)));
            stack.push((level + 1, idx >> 1, hash));
        }
    }
    Ok(out)
}

/// Reads complete subtrees from the database for proofs.
pub struct StoredSubtrees<'a>(pub RefCell<&'a mut DbConn>);

impl SubtreeSource for StoredSubtrees<'_> {
    type Error = AuditError;
    fn subtree(&self, level: u32, index: u64) -> Result<Hash, AuditError> {
        let mut conn = self.0.borrow_mut();
        let hash = repo::subtree_hash(&mut conn, i64::from(level), index as i64)?
            .ok_or_else(|| AuditError::Corrupt(format!("missing subtree ({level}, {index})")))?;
        Ok(hash.0)
    }
}

/// A tree head signed by a node: `(size, root, timestamp)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedTreeHead {
    pub size: u64,
    /// Lower-case hex.
    pub root: String,
    pub timestamp: DateTime<Utc>,
    #[schema(value_type = String)]
    pub public_key: PublicKey,
    #[schema(value_type = String)]
    pub signature: Signature,
}

#[derive(Serialize)]
struct TreeHeadBody<'a> {
    size: u64,
    root: &'a str,
    timestamp: DateTime<Utc>,
}

impl SignedTreeHead {
    fn message(size: u64, root: &str, timestamp: DateTime<Utc>) -> Result<Vec<u8>, jcs::JcsError> {
        jcs::to_canonical_vec(&TreeHeadBody {
            size,
            root,
            timestamp,
        })
    }

    /// Checks the signature against the key the head names; callers compare that key with the
    /// one they trust.
    pub fn verify(&self) -> Result<(), String> {
        let msg =
            Self::message(self.size, &self.root, self.timestamp).map_err(|e| e.to_string())?;
        self.public_key
            .verify(SigningContext::TreeHead, &msg, &self.signature)
            .map_err(|e| e.to_string())
    }

    pub fn root_hash(&self) -> Option<Hash> {
        merkle::from_hex(&self.root).ok()
    }

    pub fn from_stored(head: &StoredTreeHead) -> Self {
        Self {
            size: head.size,
            root: head.root.to_string(),
            timestamp: head.signed_at,
            public_key: head.public_key,
            signature: head.signature,
        }
    }
}

/// Signs and stores a head for the current size, unless the latest head already covers it.
/// Its commit is durable (and carries every earlier event's): a head goes to peers, and a
/// crash must not leave them a head over events the node lost.
pub fn sign_tree_head(
    conn: &mut DbConn,
    key: &SigningKey,
    now: DateTime<Utc>,
) -> Result<SignedTreeHead, AuditError> {
    crate::storage::durable_commits(conn, |conn| {
        crate::storage::transaction(conn, |conn| {
            let (size, alg) = repo::lock_for_append(conn)?;
            if let Some(latest) = repo::latest_tree_head(conn)? {
                if i64::try_from(latest.size).ok() == Some(size) {
                    return Ok(SignedTreeHead::from_stored(&latest));
                }
            }
            let root = if size == 0 {
                merkle::empty_root(alg)
            } else {
                merkle::root_from(alg, &StoredSubtrees(RefCell::new(conn)), size as u64)
                    .map_err(|e| AuditError::Corrupt(e.to_string()))?
            };
            let root = merkle::to_hex(&root);
            let timestamp = truncate_ms(now);
            let msg = SignedTreeHead::message(size as u64, &root, timestamp)?;
            let head = SignedTreeHead {
                size: size as u64,
                root,
                timestamp,
                public_key: key.public_key(),
                signature: key
                    .sign(SigningContext::TreeHead, &msg)
                    .map_err(super::checkpoint::NoteError::from)?,
            };
            repo::insert_tree_head(
                conn,
                &TreeHeadRow {
                    size,
                    root: head.root.clone(),
                    signed_at: timestamp.naive_utc(),
                    public_key: head.public_key.to_string(),
                    signature: head.signature.to_string(),
                    checkpoint: None,
                },
            )?;
            Ok(head)
        })
    })
}

/// This node's latest checkpoint (C2SP signed note, [`super::checkpoint`]): a tree head is signed
/// first if the log grew, and the head's checkpoint if it has none yet (heads signed before
/// checkpoints existed). Its timestamp line is the head's signing time.
pub fn latest_checkpoint(
    conn: &mut DbConn,
    node: &crate::domain::NodeId,
    key: &SigningKey,
    now: DateTime<Utc>,
) -> Result<(Checkpoint, Note), AuditError> {
    let head = sign_tree_head(conn, key, now)?;
    let stored = repo::tree_head_at(conn, head.size as i64)?.ok_or(AuditError::NoTreeHead)?;
    checkpoint_of(conn, node, key, &stored)
}

/// The checkpoint of a stored head, signed and kept now if it has none (Ed25519 signatures are
/// deterministic: two callers racing here sign and keep the same note).
pub fn checkpoint_of(
    conn: &mut DbConn,
    node: &crate::domain::NodeId,
    key: &SigningKey,
    head: &StoredTreeHead,
) -> Result<(Checkpoint, Note), AuditError> {
    if let Some(text) = &head.checkpoint {
        let note = Note::parse(text.as_bytes())?;
        let cp = Checkpoint::parse(&note.text)?;
        return Ok((cp, note));
    }
    let cp = Checkpoint {
        origin: super::checkpoint::name_of(node),
        size: head.size,
        root: head.root.0,
        timestamp: Some(head.signed_at),
    };
    let note = cp.sign(key)?;
    repo::set_checkpoint(conn, head.size as i64, &note.to_string())?;
    Ok((cp, note))
}

pub fn latest_tree_head(conn: &mut DbConn) -> Result<Option<SignedTreeHead>, AuditError> {
    Ok(repo::latest_tree_head(conn)?
        .as_ref()
        .map(SignedTreeHead::from_stored))
}

/// A stored event as served: its columns, its leaf hash, and (when asked) its inclusion proof.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    #[schema(value_type = Object)]
    pub event: LeafEvent,
    #[schema(value_type = Object)]
    pub details: Value,
    pub leaf_hash: String,
    /// Audit path to the root of `tree_size`, hex, RFC 9162 order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inclusion: Option<InclusionProof>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InclusionProof {
    pub tree_size: u64,
    pub path: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsistencyProof {
    pub old_size: u64,
    pub new_size: u64,
    pub path: Vec<String>,
}

pub fn entry_of(row: &AuditEventRow) -> Result<AuditEntry, AuditError> {
    Ok(AuditEntry {
        event: leaf_of(row)?,
        details: serde_json::from_str(&row.details).unwrap_or(Value::Null),
        leaf_hash: row.leaf_hash.clone(),
        inclusion: None,
    })
}

pub fn list(conn: &mut DbConn, filter: &EventFilter) -> Result<Vec<AuditEntry>, AuditError> {
    repo::list_events(conn, filter)?
        .iter()
        .map(entry_of)
        .collect()
}

/// One event with its inclusion proof against the tree of `tree_size` leaves.
pub fn entry_with_proof(
    conn: &mut DbConn,
    seq: i64,
    tree_size: u64,
) -> Result<AuditEntry, AuditError> {
    let row = repo::get_event(conn, seq)?.ok_or(AuditError::NoSuchEvent(seq))?;
    let mut entry = entry_of(&row)?;
    if seq as u64 >= tree_size {
        return Err(AuditError::Range(format!(
            "event {seq} is not in a tree of size {tree_size}"
        )));
    }
    let alg = repo::content_hash(conn)?;
    let path = merkle::inclusion_proof(
        alg,
        &StoredSubtrees(RefCell::new(conn)),
        seq as u64,
        tree_size,
    )
    .map_err(|e| AuditError::Corrupt(e.to_string()))?;
    entry.inclusion = Some(InclusionProof {
        tree_size,
        path: path.iter().map(merkle::to_hex).collect(),
    });
    Ok(entry)
}

pub fn consistency(
    conn: &mut DbConn,
    old_size: u64,
    new_size: u64,
) -> Result<ConsistencyProof, AuditError> {
    let size = repo::size(conn)? as u64;
    if old_size == 0 || old_size > new_size || new_size > size {
        return Err(AuditError::Range(format!(
            "need 0 < old_size <= new_size <= {size}, got {old_size} and {new_size}"
        )));
    }
    let alg = repo::content_hash(conn)?;
    let path =
        merkle::consistency_proof(alg, &StoredSubtrees(RefCell::new(conn)), old_size, new_size)
            .map_err(|e| AuditError::Corrupt(e.to_string()))?;
    Ok(ConsistencyProof {
        old_size,
        new_size,
        path: path.iter().map(merkle::to_hex).collect(),
    })
}

/// Lists events for a reader and records the read (reading the audit log is itself audited).
pub fn read_events(
    conn: &mut DbConn,
    filter: &EventFilter,
    actor: &Actor,
    hlc: Hlc,
    now: DateTime<Utc>,
) -> Result<Vec<AuditEntry>, AuditError> {
    crate::storage::transaction(conn, |conn| {
        let entries = list(conn, filter)?;
        let seqs: Vec<i64> = entries.iter().map(|e| e.event.seq).collect();
        append(
            conn,
            hlc,
            now,
            &Event::new(actor.clone(), "audit.read", Outcome::Ok)
                .details(serde_json::json!({ "returned": seqs })),
        )?;
        Ok(entries)
    })
}

/// One event with its inclusion proof against the latest signed head; the read is audited.
pub fn read_event(
    conn: &mut DbConn,
    seq: i64,
    actor: &Actor,
    hlc: Hlc,
    now: DateTime<Utc>,
) -> Result<(AuditEntry, SignedTreeHead), AuditError> {
    crate::storage::transaction(conn, |conn| {
        let head = latest_tree_head(conn)?.ok_or(AuditError::NoTreeHead)?;
        let entry = if (seq as u64) < head.size {
            entry_with_proof(conn, seq, head.size)?
        } else {
            // Newer than the latest head: served without a proof until the next head is signed.
            entry_of(&repo::get_event(conn, seq)?.ok_or(AuditError::NoSuchEvent(seq))?)?
        };
        append(
            conn,
            hlc,
            now,
            &Event::new(actor.clone(), "audit.read", Outcome::Ok)
                .details(serde_json::json!({ "returned": [seq] })),
        )?;
        Ok((entry, head))
    })
}

/// Number of events in the log.
pub fn size(conn: &mut DbConn) -> Result<i64, AuditError> {
    Ok(repo::size(conn)?)
}
