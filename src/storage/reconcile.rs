//! Repositories of reconciliation (DESIGN §7): the dirty documents the summary has not caught up
//! with, the summary's leaves and bucket accumulators per peer, the runs with their reports, the
//! per-peer run lock, and the stale-file query. Plain rows in, plain rows out; what they mean is
//! decided by `reconcile`.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::DatabaseErrorKind;
use uuid::Uuid;

use super::schema::{
    cases, children, heads, recon_buckets, recon_dirty, recon_docs, recon_locks, recon_meta,
    recon_runs, versions,
};
use super::{DbConn, QueryError, StorageError};
use crate::domain::reconcile_report::{Report, RunStatus};
use crate::domain::{DocKind, IdNumber, NodeId, RegionCode};

/// Rows per multi-row statement and ids per `IN (...)` list (well under SQLite's bound
/// parameters limit).
const CHUNK: usize = 500;

/// Marks documents whose heads changed. On the import and ingest hot path: one multi-row upsert
/// per 500 documents. An already dirty document gets a new generation, so a catch-up that read
/// the old one leaves it dirty.
pub fn mark_dirty(conn: &mut DbConn, kind: &str, docs: &[&str]) -> Result<(), StorageError> {
    let mut docs = docs.to_vec();
    // Sorted and unique: PostgreSQL refuses an upsert that touches a row twice, and a fixed order
    // keeps concurrent writers from deadlocking on each other's rows.
    docs.sort_unstable();
    docs.dedup();
    for chunk in docs.chunks(CHUNK) {
        let values: Vec<_> = chunk
            .iter()
            .map(|d| {
                (
                    recon_dirty::kind.eq(kind),
                    recon_dirty::doc_id.eq(*d),
                    recon_dirty::gen.eq(1i64),
                )
            })
            .collect();
        per_backend!(conn, |c| diesel::insert_into(recon_dirty::table)
            .values(values)
            .on_conflict((recon_dirty::kind, recon_dirty::doc_id))
            .do_update()
            .set(recon_dirty::gen.eq(recon_dirty::gen + 1))
            .execute(c))?;
    }
    Ok(())
}

/// A dirty document, with the generation read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirtyDoc {
    pub kind: DocKind,
    pub doc_id: String,
    /// Bumped by every change of heads since the document was last caught up with.
    pub gen: u64,
}

/// The next dirty documents, in a stable order.
pub fn dirty_chunk(conn: &mut DbConn, limit: i64) -> Result<Vec<DirtyDoc>, StorageError> {
    let rows: Vec<(String, String, i64)> = recon_dirty::table
        .order((recon_dirty::kind.asc(), recon_dirty::doc_id.asc()))
        .limit(limit)
        .select((recon_dirty::kind, recon_dirty::doc_id, recon_dirty::gen))
        .load(conn)?;
    rows.into_iter()
        .map(|(kind, doc_id, gen)| {
            let bad = |what: &str, e: &dyn std::fmt::Display| {
                StorageError::corrupt("recon_dirty", format!("{kind} {doc_id}: {what}: {e}"))
            };
            Ok(DirtyDoc {
                kind: kind.parse().map_err(|e| bad("kind", &e))?,
                gen: u64::try_from(gen).map_err(|e| bad("generation", &e))?,
                doc_id,
            })
        })
        .collect()
}

/// Removes processed dirty rows, each only if its generation is still the one read.
pub fn clear_dirty(conn: &mut DbConn, rows: &[DirtyDoc]) -> Result<usize, StorageError> {
    let mut groups: BTreeMap<(&str, i64), Vec<&str>> = BTreeMap::new();
    for d in rows {
        // A generation read from the i64 column, so it fits back.
        let gen = i64::try_from(d.gen).map_err(|e| StorageError::corrupt("recon_dirty", e))?;
        groups
            .entry((d.kind.as_str(), gen))
            .or_default()
            .push(d.doc_id.as_str());
    }
    let mut n = 0;
    for ((kind, gen), docs) in groups {
        for chunk in docs.chunks(CHUNK) {
            n += diesel::delete(
                recon_dirty::table
                    .filter(recon_dirty::kind.eq(kind))
                    .filter(recon_dirty::gen.eq(gen))
                    .filter(recon_dirty::doc_id.eq_any(chunk)),
            )
            .execute(conn)?;
        }
    }
    Ok(n)
}

/// Takes the catch-up lock for the rest of the current transaction: a row lock on PostgreSQL,
/// the write lock on SQLite. Two catch-ups (the server's and a CLI run's) then never apply the
/// same change to a bucket twice.
pub fn lock_catch_up(conn: &mut DbConn) -> Result<(), StorageError> {
    diesel::update(recon_meta::table.find("catch_up"))
        .set(recon_meta::value.eq(recon_meta::value + 1))
        .execute(conn)?;
    Ok(())
}

/// Sorted heads of each of `docs` that has any.
pub fn heads_of_docs(
    conn: &mut DbConn,
    kind: &str,
    docs: &[String],
) -> Result<HashMap<String, Vec<String>>, StorageError> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for chunk in docs.chunks(CHUNK) {
        let rows: Vec<(String, String)> = heads::table
            .filter(heads::kind.eq(kind))
            .filter(heads::doc_id.eq_any(chunk))
            .order((heads::doc_id.asc(), heads::version_id.asc()))
            .select((heads::doc_id, heads::version_id))
            .load(conn)?;
        for (doc, v) in rows {
            out.entry(doc).or_default().push(v);
        }
    }
    Ok(out)
}

/// (hukou region, residence region) of each child of `ids` that has a view row.
pub fn child_regions(
    conn: &mut DbConn,
    ids: &[String],
) -> Result<HashMap<String, (String, String)>, StorageError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<(String, String, String)> = children::table
            .filter(children::id_number.eq_any(chunk))
            .select((
                children::id_number,
                children::hukou_region,
                children::residence_region,
            ))
            .load(conn)?;
        out.extend(rows.into_iter().map(|(i, h, r)| (i, (h, r))));
    }
    Ok(out)
}

/// (requester, decider) of each case of `ids` that has a view row.
pub fn case_parties(
    conn: &mut DbConn,
    ids: &[String],
) -> Result<HashMap<String, (String, String)>, StorageError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<(String, String, String)> = cases::table
            .filter(cases::case_id.eq_any(chunk))
            .select((cases::case_id, cases::requester, cases::decider))
            .load(conn)?;
        out.extend(rows.into_iter().map(|(i, r, d)| (i, (r, d))));
    }
    Ok(out)
}

/// One leaf of a peer's summary.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = recon_docs)]
#[diesel(treat_none_as_default_value = false)]
pub struct SummaryRow {
    pub peer: String,
    pub kind: String,
    pub doc_id: String,
    /// 0..65536.
    pub bucket: i64,
    /// Sorted head ids, comma-separated.
    pub heads: String,
    /// Hex SHA-256 of the leaf.
    pub leaf: String,
}

/// Every peer's leaf of these documents.
pub fn summary_rows_of_docs(
    conn: &mut DbConn,
    kind: &str,
    docs: &[String],
) -> Result<Vec<SummaryRow>, StorageError> {
    let mut out = Vec::new();
    for chunk in docs.chunks(CHUNK) {
        out.extend(
            recon_docs::table
                .filter(recon_docs::kind.eq(kind))
                .filter(recon_docs::doc_id.eq_any(chunk))
                .select(SummaryRow::as_select())
                .load(conn)?,
        );
    }
    Ok(out)
}

pub fn delete_summary_rows(
    conn: &mut DbConn,
    kind: &str,
    docs: &[String],
) -> Result<(), StorageError> {
    for chunk in docs.chunks(CHUNK) {
        diesel::delete(
            recon_docs::table
                .filter(recon_docs::kind.eq(kind))
                .filter(recon_docs::doc_id.eq_any(chunk)),
        )
        .execute(conn)?;
    }
    Ok(())
}

pub fn insert_summary_rows(conn: &mut DbConn, rows: &[SummaryRow]) -> Result<(), StorageError> {
    insert_many!(conn, recon_docs::table, rows);
    Ok(())
}

/// A bucket of a peer's summary.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = recon_buckets)]
pub struct BucketRow {
    pub peer: String,
    pub bucket: i64,
    /// Hex XOR of the leaves in the bucket.
    pub acc: String,
    /// How many leaves. Invariant: > 0 (an empty bucket has no row).
    pub docs: i64,
}

pub fn get_buckets(
    conn: &mut DbConn,
    peer: &str,
    buckets: &[i64],
) -> Result<Vec<BucketRow>, StorageError> {
    let mut out = Vec::new();
    for chunk in buckets.chunks(CHUNK) {
        out.extend(
            recon_buckets::table
                .filter(recon_buckets::peer.eq(peer))
                .filter(recon_buckets::bucket.eq_any(chunk))
                .select(BucketRow::as_select())
                .load(conn)?,
        );
    }
    Ok(out)
}

/// Replaces these buckets of their peers; rows with no documents are removed.
pub fn put_buckets(conn: &mut DbConn, rows: &[BucketRow]) -> Result<(), StorageError> {
    let mut by_peer: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for r in rows {
        by_peer.entry(r.peer.as_str()).or_default().push(r.bucket);
    }
    for (peer, buckets) in by_peer {
        for chunk in buckets.chunks(CHUNK) {
            diesel::delete(
                recon_buckets::table
                    .filter(recon_buckets::peer.eq(peer))
                    .filter(recon_buckets::bucket.eq_any(chunk)),
            )
            .execute(conn)?;
        }
    }
    let keep: Vec<&BucketRow> = rows.iter().filter(|r| r.docs > 0).collect();
    insert_many!(conn, recon_buckets::table, keep, |r| (
        recon_buckets::peer.eq(r.peer.clone()),
        recon_buckets::bucket.eq(r.bucket),
        recon_buckets::acc.eq(r.acc.clone()),
        recon_buckets::docs.eq(r.docs),
    ));
    Ok(())
}

/// Every non-empty bucket of a peer's summary.
pub fn all_buckets(conn: &mut DbConn, peer: &str) -> Result<Vec<BucketRow>, StorageError> {
    recon_buckets::table
        .filter(recon_buckets::peer.eq(peer))
        .select(BucketRow::as_select())
        .load(conn)
        .map_err(StorageError::from)
}

/// The leaves of a peer's summary in these buckets.
pub fn summary_in_buckets(
    conn: &mut DbConn,
    peer: &str,
    buckets: &[i64],
) -> Result<Vec<SummaryRow>, StorageError> {
    let mut out = Vec::new();
    for chunk in buckets.chunks(CHUNK) {
        out.extend(
            recon_docs::table
                .filter(recon_docs::peer.eq(peer))
                .filter(recon_docs::bucket.eq_any(chunk))
                .order((
                    recon_docs::bucket.asc(),
                    recon_docs::kind.asc(),
                    recon_docs::doc_id.asc(),
                ))
                .select(SummaryRow::as_select())
                .load(conn)?,
        );
    }
    Ok(out)
}

/// Every leaf of a peer's summary, a page at a time (the naive exchange of the benchmark, and
/// full recomputation checks in tests).
pub fn summary_page(
    conn: &mut DbConn,
    peer: &str,
    after: Option<(&str, &str)>,
    limit: i64,
) -> Result<Vec<SummaryRow>, StorageError> {
    let mut q = recon_docs::table
        .filter(recon_docs::peer.eq(peer))
        .select(SummaryRow::as_select())
        .into_boxed();
    if let Some((kind, doc)) = after {
        q = q.filter(
            recon_docs::kind.gt(kind.to_owned()).or(recon_docs::kind
                .eq(kind.to_owned())
                .and(recon_docs::doc_id.gt(doc.to_owned()))),
        );
    }
    q.order((recon_docs::kind.asc(), recon_docs::doc_id.asc()))
        .limit(limit)
        .load(conn)
        .map_err(StorageError::from)
}

/// Which of `docs` (of `kind`) are in the summary kept for `peer`, i.e. shared with it.
pub fn shared_docs(
    conn: &mut DbConn,
    peer: &str,
    kind: &str,
    docs: &[String],
) -> Result<HashSet<String>, StorageError> {
    let mut out = HashSet::new();
    for chunk in docs.chunks(CHUNK) {
        let found: Vec<String> = recon_docs::table
            .filter(recon_docs::peer.eq(peer))
            .filter(recon_docs::kind.eq(kind))
            .filter(recon_docs::doc_id.eq_any(chunk))
            .select(recon_docs::doc_id)
            .load(conn)?;
        out.extend(found);
    }
    Ok(out)
}

/// The ids of every version of one document, oldest first (its whole history, ids only: the
/// bodies stay in the database).
pub fn history_ids(conn: &mut DbConn, kind: &str, doc: &str) -> Result<Vec<String>, StorageError> {
    Ok(versions_of_docs(conn, kind, &[doc.to_owned()])?
        .into_iter()
        .map(|(_, id, _)| id)
        .collect())
}

/// (document, version id, HLC) of every version of these documents.
pub fn versions_of_docs(
    conn: &mut DbConn,
    kind: &str,
    docs: &[String],
) -> Result<Vec<(String, String, i64)>, StorageError> {
    let mut out = Vec::new();
    for chunk in docs.chunks(CHUNK) {
        out.extend(
            versions::table
                .filter(versions::kind.eq(kind))
                .filter(versions::doc_id.eq_any(chunk))
                .order((
                    versions::doc_id.asc(),
                    versions::hlc.asc(),
                    versions::id.asc(),
                ))
                .select((versions::doc_id, versions::id, versions::hlc))
                .load::<(String, String, i64)>(conn)?,
        );
    }
    Ok(out)
}

/// (id, kind, document, HLC) of those of `ids` that are stored.
pub fn version_refs(
    conn: &mut DbConn,
    ids: &[String],
) -> Result<Vec<(String, String, String, i64)>, StorageError> {
    let mut out = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        out.extend(
            versions::table
                .filter(versions::id.eq_any(chunk))
                .select((
                    versions::id,
                    versions::kind,
                    versions::doc_id,
                    versions::hlc,
                ))
                .load::<(String, String, String, i64)>(conn)?,
        );
    }
    Ok(out)
}

/// A run's row; [`Run`] is what leaves storage.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = recon_runs)]
struct RunRow {
    id: String,
    peer: String,
    started_by: String,
    /// 1 for a dry run.
    dry_run: i64,
    /// running | ok | failed | interrupted.
    status: String,
    started_at: NaiveDateTime,
    finished_at: Option<NaiveDateTime>,
    differences: i64,
    /// The report, JSON; [`NO_REPORT`] until one is written.
    report: String,
}

/// The report column of a run that has written none (still running, or interrupted).
const NO_REPORT: &str = "{}";

/// A reconciliation run, and its report once it wrote one.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: Uuid,
    pub peer: NodeId,
    /// cli | api | ui | schedule.
    pub started_by: String,
    pub dry_run: bool,
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub differences: u64,
    /// `None` while the run is running, and for a run interrupted before it wrote one.
    pub report: Option<Report>,
}

impl TryFrom<RunRow> for Run {
    type Error = StorageError;

    fn try_from(r: RunRow) -> Result<Self, StorageError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            StorageError::corrupt("recon_runs", format!("run {}: {what}: {e}", r.id))
        };
        let report = if r.report == NO_REPORT {
            None
        } else {
            Some(serde_json::from_str(&r.report).map_err(|e| bad("report", &e))?)
        };
        Ok(Run {
            id: Uuid::parse_str(&r.id).map_err(|e| bad("id", &e))?,
            peer: NodeId::parse(&r.peer).map_err(|e| bad("peer", &e))?,
            status: RunStatus::parse(&r.status)
                .ok_or_else(|| bad("status", &format_args!("{:?}", r.status)))?,
            differences: u64::try_from(r.differences).map_err(|e| bad("differences", &e))?,
            dry_run: r.dry_run != 0,
            started_at: r.started_at.and_utc(),
            finished_at: r.finished_at.map(|t| t.and_utc()),
            started_by: r.started_by,
            report,
        })
    }
}

fn runs(rows: Vec<RunRow>) -> Result<Vec<Run>, StorageError> {
    rows.into_iter().map(Run::try_from).collect()
}

/// Records a run that starts now, with no report yet.
pub fn insert_run(
    conn: &mut DbConn,
    id: Uuid,
    peer: &NodeId,
    started_by: &str,
    dry_run: bool,
    started_at: DateTime<Utc>,
) -> Result<(), StorageError> {
    diesel::insert_into(recon_runs::table)
        .values(&RunRow {
            id: id.to_string(),
            peer: peer.to_string(),
            started_by: started_by.to_owned(),
            dry_run: i64::from(dry_run),
            status: RunStatus::Running.as_str().to_owned(),
            started_at: started_at.naive_utc(),
            finished_at: None,
            differences: 0,
            report: NO_REPORT.to_owned(),
        })
        .execute(conn)?;
    Ok(())
}

/// Stores a run's final report (its id, status and differences come from it).
pub fn finish_run(
    conn: &mut DbConn,
    report: &Report,
    at: DateTime<Utc>,
) -> Result<(), StorageError> {
    let json = serde_json::to_string(report)
        .map_err(|e| StorageError::corrupt("recon_runs", format!("report: {e}")))?;
    let differences = i64::try_from(report.differences())
        .map_err(|e| StorageError::corrupt("recon_runs", format!("differences: {e}")))?;
    diesel::update(recon_runs::table.find(&report.run_id))
        .set((
            recon_runs::status.eq(report.status.as_str()),
            recon_runs::finished_at.eq(Some(at.naive_utc())),
            recon_runs::differences.eq(differences),
            recon_runs::report.eq(json),
        ))
        .execute(conn)?;
    Ok(())
}

/// Marks a peer's runs still "running" as interrupted (called by the holder of the peer's lock,
/// so none of them is alive).
pub fn interrupt_runs(
    conn: &mut DbConn,
    peer: &NodeId,
    at: DateTime<Utc>,
) -> Result<usize, StorageError> {
    diesel::update(
        recon_runs::table
            .filter(recon_runs::peer.eq(peer.as_str()))
            .filter(recon_runs::status.eq(RunStatus::Running.as_str())),
    )
    .set((
        recon_runs::status.eq(RunStatus::Interrupted.as_str()),
        recon_runs::finished_at.eq(Some(at.naive_utc())),
    ))
    .execute(conn)
    .map_err(StorageError::from)
}

/// A run by id (as given: text that is no stored id finds nothing).
pub fn get_run(conn: &mut DbConn, id: &str) -> Result<Option<Run>, StorageError> {
    recon_runs::table
        .find(id)
        .select(RunRow::as_select())
        .first(conn)
        .optional()?
        .map(Run::try_from)
        .transpose()
}

/// Runs, newest first (ids are UUIDv7: time-ordered), optionally of one peer, before an id.
pub fn list_runs(
    conn: &mut DbConn,
    peer: Option<&str>,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<Run>, StorageError> {
    let mut q = recon_runs::table.select(RunRow::as_select()).into_boxed();
    if let Some(p) = peer {
        q = q.filter(recon_runs::peer.eq(p.to_owned()));
    }
    if let Some(b) = before {
        q = q.filter(recon_runs::id.lt(b.to_owned()));
    }
    runs(q.order(recon_runs::id.desc()).limit(limit).load(conn)?)
}

/// The latest finished run of each peer.
pub fn last_finished_runs(conn: &mut DbConn) -> Result<Vec<Run>, StorageError> {
    let peers: Vec<String> = recon_runs::table
        .select(recon_runs::peer)
        .distinct()
        .order(recon_runs::peer.asc())
        .load(conn)?;
    let mut out = Vec::new();
    for p in peers {
        let row = recon_runs::table
            .filter(recon_runs::peer.eq(&p))
            .filter(recon_runs::status.ne(RunStatus::Running.as_str()))
            .order(recon_runs::id.desc())
            .select(RunRow::as_select())
            .first(conn)
            .optional()?;
        out.extend(row);
    }
    runs(out)
}

/// The outcome of trying to take a peer's run lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockAttempt {
    Acquired,
    /// Another live run holds it.
    Held {
        run_id: String,
        started_at: NaiveDateTime,
    },
}

/// Takes a peer's run lock unless a live lease holds it; an expired lease is taken over. Not in
/// a transaction: on PostgreSQL a refused insert would abort it.
pub fn try_lock(
    conn: &mut DbConn,
    peer: &str,
    run_id: &str,
    now: NaiveDateTime,
    expires: NaiveDateTime,
) -> Result<LockAttempt, StorageError> {
    diesel::delete(
        recon_locks::table
            .filter(recon_locks::peer.eq(peer))
            .filter(recon_locks::expires_at.lt(now)),
    )
    .execute(conn)?;
    let inserted = diesel::insert_into(recon_locks::table)
        .values((
            recon_locks::peer.eq(peer),
            recon_locks::run_id.eq(run_id),
            recon_locks::started_at.eq(now),
            recon_locks::expires_at.eq(expires),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(LockAttempt::Acquired),
        Err(QueryError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            let holder: Option<(String, NaiveDateTime)> = recon_locks::table
                .find(peer)
                .select((recon_locks::run_id, recon_locks::started_at))
                .first(conn)
                .optional()?;
            Ok(match holder {
                Some((run_id, started_at)) => LockAttempt::Held { run_id, started_at },
                // Released in between: the caller may try again.
                None => LockAttempt::Held {
                    run_id: String::new(),
                    started_at: now,
                },
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Extends a held lease; false if the lock is no longer this run's.
pub fn renew_lock(
    conn: &mut DbConn,
    peer: &str,
    run_id: &str,
    expires: NaiveDateTime,
) -> Result<bool, StorageError> {
    let n = diesel::update(
        recon_locks::table
            .filter(recon_locks::peer.eq(peer))
            .filter(recon_locks::run_id.eq(run_id)),
    )
    .set(recon_locks::expires_at.eq(expires))
    .execute(conn)?;
    Ok(n == 1)
}

pub fn release_lock(conn: &mut DbConn, peer: &str, run_id: &str) -> Result<(), StorageError> {
    diesel::delete(
        recon_locks::table
            .filter(recon_locks::peer.eq(peer))
            .filter(recon_locks::run_id.eq(run_id)),
    )
    .execute(conn)?;
    Ok(())
}

/// A file not updated or visited recently: no name, the caller masks the ID number for people.
#[derive(Debug, Clone, PartialEq)]
pub struct StaleChild {
    pub id_number: IdNumber,
    pub hukou_region: RegionCode,
    pub residence_region: RegionCode,
    pub updated_at: DateTime<Utc>,
    pub last_visit_on: Option<NaiveDate>,
}

type StaleRow = (String, String, String, NaiveDateTime, Option<NaiveDate>);

fn stale_child(
    (id, hukou, residence, updated_at, last_visit_on): StaleRow,
) -> Result<StaleChild, StorageError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        StorageError::corrupt(
            "children",
            format!("{}: {what}: {e}", IdNumber::mask_text(&id)),
        )
    };
    Ok(StaleChild {
        id_number: IdNumber::parse(&id).map_err(|e| bad("ID number", &e))?,
        hukou_region: RegionCode::parse(&hukou).map_err(|e| bad("hukou region", &e))?,
        residence_region: RegionCode::parse(&residence).map_err(|e| bad("residence region", &e))?,
        updated_at: updated_at.and_utc(),
        last_visit_on,
    })
}

/// Children neither updated nor visited since `before`, in ID order, a page at a time (after the
/// ID number `after`); optionally only those with a region under `region_prefix`, or shared with
/// `peer`.
pub fn stale_children(
    conn: &mut DbConn,
    before: DateTime<Utc>,
    region_prefix: Option<&str>,
    shared_with: Option<&str>,
    after: Option<&IdNumber>,
    limit: i64,
    scope: &crate::domain::Scope,
) -> Result<Vec<StaleChild>, StorageError> {
    let before = before.naive_utc();
    let mut q = children::table
        .filter(
            children::refreshed_on
                .is_null()
                .or(children::refreshed_on.lt(before.date())),
        )
        .select((
            children::id_number,
            children::hukou_region,
            children::residence_region,
            children::updated_at,
            children::last_visit_on,
        ))
        .into_boxed();
    if let Some(c) = super::records::scope_condition(scope) {
        q = q.filter(c);
    }
    match region_prefix {
        // A 9-digit township: the files naming it as their residence or hukou township.
        Some(t) if t.len() == 9 => {
            q = q.filter(
                children::residence_township
                    .eq(t.to_owned())
                    .or(children::hukou_township.eq(t.to_owned())),
            );
        }
        Some(p) => {
            let pat = format!("{p}%");
            q = q.filter(
                children::hukou_region
                    .like(pat.clone())
                    .or(children::residence_region.like(pat)),
            );
        }
        None => {}
    }
    if let Some(peer) = shared_with {
        q = q.filter(
            children::id_number.eq_any(
                recon_docs::table
                    .filter(recon_docs::peer.eq(peer.to_owned()))
                    .filter(recon_docs::kind.eq("child"))
                    .select(recon_docs::doc_id),
            ),
        );
    }
    if let Some(a) = after {
        q = q.filter(children::id_number.gt(a.as_str().to_owned()));
    }
    let rows: Vec<StaleRow> = q.order(children::id_number.asc()).limit(limit).load(conn)?;
    rows.into_iter().map(stale_child).collect()
}

/// Every document of a kind that has heads (full recomputation checks).
pub fn all_doc_ids(conn: &mut DbConn, kind: &str) -> Result<Vec<String>, StorageError> {
    heads::table
        .filter(heads::kind.eq(kind))
        .select(heads::doc_id)
        .distinct()
        .order(heads::doc_id.asc())
        .load(conn)
        .map_err(StorageError::from)
}

/// Of `ids`, how many are still queued for `peer`, and how many `peer` refused.
pub fn undelivered(
    conn: &mut DbConn,
    peer: &str,
    ids: &[String],
) -> Result<(i64, i64), StorageError> {
    use super::schema::{outbox, outbox_rejected};
    let (mut queued, mut refused) = (0, 0);
    for chunk in ids.chunks(CHUNK) {
        queued += outbox::table
            .filter(outbox::peer.eq(peer))
            .filter(outbox::version_id.eq_any(chunk))
            .count()
            .get_result::<i64>(conn)?;
        refused += outbox_rejected::table
            .filter(outbox_rejected::peer.eq(peer))
            .filter(outbox_rejected::version_id.eq_any(chunk))
            .count()
            .get_result::<i64>(conn)?;
    }
    Ok((queued, refused))
}

/// Of these children and cases, how many have concurrent heads in their current view.
pub fn concurrent_among(
    conn: &mut DbConn,
    child_ids: &[String],
    case_ids: &[String],
) -> Result<i64, StorageError> {
    let mut n = 0;
    for chunk in child_ids.chunks(CHUNK) {
        n += children::table
            .filter(children::id_number.eq_any(chunk))
            .filter(children::head_count.gt(1))
            .count()
            .get_result::<i64>(conn)?;
    }
    for chunk in case_ids.chunks(CHUNK) {
        n += cases::table
            .filter(cases::case_id.eq_any(chunk))
            .filter(cases::head_count.gt(1))
            .count()
            .get_result::<i64>(conn)?;
    }
    Ok(n)
}

/// A number kept beside the summary (the directory serial it was computed under).
pub fn meta(conn: &mut DbConn, name: &str) -> Result<Option<i64>, StorageError> {
    recon_meta::table
        .find(name)
        .select(recon_meta::value)
        .first(conn)
        .optional()
        .map_err(StorageError::from)
}

pub fn set_meta(conn: &mut DbConn, name: &str, value: i64) -> Result<(), StorageError> {
    diesel::delete(recon_meta::table.find(name)).execute(conn)?;
    diesel::insert_into(recon_meta::table)
        .values((recon_meta::name.eq(name), recon_meta::value.eq(value)))
        .execute(conn)?;
    Ok(())
}

/// Marks every stored document dirty (the routing of regions to nodes changed, so any
/// document's parties may have). One statement; `WHERE true` keeps SQLite's parser from reading
/// `ON CONFLICT` as a join constraint.
pub fn mark_all_dirty(conn: &mut DbConn) -> Result<usize, StorageError> {
    diesel::sql_query(
        "INSERT INTO recon_dirty (kind, doc_id, gen) SELECT DISTINCT kind, doc_id, 1 FROM heads \
         WHERE true ON CONFLICT (kind, doc_id) DO UPDATE SET gen = recon_dirty.gen + 1",
    )
    .execute(conn)
    .map_err(StorageError::from)
}

/// Of these children, how many have an open field conflict waiting in the review queue.
pub fn open_conflicts_among(conn: &mut DbConn, child_ids: &[String]) -> Result<i64, StorageError> {
    use super::schema::conflicts;
    let mut n = 0;
    for chunk in child_ids.chunks(CHUNK) {
        n += conflicts::table
            .filter(conflicts::doc_id.eq_any(chunk))
            .select(conflicts::doc_id)
            .distinct()
            .load::<String>(conn)?
            .len() as i64;
    }
    Ok(n)
}
