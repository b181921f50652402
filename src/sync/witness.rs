//! Peers witness each other's audit logs (DESIGN §8, `c2sp.org/tlog-witness` over the peer
//! listener). Both sides of `POST /peer/v1/witness/add-checkpoint`:
//!
//! - as a **witness** ([`add_checkpoint`]): open the peer's signed checkpoint with its keys
//!   from the directory, decide by `audit::witness::judge` against the checkpoint last cosigned
//!   for it, and — in one transaction, under the witness lock — cosign and hold the new
//!   checkpoint, or keep the evidence of a misbehaviour (with an audit event, an ERROR log, and
//!   cosigning for that peer stopped until an administrator acknowledges it);
//! - as a **log** ([`request_cosignature`]): send the latest checkpoint with a consistency
//!   proof from the size the peer last cosigned (after a 409, from the size it names), check the
//!   cosignature it returns against its directory keys, and keep it.
//!
//! Routine cosigning writes no audit event (the tables are its record): an event per cosignature
//! would grow both logs on every idle round and make each side ask again for ever. What is
//! audited is what people must see: evidence, and its acknowledgement.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::node::LocalNode;
use crate::audit::checkpoint::{self, Checkpoint, Note, NoteSignature};
use crate::audit::merkle::{self, Hash};
use crate::audit::witness::{judge, AddCheckpoint, Evidence, EvidenceKind, Verdict};
use crate::audit::{self, Actor, AuditError, Event, Outcome};
use crate::crypto::hash::Digest;
use crate::directory::Directory;
use crate::domain::NodeId;
use crate::storage::witness::{self as repo, CosignatureRow, EvidenceRow, WitnessedLogRow};
use crate::storage::{self, DbConn, StorageError, Store};

/// The path of the witness endpoint on the peer listener.
pub const ADD_CHECKPOINT_PATH: &str = "/peer/v1/witness/add-checkpoint";

/// Why a witness did not cosign. `api::error` maps each to its status.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// 400: not a request, or one that contradicts itself.
    #[error("{0}")]
    Malformed(String),
    /// 404: the origin names no node of the directory.
    #[error("no log {0} in the directory")]
    UnknownLog(String),
    /// 403: the checkpoint is another node's log, or no key of the peer signed it.
    #[error("{0}")]
    Forbidden(String),
    /// 409: the old size is not the size this witness last cosigned.
    #[error("this witness last cosigned size {held}")]
    Conflict { held: u64 },
    /// 422: the log misbehaved; the evidence is kept.
    #[error("{kind:?}: {reason} (evidence {evidence})")]
    Inconsistent {
        kind: EvidenceKind,
        reason: String,
        evidence: String,
    },
    /// 422: evidence against this peer awaits an administrator; nothing is cosigned.
    #[error(
        "cosigning for {0} is stopped until an administrator acknowledges the evidence against it"
    )]
    Suspended(NodeId),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl From<checkpoint::NoteError> for WitnessError {
    fn from(e: checkpoint::NoteError) -> Self {
        WitnessError::Malformed(e.to_string())
    }
}

impl From<crate::audit::witness::WitnessError> for WitnessError {
    fn from(e: crate::audit::witness::WitnessError) -> Self {
        WitnessError::Malformed(e.to_string())
    }
}

/// The keys that may sign a node's notes ([`Directory::note_keys`]).
pub fn note_keys(dir: &Directory, node: &NodeId) -> Vec<crate::crypto::keys::PublicKey> {
    dir.note_keys(node)
}

/// What the witness did with a request that it answered with a cosignature.
enum Decided {
    Cosigned(String),
    Refused(WitnessError),
}

/// Witnesses `peer`'s checkpoint: the service behind the endpoint. Returns the cosignature
/// line(s) to answer with.
pub fn add_checkpoint(
    conn: &mut DbConn,
    node: &LocalNode,
    dir: &Directory,
    peer: &NodeId,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<String, WitnessError> {
    let request = AddCheckpoint::parse(body)?;
    let note = Note::parse(request.note.as_bytes())?;
    let cp = Checkpoint::parse(&note.text)?;
    let Some(log) = checkpoint::node_of_name(&cp.origin).filter(|n| dir.node(n).is_some()) else {
        return Err(WitnessError::UnknownLog(cp.origin));
    };
    if &log != peer {
        return Err(WitnessError::Forbidden(format!(
            "the checkpoint is {log}'s log; {peer} may send only its own"
        )));
    }
    if !note.signed_by(&cp.origin, &note_keys(dir, peer)) {
        return Err(WitnessError::Forbidden(format!(
            "no key of {peer} in the directory signed the checkpoint"
        )));
    }
    let decided = storage::transaction(conn, |c| -> Result<Decided, WitnessError> {
        repo::lock_witness(c)?;
        if !repo::evidence(c, Some(peer.as_str()), true)?.is_empty() {
            return Ok(Decided::Refused(WitnessError::Suspended(peer.clone())));
        }
        let held_row = repo::witnessed(c, peer.as_str())?;
        let held = match &held_row {
            Some(r) => {
                let n = Note::parse(r.checkpoint.as_bytes())
                    .map_err(|e| AuditError::Corrupt(format!("held checkpoint of {peer}: {e}")))?;
                let h = Checkpoint::parse(&n.text)
                    .map_err(|e| AuditError::Corrupt(format!("held checkpoint of {peer}: {e}")))?;
                Some((h, n))
            }
            None => None,
        };
        match judge(
            node.hash,
            held.as_ref().map(|h| &h.0),
            request.old_size,
            &request.proof,
            &cp,
        ) {
            Verdict::Cosign => {
                let sig = checkpoint::cosign(
                    &note.text,
                    &checkpoint::name_of(&node.id),
                    &node.key,
                    now.timestamp().max(0) as u64,
                )?;
                repo::hold(
                    c,
                    &WitnessedLogRow {
                        peer: peer.to_string(),
                        size: cp.size as i64,
                        root: merkle::to_hex(&cp.root),
                        checkpoint: request.note.clone(),
                        cosigned_at: now.naive_utc(),
                    },
                )?;
                Ok(Decided::Cosigned(sig.line()))
            }
            Verdict::BadRequest(r) => Ok(Decided::Refused(WitnessError::Malformed(r))),
            Verdict::Conflict { held } => Ok(Decided::Refused(WitnessError::Conflict { held })),
            Verdict::Inconsistent { kind, reason } => {
                let Some((_, held_note)) = held else {
                    return Err(
                        AuditError::Corrupt("evidence without a held checkpoint".into()).into(),
                    );
                };
                let evidence = Evidence::new(
                    kind,
                    peer.clone(),
                    node.id.clone(),
                    now,
                    &held_note,
                    &request,
                );
                let id = keep_evidence(c, node, &evidence, &reason, now)?;
                Ok(Decided::Refused(WitnessError::Inconsistent {
                    kind,
                    reason,
                    evidence: id,
                }))
            }
        }
    })?;
    match decided {
        Decided::Cosigned(lines) => Ok(lines),
        Decided::Refused(e) => Err(e),
    }
}

/// Stores evidence with its audit event, and says so in the log at ERROR. Returns its id.
fn keep_evidence(
    c: &mut DbConn,
    node: &LocalNode,
    evidence: &Evidence,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<String, WitnessError> {
    let document = serde_json::to_string_pretty(evidence)
        .map_err(|e| AuditError::Corrupt(format!("serialising evidence: {e}")))?;
    let id = Digest::of(document.as_bytes()).to_string();
    let new = repo::insert_evidence(
        c,
        &EvidenceRow {
            id: id.clone(),
            peer: evidence.log.to_string(),
            kind: evidence.kind.as_str().to_owned(),
            detected_at: now.naive_utc(),
            document,
            acknowledged_at: None,
            acknowledged_by: None,
        },
    )?;
    if new {
        audit::append(
            c,
            node.clock.now(),
            now,
            &Event::new(
                Actor::job(&format!("witness:{}", evidence.log)),
                "witness.inconsistent",
                Outcome::Failed,
            )
            .object("node", evidence.log.as_str())
            .details(serde_json::json!({
                "peer": evidence.log, "kind": evidence.kind, "reason": reason, "evidence": id,
            })),
        )?;
        tracing::error!(
            peer = %evidence.log,
            kind = evidence.kind.as_str(),
            evidence = %id,
            "a peer's audit log is inconsistent with what this node witnessed: {reason}; cosigning for it stops until an administrator acknowledges (hukou-sync audit evidence ack)"
        );
    }
    Ok(id)
}

/// An administrator acknowledges the evidence against `peer` (after checking it, e.g. a
/// legitimate restore): cosigning resumes from the peer's next checkpoint, audited. Returns how
/// many pieces of evidence were acknowledged.
pub fn acknowledge(
    conn: &mut DbConn,
    node: &LocalNode,
    peer: &NodeId,
    actor: &Actor,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<usize, WitnessError> {
    storage::transaction(conn, |c| {
        repo::lock_witness(c)?;
        let n = repo::acknowledge(c, peer.as_str(), &actor.id, now.naive_utc())?;
        if n > 0 {
            repo::release(c, peer.as_str())?;
            audit::append(
                c,
                node.clock.now(),
                now,
                &Event::new(actor.clone(), "witness.acknowledge", Outcome::Ok)
                    .object("node", peer.as_str())
                    .details(serde_json::json!({ "peer": peer, "evidence": n, "reason": reason })),
            )?;
        }
        Ok(n)
    })
}

/// Why asking a peer to cosign failed.
#[derive(Debug, thiserror::Error)]
pub enum CosignError {
    #[error("{peer} is not in the directory")]
    NotInDirectory { peer: NodeId },
    #[error("transport: {0}")]
    Transport(String),
    /// The peer cosigned a larger tree of this log than the log now holds.
    #[error("{peer} cosigned size {cosigned} of this node's log, which now has {ours} events: the log is behind what its witness saw (restored from a backup?)")]
    Behind {
        peer: NodeId,
        cosigned: u64,
        ours: u64,
    },
    #[error("{peer} answered {status}: {body}")]
    Refused {
        peer: NodeId,
        status: u16,
        body: String,
    },
    #[error("{peer}'s answer holds no valid cosignature of its key")]
    BadCosignature { peer: NodeId },
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A cosignature received and kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigned {
    pub size: u64,
    pub timestamp: u64,
}

/// The size `peer` last cosigned of this node's log (0: never).
pub fn last_cosigned(conn: &mut DbConn, peer: &NodeId) -> Result<u64, StorageError> {
    Ok(repo::latest_cosignatures(conn)?
        .into_iter()
        .find(|r| r.witness == peer.as_str())
        .map_or(0, |r| r.size.max(0) as u64))
}

/// Asks `peer` (over `http`, a mutual-TLS client to it) to cosign this node's latest
/// checkpoint, and keeps the cosignature.
pub async fn request_cosignature(
    store: &Store,
    node: &Arc<LocalNode>,
    peer: &NodeId,
    http: &reqwest::Client,
) -> Result<Cosigned, CosignError> {
    let dir = node
        .directory
        .as_ref()
        .map(|d| d.current())
        .ok_or_else(|| CosignError::NotInDirectory { peer: peer.clone() })?;
    let entry = dir
        .node(peer)
        .ok_or_else(|| CosignError::NotInDirectory { peer: peer.clone() })?;
    let url = format!(
        "{}{ADD_CHECKPOINT_PATH}",
        entry.endpoint.trim_end_matches('/')
    );
    let keys = note_keys(&dir, peer);
    let mut old: Option<u64> = None;
    // At most one retry: after a 409 the peer has said which size it holds.
    for _ in 0..2 {
        let (n, p) = (node.clone(), peer.clone());
        let (cp, note, body) = store.run(move |c| prepare(c, &n, &p, old)).await?;
        let resp = http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(body)
            .send()
            .await
            .map_err(|e| CosignError::Transport(super::sender::error_chain(&e)))?;
        let status = resp.status().as_u16();
        let text: String = resp
            .text()
            .await
            .map_err(|e| CosignError::Transport(super::sender::error_chain(&e)))?
            .chars()
            .take(4096)
            .collect();
        match status {
            200 => {
                let witness = checkpoint::name_of(peer);
                let found = text.lines().find_map(|l| {
                    let sig = Note::parse(format!("x\n\n{l}\n").as_bytes())
                        .ok()?
                        .signatures
                        .pop()?;
                    keys.iter()
                        .find_map(|k| sig.cosignature_time(&note.text, &witness, k))
                        .map(|t| (t, sig))
                });
                let Some((timestamp, sig)) = found else {
                    return Err(CosignError::BadCosignature { peer: peer.clone() });
                };
                keep_cosignature(store, peer, &cp, &sig, timestamp).await?;
                return Ok(Cosigned {
                    size: cp.size,
                    timestamp,
                });
            }
            409 => {
                let held = checkpoint::parse_decimal(text.trim_end_matches('\n'));
                match held {
                    Some(h) if h > cp.size => {
                        return Err(CosignError::Behind {
                            peer: peer.clone(),
                            cosigned: h,
                            ours: cp.size,
                        })
                    }
                    Some(h) if old != Some(h) => old = Some(h),
                    _ => {
                        return Err(CosignError::Refused {
                            peer: peer.clone(),
                            status,
                            body: text,
                        })
                    }
                }
            }
            _ => {
                return Err(CosignError::Refused {
                    peer: peer.clone(),
                    status,
                    body: text,
                })
            }
        }
    }
    Err(CosignError::Refused {
        peer: peer.clone(),
        status: 409,
        body: "the size the witness holds changed while asking".into(),
    })
}

/// The latest checkpoint and the request body: a proof from `old` (default: the size `peer`
/// last cosigned).
fn prepare(
    c: &mut DbConn,
    node: &LocalNode,
    peer: &NodeId,
    old: Option<u64>,
) -> Result<(Checkpoint, Note, String), CosignError> {
    let (cp, note) = audit::log::latest_checkpoint(c, &node.id, &node.key, Utc::now())?;
    let old = match old {
        Some(o) => o,
        None => last_cosigned(c, peer)?,
    };
    let proof: Vec<Hash> = if old == 0 || old >= cp.size {
        Vec::new()
    } else {
        audit::log::consistency(c, old, cp.size)?
            .path
            .iter()
            .map(|h| merkle::from_hex(h).map_err(|e| AuditError::Corrupt(e.to_string())))
            .collect::<Result<_, _>>()?
    };
    let body = AddCheckpoint {
        old_size: old.min(cp.size),
        proof,
        note: note.to_string(),
    }
    .body();
    Ok((cp, note, body))
}

async fn keep_cosignature(
    store: &Store,
    peer: &NodeId,
    cp: &Checkpoint,
    sig: &NoteSignature,
    timestamp: u64,
) -> Result<(), CosignError> {
    let row = CosignatureRow {
        witness: peer.to_string(),
        size: cp.size as i64,
        root: merkle::to_hex(&cp.root),
        line: sig.line().trim_end().to_owned(),
        cosigned_at: DateTime::from_timestamp(timestamp as i64, 0)
            .unwrap_or_default()
            .naive_utc(),
    };
    store
        .run(move |c| repo::insert_cosignature(c, &row))
        .await?;
    Ok(())
}

/// Which checkpoint of this node's log to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhichCheckpoint {
    /// Sign a tree head first if the log grew.
    SignedNow,
    /// The latest head already signed.
    Latest,
    /// The largest one a witness cosigned.
    Cosigned,
}

/// A checkpoint of this node's log with the cosignatures its witnesses gave for it (a note
/// anyone verifies with the directory), and how many there are.
pub fn checkpoint_with_cosignatures(
    conn: &mut DbConn,
    node: &LocalNode,
    which: WhichCheckpoint,
) -> Result<(Checkpoint, Note, usize), AuditError> {
    let stored = |conn: &mut DbConn, size: Option<i64>| {
        let head = match size {
            Some(s) => crate::storage::audit::tree_head_at(conn, s)?,
            None => crate::storage::audit::latest_tree_head(conn)?,
        };
        head.ok_or(AuditError::NoTreeHead)
    };
    let (cp, mut note) = match which {
        WhichCheckpoint::SignedNow => {
            audit::log::latest_checkpoint(conn, &node.id, &node.key, Utc::now())?
        }
        WhichCheckpoint::Latest => {
            let head = stored(conn, None)?;
            audit::log::checkpoint_of(conn, &node.id, &node.key, &head)?
        }
        WhichCheckpoint::Cosigned => {
            let size = repo::latest_cosignatures(conn)?
                .iter()
                .map(|r| r.size)
                .max()
                .ok_or(AuditError::NoTreeHead)?;
            let head = stored(conn, Some(size))?;
            audit::log::checkpoint_of(conn, &node.id, &node.key, &head)?
        }
    };
    let root = merkle::to_hex(&cp.root);
    let mut n = 0;
    for r in repo::cosignatures_at(conn, cp.size as i64)?
        .iter()
        .filter(|r| r.root == root)
    {
        if let Some(sig) = Note::parse(format!("x\n\n{}\n", r.line).as_bytes())
            .ok()
            .and_then(|mut p| p.signatures.pop())
        {
            note.signatures.push(sig);
            n += 1;
        }
    }
    Ok((cp, note, n))
}
