//! Repository of open conflicts (DESIGN §4), as the merged view of each file finds them. The rows
//! of one file are replaced whenever its view is rebuilt; what they mean is decided by
//! `conflicts` and `sync::merge`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{children, conflicts};
use super::{DbConn, StorageError};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = conflicts)]
#[diesel(treat_none_as_default_value = false)]
pub struct ConflictRow {
    pub doc_id: String,
    pub field: String,
    /// The merge point's version id, or `""` for the current head set.
    pub merge_point: String,
    /// The node whose reviewers may resolve it.
    pub owner: String,
    /// JSON value of the common ancestor.
    pub base: String,
    /// JSON array of the competing values.
    pub candidates: String,
    /// When this node first found it open.
    pub opened_at: NaiveDateTime,
}

/// One row of the review queue: the conflict and whose file it is.
#[derive(Debug, Clone, PartialEq, Queryable)]
pub struct QueueRow {
    pub conflict: ConflictRow,
    pub name: Option<String>,
    pub hukou_region: Option<String>,
    pub residence_region: Option<String>,
}

/// Replaces a file's open conflicts, keeping the time each one was first seen.
pub fn replace_for(
    conn: &mut DbConn,
    doc_id: &str,
    rows: &[ConflictRow],
) -> Result<(), StorageError> {
    let existing: Vec<ConflictRow> = of_doc(conn, doc_id)?;
    if existing.is_empty() && rows.is_empty() {
        return Ok(());
    }
    diesel::delete(conflicts::table.filter(conflicts::doc_id.eq(doc_id))).execute(conn)?;
    for row in rows {
        let opened_at = existing
            .iter()
            .find(|e| e.field == row.field && e.merge_point == row.merge_point)
            .map_or(row.opened_at, |e| e.opened_at);
        diesel::insert_into(conflicts::table)
            .values(&ConflictRow {
                opened_at,
                ..row.clone()
            })
            .execute(conn)?;
    }
    Ok(())
}

/// Many rows at once (benchmarks seed a queue this way).
pub fn insert_many(conn: &mut DbConn, rows: &[ConflictRow]) -> Result<(), StorageError> {
    insert_many!(conn, conflicts::table, rows);
    Ok(())
}

/// A file's open conflicts, by field.
pub fn of_doc(conn: &mut DbConn, doc_id: &str) -> Result<Vec<ConflictRow>, StorageError> {
    conflicts::table
        .filter(conflicts::doc_id.eq(doc_id))
        .order((conflicts::field.asc(), conflicts::merge_point.asc()))
        .select(ConflictRow::as_select())
        .load(conn)
        .map_err(StorageError::from)
}

/// The review queue of one owner, oldest first, keyset-paged by `(opened_at, doc_id, field)`.
pub fn queue(
    conn: &mut DbConn,
    owner: Option<&str>,
    after: Option<(NaiveDateTime, String, String)>,
    limit: i64,
) -> Result<Vec<QueueRow>, StorageError> {
    let mut q = conflicts::table
        .left_join(children::table.on(children::id_number.eq(conflicts::doc_id)))
        .select((
            ConflictRow::as_select(),
            children::name.nullable(),
            children::hukou_region.nullable(),
            children::residence_region.nullable(),
        ))
        .into_boxed();
    if let Some(o) = owner {
        q = q.filter(conflicts::owner.eq(o.to_owned()));
    }
    if let Some((at, doc, field)) = after {
        q = q.filter(
            conflicts::opened_at
                .gt(at)
                .or(conflicts::opened_at.eq(at).and(
                    conflicts::doc_id
                        .gt(doc.clone())
                        .or(conflicts::doc_id.eq(doc).and(conflicts::field.gt(field))),
                )),
        );
    }
    q.order((
        conflicts::opened_at.asc(),
        conflicts::doc_id.asc(),
        conflicts::field.asc(),
    ))
    .limit(limit)
    .load(conn)
    .map_err(StorageError::from)
}

/// Open conflicts per owner.
pub fn count_by_owner(conn: &mut DbConn) -> Result<Vec<(String, i64)>, StorageError> {
    conflicts::table
        .group_by(conflicts::owner)
        .select((conflicts::owner, diesel::dsl::count_star()))
        .load(conn)
        .map_err(StorageError::from)
}
