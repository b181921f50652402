//! Repository of visits (走访): the view row of each visit document (its author's latest
//! version), the lookups the exchange needs (a visit's child and that child's regions, the
//! visits of a child) and the due list over the children view (`children.visit_due_on`).
//! Rows go in as [`VisitRow`]; they come out as rows with their body, which `visits` parses.

use std::collections::HashMap;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use super::schema::{children, visits};
use super::{DbConn, StorageError};

/// Ids looked up per statement.
const CHUNK: usize = 500;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = visits)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(treat_none_as_null = true)]
pub struct VisitRow {
    pub visit_id: String,
    pub child_id: String,
    pub recorded_by: String,
    pub visited_on: NaiveDate,
    pub kind: String,
    pub visitor_role: String,
    /// The assessment's level ("1".."4"), when the visit assessed risk.
    pub risk_level: Option<String>,
    pub next_due_on: Option<NaiveDate>,
    /// The version the row shows.
    pub head: String,
    /// That version's body (the visit), JSON.
    pub body: String,
    pub recorded_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Writes a visit's row (keeping when it was first recorded here).
pub fn upsert(conn: &mut DbConn, row: &VisitRow) -> Result<(), StorageError> {
    let existing: Option<NaiveDateTime> = visits::table
        .find(&row.visit_id)
        .select(visits::recorded_at)
        .first(conn)
        .optional()?;
    match existing {
        None => {
            diesel::insert_into(visits::table)
                .values(row)
                .execute(conn)?;
        }
        Some(recorded_at) => {
            let row = VisitRow {
                recorded_at,
                ..row.clone()
            };
            diesel::update(visits::table.find(&row.visit_id))
                .set(&row)
                .execute(conn)?;
        }
    }
    Ok(())
}

pub fn get(conn: &mut DbConn, visit_id: &str) -> Result<Option<VisitRow>, StorageError> {
    Ok(visits::table
        .find(visit_id)
        .select(VisitRow::as_select())
        .first(conn)
        .optional()?)
}

/// A child's visits, latest first (by day, then by id: UUIDv7 ids sort by creation); keyset
/// paging on `(visited_on, visit_id)` below `before`.
pub fn of_child(
    conn: &mut DbConn,
    child_id: &str,
    before: Option<(NaiveDate, String)>,
    limit: i64,
) -> Result<Vec<VisitRow>, StorageError> {
    let mut q = visits::table
        .filter(visits::child_id.eq(child_id))
        .select(VisitRow::as_select())
        .into_boxed();
    if let Some((day, id)) = before {
        // The first condition bounds the index range (`visits_child`), as in [`due`].
        q = q
            .filter(visits::visited_on.le(day))
            .filter(visits::visited_on.lt(day).or(visits::visit_id.lt(id)));
    }
    Ok(
        q.order((visits::visited_on.desc(), visits::visit_id.desc()))
            .limit(limit)
            .load(conn)?,
    )
}

/// Visits in id order after `after` (an export's pages).
pub fn page(
    conn: &mut DbConn,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<VisitRow>, StorageError> {
    let mut q = visits::table.select(VisitRow::as_select()).into_boxed();
    if let Some(a) = after {
        q = q.filter(visits::visit_id.gt(a.to_owned()));
    }
    Ok(q.order(visits::visit_id.asc()).limit(limit).load(conn)?)
}

/// The visits of these children.
pub fn ids_of_children(
    conn: &mut DbConn,
    children: &[String],
) -> Result<Vec<String>, StorageError> {
    let mut out = Vec::new();
    for chunk in children.chunks(CHUNK) {
        out.extend(
            visits::table
                .filter(visits::child_id.eq_any(chunk))
                .select(visits::visit_id)
                .load::<String>(conn)?,
        );
    }
    Ok(out)
}

/// The child each of these visits is about (visits with a view row).
pub fn children_of(
    conn: &mut DbConn,
    ids: &[String],
) -> Result<HashMap<String, String>, StorageError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<(String, String)> = visits::table
            .filter(visits::visit_id.eq_any(chunk))
            .select((visits::visit_id, visits::child_id))
            .load(conn)?;
        out.extend(rows);
    }
    Ok(out)
}

/// How many visits are stored.
pub fn count(conn: &mut DbConn) -> Result<i64, StorageError> {
    Ok(visits::table.count().get_result(conn)?)
}

/// Filters of the due list; combined with AND.
#[derive(Debug, Clone, Default)]
pub struct DueFilter {
    /// Due on or before this day.
    pub due_by: NaiveDate,
    /// The residence region starts with this (2, 4 or 6 digits).
    pub residence_prefix: Option<String>,
    /// The residence township (9 digits).
    pub township: Option<String>,
    /// The responsible worker's name.
    pub worker: Option<String>,
    /// Keyset paging: rows after this (due day, ID number).
    pub after: Option<(NaiveDate, String)>,
    pub limit: i64,
    /// Only children within this account scope.
    pub scope: crate::domain::Scope,
}

/// One row of the due list, as stored.
#[derive(Debug, Clone, PartialEq, Queryable)]
pub struct DueRow {
    pub id_number: String,
    pub name: String,
    pub hukou_region: String,
    pub residence_region: String,
    pub residence_township: Option<String>,
    pub responsible_worker: Option<String>,
    pub categories: String,
    pub risk_level: Option<String>,
    pub last_visit_on: Option<NaiveDate>,
    pub visit_due_on: NaiveDate,
}

/// Files whose next visit is due by `f.due_by`, earliest due first (index
/// `children_visit_due`).
pub fn due(conn: &mut DbConn, f: &DueFilter) -> Result<Vec<DueRow>, StorageError> {
    let mut q = children::table
        .filter(children::visit_due_on.le(f.due_by))
        .select((
            children::id_number,
            children::name,
            children::hukou_region,
            children::residence_region,
            children::residence_township,
            children::responsible_worker,
            children::categories,
            children::risk_level,
            children::last_visit_on,
            children::visit_due_on.assume_not_null(),
        ))
        .into_boxed();
    if let Some(c) = super::records::scope_condition(&f.scope) {
        q = q.filter(c);
    }
    if let Some(p) = &f.residence_prefix {
        q = q.filter(children::residence_region.like(format!("{p}%")));
    }
    if let Some(t) = &f.township {
        q = q.filter(children::residence_township.eq(t.clone()));
    }
    if let Some(w) = &f.worker {
        q = q.filter(children::responsible_worker.eq(w.clone()));
    }
    if let Some((day, id)) = &f.after {
        // The first condition alone bounds the index range (`children_visit_due`); with only
        // the OR the planner scans the index from its start (880 ms for a page deep in a
        // million files on PostgreSQL, BENCHMARKS.md).
        q = q.filter(children::visit_due_on.ge(*day)).filter(
            children::visit_due_on
                .gt(*day)
                .or(children::id_number.gt(id.clone())),
        );
    }
    Ok(
        q.order((children::visit_due_on.asc(), children::id_number.asc()))
            .limit(f.limit)
            .load(conn)?,
    )
}

/// How many files are overdue (due before `today`), per residence region.
pub fn overdue_by_region(
    conn: &mut DbConn,
    today: NaiveDate,
) -> Result<Vec<(String, i64)>, StorageError> {
    Ok(children::table
        .filter(children::visit_due_on.lt(today))
        .group_by(children::residence_region)
        .select((children::residence_region, diesel::dsl::count_star()))
        .load(conn)?)
}

/// Rewrites every file's due date in chunks of ids (after a change of the schedule): `recompute`
/// gets each chunk's records (ID number, record JSON, created) and returns the new dates.
pub fn child_ids_after(
    conn: &mut DbConn,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<String>, StorageError> {
    let mut q = children::table.select(children::id_number).into_boxed();
    if let Some(a) = after {
        q = q.filter(children::id_number.gt(a.to_owned()));
    }
    Ok(q.order(children::id_number.asc()).limit(limit).load(conn)?)
}

/// Clears the due dates of files whose child was born on or before `born_by` (18 today): adults
/// leave the due list in the database, so they never crowd the front of its index. Returns how
/// many files it cleared.
pub fn clear_adults_due(conn: &mut DbConn, born_by: NaiveDate) -> Result<usize, StorageError> {
    use diesel::sql_types::{Bool, Text};
    Ok(diesel::update(
        children::table
            .filter(children::visit_due_on.is_not_null())
            .filter(
                diesel::dsl::sql::<Bool>("substr(id_number, 7, 8) <= ")
                    .bind::<Text, _>(born_by.format("%Y%m%d").to_string()),
            ),
    )
    .set(children::visit_due_on.eq(None::<NaiveDate>))
    .execute(conn)?)
}

/// Sets one file's due date.
pub fn set_due(
    conn: &mut DbConn,
    id_number: &str,
    due: Option<NaiveDate>,
) -> Result<(), StorageError> {
    diesel::update(children::table.find(id_number))
        .set(children::visit_due_on.eq(due))
        .execute(conn)?;
    Ok(())
}
