//! The start-up self check (DESIGN §8): before a node serves, it checks its own audit log —
//!
//! 1. every event added since the last check is recomputed from its columns (RFC 8785 bytes →
//!    leaf hash) and must match its stored leaf hash and details digest; the Merkle frontier of
//!    the log (kept between starts as its peaks) is extended with them, and the recomputed root
//!    at every signed head's size must be that head's root. The check resumes from where the last
//!    one ended, so a start at millions of events hashes only the new ones; a log shorter than
//!    what was already verified is itself a finding;
//! 2. the log against the latest checkpoint each witness cosigned for it (the cosignatures kept by
//!    `sync::witness`): a log behind that size, or with another root at it, lost or rewrote
//!    history its witnesses saw.
//!
//! Before both, a database that `hukou-sync restore` put in place is a finding of its own
//! ([`Finding::Restored`]): a backup's log is a prefix of what the peers' witnesses may have
//! cosigned since, so the node must not append (and sign heads over) a history that differs at
//! sizes they saw before an administrator has decided so.
//!
//! A finding stops the start (`startup`) unless an administrator passes `--accept-restore`;
//! [`accept_restore`] then records what was lost in the audit log, forgets the heads and
//! cosignatures of the lost history and checks the log afresh from its first event. Older
//! events than the resume point are re-checked by `audit verify` (the whole log), not here.

use std::cell::RefCell;

use chrono::{DateTime, NaiveDateTime, Utc};

use super::log::{leaf_of, StoredSubtrees};
use super::merkle::{self, Frontier, Hash};
use super::{Actor, AuditError, Event, Outcome};
use crate::crypto::hash::Digest;
use crate::crypto::hlc::Hlc;
use crate::storage::audit as repo;
use crate::storage::DbConn;

/// Events read at a time.
const PAGE: i64 = 10_000;

/// What the self check found wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Finding {
    /// `hukou-sync restore` put a backup in place and nobody accepted it yet (`storage::backup`).
    #[error("this database was restored from a backup ({from}) whose audit log has {size} events: peers may have cosigned later checkpoints of this log and hold versions it lost, and every event it appends now forks from what they saw")]
    Restored { size: u64, from: String },
    #[error("the audit log has {size} events, but {verified} were verified at an earlier start: events were deleted or an older database was restored")]
    Truncated { verified: u64, size: u64 },
    #[error("audit event {seq} is missing")]
    Missing { seq: u64 },
    #[error("audit event {seq} was changed after it was written: its content no longer matches its leaf hash")]
    EventChanged { seq: u64 },
    #[error("the log's recomputed root at size {size} is not the root of its signed tree head of that size")]
    HeadMismatch { size: u64 },
    #[error("witness {witness} cosigned size {cosigned} of this log (at {at} UTC), but the log has only {size} events: it lost history its witness saw")]
    BehindWitness {
        witness: String,
        cosigned: u64,
        size: u64,
        at: NaiveDateTime,
    },
    #[error("the log diverges from the checkpoint of size {cosigned} that witness {witness} cosigned (at {at} UTC): its root at that size is another")]
    DivergesFromWitness {
        witness: String,
        cosigned: u64,
        at: NaiveDateTime,
    },
}

/// What a passing check covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Events checked now: `[from, size)`.
    pub from: u64,
    pub size: u64,
    /// Signed heads compared.
    pub heads: usize,
    /// Witnesses whose latest cosignature was compared.
    pub witnesses: usize,
}

fn peaks_text(f: &Frontier) -> String {
    f.peaks()
        .iter()
        .map(merkle::to_hex)
        .collect::<Vec<_>>()
        .join(",")
}

fn resume(conn: &mut DbConn) -> Result<Frontier, AuditError> {
    let alg = repo::content_hash(conn)?;
    let Some((size, peaks)) = repo::self_check_mark(conn)? else {
        return Ok(Frontier::new(alg));
    };
    let bad = |e: String| AuditError::Corrupt(format!("self-check mark: {e}"));
    let peaks: Vec<Hash> = if peaks.is_empty() {
        Vec::new()
    } else {
        peaks
            .split(',')
            .map(|p| merkle::from_hex(p).map_err(|e| bad(e.to_string())))
            .collect::<Result<_, _>>()?
    };
    Frontier::from_peaks(alg, size.max(0) as u64, peaks).map_err(|e| bad(e.to_string()))
}

/// Extends `frontier` over the events `[frontier.size(), size)`, checking each and every head
/// in between when `check` is set; returns the heads compared.
fn extend(
    conn: &mut DbConn,
    frontier: &mut Frontier,
    size: u64,
    check: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Result<usize, Finding>, AuditError> {
    let from = frontier.size();
    let heads = repo::tree_heads_between(conn, from as i64, size as i64)?;
    let mut next_head = heads.iter().peekable();
    let mut compared = 0;
    while frontier.size() < size {
        let at = frontier.size();
        let rows = repo::events_range(conn, at as i64, (at as i64 + PAGE).min(size as i64))?;
        if rows.is_empty() {
            return Ok(Err(Finding::Missing { seq: at }));
        }
        for row in &rows {
            let seq = frontier.size();
            if row.seq as u64 != seq {
                return Ok(Err(Finding::Missing { seq }));
            }
            let leaf = merkle::leaf_hash(frontier.alg(), &leaf_of(row)?.canonical_bytes()?);
            if check
                && (merkle::to_hex(&leaf) != row.leaf_hash
                    || Digest::with(frontier.alg(), row.details.as_bytes()).to_string()
                        != row.details_digest)
            {
                return Ok(Err(Finding::EventChanged { seq }));
            }
            frontier.push(leaf);
            while let Some(h) = next_head.next_if(|h| h.size == frontier.size()) {
                if check && h.root.0 != frontier.root() {
                    return Ok(Err(Finding::HeadMismatch { size: h.size }));
                }
                compared += 1;
            }
        }
        progress(frontier.size() - from, size - from);
    }
    Ok(Ok(compared))
}

/// Checks the log as the module doc says; on success the resume point moves to its end.
pub fn self_check(
    conn: &mut DbConn,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Result<Checked, Finding>, AuditError> {
    if let Some((size, from)) = crate::storage::backup::restored_mark(conn)? {
        return Ok(Err(Finding::Restored {
            size: size.max(0) as u64,
            from,
        }));
    }
    let mut frontier = resume(conn)?;
    let from = frontier.size();
    let size = repo::size(conn)?.max(0) as u64;
    if size < from {
        return Ok(Err(Finding::Truncated {
            verified: from,
            size,
        }));
    }
    let heads = match extend(conn, &mut frontier, size, true, progress)? {
        Ok(h) => h,
        Err(f) => return Ok(Err(f)),
    };
    let cosignatures = crate::storage::witness::latest_cosignatures(conn)?;
    for c in &cosignatures {
        let cosigned = c.size.max(0) as u64;
        if cosigned > size {
            return Ok(Err(Finding::BehindWitness {
                witness: c.witness.clone(),
                cosigned,
                size,
                at: c.cosigned_at,
            }));
        }
        let root = if cosigned == 0 {
            merkle::empty_root(frontier.alg())
        } else {
            merkle::root_from(
                frontier.alg(),
                &StoredSubtrees(RefCell::new(conn)),
                cosigned,
            )
            .map_err(|e| AuditError::Corrupt(e.to_string()))?
        };
        if merkle::to_hex(&root) != c.root {
            return Ok(Err(Finding::DivergesFromWitness {
                witness: c.witness.clone(),
                cosigned,
                at: c.cosigned_at,
            }));
        }
    }
    repo::set_self_check_mark(
        conn,
        size as i64,
        &peaks_text(&frontier),
        Utc::now().naive_utc(),
    )?;
    Ok(Ok(Checked {
        from,
        size,
        heads,
        witnesses: cosignatures.len(),
    }))
}

/// Starts over after a restore an administrator accepted (`serve --accept-restore`): in one
/// transaction, writes the audit event `audit.restore_accepted` (what was found, the log's size,
/// the heads and cosignatures of history the log no longer has — which sizes were lost and which
/// witness proved it), removes those heads and cosignatures, and checks the log afresh from its
/// first event (without refusing: the acceptance is the decision). Reconciliation then brings the
/// lost versions back from the peers.
pub fn accept_restore(
    conn: &mut DbConn,
    finding: &Finding,
    hlc: Hlc,
    now: DateTime<Utc>,
) -> Result<u64, AuditError> {
    crate::storage::transaction(conn, |c| {
        let size = repo::size(c)?.max(0) as u64;
        let lost_heads: Vec<serde_json::Value> = repo::tree_heads_between(c, size as i64, i64::MAX)?
            .iter()
            .map(|h| serde_json::json!({"size": h.size, "root": h.root.to_string(), "signed_at": h.signed_at}))
            .collect();
        let alg = repo::content_hash(c)?;
        let mut frontier = Frontier::new(alg);
        // Recompute without refusing: every leaf as stored now.
        if let Err(f) = extend(c, &mut frontier, size, false, &mut |_, _| {})? {
            return Err(AuditError::Corrupt(format!("cannot start over: {f}")));
        }
        let mut lost_cosignatures = Vec::new();
        for cs in crate::storage::witness::latest_cosignatures(c)? {
            let s = cs.size.max(0) as u64;
            let ours = (s <= size && s > 0)
                .then(|| merkle::root_from(alg, &StoredSubtrees(RefCell::new(c)), s))
                .transpose()
                .map_err(|e| AuditError::Corrupt(e.to_string()))?;
            if s > size || ours.map(|r| merkle::to_hex(&r)) != Some(cs.root.clone()) {
                lost_cosignatures.push(serde_json::json!({
                    "witness": cs.witness, "size": cs.size, "root": cs.root,
                    "cosigned_at": cs.cosigned_at.and_utc(),
                }));
                crate::storage::witness::delete_cosignatures_of(c, &cs.witness)?;
            }
        }
        crate::storage::witness::delete_cosignatures_above(c, size as i64)?;
        repo::delete_tree_heads_above(c, size as i64)?;
        crate::storage::backup::clear_restored_mark(c)?;
        super::append(
            c,
            hlc,
            now,
            &Event::new(Actor::console(), "audit.restore_accepted", Outcome::Ok).details(
                serde_json::json!({
                    "finding": finding.to_string(),
                    "size": size,
                    "lost_tree_heads": lost_heads,
                    "lost_cosignatures": lost_cosignatures,
                }),
            ),
        )?;
        // The acceptance itself is the first event checked at the next start.
        repo::set_self_check_mark(c, size as i64, &peaks_text(&frontier), now.naive_utc())?;
        Ok(size)
    })
}
