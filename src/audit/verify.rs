//! Offline verification: recompute the whole tree from the stored events and check every stored
//! signed head and the consistency between consecutive heads; and export a range of events with
//! a signed head and inclusion proofs that [`verify_export`] checks without a database. An
//! export also carries the largest checkpoint the node's witnesses cosigned, with a consistency
//! proof from it to the export's head; [`verify_export_witnessed`] checks the cosignatures
//! against the directory's keys and the quorum (k of n).

use std::cell::RefCell;
use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use super::log::{
    entry_of, leaf_of, AuditEntry, AuditError, InclusionProof, SignedTreeHead, StoredSubtrees,
};
use super::merkle::{self, Frontier, Hash};
use crate::crypto::hash::{Digest, HashAlg};
use crate::crypto::keys::PublicKey;
use crate::storage::audit as repo;
use crate::storage::DbConn;

/// Events read per query while verifying.
const PAGE: i64 = 20_000;

/// What `audit verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub events: u64,
    pub tree_heads: u64,
    pub consistency_proofs: u64,
    /// The first sequence number whose event is missing or altered, when one can be named.
    pub first_bad_seq: Option<i64>,
    pub problems: Vec<String>,
    /// The size of the cosigned checkpoint the export carries, when its cosignatures were
    /// checked: events below it were witnessed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witnessed_size: Option<u64>,
    /// The witnesses whose cosignature verified.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cosigned_by: Vec<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn fail(&mut self, seq: Option<i64>, problem: String) {
        if self.first_bad_seq.is_none() {
            self.first_bad_seq = seq;
        }
        if self.problems.len() < 100 {
            self.problems.push(problem);
        }
    }
}

/// Recomputes every leaf and the roots at every stored head. `trusted_key`, when given, is the
/// only key heads may be signed with. `progress(done, total)` is called after each page.
pub fn verify_database(
    conn: &mut DbConn,
    trusted_key: Option<&PublicKey>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<VerifyReport, AuditError> {
    let mut report = VerifyReport::default();
    let heads: Vec<SignedTreeHead> = repo::all_tree_heads(conn)?
        .iter()
        .map(SignedTreeHead::from_stored)
        .collect();
    let total = repo::size(conn)?;
    let alg = repo::content_hash(conn)?;
    let mut frontier = Frontier::new(alg);
    let mut next_head = heads.iter().peekable();
    let mut expected = 0i64;
    // Heads of size 0 cover the empty tree.
    while let Some(h) = next_head.next_if(|h| h.size == 0) {
        check_head(&mut report, h, &merkle::empty_root(alg), trusted_key);
    }
    'pages: while expected < total {
        let rows = repo::events_range(conn, expected, expected + PAGE)?;
        if rows.is_empty() {
            report.fail(Some(expected), format!("events {expected}.. are missing"));
            break;
        }
        for row in &rows {
            if row.seq != expected {
                report.fail(
                    Some(expected),
                    format!("event {expected} is missing (next stored is {})", row.seq),
                );
                break 'pages;
            }
            let leaf = match leaf_of(row).and_then(|l| Ok(l.canonical_bytes()?)) {
                Ok(bytes) => merkle::leaf_hash(alg, &bytes),
                Err(e) => {
                    report.fail(Some(row.seq), format!("event {}: {e}", row.seq));
                    [0u8; 32]
                }
            };
            if Digest::with(alg, row.details.as_bytes()).to_string() != row.details_digest {
                report.fail(
                    Some(row.seq),
                    format!("event {}: details do not match their digest", row.seq),
                );
            }
            if merkle::to_hex(&leaf) != row.leaf_hash {
                report.fail(
                    Some(row.seq),
                    format!("event {}: content does not match its leaf hash", row.seq),
                );
            }
            frontier.push(leaf);
            expected += 1;
            while let Some(h) = next_head.next_if(|h| h.size == frontier.size()) {
                check_head(&mut report, h, &frontier.root(), trusted_key);
            }
        }
        report.events = expected as u64;
        progress(expected as u64, total as u64);
    }
    report.events = expected as u64;
    for h in next_head {
        report.fail(
            Some(expected),
            format!(
                "tree head of size {} covers events that are not stored (only {expected})",
                h.size
            ),
        );
    }
    report.tree_heads = heads.len() as u64;
    // Consistency between consecutive heads, through the stored subtree hashes that proofs use.
    if report.ok() {
        let src = StoredSubtrees(RefCell::new(conn));
        for pair in heads.windows(2) {
            let (old, new) = (&pair[0], &pair[1]);
            if old.size == 0 || old.size == new.size {
                continue;
            }
            let (Some(old_root), Some(new_root)) = (old.root_hash(), new.root_hash()) else {
                continue;
            };
            let ok = merkle::consistency_proof(alg, &src, old.size, new.size)
                .map_err(|e| e.to_string())
                .and_then(|p| {
                    merkle::verify_consistency(alg, old.size, new.size, &old_root, &new_root, &p)
                        .map_err(|e| e.to_string())
                });
            match ok {
                Ok(()) => report.consistency_proofs += 1,
                Err(e) => report.fail(
                    None,
                    format!(
                        "heads {} and {} are not consistent through the stored subtrees: {e}",
                        old.size, new.size
                    ),
                ),
            }
        }
    }
    Ok(report)
}

fn check_head(
    report: &mut VerifyReport,
    head: &SignedTreeHead,
    root: &Hash,
    trusted: Option<&PublicKey>,
) {
    if merkle::to_hex(root) != head.root {
        report.fail(
            None,
            format!(
                "tree head of size {} does not match the events: an event before {} was altered, removed or reordered",
                head.size, head.size
            ),
        );
    }
    if let Err(e) = head.verify() {
        report.fail(
            None,
            format!("tree head of size {}: signature: {e}", head.size),
        );
    }
    if let Some(k) = trusted {
        if &head.public_key != k {
            report.fail(
                None,
                format!(
                    "tree head of size {} is signed by an untrusted key",
                    head.size
                ),
            );
        }
    }
}

/// One line of an export file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExportLine {
    TreeHead(SignedTreeHead),
    /// After the head: the largest checkpoint witnesses cosigned.
    Witnessed(WitnessedCheckpoint),
    Event(AuditEntry),
}

/// A cosigned checkpoint of the log and the proof that the export's head extends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessedCheckpoint {
    /// The signed note: the log's signature and the witnesses' cosignatures.
    pub checkpoint: String,
    /// RFC 9162 consistency proof (hex) from the checkpoint's size to the head's.
    pub consistency: Vec<String>,
}

/// What an export's cosignatures are checked against.
pub struct WitnessPolicy<'a> {
    /// The keys that may sign a node's notes (the directory's: `Directory::note_keys`).
    pub keys_of: &'a dyn Fn(&crate::domain::NodeId) -> Vec<PublicKey>,
    /// Witnesses that must have cosigned (k of n).
    pub quorum: usize,
}

/// Writes the head and then the events `from <= seq < to`, each with its inclusion proof
/// against the head. Returns the number of events written.
pub fn export(
    conn: &mut DbConn,
    head: &SignedTreeHead,
    from: i64,
    to: i64,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<u64, AuditError> {
    export_witnessed(conn, head, from, to, None, out, progress)
}

/// [`export`], with the cosigned checkpoint `witnessed` (of a size up to the head's) and the
/// consistency proof from it to the head after the head.
pub fn export_witnessed(
    conn: &mut DbConn,
    head: &SignedTreeHead,
    from: i64,
    to: i64,
    witnessed: Option<&super::checkpoint::Note>,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<u64, AuditError> {
    let to = to.min(head.size as i64);
    if from < 0 || from > to {
        return Err(AuditError::Range(format!(
            "need 0 <= from <= to <= {}",
            head.size
        )));
    }
    // Leaf hashes of the whole head's tree (32 bytes each) give proofs without database reads.
    let mut leaves = Vec::with_capacity(head.size as usize);
    let mut seq = 0;
    while seq < head.size as i64 {
        for row in repo::events_range(conn, seq, (seq + PAGE).min(head.size as i64))? {
            leaves.push(
                merkle::from_hex(&row.leaf_hash)
                    .map_err(|_| AuditError::Corrupt(format!("event {}", row.seq)))?,
            );
        }
        seq += PAGE;
    }
    let tree = merkle::MemoryTree::from_leaves(repo::content_hash(conn)?, &leaves);
    let io = |e: std::io::Error| AuditError::Corrupt(format!("write: {e}"));
    let json = |e: serde_json::Error| AuditError::Corrupt(format!("serialising a line: {e}"));
    writeln!(
        out,
        "{}",
        serde_json::to_string(&ExportLine::TreeHead(head.clone())).map_err(json)?
    )
    .map_err(io)?;
    if let Some(note) = witnessed {
        let cp = super::checkpoint::Checkpoint::parse(&note.text)?;
        if cp.size <= head.size {
            let consistency = if cp.size == 0 || cp.size == head.size {
                Vec::new()
            } else {
                merkle::consistency_proof(tree.alg(), &tree, cp.size, head.size)
                    .map_err(|e| AuditError::Corrupt(e.to_string()))?
                    .iter()
                    .map(merkle::to_hex)
                    .collect()
            };
            let line = ExportLine::Witnessed(WitnessedCheckpoint {
                checkpoint: note.to_string(),
                consistency,
            });
            writeln!(out, "{}", serde_json::to_string(&line).map_err(json)?).map_err(io)?;
        }
    }
    let mut written = 0u64;
    let mut seq = from;
    while seq < to {
        for row in repo::events_range(conn, seq, (seq + PAGE).min(to))? {
            let mut entry = entry_of(&row)?;
            let path = merkle::inclusion_proof(tree.alg(), &tree, row.seq as u64, head.size)
                .map_err(|e| AuditError::Corrupt(e.to_string()))?;
            entry.inclusion = Some(InclusionProof {
                tree_size: head.size,
                path: path.iter().map(merkle::to_hex).collect(),
            });
            writeln!(
                out,
                "{}",
                serde_json::to_string(&ExportLine::Event(entry)).map_err(json)?
            )
            .map_err(io)?;
            written += 1;
        }
        seq += PAGE;
        progress(written, (to - from) as u64);
    }
    Ok(written)
}

/// Checks an export file: the head's signature (and key, if trusted one is given), then every
/// event's leaf and inclusion proof. Returns the report; line numbers start at 1.
/// `alg` is the content hash of the exporting node's network (its directory's `hash`).
pub fn verify_export(
    input: &mut dyn BufRead,
    alg: HashAlg,
    trusted_key: Option<&PublicKey>,
) -> VerifyReport {
    verify_export_witnessed(input, alg, trusted_key, None)
}

/// [`verify_export`], and with a policy: the export's cosigned checkpoint must be signed by the
/// head's key as the log's (a directory key of the log), cosigned by at least `quorum` witnesses
/// of the directory, and extended by the head (its consistency proof).
pub fn verify_export_witnessed(
    input: &mut dyn BufRead,
    alg: HashAlg,
    trusted_key: Option<&PublicKey>,
    policy: Option<&WitnessPolicy>,
) -> VerifyReport {
    let mut report = VerifyReport::default();
    let mut head: Option<SignedTreeHead> = None;
    let mut witnessed_seen = false;
    for (n, line) in input.lines().enumerate() {
        let lineno = n + 1;
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                report.fail(None, format!("line {lineno}: {e}"));
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<ExportLine>(&line) {
            Ok(ExportLine::TreeHead(h)) if head.is_none() => {
                match h.root_hash() {
                    Some(root) => check_head(&mut report, &h, &root, trusted_key),
                    None => report.fail(
                        None,
                        format!("line {lineno}: the tree head's root is not a 64-digit hash"),
                    ),
                }
                report.tree_heads += 1;
                head = Some(h);
            }
            Ok(ExportLine::TreeHead(_)) => {
                report.fail(None, format!("line {lineno}: a second tree head"))
            }
            Ok(ExportLine::Witnessed(w)) => {
                let Some(h) = &head else {
                    report.fail(
                        None,
                        format!("line {lineno}: checkpoint before the tree head"),
                    );
                    break;
                };
                witnessed_seen = true;
                if let Some(p) = policy {
                    if let Err(e) = check_witnessed(&mut report, alg, &w, h, p) {
                        report.fail(None, format!("line {lineno}: {e}"));
                    }
                }
            }
            Ok(ExportLine::Event(e)) => {
                let Some(h) = &head else {
                    report.fail(None, format!("line {lineno}: event before the tree head"));
                    break;
                };
                let seq = e.event.seq;
                let problem = check_exported_event(alg, &e, h);
                if let Err(p) = problem {
                    report.fail(Some(seq), format!("line {lineno} (event {seq}): {p}"));
                }
                report.events += 1;
            }
            Err(err) => report.fail(None, format!("line {lineno}: not an export line: {err}")),
        }
    }
    if head.is_none() && report.problems.is_empty() {
        report.fail(None, "no tree head in the export".into());
    }
    if let Some(p) = policy {
        if !witnessed_seen && p.quorum > 0 {
            report.fail(
                None,
                format!(
                    "the export carries no cosigned checkpoint; the quorum is {}",
                    p.quorum
                ),
            );
        }
    }
    report
}

fn check_witnessed(
    report: &mut VerifyReport,
    alg: HashAlg,
    w: &WitnessedCheckpoint,
    head: &SignedTreeHead,
    policy: &WitnessPolicy,
) -> Result<(), String> {
    use super::checkpoint::{self, Checkpoint};
    let (cp, note) = Checkpoint::open(w.checkpoint.as_bytes(), &[head.public_key])
        .map_err(|e| format!("the cosigned checkpoint: {e}"))?;
    let log = checkpoint::node_of_name(&cp.origin)
        .ok_or_else(|| format!("the checkpoint's origin {} names no node", cp.origin))?;
    if !(policy.keys_of)(&log).contains(&head.public_key) {
        return Err(format!(
            "the export's key is not a key of {log} in the directory"
        ));
    }
    let proof: Vec<Hash> = w
        .consistency
        .iter()
        .map(|h| merkle::from_hex(h).map_err(|_| "bad hash in the consistency proof".to_string()))
        .collect::<Result<_, _>>()?;
    let head_root = head.root_hash().ok_or("bad root in head")?;
    merkle::verify_consistency(alg, cp.size, head.size, &cp.root, &head_root, &proof).map_err(
        |e| {
            format!(
                "the head of size {} does not extend the cosigned checkpoint of size {}: {e}",
                head.size, cp.size
            )
        },
    )?;
    let cosigned = checkpoint::cosigners(&note, &log, |n| (policy.keys_of)(n));
    report.witnessed_size = Some(cp.size);
    report.cosigned_by = cosigned.iter().map(|(n, _)| n.to_string()).collect();
    if cosigned.len() < policy.quorum {
        return Err(format!(
            "the checkpoint of size {} is cosigned by {} witness(es); the quorum is {}",
            cp.size,
            cosigned.len(),
            policy.quorum
        ));
    }
    Ok(())
}

fn check_exported_event(alg: HashAlg, e: &AuditEntry, head: &SignedTreeHead) -> Result<(), String> {
    let bytes = e.event.canonical_bytes().map_err(|x| x.to_string())?;
    let leaf = merkle::leaf_hash(alg, &bytes);
    if merkle::to_hex(&leaf) != e.leaf_hash {
        return Err("content does not match its leaf hash".into());
    }
    if Digest::with(alg, e.details.to_string().as_bytes()) != e.event.details_digest {
        return Err("details do not match their digest".into());
    }
    let proof = e.inclusion.as_ref().ok_or("no inclusion proof")?;
    if proof.tree_size != head.size {
        return Err("proof is for another tree size".into());
    }
    let path: Vec<Hash> = proof
        .path
        .iter()
        .map(|h| merkle::from_hex(h).map_err(|_| "bad hash in proof"))
        .collect::<Result<_, _>>()?;
    let root = head.root_hash().ok_or("bad root in head")?;
    merkle::verify_inclusion(alg, &leaf, e.event.seq as u64, head.size, &path, &root)
        .map_err(|x| x.to_string())
}
