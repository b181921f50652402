//! Repository of evidence files: the encrypted files (`evidence_files`, one row per SHA-256),
//! which files each case names (`case_evidence`, kept with the case's view row), and the
//! decider's attempts to fetch them (`evidence_fetches`). Bytes go in and out sealed: this module
//! never sees a file's plaintext.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{case_evidence, cases, evidence_fetches, evidence_files};
use super::{DbConn, StorageError, LIST_CHUNK};

/// One stored file, sealed.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = evidence_files)]
#[diesel(treat_none_as_default_value = false)]
pub struct EvidenceFileRow {
    pub sha256: String,
    pub media_type: String,
    pub size: i64,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub stored_at: NaiveDateTime,
    /// The peer it was fetched from; `None`: uploaded here.
    pub source_node: Option<String>,
}

/// Stores a file unless one with its SHA-256 is stored already; whether it was inserted.
pub fn insert_file(conn: &mut DbConn, row: &EvidenceFileRow) -> Result<bool, StorageError> {
    let n = per_backend!(conn, |c| diesel::insert_into(evidence_files::table)
        .values(row)
        .on_conflict(evidence_files::sha256)
        .do_nothing()
        .execute(c))?;
    Ok(n == 1)
}

/// The stored file with this SHA-256, sealed.
pub fn get_file(conn: &mut DbConn, sha256: &str) -> Result<Option<EvidenceFileRow>, StorageError> {
    Ok(evidence_files::table
        .find(sha256)
        .select(EvidenceFileRow::as_select())
        .first(conn)
        .optional()?)
}

/// Which of these SHA-256s are stored here, with their media type and size.
pub fn present(
    conn: &mut DbConn,
    shas: &[String],
) -> Result<BTreeMap<String, (String, i64)>, StorageError> {
    let mut out = BTreeMap::new();
    for chunk in shas.chunks(LIST_CHUNK) {
        let rows: Vec<(String, String, i64)> = evidence_files::table
            .filter(evidence_files::sha256.eq_any(chunk))
            .select((
                evidence_files::sha256,
                evidence_files::media_type,
                evidence_files::size,
            ))
            .load(conn)?;
        out.extend(rows.into_iter().map(|(s, m, n)| (s, (m, n))));
    }
    Ok(out)
}

/// Which of these SHA-256s are stored here, for a writer about to name them in a case: on
/// PostgreSQL the rows are locked `FOR SHARE` until the writer's transaction ends, so
/// [`expire_unnamed`] cannot take a file away between this check and the naming (SQLite runs
/// one writer at a time).
pub fn present_for_naming(
    conn: &mut DbConn,
    shas: &[String],
) -> Result<BTreeSet<String>, StorageError> {
    let mut out = BTreeSet::new();
    for chunk in shas.chunks(LIST_CHUNK) {
        let q = evidence_files::table
            .filter(evidence_files::sha256.eq_any(chunk))
            .select(evidence_files::sha256);
        let rows: Vec<String> = match conn {
            DbConn::Sqlite(c) => q.load(c)?,
            DbConn::Postgres(c) => q.for_share().load(c)?,
        };
        out.extend(rows);
    }
    Ok(out)
}

/// A file taken away by [`expire_unnamed`].
#[derive(Debug, Clone, PartialEq)]
pub struct ExpiredFile {
    pub sha256: String,
    pub size: i64,
    pub stored_at: NaiveDateTime,
}

/// Deletes up to `limit` files uploaded here (not fetched from a peer) before `cutoff` that no
/// case names, oldest first; what it deleted. Call it inside a transaction.
///
/// Two steps, so that a case naming a file at the same moment always wins: the candidates are
/// locked (`FOR UPDATE` on PostgreSQL; a case being created holds them `FOR SHARE` through
/// [`present_for_naming`], and then this waits for it), and only then, by a fresh statement
/// that sees every naming committed meanwhile, those still unnamed are read and deleted.
pub fn expire_unnamed(
    conn: &mut DbConn,
    cutoff: NaiveDateTime,
    limit: i64,
) -> Result<Vec<ExpiredFile>, StorageError> {
    let unnamed = || {
        diesel::dsl::not(diesel::dsl::exists(
            case_evidence::table.filter(case_evidence::sha256.eq(evidence_files::sha256)),
        ))
    };
    let candidates = evidence_files::table
        .filter(evidence_files::source_node.is_null())
        .filter(evidence_files::stored_at.lt(cutoff))
        .filter(unnamed())
        .order(evidence_files::stored_at)
        .limit(limit)
        .select(evidence_files::sha256);
    let candidates: Vec<String> = match conn {
        DbConn::Sqlite(c) => candidates.load(c)?,
        DbConn::Postgres(c) => candidates.for_update().load(c)?,
    };
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, i64, NaiveDateTime)> = evidence_files::table
        .filter(evidence_files::sha256.eq_any(&candidates))
        .filter(unnamed())
        .select((
            evidence_files::sha256,
            evidence_files::size,
            evidence_files::stored_at,
        ))
        .load(conn)?;
    let gone: Vec<&String> = rows.iter().map(|(s, _, _)| s).collect();
    per_backend!(conn, |c| diesel::delete(
        evidence_files::table.filter(evidence_files::sha256.eq_any(&gone))
    )
    .execute(c))?;
    Ok(rows
        .into_iter()
        .map(|(sha256, size, stored_at)| ExpiredFile {
            sha256,
            size,
            stored_at,
        })
        .collect())
}

/// Records that `case_id` names these files (rows already there stay).
pub fn name_for_case(
    conn: &mut DbConn,
    case_id: &str,
    shas: &BTreeSet<String>,
) -> Result<(), StorageError> {
    for sha in shas {
        per_backend!(conn, |c| diesel::insert_into(case_evidence::table)
            .values((
                case_evidence::case_id.eq(case_id),
                case_evidence::sha256.eq(sha),
            ))
            .on_conflict((case_evidence::case_id, case_evidence::sha256))
            .do_nothing()
            .execute(c))?;
    }
    Ok(())
}

/// Whether a case stored here names `sha256` and has `node` as its requester or decider.
pub fn named_for_party(conn: &mut DbConn, sha256: &str, node: &str) -> Result<bool, StorageError> {
    let n: i64 = case_evidence::table
        .inner_join(cases::table.on(cases::case_id.eq(case_evidence::case_id)))
        .filter(case_evidence::sha256.eq(sha256))
        .filter(cases::requester.eq(node).or(cases::decider.eq(node)))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Files that cases `decider` decides (and another node asked) name but that are not stored
/// here: each with the requesters of those cases, the ones to fetch it from.
pub fn wanted(
    conn: &mut DbConn,
    decider: &str,
) -> Result<BTreeMap<String, BTreeSet<String>>, StorageError> {
    let stored = evidence_files::table.filter(evidence_files::sha256.eq(case_evidence::sha256));
    let rows: Vec<(String, String)> = case_evidence::table
        .inner_join(cases::table.on(cases::case_id.eq(case_evidence::case_id)))
        .filter(cases::decider.eq(decider))
        .filter(cases::requester.ne(decider))
        .filter(diesel::dsl::not(diesel::dsl::exists(stored)))
        .select((case_evidence::sha256, cases::requester))
        .load(conn)?;
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (sha, requester) in rows {
        out.entry(sha).or_default().insert(requester);
    }
    Ok(out)
}

/// Open cases `decider` decides that name a file not stored here.
pub fn cases_missing(conn: &mut DbConn, decider: &str) -> Result<i64, StorageError> {
    let stored = evidence_files::table.filter(evidence_files::sha256.eq(case_evidence::sha256));
    let ids: Vec<String> = case_evidence::table
        .inner_join(cases::table.on(cases::case_id.eq(case_evidence::case_id)))
        .filter(cases::decider.eq(decider))
        .filter(cases::state.ne_all(["approved", "denied", "withdrawn"]))
        .filter(diesel::dsl::not(diesel::dsl::exists(stored)))
        .select(case_evidence::case_id)
        .distinct()
        .load(conn)?;
    Ok(ids.len() as i64)
}

/// Bytes of the files stored here (their plaintext sizes).
pub fn stored_bytes(conn: &mut DbConn) -> Result<i64, StorageError> {
    let sizes: Vec<i64> = evidence_files::table
        .select(evidence_files::size)
        .load(conn)?;
    Ok(sizes.iter().sum())
}

/// The last attempt to fetch a file.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = evidence_fetches)]
#[diesel(treat_none_as_default_value = false)]
pub struct FetchRow {
    pub sha256: String,
    pub peer: String,
    /// `fetched`, `failed` or `mismatch`.
    pub outcome: String,
    pub attempts: i64,
    pub last_attempt_at: NaiveDateTime,
    pub detail: Option<String>,
}

/// The last fetch attempt of each of these files that has one.
pub fn fetches(
    conn: &mut DbConn,
    shas: &[String],
) -> Result<BTreeMap<String, FetchRow>, StorageError> {
    let mut out = BTreeMap::new();
    for chunk in shas.chunks(LIST_CHUNK) {
        let rows: Vec<FetchRow> = evidence_fetches::table
            .filter(evidence_fetches::sha256.eq_any(chunk))
            .select(FetchRow::as_select())
            .load(conn)?;
        out.extend(rows.into_iter().map(|r| (r.sha256.clone(), r)));
    }
    Ok(out)
}

/// Records an attempt to fetch `sha256` from `peer` (counting attempts).
pub fn record_fetch(
    conn: &mut DbConn,
    sha256: &str,
    peer: &str,
    outcome: &str,
    detail: Option<&str>,
    at: NaiveDateTime,
) -> Result<(), StorageError> {
    let row = FetchRow {
        sha256: sha256.to_owned(),
        peer: peer.to_owned(),
        outcome: outcome.to_owned(),
        attempts: 1,
        last_attempt_at: at,
        detail: detail.map(str::to_owned),
    };
    per_backend!(conn, |c| diesel::insert_into(evidence_fetches::table)
        .values(&row)
        .on_conflict(evidence_fetches::sha256)
        .do_update()
        .set((
            evidence_fetches::peer.eq(&row.peer),
            evidence_fetches::outcome.eq(&row.outcome),
            evidence_fetches::attempts.eq(evidence_fetches::attempts + 1),
            evidence_fetches::last_attempt_at.eq(at),
            evidence_fetches::detail.eq(&row.detail),
        ))
        .execute(c))?;
    Ok(())
}

/// Files whose last fetch served bytes of another hash and that are still not stored here.
pub fn mismatching(conn: &mut DbConn) -> Result<i64, StorageError> {
    let stored = evidence_files::table.filter(evidence_files::sha256.eq(evidence_fetches::sha256));
    Ok(evidence_fetches::table
        .filter(evidence_fetches::outcome.eq("mismatch"))
        .filter(diesel::dsl::not(diesel::dsl::exists(stored)))
        .count()
        .get_result(conn)?)
}
