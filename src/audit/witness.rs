//! What a witness decides (DESIGN §8, `c2sp.org/tlog-witness` "add-checkpoint"), pure: given the
//! checkpoint it last cosigned for a log and a request (old size, consistency proof, new signed
//! checkpoint), cosign, answer 409 with the size it holds, or refuse — and when the refusal
//! shows the log misbehaving, the [`Evidence`] that proves it to anyone offline.
//!
//! The rules, in order (the first that applies decides):
//! 1. old size above the checkpoint's size: a bad request (400);
//! 2. a checkpoint of the size held with another root: **equivocation** (422, evidence);
//! 3. a checkpoint smaller than the one held: signed later than it (its timestamp line), a
//!    **rollback** (422, evidence); signed earlier, only a stale request (409);
//! 4. old size not the size held (0 when none is held): 409 with the size held;
//! 5. a consistency proof (RFC 9162 §2.1.4.2) from the held checkpoint to the new one that does
//!    not verify: **inconsistent proof** (422, evidence);
//! 6. otherwise cosign, and hold the new checkpoint.
//!
//! Where tlog-witness answers 409 for a second root of one size, we answer 422 as the issue asks:
//! it is not a stale request the log can retry, it is proof against it.
//!
//! Evidence verification ([`Evidence::verify`]) needs only the log's public keys (the directory)
//! and says how conclusive the evidence is: an equivocation or a later-signed smaller tree is
//! proof on its own; a proof that fails shows the log did not prove consistency, and is proof of
//! a fork once the log cannot give a verifying one.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::checkpoint::{parse_decimal, Checkpoint, Note, NoteError, MAX_NOTE_BYTES};
use super::merkle::{self, Hash};
use crate::crypto::hash::HashAlg;
use crate::crypto::keys::PublicKey;
use crate::domain::NodeId;

/// Most consistency proof lines a request may carry (tlog-witness: "MUST NOT send more than 63").
pub const MAX_PROOF_LINES: usize = 63;
/// Largest add-checkpoint body: the proof lines and a note.
pub const MAX_REQUEST_BYTES: usize = MAX_NOTE_BYTES + 64 * 50;
/// The `format` of an evidence document.
pub const EVIDENCE_FORMAT: &str = "hukou-sync/witness-evidence/v1";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessError {
    #[error("not an add-checkpoint request: {0}")]
    Malformed(String),
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// A parsed `add-checkpoint` body.
#[derive(Debug, Clone)]
pub struct AddCheckpoint {
    pub old_size: u64,
    pub proof: Vec<Hash>,
    /// The signed checkpoint, as sent.
    pub note: String,
}

impl AddCheckpoint {
    /// The body: `old <size>`, one base64 hash per line, a blank line, the signed checkpoint.
    pub fn body(&self) -> String {
        let mut s = format!("old {}\n", self.old_size);
        for h in &self.proof {
            s.push_str(&STANDARD.encode(h));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.note);
        s
    }

    pub fn parse(body: &[u8]) -> Result<Self, WitnessError> {
        let bad = |s: &str| WitnessError::Malformed(s.to_owned());
        if body.len() > MAX_REQUEST_BYTES {
            return Err(bad("the body is too long"));
        }
        let s = std::str::from_utf8(body).map_err(|_| bad("not UTF-8"))?;
        let (head, note) = s
            .split_once("\n\n")
            .ok_or_else(|| bad("no blank line before the checkpoint"))?;
        let mut lines = head.split('\n');
        let old_size = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .and_then(parse_decimal)
            .ok_or_else(|| bad("the first line is 'old <size>'"))?;
        let proof = lines
            .map(|l| {
                STANDARD
                    .decode(l)
                    .ok()
                    .and_then(|h| Hash::try_from(h).ok())
                    .ok_or_else(|| bad("a proof line is not a base64 SHA-256 hash"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if proof.len() > MAX_PROOF_LINES {
            return Err(bad("more than 63 proof lines"));
        }
        Ok(AddCheckpoint {
            old_size,
            proof,
            note: note.to_owned(),
        })
    }
}

/// What kind of misbehaviour evidence shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// Two signed checkpoints of one size with different roots.
    Equivocation,
    /// A signed checkpoint of a smaller tree, signed after a larger one.
    Rollback,
    /// A consistency proof from the held checkpoint to a new one that does not verify.
    InconsistentProof,
}

impl EvidenceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::Equivocation => "equivocation",
            EvidenceKind::Rollback => "rollback",
            EvidenceKind::InconsistentProof => "inconsistent_proof",
        }
    }
}

/// What the witness answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Cosign the new checkpoint and hold it.
    Cosign,
    /// 400: the request contradicts itself.
    BadRequest(String),
    /// 409: the old size is not the size held (which is returned).
    Conflict { held: u64 },
    /// 422: the log misbehaved; keep the evidence.
    Inconsistent { kind: EvidenceKind, reason: String },
}

/// Decides a request by the rules of the module doc. `held` is the checkpoint last cosigned.
pub fn judge(
    alg: HashAlg,
    held: Option<&Checkpoint>,
    old_size: u64,
    proof: &[Hash],
    new: &Checkpoint,
) -> Verdict {
    if old_size > new.size {
        return Verdict::BadRequest(format!(
            "old size {old_size} is above the checkpoint's size {}",
            new.size
        ));
    }
    let held_size = held.map_or(0, |h| h.size);
    if let Some(h) = held {
        if new.size == h.size && new.root != h.root {
            return Verdict::Inconsistent {
                kind: EvidenceKind::Equivocation,
                reason: format!("a second root for size {}", h.size),
            };
        }
        if new.size < h.size {
            return match (new.timestamp, h.timestamp) {
                (Some(n), Some(o)) if n > o => Verdict::Inconsistent {
                    kind: EvidenceKind::Rollback,
                    reason: format!(
                        "size {} signed at {n} after size {} signed at {o}",
                        new.size, h.size
                    ),
                },
                _ => Verdict::Conflict { held: h.size },
            };
        }
    }
    if old_size != held_size {
        return Verdict::Conflict { held: held_size };
    }
    if let Some(h) = held {
        if let Err(e) = merkle::verify_consistency(alg, h.size, new.size, &h.root, &new.root, proof)
        {
            return Verdict::Inconsistent {
                kind: EvidenceKind::InconsistentProof,
                reason: format!("the proof from size {} to {} fails: {e}", h.size, new.size),
            };
        }
    } else if !proof.is_empty() {
        return Verdict::BadRequest("a proof from size 0 must be empty".into());
    }
    Verdict::Cosign
}

/// Both signed checkpoints of a misbehaviour, and the proof sent if any: a JSON document
/// anyone verifies offline with the log's keys from the directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// Always [`EVIDENCE_FORMAT`].
    pub format: String,
    pub kind: EvidenceKind,
    /// The node whose log misbehaved.
    #[schema(value_type = String)]
    pub log: NodeId,
    /// The node that witnessed it.
    #[schema(value_type = String)]
    pub witness: NodeId,
    pub detected_at: DateTime<Utc>,
    /// The checkpoint the witness held (signed note).
    pub held: String,
    /// The checkpoint it was sent (signed note).
    pub received: String,
    /// The request's old size and proof (base64 lines), for an inconsistent proof.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proof: Vec<String>,
}

/// What verifying evidence found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: EvidenceKind,
    pub held: Checkpoint,
    pub received: Checkpoint,
    /// True when the evidence proves misbehaviour on its own.
    pub conclusive: bool,
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    #[error("not witness evidence: {0}")]
    Format(String),
    #[error("the {which} checkpoint: {source}")]
    Checkpoint {
        which: &'static str,
        source: NoteError,
    },
    #[error("the {0} checkpoint is not of the log the evidence names")]
    WrongOrigin(&'static str),
    #[error("the checkpoints do not show {0}: {1}")]
    NotShown(&'static str, String),
}

impl Evidence {
    /// Checks both checkpoints' signatures with the log's keys and that they show what `kind`
    /// says.
    /// `alg` is the content hash of the log's network (its directory's `hash`).
    pub fn verify(&self, alg: HashAlg, log_keys: &[PublicKey]) -> Result<Finding, EvidenceError> {
        if self.format != EVIDENCE_FORMAT {
            return Err(EvidenceError::Format(format!(
                "format is {:?}, expected {EVIDENCE_FORMAT:?}",
                self.format
            )));
        }
        let origin = super::checkpoint::name_of(&self.log);
        let open = |which: &'static str, text: &str| {
            let (cp, _) = Checkpoint::open(text.as_bytes(), log_keys)
                .map_err(|source| EvidenceError::Checkpoint { which, source })?;
            if cp.origin != origin {
                return Err(EvidenceError::WrongOrigin(which));
            }
            Ok(cp)
        };
        let held = open("held", &self.held)?;
        let received = open("received", &self.received)?;
        let not = |s: String| EvidenceError::NotShown(self.kind.as_str(), s);
        let (conclusive, summary) = match self.kind {
            EvidenceKind::Equivocation => {
                if held.size != received.size || held.root == received.root {
                    return Err(not("not one size with two roots".into()));
                }
                (
                    true,
                    format!(
                        "{} signed two different roots for size {}",
                        self.log, held.size
                    ),
                )
            }
            EvidenceKind::Rollback => match (held.timestamp, received.timestamp) {
                (Some(h), Some(r)) if received.size < held.size && r > h => (
                    true,
                    format!(
                        "{} signed size {} at {r}, after it had signed size {} at {h}",
                        self.log, received.size, held.size
                    ),
                ),
                _ => return Err(not("no smaller tree signed later".into())),
            },
            EvidenceKind::InconsistentProof => {
                let proof = self
                    .proof
                    .iter()
                    .map(|l| STANDARD.decode(l).ok().and_then(|h| Hash::try_from(h).ok()))
                    .collect::<Option<Vec<Hash>>>()
                    .ok_or_else(|| not("a proof line is not a base64 hash".into()))?;
                if self.old_size != Some(held.size) || received.size < held.size {
                    return Err(not("the proof is not from the held size".into()));
                }
                match merkle::verify_consistency(
                    alg,
                    held.size,
                    received.size,
                    &held.root,
                    &received.root,
                    &proof,
                ) {
                    Ok(()) => return Err(not("the proof verifies".into())),
                    Err(e) => (
                        false,
                        format!(
                            "{} gave no valid proof that size {} extends size {} ({e}); it is a fork unless {} can give one",
                            self.log, received.size, held.size, self.log
                        ),
                    ),
                }
            }
        };
        Ok(Finding {
            kind: self.kind,
            held,
            received,
            conclusive,
            summary,
        })
    }

    /// The evidence document for a verdict (the held and received notes as they were signed).
    pub fn new(
        kind: EvidenceKind,
        log: NodeId,
        witness: NodeId,
        detected_at: DateTime<Utc>,
        held: &Note,
        request: &AddCheckpoint,
    ) -> Self {
        let with_proof = kind == EvidenceKind::InconsistentProof;
        Evidence {
            format: EVIDENCE_FORMAT.into(),
            kind,
            log,
            witness,
            detected_at,
            held: held.to_string(),
            received: request.note.clone(),
            old_size: with_proof.then_some(request.old_size),
            proof: if with_proof {
                request.proof.iter().map(|h| STANDARD.encode(h)).collect()
            } else {
                Vec::new()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::merkle::{self, MemoryTree};
    use crate::crypto::keys::SigningKey;

    fn tree(n: u64, salt: u8) -> MemoryTree {
        let leaves: Vec<Hash> = (0..n)
            .map(|i| merkle::leaf_hash(HashAlg::Sha256, &[salt, (i % 251) as u8, (i / 251) as u8]))
            .collect();
        MemoryTree::from_leaves(HashAlg::Sha256, &leaves)
    }

    fn cp(t: &MemoryTree, ms: i64) -> Checkpoint {
        Checkpoint {
            origin: "hukou-sync/410100".into(),
            size: t.size(),
            root: t.root(),
            timestamp: DateTime::from_timestamp_millis(ms),
        }
    }

    fn proof(t: &MemoryTree, old: u64) -> Vec<Hash> {
        merkle::consistency_proof(HashAlg::Sha256, t, old, t.size()).unwrap()
    }

    #[test]
    fn an_extension_is_cosigned_and_a_fork_is_not() {
        let t = tree(20, 0);
        let held = cp(&tree(13, 0), 1);
        assert_eq!(
            judge(HashAlg::Sha256, Some(&held), 13, &proof(&t, 13), &cp(&t, 2)),
            Verdict::Cosign
        );
        assert_eq!(
            judge(HashAlg::Sha256, None, 0, &[], &cp(&t, 2)),
            Verdict::Cosign
        );
        // The same checkpoint again is cosigned again (a fresh timestamp).
        assert_eq!(
            judge(HashAlg::Sha256, Some(&held), 13, &[], &held),
            Verdict::Cosign
        );
        let forked = tree(20, 1);
        assert!(matches!(
            judge(
                HashAlg::Sha256,
                Some(&held),
                13,
                &proof(&forked, 13),
                &cp(&forked, 2)
            ),
            Verdict::Inconsistent {
                kind: EvidenceKind::InconsistentProof,
                ..
            }
        ));
    }

    #[test]
    fn stale_sizes_conflict_and_misbehaviour_is_named() {
        let t = tree(20, 0);
        let held = cp(&t, 10);
        assert_eq!(
            judge(
                HashAlg::Sha256,
                Some(&held),
                13,
                &proof(&tree(25, 0), 13),
                &cp(&tree(25, 0), 11)
            ),
            Verdict::Conflict { held: 20 }
        );
        assert_eq!(
            judge(HashAlg::Sha256, None, 5, &[], &cp(&t, 11)),
            Verdict::Conflict { held: 0 }
        );
        // A smaller tree: stale if signed before the held one, a rollback if after.
        let small = tree(13, 0);
        assert_eq!(
            judge(HashAlg::Sha256, Some(&held), 13, &[], &cp(&small, 9)),
            Verdict::Conflict { held: 20 }
        );
        assert!(matches!(
            judge(HashAlg::Sha256, Some(&held), 0, &[], &cp(&small, 11)),
            Verdict::Inconsistent {
                kind: EvidenceKind::Rollback,
                ..
            }
        ));
        assert!(matches!(
            judge(HashAlg::Sha256, Some(&held), 20, &[], &cp(&tree(20, 1), 11)),
            Verdict::Inconsistent {
                kind: EvidenceKind::Equivocation,
                ..
            }
        ));
        assert!(matches!(
            judge(HashAlg::Sha256, Some(&held), 21, &[], &cp(&t, 11)),
            Verdict::BadRequest(_)
        ));
    }

    #[test]
    fn requests_round_trip_and_bad_ones_are_refused() {
        let t = tree(20, 0);
        let req = AddCheckpoint {
            old_size: 13,
            proof: proof(&t, 13),
            note: "o\n1\nAA==\n\n\u{2014} o AAAAAAAA\n".into(),
        };
        let back = AddCheckpoint::parse(req.body().as_bytes()).unwrap();
        assert_eq!(
            (back.old_size, &back.proof, &back.note),
            (13, &req.proof, &req.note)
        );
        for bad in ["old 01\n\nx", "old 1\nAAAA\n\nx", "new 1\n\nx", "old 1\nx"] {
            assert!(AddCheckpoint::parse(bad.as_bytes()).is_err(), "{bad}");
        }
        let long = format!(
            "old 1\n{}\nx",
            vec![STANDARD.encode([0u8; 32]); 64].join("\n")
        );
        assert!(AddCheckpoint::parse(long.as_bytes()).is_err());
    }

    #[test]
    fn evidence_verifies_offline_and_a_doctored_one_does_not() {
        let key = SigningKey::generate().unwrap().0;
        let log = NodeId::parse("410100").unwrap();
        let a = cp(&tree(20, 0), 1).sign(&key).unwrap();
        let b = cp(&tree(20, 1), 2).sign(&key).unwrap();
        let req = AddCheckpoint {
            old_size: 20,
            proof: vec![],
            note: b.to_string(),
        };
        let w = NodeId::parse("510100").unwrap();
        let ev = Evidence::new(
            EvidenceKind::Equivocation,
            log.clone(),
            w.clone(),
            Utc::now(),
            &a,
            &req,
        );
        let f = ev.verify(HashAlg::Sha256, &[key.public_key()]).unwrap();
        assert!(f.conclusive, "{}", f.summary);
        // Another key did not sign them; the same root twice is no equivocation.
        let other = SigningKey::generate().unwrap().0;
        assert!(ev.verify(HashAlg::Sha256, &[other.public_key()]).is_err());
        let same = Evidence {
            received: a.to_string(),
            ..ev.clone()
        };
        assert!(matches!(
            same.verify(HashAlg::Sha256, &[key.public_key()]),
            Err(EvidenceError::NotShown(..))
        ));
        // A fork shown by a failing proof: verifiable, not conclusive alone.
        let forked = tree(25, 1);
        let req = AddCheckpoint {
            old_size: 20,
            proof: proof(&forked, 20),
            note: cp(&forked, 3).sign(&key).unwrap().to_string(),
        };
        let ev = Evidence::new(
            EvidenceKind::InconsistentProof,
            log,
            w,
            Utc::now(),
            &a,
            &req,
        );
        let f = ev.verify(HashAlg::Sha256, &[key.public_key()]).unwrap();
        assert!(!f.conclusive);
        let json = serde_json::to_string(&ev).unwrap();
        assert_eq!(serde_json::from_str::<Evidence>(&json).unwrap(), ev);
    }
}
