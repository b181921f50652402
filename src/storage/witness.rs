//! Repository of witnessing (DESIGN §8): the checkpoint this node last cosigned for each peer's
//! log, the cosignatures its own checkpoints received, and evidence against peers. A witness's
//! check and store run in one transaction that first takes [`lock_witness`]: on SQLite the
//! transaction is IMMEDIATE (one writer), on PostgreSQL a transaction-scoped advisory lock, so
//! two requests for one log never both pass the check against the same held checkpoint.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{cosignatures, witness_evidence, witnessed_logs};
use super::{DbConn, StorageError};

/// Class of the PostgreSQL advisory lock that serialises witness decisions ("wi" in ASCII), per
/// schema ([`super::schema_lock`]).
const WITNESS_LOCK_CLASS: i32 = 0x7769;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = witnessed_logs)]
pub struct WitnessedLogRow {
    pub peer: String,
    pub size: i64,
    pub root: String,
    pub checkpoint: String,
    pub cosigned_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = cosignatures)]
pub struct CosignatureRow {
    pub witness: String,
    pub size: i64,
    pub root: String,
    pub line: String,
    pub cosigned_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = witness_evidence)]
#[diesel(treat_none_as_default_value = false)]
pub struct EvidenceRow {
    pub id: String,
    pub peer: String,
    pub kind: String,
    pub detected_at: NaiveDateTime,
    pub document: String,
    pub acknowledged_at: Option<NaiveDateTime>,
    pub acknowledged_by: Option<String>,
}

/// Serialises witness decisions (inside the caller's transaction).
pub fn lock_witness(conn: &mut DbConn) -> Result<(), StorageError> {
    if let DbConn::Postgres(_) = conn {
        diesel::sql_query(format!("SELECT {}", super::schema_lock(WITNESS_LOCK_CLASS)))
            .execute(conn)?;
    }
    Ok(())
}

pub fn witnessed(conn: &mut DbConn, peer: &str) -> Result<Option<WitnessedLogRow>, StorageError> {
    witnessed_logs::table
        .find(peer)
        .select(WitnessedLogRow::as_select())
        .first(conn)
        .optional()
        .map_err(StorageError::from)
}

pub fn all_witnessed(conn: &mut DbConn) -> Result<Vec<WitnessedLogRow>, StorageError> {
    witnessed_logs::table
        .order(witnessed_logs::peer.asc())
        .select(WitnessedLogRow::as_select())
        .load(conn)
        .map_err(StorageError::from)
}

/// Holds `row` as the latest checkpoint cosigned for its peer.
pub fn hold(conn: &mut DbConn, row: &WitnessedLogRow) -> Result<(), StorageError> {
    per_backend!(conn, |c| diesel::insert_into(witnessed_logs::table)
        .values(row)
        .on_conflict(witnessed_logs::peer)
        .do_update()
        .set((
            witnessed_logs::size.eq(row.size),
            witnessed_logs::root.eq(&row.root),
            witnessed_logs::checkpoint.eq(&row.checkpoint),
            witnessed_logs::cosigned_at.eq(row.cosigned_at),
        ))
        .execute(c))?;
    Ok(())
}

/// Keeps a cosignature received (a newer one for the same witness and size replaces it).
pub fn insert_cosignature(conn: &mut DbConn, row: &CosignatureRow) -> Result<(), StorageError> {
    per_backend!(conn, |c| diesel::insert_into(cosignatures::table)
        .values(row)
        .on_conflict((cosignatures::witness, cosignatures::size))
        .do_update()
        .set((
            cosignatures::root.eq(&row.root),
            cosignatures::line.eq(&row.line),
            cosignatures::cosigned_at.eq(row.cosigned_at),
        ))
        .execute(c))?;
    Ok(())
}

/// The latest cosignature of each witness.
pub fn latest_cosignatures(conn: &mut DbConn) -> Result<Vec<CosignatureRow>, StorageError> {
    let rows: Vec<CosignatureRow> = cosignatures::table
        .order((cosignatures::witness.asc(), cosignatures::size.desc()))
        .select(CosignatureRow::as_select())
        .load(conn)?;
    let mut out: Vec<CosignatureRow> = Vec::new();
    for r in rows {
        if out.last().map_or(true, |l| l.witness != r.witness) {
            out.push(r);
        }
    }
    Ok(out)
}

/// The cosignatures of one size, by witness.
pub fn cosignatures_at(conn: &mut DbConn, size: i64) -> Result<Vec<CosignatureRow>, StorageError> {
    cosignatures::table
        .filter(cosignatures::size.eq(size))
        .order(cosignatures::witness.asc())
        .select(CosignatureRow::as_select())
        .load(conn)
        .map_err(StorageError::from)
}

/// Keeps evidence once (the same document twice is one row).
pub fn insert_evidence(conn: &mut DbConn, row: &EvidenceRow) -> Result<bool, StorageError> {
    let n = per_backend!(conn, |c| diesel::insert_into(witness_evidence::table)
        .values(row)
        .on_conflict(witness_evidence::id)
        .do_nothing()
        .execute(c))?;
    Ok(n > 0)
}

/// Evidence, newest first; only the open (unacknowledged) rows when `open_only`.
pub fn evidence(
    conn: &mut DbConn,
    peer: Option<&str>,
    open_only: bool,
) -> Result<Vec<EvidenceRow>, StorageError> {
    let mut q = witness_evidence::table
        .select(EvidenceRow::as_select())
        .into_boxed();
    if let Some(p) = peer {
        q = q.filter(witness_evidence::peer.eq(p.to_owned()));
    }
    if open_only {
        q = q.filter(witness_evidence::acknowledged_at.is_null());
    }
    q.order((
        witness_evidence::detected_at.desc(),
        witness_evidence::id.asc(),
    ))
    .limit(1000)
    .load(conn)
    .map_err(StorageError::from)
}

pub fn evidence_by_id(conn: &mut DbConn, id: &str) -> Result<Option<EvidenceRow>, StorageError> {
    witness_evidence::table
        .find(id)
        .select(EvidenceRow::as_select())
        .first(conn)
        .optional()
        .map_err(StorageError::from)
}

/// Acknowledges every open piece of evidence against `peer`; returns how many.
pub fn acknowledge(
    conn: &mut DbConn,
    peer: &str,
    by: &str,
    at: NaiveDateTime,
) -> Result<usize, StorageError> {
    diesel::update(
        witness_evidence::table
            .filter(witness_evidence::peer.eq(peer))
            .filter(witness_evidence::acknowledged_at.is_null()),
    )
    .set((
        witness_evidence::acknowledged_at.eq(Some(at)),
        witness_evidence::acknowledged_by.eq(Some(by)),
    ))
    .execute(conn)
    .map_err(StorageError::from)
}

/// Forgets the checkpoint held for `peer` (after an acknowledged restore the witness starts
/// over from the log's new checkpoint).
pub fn release(conn: &mut DbConn, peer: &str) -> Result<(), StorageError> {
    diesel::delete(witnessed_logs::table.find(peer)).execute(conn)?;
    Ok(())
}

/// Removes the cosignatures received for sizes above `size` (after an accepted restore).
pub fn delete_cosignatures_above(conn: &mut DbConn, size: i64) -> Result<usize, StorageError> {
    diesel::delete(cosignatures::table.filter(cosignatures::size.gt(size)))
        .execute(conn)
        .map_err(StorageError::from)
}

/// Removes every cosignature a witness gave (after an accepted restore whose history diverges
/// from what it cosigned).
pub fn delete_cosignatures_of(conn: &mut DbConn, witness: &str) -> Result<usize, StorageError> {
    diesel::delete(cosignatures::table.filter(cosignatures::witness.eq(witness)))
        .execute(conn)
        .map_err(StorageError::from)
}
