//! Repository of open conflicts (DESIGN §4), as the merged view of each file finds them. The rows
//! of one file are replaced whenever its view is rebuilt; what they mean is decided by
//! `conflicts` and `sync::merge`. Reads come out typed ([`Conflict`], [`QueueEntry`]): a stored
//! value that does not parse is [`StorageError::Corrupt`].

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::{children, conflicts};
use super::{DbConn, StorageError};
use crate::domain::child::ChildField;
use crate::domain::conflict::Candidate;
use crate::domain::digest::Digest;
use crate::domain::{IdNumber, NodeId, RegionCode};

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

/// An open conflict as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub doc_id: IdNumber,
    pub field: ChildField,
    /// The merge point's version id, or `None` for the current head set.
    pub merge_point: Option<Digest>,
    /// The node whose reviewers may resolve it.
    pub owner: NodeId,
    /// The common ancestor's value.
    pub base: serde_json::Value,
    pub candidates: Vec<Candidate>,
    /// When this node first found it open.
    pub opened_at: DateTime<Utc>,
}

impl TryFrom<ConflictRow> for Conflict {
    type Error = StorageError;

    fn try_from(r: ConflictRow) -> Result<Self, StorageError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            StorageError::corrupt(
                "conflicts",
                format!(
                    "{} {}: {what}: {e}",
                    IdNumber::mask_text(&r.doc_id),
                    r.field
                ),
            )
        };
        let merge_point = if r.merge_point.is_empty() {
            None
        } else {
            Some(
                r.merge_point
                    .parse::<Digest>()
                    .map_err(|e| bad("merge point", &e))?,
            )
        };
        Ok(Conflict {
            doc_id: IdNumber::parse(&r.doc_id).map_err(|e| bad("document", &e))?,
            field: ChildField::from_name(&r.field)
                .ok_or_else(|| bad("field", &"not a field of the record"))?,
            merge_point,
            owner: NodeId::parse(&r.owner).map_err(|e| bad("owner", &e))?,
            base: serde_json::from_str(&r.base).map_err(|e| bad("base", &e))?,
            candidates: serde_json::from_str(&r.candidates).map_err(|e| bad("candidates", &e))?,
            opened_at: r.opened_at.and_utc(),
        })
    }
}

/// One row of the review queue: the conflict and whose file it is (`None` where the file has
/// no view row).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueEntry {
    pub conflict: Conflict,
    pub name: Option<String>,
    pub hukou_region: Option<RegionCode>,
    pub residence_region: Option<RegionCode>,
}

type QueueRow = (ConflictRow, Option<String>, Option<String>, Option<String>);

fn queue_entry((conflict, name, hukou, residence): QueueRow) -> Result<QueueEntry, StorageError> {
    let region = |r: Option<String>| {
        r.map(|r| {
            RegionCode::parse(&r)
                .map_err(|e| StorageError::corrupt("children", format!("region {r:?}: {e}")))
        })
        .transpose()
    };
    Ok(QueueEntry {
        conflict: Conflict::try_from(conflict)?,
        name,
        hukou_region: region(hukou)?,
        residence_region: region(residence)?,
    })
}

/// Replaces a file's open conflicts, keeping the time each one was first seen.
pub fn replace_for(
    conn: &mut DbConn,
    doc_id: &str,
    rows: &[ConflictRow],
) -> Result<(), StorageError> {
    let existing: Vec<ConflictRow> = rows_of_doc(conn, doc_id)?;
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

fn rows_of_doc(conn: &mut DbConn, doc_id: &str) -> Result<Vec<ConflictRow>, StorageError> {
    conflicts::table
        .filter(conflicts::doc_id.eq(doc_id))
        .order((conflicts::field.asc(), conflicts::merge_point.asc()))
        .select(ConflictRow::as_select())
        .load(conn)
        .map_err(StorageError::from)
}

/// A file's open conflicts, by field.
pub fn of_doc(conn: &mut DbConn, doc_id: &IdNumber) -> Result<Vec<Conflict>, StorageError> {
    rows_of_doc(conn, doc_id.as_str())?
        .into_iter()
        .map(Conflict::try_from)
        .collect()
}

/// The review queue of one owner, oldest first, keyset-paged by `(opened_at, doc_id, field)`.
pub fn queue(
    conn: &mut DbConn,
    owner: Option<&str>,
    after: Option<(DateTime<Utc>, String, String)>,
    limit: i64,
    scope: &crate::domain::Scope,
) -> Result<Vec<QueueEntry>, StorageError> {
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
    if let Some(within) = super::records::scope_exists("conflicts.doc_id", scope) {
        q = q.filter(within);
    }
    if let Some((at, doc, field)) = after {
        let at = at.naive_utc();
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
    let rows: Vec<QueueRow> = q
        .order((
            conflicts::opened_at.asc(),
            conflicts::doc_id.asc(),
            conflicts::field.asc(),
        ))
        .limit(limit)
        .load(conn)?;
    rows.into_iter().map(queue_entry).collect()
}

/// Open conflicts per owner.
pub fn count_by_owner(
    conn: &mut DbConn,
    scope: &crate::domain::Scope,
) -> Result<Vec<(NodeId, i64)>, StorageError> {
    let mut q = conflicts::table
        .group_by(conflicts::owner)
        .select((conflicts::owner, diesel::dsl::count_star()))
        .into_boxed();
    if let Some(within) = super::records::scope_exists("conflicts.doc_id", scope) {
        q = q.filter(within);
    }
    let rows: Vec<(String, i64)> = q.load(conn)?;
    rows.into_iter()
        .map(|(owner, n)| {
            let owner = NodeId::parse(&owner)
                .map_err(|e| StorageError::corrupt("conflicts", format!("owner {owner:?}: {e}")))?;
            Ok((owner, n))
        })
        .collect()
}
