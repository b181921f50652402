//! Ingesting versions pushed by a peer (DESIGN §3, §4, §6). Every version is verified before it
//! is stored: its id is the hash of its content; its signature verifies with a key of its author
//! valid at the version's time and not revoked; its stamp is not too far ahead; its body is a
//! valid record; its parents are stored or earlier in the batch; its author, the sender and this
//! node are parties of the child; and the author changed only fields its role owns (judged
//! against the merged view of the version's ancestors, so both nodes judge alike). A batch is
//! one transaction: accepted versions, their heads, the current views, the forwards to other
//! parties and an audit event for every acceptance and every rejection — or nothing. What is
//! accepted is written through the one write path, [`super::store`].

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::error::LedgerError;
use super::merge::{self, MergeInput};
use super::node::LocalNode;
use super::receipt::{RejectCode, Rejection};
use super::store::Batch;
use super::version::{DocKind, SignedVersion, VersionId};
use super::view;
use super::visit::{self, ChildDoc};
use crate::audit::{Actor, ActorKind, Event, Outcome, Via};
use crate::directory::Directory;
use crate::domain::case::{check_step, merge_heads, CaseBody, Head};
use crate::domain::child::ChildRecord;
use crate::domain::report::ReportBody;
use crate::domain::visit::VisitBody;
use crate::domain::{NodeId, RegionCode};
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
    /// Children whose visits or reports received versions (the visits service brings the
    /// residence side's file in line with them).
    pub visited_children: Vec<String>,
}

type Refusal = (RejectCode, String);

/// Verifies and stores a batch from `sender` (the verified peer), then runs `finish` in the same
/// transaction: the receiver stores the receipt it signs for the batch with the batch — one
/// commit, never a receipt without its versions nor versions without their receipt. Without a
/// directory there are no peers, so nothing can be ingested.
///
/// The steps: verify every version's id and signature and parse its record, on every core
/// ([`verify_all`]); in the transaction, load which versions are stored already; check each
/// version in topological order and write those that pass through the store ([`Intake::take`]);
/// refresh the views of the files touched ([`Intake::refresh_views`]); write the rest of the
/// batch with one audit event per acceptance and one for all rejections ([`Batch::finish`]);
/// finish.
pub fn ingest<T>(
    conn: &mut DbConn,
    node: &LocalNode,
    dir: &Directory,
    sender: &NodeId,
    versions: &[SignedVersion],
    now: DateTime<Utc>,
    finish: impl FnOnce(&mut DbConn, &IngestOutcome) -> Result<T, LedgerError>,
) -> Result<(IngestOutcome, T), LedgerError> {
    let facts = verify_all(dir, versions)?;
    let result = storage::transaction(conn, |conn| {
        let mut files: Vec<&str> = versions
            .iter()
            .filter(|v| v.version.kind == DocKind::Child)
            .map(|v| v.version.doc_id.as_str())
            .collect();
        files.sort_unstable();
        files.dedup();
        repo::lock_children(conn, &files)?;
        let stored = stored_already(conn, versions)?;
        let mut intake = Intake::new(node, sender, &facts, now);
        intake.case_heads = stored_case_parents(conn, versions)?;
        for v in topological(versions) {
            intake.take(conn, v, &stored)?;
        }
        intake.refresh_views(conn)?;
        intake.record_rejections();
        let Intake { out, batch, .. } = intake;
        batch.finish(conn)?;
        let finished = finish(conn, &out)?;
        Ok::<_, LedgerError>((out, finished))
    })?;
    super::ledger::note_received(conn, result.0.stored);
    Ok(result)
}

/// The pure checks of a whole batch, on every core, before its transaction begins: each
/// version's id and signature, and each child version's record.
fn verify_all(dir: &Directory, versions: &[SignedVersion]) -> Result<BatchFacts, LedgerError> {
    let checked = par_map(versions, |v| {
        let record = (v.version.kind == DocKind::Child)
            .then(|| view::record_of(v).ok())
            .flatten();
        (v.id, verify_crypto(dir, v), record)
    });
    if checked.len() != versions.len() {
        return Err(LedgerError::Internal("a verification thread failed".into()));
    }
    let mut facts = BatchFacts::default();
    for (id, result, record) in checked {
        facts.verified.insert(id, result);
        if let Some(r) = record {
            facts.records.insert(id, r);
        }
    }
    for v in versions {
        if let Some(r) = facts.records.get(&v.id) {
            facts
                .batch_regions
                .entry(v.version.doc_id.clone())
                .or_default()
                .push((r.hukou_region.clone(), r.residence_region.clone()));
        }
    }
    Ok(facts)
}

/// Which versions of the batch are stored here already (acknowledged as duplicates).
fn stored_already(
    conn: &mut DbConn,
    versions: &[SignedVersion],
) -> Result<HashSet<String>, LedgerError> {
    let ids: Vec<String> = versions.iter().map(|v| v.id.to_string()).collect();
    Ok(repo::existing_versions(conn, &ids)?)
}

/// The stored parents of the batch's case versions, read at once, as [`check_case`] uses them.
fn stored_case_parents(
    conn: &mut DbConn,
    versions: &[SignedVersion],
) -> Result<HashMap<VersionId, Result<Head, String>>, LedgerError> {
    let ids: BTreeSet<String> = versions
        .iter()
        .filter(|v| v.version.kind == DocKind::Case)
        .flat_map(|v| v.version.parents.iter().map(ToString::to_string))
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<String> = ids.into_iter().collect();
    let mut out = HashMap::with_capacity(ids.len());
    for (id, stored) in repo::get_versions(conn, &ids)? {
        let Ok(id) = id.parse::<VersionId>() else {
            continue;
        };
        // A stored row that does not read back refuses the versions made on it, not the
        // whole batch; one that is no version is as good as unknown.
        let stored = match stored {
            Ok(stored) => stored,
            Err(e) => {
                out.insert(id, Err(e.to_string()));
                continue;
            }
        };
        let Ok(pv) = SignedVersion::from_stored(&stored) else {
            continue;
        };
        let head = serde_json::from_value::<CaseBody>(pv.version.body.clone())
            .map(|body| Head {
                body,
                hlc: pv.version.hlc.to_i64(),
                author: pv.version.author_node.clone(),
            })
            .map_err(|e| format!("parent {}: not a case: {e}", id.short()));
        out.insert(id, head);
    }
    Ok(out)
}

/// A batch being checked and stored, version by version.
struct Intake<'a> {
    node: &'a LocalNode,
    sender: &'a NodeId,
    facts: &'a BatchFacts,
    actor: Actor,
    out: IngestOutcome,
    /// The write path: accepted versions, forwards, views and audit events.
    batch: Batch<'a>,
    seen: HashSet<VersionId>,
    /// Child versions accepted in this batch, with their records.
    accepted_here: HashMap<VersionId, ChildRecord>,
    touched_docs: BTreeSet<String>,
    /// Files new in this batch whose only version is a creation: their view is that record.
    creations: HashMap<String, ChildRecord>,
    /// The first version of a file in this batch when it is a creation: (doc, id, stamp).
    roots: Vec<(String, VersionId, i64)>,
    /// Stamps of the visit versions accepted in this batch.
    visit_stamps: HashMap<VersionId, i64>,
    /// The case versions a case version of the batch may be made on: its stored parents (read
    /// before the first check, [`stored_case_parents`]; one whose body is no case is an error)
    /// and the case versions accepted earlier in the batch.
    case_heads: HashMap<VersionId, Result<Head, String>>,
}

impl<'a> Intake<'a> {
    fn new(
        node: &'a LocalNode,
        sender: &'a NodeId,
        facts: &'a BatchFacts,
        now: DateTime<Utc>,
    ) -> Self {
        Intake {
            node,
            sender,
            facts,
            actor: Actor {
                kind: ActorKind::Node,
                id: sender.to_string(),
                via: Via::Peer,
                scope: crate::domain::Scope::whole_node(),
            },
            out: IngestOutcome::default(),
            batch: Batch::new(node, now),
            seen: HashSet::new(),
            accepted_here: HashMap::new(),
            touched_docs: BTreeSet::new(),
            creations: HashMap::new(),
            roots: Vec::new(),
            visit_stamps: HashMap::new(),
            case_heads: HashMap::new(),
        }
    }

    /// Checks one version (parents come first) and stores it, or records its rejection.
    fn take(
        &mut self,
        conn: &mut DbConn,
        v: &SignedVersion,
        stored: &HashSet<String>,
    ) -> Result<(), LedgerError> {
        if !self.seen.insert(v.id) {
            return Ok(());
        }
        if stored.contains(&v.id.to_string()) {
            self.out.accepted.push(v.id);
            return Ok(());
        }
        // Versions are written together ([`Batch::flush`]); a check that reads the versions
        // table first writes those accepted so far. (A case's check reads none: its parents
        // were read with the batch's.)
        let reads = match v.version.kind {
            DocKind::Child => !v.version.parents.is_empty(),
            DocKind::Case => false,
            DocKind::Visit | DocKind::Report => true,
        };
        if reads {
            self.batch.flush(conn)?;
        }
        match v.version.kind {
            DocKind::Case => {
                self.take_case(v);
                Ok(())
            }
            DocKind::Child => self.take_child(conn, v),
            DocKind::Visit => self.take_child_doc::<VisitBody>(conn, v),
            DocKind::Report => self.take_child_doc::<ReportBody>(conn, v),
        }
    }

    /// A visit or a report: checked ([`visit::check`]), queued for the child's other bureaus (a
    /// bureau the child moved to after it was recorded gets it with the file's history), its view
    /// row written.
    fn take_child_doc<T: ChildDoc>(
        &mut self,
        conn: &mut DbConn,
        v: &SignedVersion,
    ) -> Result<(), LedgerError> {
        if let Err(refusal) = verify_signature(self.node, &self.facts.verified, v) {
            self.reject(v, refusal);
            return Ok(());
        }
        match visit::check::<T>(conn, self.node, self.sender, v, &self.facts.batch_regions) {
            Ok((body, mut parties)) => {
                parties.remove(self.sender);
                self.batch.add(v, &parties);
                self.batch.flush(conn)?;
                visit::put_row(conn, v, &body, self.batch.at(), &self.visit_stamps)?;
                let child = body.child_id().to_string();
                if !self.out.visited_children.contains(&child) {
                    self.out.visited_children.push(child);
                }
                self.visit_stamps.insert(v.id, v.version.hlc.to_i64());
                self.batch.event(
                    Event::new(self.actor.clone(), "version.ingest", Outcome::Ok)
                        .object(T::KIND.as_str(), &v.version.doc_id)
                        .details(serde_json::json!({
                            "version": v.id, "author": v.version.author_node,
                            "child": body.child_id().masked(),
                        })),
                );
                self.out.accepted.push(v.id);
                self.out.stored += 1;
            }
            Err(refusal) => self.reject(v, refusal),
        }
        Ok(())
    }

    /// A case version: checked against the case versions known ([`check_case`], no read of the
    /// database) and queued to be written with the batch.
    fn take_case(&mut self, v: &SignedVersion) {
        // A parent accepted earlier in this batch that is no case version: refused as a
        // stored one is (its body is no case).
        for p in &v.version.parents {
            if !self.case_heads.contains_key(p) && self.out.accepted.contains(p) {
                let not_case = format!("parent {}: not a case version", p.short());
                self.case_heads.insert(*p, Err(not_case));
            }
        }
        match check_case(
            &self.case_heads,
            self.node,
            &self.facts.verified,
            self.sender,
            v,
        ) {
            Ok(head) => {
                self.case_heads.insert(v.id, Ok(head));
                // A case is queued for nobody: its two parties are the sender and this node.
                self.batch.add(v, &BTreeSet::new());
                self.batch.event(
                    Event::new(self.actor.clone(), "version.ingest", Outcome::Ok)
                        .object("case", &v.version.doc_id)
                        .details(
                            serde_json::json!({"version": v.id, "author": v.version.author_node}),
                        ),
                );
                if !self.out.cases.contains(&v.version.doc_id) {
                    self.out.cases.push(v.version.doc_id.clone());
                }
                self.out.accepted.push(v.id);
                self.out.stored += 1;
            }
            Err(refusal) => self.reject(v, refusal),
        }
    }

    fn take_child(&mut self, conn: &mut DbConn, v: &SignedVersion) -> Result<(), LedgerError> {
        let (record, parent_records) = match check(
            conn,
            self.node,
            self.facts,
            self.sender,
            v,
            &self.accepted_here,
        ) {
            Ok(checked) => checked,
            Err(refusal) => {
                self.reject(v, refusal);
                return Ok(());
            }
        };
        let doc = &v.version.doc_id;
        let forwarded =
            self.batch
                .add_child(conn, v, &record, &parent_records, Some(self.sender))?;
        self.batch.event(
            Event::new(self.actor.clone(), "version.ingest", Outcome::Ok)
                .object("child", &v.version.doc_id)
                .details(serde_json::json!({
                    "version": v.id, "author": v.version.author_node,
                    "forwarded_to": forwarded,
                })),
        );
        if v.version.parents.is_empty() && !self.touched_docs.contains(doc) {
            self.creations.insert(doc.clone(), record.clone());
            self.roots.push((doc.clone(), v.id, v.version.hlc.to_i64()));
        } else {
            self.creations.remove(doc);
        }
        self.touched_docs.insert(doc.clone());
        self.accepted_here.insert(v.id, record);
        self.out.accepted.push(v.id);
        self.out.stored += 1;
        Ok(())
    }

    /// The views of the files the batch touched: a new file's is its creation, any other is
    /// merged from its stored versions.
    ///
    /// A creation of a file held here before the batch is a **second root** (made where the
    /// file was not known): its sender holds only its own creation, so it gets the file's
    /// history and both merge the same versions (rule 6 of `merge`).
    fn refresh_views(&mut self, conn: &mut DbConn) -> Result<(), LedgerError> {
        self.batch.flush(conn)?;
        let root_docs: Vec<String> = self.roots.iter().map(|(doc, _, _)| doc.clone()).collect();
        let known = repo::existing_children(conn, &root_docs)?;
        let sender = BTreeSet::from([self.sender.clone()]);
        for (doc, id, hlc) in &self.roots {
            if known.contains(doc) {
                self.batch.queue_history_of(
                    conn,
                    (DocKind::Child, doc),
                    (&id.to_string(), *hlc),
                    &sender,
                )?;
            }
        }
        for doc in &self.touched_docs {
            match self.creations.get(doc) {
                Some(record) if !known.contains(doc) => self.batch.new_file(record),
                _ => self.batch.refresh_view(conn, doc)?,
            }
        }
        Ok(())
    }

    /// Records a refused version: its line in the receipt (the audit log gets one event for
    /// all of a batch's refusals, [`Self::record_rejections`]).
    fn reject(&mut self, v: &SignedVersion, (code, reason): Refusal) {
        self.out.rejected.push(Rejection {
            id: v.id,
            code,
            reason,
        });
    }

    /// One `batch.reject` audit event for every refusal of the batch, however many: how many
    /// per code, the first reason given for each code, and the SHA-256 of the refused ids
    /// (sorted, one per line), which the receipt lists.
    fn record_rejections(&mut self) {
        let rejected = &self.out.rejected;
        if rejected.is_empty() {
            return;
        }
        let mut per_code: std::collections::BTreeMap<&str, (usize, &str)> = Default::default();
        for r in rejected {
            per_code.entry(r.code.as_str()).or_insert((0, &r.reason)).0 += 1;
        }
        let counts: serde_json::Map<String, serde_json::Value> = per_code
            .iter()
            .map(|(code, (n, _))| ((*code).to_owned(), serde_json::json!(n)))
            .collect();
        // Reasons come from unverified versions: keep each short.
        let reasons: serde_json::Map<String, serde_json::Value> = per_code
            .iter()
            .map(|(code, (_, why))| {
                let why: String = why.chars().take(200).collect();
                ((*code).to_owned(), serde_json::json!(why))
            })
            .collect();
        let mut ids: Vec<String> = rejected.iter().map(|r| r.id.to_string()).collect();
        ids.sort();
        let digest = crate::crypto::hash::Digest::of(ids.join("\n").as_bytes());
        self.batch.event(
            Event::new(self.actor.clone(), "batch.reject", Outcome::Rejected).details(
                serde_json::json!({
                    "rejected": rejected.len(), "codes": counts, "reasons": reasons,
                    "ids_sha256": digest.to_string(),
                }),
            ),
        );
    }
}

/// Parents before children within the batch (Kahn's algorithm over the versions sorted by
/// stamp and id). The order does not depend on the order the sender chose: two batches holding
/// the same versions write — and lock — their rows in the same order, so on PostgreSQL they
/// wait for each other instead of deadlocking.
fn topological(versions: &[SignedVersion]) -> Vec<&SignedVersion> {
    let in_batch: HashSet<VersionId> = versions.iter().map(|v| v.id).collect();
    let mut placed: HashSet<VersionId> = HashSet::new();
    let mut out = Vec::with_capacity(versions.len());
    let mut rest: Vec<&SignedVersion> = versions.iter().collect();
    rest.sort_by_key(|v| (v.version.hlc.to_i64(), v.id));
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
#[derive(Default)]
struct BatchFacts {
    /// Id and signature check of each version (done on every core).
    verified: HashMap<VersionId, Result<(), Refusal>>,
    /// Each child version's record, parsed once.
    records: HashMap<VersionId, ChildRecord>,
    /// The regions (hukou, residence) of the batch's records per document: a bureau a child
    /// moves to is a party through them. (Only the regions: a batch's records are held once.)
    batch_regions: HashMap<String, Vec<(RegionCode, RegionCode)>>,
}

/// All checks of one version; on success its record and its parents' records.
fn check(
    conn: &mut DbConn,
    node: &LocalNode,
    batch: &BatchFacts,
    sender: &NodeId,
    v: &SignedVersion,
    accepted_here: &HashMap<VersionId, ChildRecord>,
) -> Result<(ChildRecord, Vec<ChildRecord>), Refusal> {
    let BatchFacts {
        verified,
        records,
        batch_regions,
    } = batch;
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
        match row.map(|r| SignedVersion::from_stored(&r)) {
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
    let batch_parties: BTreeSet<NodeId> = batch_regions
        .get(&v.version.doc_id)
        .into_iter()
        .flatten()
        .flat_map(|(hukou, residence)| node.parties(hukou, residence))
        .collect();
    // A second root (rule 6 of `merge`) may name only its creator's regions: this node is a
    // party when it serves the file it holds already.
    let party_here = parties.contains(&node.id)
        || batch_parties.contains(&node.id)
        || repo::get_child(conn, &v.version.doc_id)
            .map_err(db)?
            .is_some_and(|f| node.roles(&f.hukou_region, &f.residence_region).is_party());
    if !party_here {
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
pub(crate) fn verify_crypto(dir: &Directory, v: &SignedVersion) -> Result<(), Refusal> {
    // Parents sorted and unique: the same parents always give the same id, and a parent edge
    // is stored once.
    if !v.version.parents.windows(2).all(|w| w[0] < w[1]) {
        return Err((
            RejectCode::NonCanonical,
            "the parents are not sorted and unique".into(),
        ));
    }
    let alg = dir.hash();
    match v.version.id(alg) {
        Ok(id) if id == v.id => {}
        _ => {
            return Err((
                RejectCode::IdMismatch,
                format!(
                    "the id is not the {alg} of the version's canonical bytes (the network's \
                     content hash)"
                ),
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
    // Every signature (two during a migration between suites) must verify with a key of the
    // author, of the signature's own suite, valid at the version's time: a version signed in a
    // suite the author has no key of, or with one good and one bad signature, is refused.
    if !v.signatures_verify(&dir.signing_keys_at(author, stamped)) {
        let all: Vec<_> = entry.signing_keys.iter().map(|w| w.key).collect();
        return Err(if v.signatures_verify(&all) {
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
/// requester or decider; it is one legal step on top of its parents' merged view (its parents
/// are among `known`: stored, or accepted earlier in the batch). On success, the version as a
/// head a later version may be made on.
fn check_case(
    known: &HashMap<VersionId, Result<Head, String>>,
    node: &LocalNode,
    verified: &HashMap<VersionId, Result<(), Refusal>>,
    sender: &NodeId,
    v: &SignedVersion,
) -> Result<Head, Refusal> {
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
        match known.get(p) {
            Some(Ok(head)) => heads.push(head.clone()),
            Some(Err(e)) => return Err((RejectCode::InvalidRecord, e.clone())),
            None => {
                return Err((
                    RejectCode::UnknownParents,
                    format!("parent {} is not known here", p.short()),
                ))
            }
        }
    }
    let parent = merge_heads(&heads);
    check_step(parent.as_ref(), &body, author)
        .map_err(|e| (RejectCode::IllegalTransition, e.to_string()))?;
    Ok(Head {
        body,
        hlc: v.version.hlc.to_i64(),
        author: author.clone(),
    })
}

/// The author may change only fields its role owns, relative to the merged view of the
/// version's ancestors; a resolution by the hukou side may also settle fields under review, and
/// the hukou side may hand the residence role over (a version changing `residence_region`
/// alone, [`crate::domain::child::is_handover`]).
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
        let sv = SignedVersion::from_stored(row).map_err(|e| invalid(e.to_string()))?;
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
    if let Some(c) =
        crate::domain::child::recognition_changed(&base_record.categories, &record.categories)
    {
        if !roles.hukou {
            return Err((
                RejectCode::FieldNotOwned,
                format!(
                    "{} may not change the recognition {} (the hukou bureau's)",
                    v.version.author_node,
                    c.code()
                ),
            ));
        }
    }
    let changed = ChildRecord::changed_fields(&base.fields, &record.to_fields());
    let handover = crate::domain::child::is_handover(roles, &changed);
    for f in changed {
        let settles = v.version.resolution && roles.hukou && under_review.contains(&f);
        if !roles.may_change(f) && !settles && !handover {
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

/// Signatures of both suites at ingest: a version is checked with the author's keys of its
/// signatures' suites, and a second signature must verify too.
#[cfg(test)]
mod suite_tests {
    use serde_json::json;

    use super::verify_crypto;
    use crate::crypto::keys::Suite;
    use crate::crypto::{Hlc, Signature, SigningKey};
    use crate::directory::testutil::{now, sample_doc};
    use crate::directory::{document, Directory, KeyWindow};
    use crate::domain::{DocKind, NodeId};
    use crate::sync::receipt::RejectCode;
    use crate::sync::version::{SignedVersion, Version};

    fn window(key: &SigningKey) -> KeyWindow {
        KeyWindow {
            key: key.public_key(),
            valid_from: "2026-01-01T00:00:00Z".parse().unwrap(),
            valid_until: "2027-01-01T00:00:00Z".parse().unwrap(),
        }
    }

    /// A directory in which the author (the first node) publishes `keys`.
    fn directory(keys: &[&SigningKey]) -> Directory {
        let (authority, _) = SigningKey::generate_in(Suite::Sm2Sm3).unwrap();
        let mut doc = sample_doc(3);
        doc.nodes[0].signing_keys = keys.iter().map(|k| window(k)).collect();
        let signed = serde_json::to_vec(&document::sign(&doc, &authority).unwrap()).unwrap();
        Directory::from_signed_json(&signed, &authority.public_key(), now()).unwrap()
    }

    fn version(author: &NodeId) -> Version {
        Version::new(
            DocKind::Child,
            "410105201406010016".into(),
            vec![],
            author.clone(),
            "2026-11-23T08:49:35.123Z+0003".parse::<Hlc>().unwrap(),
            json!({"id_number": "410105201406010016", "name": "王小明"}),
        )
    }

    fn code(dir: &Directory, v: &SignedVersion) -> Option<RejectCode> {
        verify_crypto(dir, v).err().map(|(c, _)| c)
    }

    #[test]
    fn each_signature_is_checked_with_the_authors_key_of_its_suite() {
        let ed = SigningKey::generate().unwrap().0;
        let sm = SigningKey::generate_in(Suite::Sm2Sm3).unwrap().0;
        let both = directory(&[&ed, &sm]);
        let ed_only = directory(&[&ed]);
        let sm_only = directory(&[&sm]);
        let author = sample_doc(3).nodes[0].id.clone();

        let by_sm = version(&author)
            .sign(&sm, crate::crypto::hash::HashAlg::Sha256)
            .unwrap();
        let by_ed = version(&author)
            .sign(&ed, crate::crypto::hash::HashAlg::Sha256)
            .unwrap();
        let dual = version(&author)
            .sign(&sm, crate::crypto::hash::HashAlg::Sha256)
            .unwrap()
            .countersign(&ed)
            .unwrap();
        // Ed25519-only versions keep their exact JSON: no second_signature member.
        assert!(!serde_json::to_string(&by_ed)
            .unwrap()
            .contains("second_signature"));
        let json = serde_json::to_string(&dual).unwrap();
        assert_eq!(serde_json::from_str::<SignedVersion>(&json).unwrap(), dual);

        assert_eq!(code(&both, &by_sm), None);
        assert_eq!(code(&both, &by_ed), None);
        assert_eq!(code(&both, &dual), None);
        assert_eq!(code(&sm_only, &by_sm), None);
        // A suite the author's directory keys lack.
        assert_eq!(code(&ed_only, &by_sm), Some(RejectCode::BadSignature));
        assert_eq!(code(&sm_only, &by_ed), Some(RejectCode::BadSignature));
        // Dual-signed, but the directory has only one of the keys: the other is unverifiable.
        assert_eq!(code(&ed_only, &dual), Some(RejectCode::BadSignature));
        // One bad signature of two.
        let mut bad = dual.clone();
        let mut bytes = *bad.second_signature.unwrap().as_bytes();
        bytes[5] ^= 1;
        bad.second_signature = Some(Signature::from_suite_bytes(Suite::Ed25519, bytes));
        assert_eq!(code(&both, &bad), Some(RejectCode::BadSignature));
        let mut bad = dual.clone();
        let mut bytes = *bad.signature.as_bytes();
        bytes[40] ^= 1;
        bad.signature = Signature::from_suite_bytes(Suite::Sm2Sm3, bytes);
        assert_eq!(code(&both, &bad), Some(RejectCode::BadSignature));
        // Two signatures of one suite are not a dual signature.
        let sm2b = SigningKey::generate_in(Suite::Sm2Sm3).unwrap().0;
        let twice = version(&author)
            .sign(&sm, crate::crypto::hash::HashAlg::Sha256)
            .unwrap()
            .countersign(&sm2b)
            .unwrap();
        assert_eq!(
            code(&directory(&[&sm, &sm2b]), &twice),
            Some(RejectCode::BadSignature)
        );
        // A second signature by a key of another node.
        let stranger = SigningKey::generate().unwrap().0;
        let foreign = version(&author)
            .sign(&sm, crate::crypto::hash::HashAlg::Sha256)
            .unwrap()
            .countersign(&stranger)
            .unwrap();
        assert_eq!(code(&both, &foreign), Some(RejectCode::BadSignature));
        // SignedVersion::verify agrees.
        assert!(by_sm
            .verify(&sm.public_key(), crate::crypto::hash::HashAlg::Sha256)
            .is_ok());
        assert!(dual
            .verify(&sm.public_key(), crate::crypto::hash::HashAlg::Sha256)
            .is_err());
    }
}
