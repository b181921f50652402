//! Ingesting versions pushed by a peer (DESIGN §3, §4, §6). Every version is verified before it
//! is stored: its id is the hash of its content; its signature verifies with a key of its author
//! valid at the version's time and not revoked; its stamp is not too far ahead; its body is a
//! valid record; its parents are stored or earlier in the batch; its author, the sender and this
//! node are parties of the child; and the author changed only fields its role owns (judged
//! against the merged view of the version's ancestors, so both nodes judge alike). A batch is
//! one transaction: accepted versions, their heads, the current views, the forwards to other
//! parties and an audit event for every acceptance and every rejection — or nothing.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::ledger::LedgerError;
use super::merge::{self, MergeInput};
use super::node::LocalNode;
use super::receipt::{RejectCode, Rejection};
use super::version::{DocKind, SignedVersion, VersionId};
use super::view;
use crate::audit::{self, Actor, ActorKind, Event, Outcome, Via};
use crate::directory::Directory;
use crate::domain::child::ChildRecord;
use crate::domain::NodeId;
use crate::storage::records as repo;
use crate::storage::{self, DbConn};

/// What happened to a batch.
#[derive(Debug, Clone, Default)]
pub struct IngestOutcome {
    /// Stored now or already held.
    pub accepted: Vec<VersionId>,
    pub rejected: Vec<Rejection>,
    /// How many were new.
    pub stored: usize,
    /// Cases that received versions (the eligibility service refreshes them).
    pub cases: Vec<String>,
}

type Refusal = (RejectCode, String);

/// Verifies and stores a batch from `sender` (the verified peer), then runs `finish` in the same
/// transaction: the receiver stores the receipt it signs for the batch with the batch — one
/// commit, never a receipt without its versions nor versions without their receipt. Without a
/// directory there are no peers, so nothing can be ingested.
pub fn ingest<T>(
    conn: &mut DbConn,
    node: &LocalNode,
    dir: &Directory,
    sender: &NodeId,
    versions: &[SignedVersion],
    now: DateTime<Utc>,
    finish: impl FnOnce(&mut DbConn, &IngestOutcome) -> Result<T, LedgerError>,
) -> Result<(IngestOutcome, T), LedgerError> {
    let at = now.naive_utc();
    let actor = Actor {
        kind: ActorKind::Node,
        id: sender.to_string(),
        via: Via::Peer,
    };
    let checked = par_map(versions, |v| {
        let record = (v.version.kind == DocKind::Child)
            .then(|| view::record_of(v).ok())
            .flatten();
        (v.id, verify_crypto(dir, v), record)
    });
    if checked.len() != versions.len() {
        return Err(LedgerError::Internal("a verification thread failed".into()));
    }
    let mut verified: HashMap<VersionId, Result<(), Refusal>> = HashMap::new();
    let mut records: HashMap<VersionId, ChildRecord> = HashMap::new();
    for (id, result, record) in checked {
        verified.insert(id, result);
        if let Some(r) = record {
            records.insert(id, r);
        }
    }
    storage::transaction(conn, |conn| {
        let ids: Vec<String> = versions.iter().map(|v| v.id.to_string()).collect();
        let existing = repo::existing_versions(conn, &ids)?;
        let mut out = IngestOutcome::default();
        let mut accepted_here: HashMap<VersionId, ChildRecord> = HashMap::new();
        let mut seen: HashSet<VersionId> = HashSet::new();
        let mut touched_docs: BTreeSet<String> = BTreeSet::new();
        let mut events = Vec::new();
        let mut batch_records: HashMap<String, Vec<ChildRecord>> = HashMap::new();
        for v in versions {
            if let Some(r) = records.get(&v.id) {
                batch_records
                    .entry(v.version.doc_id.clone())
                    .or_default()
                    .push(r.clone());
            }
        }
        // Files new in this batch whose only version is a creation: their view is that record.
        let mut creations: HashMap<String, ChildRecord> = HashMap::new();
        // Creations are written together (multi-row inserts); anything that reads the versions
        // table first flushes them.
        let mut pending = Pending::default();
        for v in topological(versions) {
            if !seen.insert(v.id) {
                continue;
            }
            if existing.contains(&v.id.to_string()) {
                out.accepted.push(v.id);
                continue;
            }
            if v.version.kind == DocKind::Case || !v.version.parents.is_empty() {
                pending.flush(conn)?;
            }
            if v.version.kind == DocKind::Case {
                match check_case(conn, node, &verified, sender, v) {
                    Ok(()) => {
                        let parents: Vec<String> =
                            v.version.parents.iter().map(ToString::to_string).collect();
                        repo::insert_versions(conn, &[v.to_row(at)])?;
                        repo::advance_heads(
                            conn,
                            "case",
                            &v.version.doc_id,
                            &v.id.to_string(),
                            &parents,
                        )?;
                        events.push(
                            Event::new(actor.clone(), "version.ingest", Outcome::Ok)
                                .object("case", &v.version.doc_id)
                                .details(serde_json::json!({"version": v.id, "author": v.version.author_node})),
                        );
                        if !out.cases.contains(&v.version.doc_id) {
                            out.cases.push(v.version.doc_id.clone());
                        }
                        out.accepted.push(v.id);
                        out.stored += 1;
                    }
                    Err(refusal) => reject(&mut events, &mut out, &actor, "case", v, refusal),
                }
                continue;
            }
            let facts = BatchFacts {
                verified: &verified,
                records: &records,
                batch_records: &batch_records,
            };
            match check(conn, node, &facts, sender, v, &accepted_here) {
                Ok((record, parent_records)) => {
                    if v.version.parents.is_empty() {
                        pending.versions.push(v.to_row(at));
                        pending
                            .heads
                            .push((v.version.doc_id.clone(), v.id.to_string()));
                    } else {
                        let parents: Vec<String> =
                            v.version.parents.iter().map(ToString::to_string).collect();
                        repo::insert_versions(conn, &[v.to_row(at)])?;
                        repo::advance_heads(
                            conn,
                            "child",
                            &v.version.doc_id,
                            &v.id.to_string(),
                            &parents,
                        )?;
                    }
                    let forwarded =
                        view::parties_to_forward(node, &record, &parent_records, Some(sender));
                    if !forwarded.is_empty() {
                        // An outbox row names a stored version (on PostgreSQL the key is
                        // checked at once): a creation still pending is written first.
                        pending.flush(conn)?;
                    }
                    view::enqueue_to(conn, v, &forwarded, at)?;
                    events.push(
                        Event::new(actor.clone(), "version.ingest", Outcome::Ok)
                            .object("child", &v.version.doc_id)
                            .details(serde_json::json!({
                                "version": v.id, "author": v.version.author_node,
                                "forwarded_to": forwarded,
                            })),
                    );
                    if v.version.parents.is_empty() && !touched_docs.contains(&v.version.doc_id) {
                        creations.insert(v.version.doc_id.clone(), record.clone());
                    } else {
                        creations.remove(&v.version.doc_id);
                    }
                    touched_docs.insert(v.version.doc_id.clone());
                    accepted_here.insert(v.id, record);
                    out.accepted.push(v.id);
                    out.stored += 1;
                }
                Err(refusal) => reject(&mut events, &mut out, &actor, "child", v, refusal),
            }
        }
        pending.flush(conn)?;
        let new_docs: Vec<String> = creations.keys().cloned().collect();
        let known = repo::existing_children(conn, &new_docs)?;
        let mut first_rows = Vec::new();
        for doc in &touched_docs {
            match creations.get(doc) {
                Some(record) if !known.contains(doc) => {
                    first_rows.push(super::ledger::creation_row(record, at))
                }
                _ => {
                    view::refresh_child_row(conn, node, doc, at)?;
                }
            }
        }
        repo::insert_children(conn, &first_rows)?;
        let stamps = node.clock.now_many(events.len());
        audit::append_many(conn, &stamps, now, &events)?;
        let finished = finish(conn, &out)?;
        Ok((out, finished))
    })
}

/// Creation versions accepted but not yet written.
#[derive(Default)]
struct Pending {
    versions: Vec<repo::VersionRow>,
    /// (document, version) heads of the creations.
    heads: Vec<(String, String)>,
}

impl Pending {
    fn flush(&mut self, conn: &mut DbConn) -> Result<(), LedgerError> {
        if !self.versions.is_empty() {
            repo::insert_versions(conn, &self.versions)?;
            repo::insert_heads(conn, "child", &self.heads)?;
            self.versions.clear();
            self.heads.clear();
        }
        Ok(())
    }
}

/// Records a refused version: its audit event and its line in the receipt.
fn reject(
    events: &mut Vec<Event>,
    out: &mut IngestOutcome,
    actor: &Actor,
    kind: &str,
    v: &SignedVersion,
    (code, reason): Refusal,
) {
    // The claimed document id comes from an unverified version: keep it short.
    let doc: String = v.version.doc_id.chars().take(64).collect();
    events.push(
        Event::new(actor.clone(), "version.reject", Outcome::Rejected)
            .object(kind, &doc)
            .details(serde_json::json!({"version": v.id, "code": code.as_str(), "reason": reason})),
    );
    out.rejected.push(Rejection {
        id: v.id,
        code,
        reason,
    });
}

/// Parents before children within the batch (Kahn's algorithm, stable in input order).
fn topological(versions: &[SignedVersion]) -> Vec<&SignedVersion> {
    let in_batch: HashSet<VersionId> = versions.iter().map(|v| v.id).collect();
    let mut placed: HashSet<VersionId> = HashSet::new();
    let mut out = Vec::with_capacity(versions.len());
    let mut rest: Vec<&SignedVersion> = versions.iter().collect();
    while !rest.is_empty() {
        let before = rest.len();
        rest.retain(|v| {
            let ready = v
                .version
                .parents
                .iter()
                .all(|p| !in_batch.contains(p) || placed.contains(p));
            if ready {
                placed.insert(v.id);
                out.push(*v);
            }
            !ready
        });
        if rest.len() == before {
            // Only a forged cycle can get here; its members fail the parent check.
            out.append(&mut rest);
        }
    }
    out
}

/// What is known of a whole batch before its versions are checked one by one.
#[derive(Clone, Copy)]
struct BatchFacts<'a> {
    /// Id and signature check of each version (done on every core).
    verified: &'a HashMap<VersionId, Result<(), Refusal>>,
    /// Each child version's record, parsed once.
    records: &'a HashMap<VersionId, ChildRecord>,
    /// The batch's records per document (a bureau a child moves to is a party through them).
    batch_records: &'a HashMap<String, Vec<ChildRecord>>,
}

/// All checks of one version; on success its record and its parents' records.
fn check(
    conn: &mut DbConn,
    node: &LocalNode,
    batch: &BatchFacts<'_>,
    sender: &NodeId,
    v: &SignedVersion,
    accepted_here: &HashMap<VersionId, ChildRecord>,
) -> Result<(ChildRecord, Vec<ChildRecord>), Refusal> {
    let BatchFacts {
        verified,
        records,
        batch_records,
    } = *batch;
    let db = |e: storage::StorageError| (RejectCode::InvalidRecord, format!("storage: {e}"));
    verify_signature(node, verified, v)?;
    let author = &v.version.author_node;
    let record = match records.get(&v.id) {
        Some(r) => r.clone(),
        None => view::record_of(v).map_err(|e| (RejectCode::InvalidRecord, e.to_string()))?,
    };
    if record.id_number.as_str() != v.version.doc_id {
        return Err((
            RejectCode::InvalidRecord,
            "doc_id is not the record's ID number".into(),
        ));
    }
    let mut parent_records = Vec::with_capacity(v.version.parents.len());
    for p in &v.version.parents {
        if let Some(r) = accepted_here.get(p) {
            parent_records.push(r.clone());
            continue;
        }
        let row = repo::get_version(conn, &p.to_string()).map_err(db)?;
        match row.map(|r| SignedVersion::from_row(&r)) {
            Some(Ok(pv)) if pv.version.doc_id == v.version.doc_id => parent_records.push(
                view::record_of(&pv).map_err(|e| (RejectCode::InvalidRecord, e.to_string()))?,
            ),
            _ => {
                return Err((
                    RejectCode::UnknownParents,
                    format!("parent {} is not known here", p.short()),
                ))
            }
        }
    }
    // Parties: of this version, of its parents (a bureau the child moved away from), and of the
    // batch's other versions of the same child (a bureau the child moved to receives history).
    let mut parties = node.parties(&record.hukou_region, &record.residence_region);
    for p in &parent_records {
        parties.extend(node.parties(&p.hukou_region, &p.residence_region));
    }
    if !parties.contains(author) {
        return Err((
            RejectCode::AuthorNotParty,
            format!("{author} serves neither region of this child"),
        ));
    }
    if !parties.contains(sender) {
        return Err((
            RejectCode::SenderNotParty,
            format!("{sender} serves neither region of this child"),
        ));
    }
    let batch_parties: BTreeSet<NodeId> = batch_records
        .get(&v.version.doc_id)
        .into_iter()
        .flatten()
        .flat_map(|r| node.parties(&r.hukou_region, &r.residence_region))
        .collect();
    if !parties.contains(&node.id) && !batch_parties.contains(&node.id) {
        return Err((
            RejectCode::NotParty,
            format!("{} serves neither region of this child", node.id),
        ));
    }
    if !v.version.parents.is_empty() {
        check_authority(conn, node, v, &record)?;
    }
    Ok((record, parent_records))
}

/// Id and signature (a key of the author valid at the version's time, not revoked): pure, so a
/// batch is checked on every core before its transaction begins.
fn verify_crypto(dir: &Directory, v: &SignedVersion) -> Result<(), Refusal> {
    match v.version.id() {
        Ok(id) if id == v.id => {}
        _ => {
            return Err((
                RejectCode::IdMismatch,
                "the id is not the SHA-256 of the version's canonical bytes".into(),
            ))
        }
    }
    let author = &v.version.author_node;
    let entry = dir.node(author).ok_or_else(|| {
        (
            RejectCode::UnknownAuthor,
            format!("{author} is not in the directory"),
        )
    })?;
    let stamped = v.version.hlc.wall_time();
    let verifies = |k: &crate::crypto::keys::PublicKey| {
        k.verify(
            crate::crypto::keys::SigningContext::Version,
            v.id.0.as_bytes(),
            &v.signature,
        )
        .is_ok()
    };
    if !dir.signing_keys_at(author, stamped).iter().any(verifies) {
        return Err(if entry.signing_keys.iter().any(|w| verifies(&w.key)) {
            (
                RejectCode::KeyNotValid,
                format!("the key that signed it is revoked or was not valid at {stamped}"),
            )
        } else {
            (
                RejectCode::BadSignature,
                format!("no key of {author} verifies the signature"),
            )
        });
    }
    Ok(())
}

/// `f` over every item on up to four threads; results in input order. For the pure, CPU-bound
/// checks of a batch (signatures, parsing), done before its transaction begins.
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let per = items.len().div_ceil(threads).max(1);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<_>>()))
            .collect();
        // A panicking check is a bug; losing its results makes the batch fail as a whole below.
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// The batch's precomputed signature checks, then the clock (in batch order: it advances).
fn verify_signature(
    node: &LocalNode,
    verified: &HashMap<VersionId, Result<(), Refusal>>,
    v: &SignedVersion,
) -> Result<(), Refusal> {
    match verified.get(&v.id) {
        Some(Ok(())) => {}
        Some(Err(r)) => return Err(r.clone()),
        None => return Err((RejectCode::IdMismatch, "not verified".into())),
    }
    node.clock
        .observe(v.version.hlc)
        .map_err(|e| (RejectCode::ClockSkew, e.to_string()))?;
    Ok(())
}

/// A case version: signed as any version; its author, the sender and this node are its
/// requester or decider; it is one legal step on top of its parents' merged view.
fn check_case(
    conn: &mut DbConn,
    node: &LocalNode,
    verified: &HashMap<VersionId, Result<(), Refusal>>,
    sender: &NodeId,
    v: &SignedVersion,
) -> Result<(), Refusal> {
    use crate::domain::case::{check_step, merge_heads, CaseBody, Head};
    verify_signature(node, verified, v)?;
    let body: CaseBody = serde_json::from_value(v.version.body.clone())
        .map_err(|e| (RejectCode::InvalidRecord, format!("not a case: {e}")))?;
    if body.case_id.to_string() != v.version.doc_id {
        return Err((
            RejectCode::InvalidRecord,
            "doc_id is not the case id".into(),
        ));
    }
    let author = &v.version.author_node;
    let parties = [&body.requester, &body.decider];
    if !parties.contains(&author) {
        return Err((
            RejectCode::AuthorNotParty,
            format!("{author} is neither requester nor decider"),
        ));
    }
    if !parties.contains(&sender) {
        return Err((
            RejectCode::SenderNotParty,
            format!("{sender} is neither requester nor decider"),
        ));
    }
    if !parties.contains(&&node.id) {
        return Err((
            RejectCode::NotParty,
            format!("{} is neither requester nor decider", node.id),
        ));
    }
    if body.decider == node.id && node.node_for(&body.deciding_region).as_ref() != Some(&node.id) {
        return Err((
            RejectCode::NotParty,
            format!(
                "{} does not serve the hukou region {}",
                node.id, body.deciding_region
            ),
        ));
    }
    let mut heads = Vec::new();
    for p in &v.version.parents {
        let row = repo::get_version(conn, &p.to_string())
            .map_err(|e| (RejectCode::InvalidRecord, e.to_string()))?;
        let Some(Ok(pv)) = row.map(|r| SignedVersion::from_row(&r)) else {
            return Err((
                RejectCode::UnknownParents,
                format!("parent {} is not known here", p.short()),
            ));
        };
        let pb: CaseBody = serde_json::from_value(pv.version.body.clone())
            .map_err(|e| (RejectCode::InvalidRecord, e.to_string()))?;
        heads.push(Head {
            body: pb,
            hlc: pv.version.hlc.to_i64(),
            author: pv.version.author_node.clone(),
        });
    }
    let parent = merge_heads(&heads);
    check_step(parent.as_ref(), &body, author)
        .map_err(|e| (RejectCode::IllegalTransition, e.to_string()))
}

/// The author may change only fields its role owns, relative to the merged view of the
/// version's ancestors; a resolution by the hukou side may also settle fields under review.
fn check_authority(
    conn: &mut DbConn,
    node: &LocalNode,
    v: &SignedVersion,
    record: &ChildRecord,
) -> Result<(), Refusal> {
    let invalid = |e: String| (RejectCode::InvalidRecord, e);
    let rows =
        repo::versions_of(conn, "child", &v.version.doc_id).map_err(|e| invalid(e.to_string()))?;
    let mut all: HashMap<VersionId, MergeInput> = HashMap::new();
    for row in &rows {
        let sv = SignedVersion::from_row(row).map_err(|e| invalid(e.to_string()))?;
        all.insert(
            sv.id,
            view::merge_input(node, &sv).map_err(|e| invalid(e.to_string()))?,
        );
    }
    // Versions accepted earlier in this batch were flushed before this one was checked.
    // The ancestors of the version: its parents and everything they descend from.
    let mut ancestors: Vec<MergeInput> = Vec::new();
    let mut stack: Vec<VersionId> = v.version.parents.clone();
    let mut seen = HashSet::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        if let Some(m) = all.get(&id) {
            stack.extend(m.parents.iter().copied());
            ancestors.push(m.clone());
        }
    }
    let base = merge::merged_view(&ancestors).map_err(|e| invalid(e.to_string()))?;
    let base_record =
        ChildRecord::from_fields_structural(&base.fields).map_err(|e| invalid(e.to_string()))?;
    let under_review = merge::fields_under_review(&base);
    let roles = node.roles_of(
        &v.version.author_node,
        &base_record.hukou_region,
        &base_record.residence_region,
    );
    for f in ChildRecord::changed_fields(&base.fields, &record.to_fields()) {
        let settles = v.version.resolution && roles.hukou && under_review.contains(&f);
        if !roles.may_change(f) && !settles {
            return Err((
                RejectCode::FieldNotOwned,
                format!(
                    "{} may not change {f} ({:?} authority)",
                    v.version.author_node,
                    f.authority()
                ),
            ));
        }
    }
    Ok(())
}
