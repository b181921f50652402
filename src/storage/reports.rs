//! Repository of reports and referrals: the view row of each report document (its recording
//! node's latest version), a child's reports, the list (urgent first, newest first), and the
//! urgent reports no visit has assessed yet.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use super::schema::{reports, visits};
use super::{DbConn, StorageError};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = reports)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(treat_none_as_null = true)]
pub struct ReportRow {
    pub report_id: String,
    pub child_id: String,
    pub recorded_by: String,
    pub reported_on: NaiveDate,
    pub reporter_kind: String,
    /// 1: urgent.
    pub urgent: i64,
    pub police_called: i64,
    pub referral_target: Option<String>,
    /// The version the row shows.
    pub head: String,
    /// That version's body (the report), JSON.
    pub body: String,
    pub recorded_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Writes a report's row (keeping when it was first recorded here).
pub fn upsert(conn: &mut DbConn, row: &ReportRow) -> Result<(), StorageError> {
    let existing: Option<NaiveDateTime> = reports::table
        .find(&row.report_id)
        .select(reports::recorded_at)
        .first(conn)
        .optional()?;
    match existing {
        None => {
            diesel::insert_into(reports::table)
                .values(row)
                .execute(conn)?;
        }
        Some(recorded_at) => {
            let row = ReportRow {
                recorded_at,
                ..row.clone()
            };
            diesel::update(reports::table.find(&row.report_id))
                .set(&row)
                .execute(conn)?;
        }
    }
    Ok(())
}

pub fn get(conn: &mut DbConn, report_id: &str) -> Result<Option<ReportRow>, StorageError> {
    Ok(reports::table
        .find(report_id)
        .select(ReportRow::as_select())
        .first(conn)
        .optional()?)
}

/// Filters of the list.
#[derive(Debug, Clone, Default)]
pub struct ReportFilter {
    pub child_id: Option<String>,
    pub urgent_only: bool,
    /// Keyset paging: after this (urgent, id) in the list's order.
    pub after: Option<(i64, String)>,
    pub limit: i64,
    /// Only reports of children within this account scope.
    pub scope: crate::domain::Scope,
}

/// Reports, urgent first, then newest first (ids are UUIDv7: creation order).
pub fn list(conn: &mut DbConn, f: &ReportFilter) -> Result<Vec<ReportRow>, StorageError> {
    let mut q = reports::table.select(ReportRow::as_select()).into_boxed();
    if let Some(c) = &f.child_id {
        q = q.filter(reports::child_id.eq(c.clone()));
    }
    if f.urgent_only {
        q = q.filter(reports::urgent.eq(1));
    }
    if let Some(within) = super::records::scope_exists("reports.child_id", &f.scope) {
        q = q.filter(within);
    }
    if let Some((u, id)) = &f.after {
        q = q
            .filter(reports::urgent.le(*u))
            .filter(reports::urgent.lt(*u).or(reports::report_id.lt(id.clone())));
    }
    Ok(q.order((reports::urgent.desc(), reports::report_id.desc()))
        .limit(f.limit)
        .load(conn)?)
}

/// The day of the child's latest urgent report, if any.
pub fn latest_urgent(conn: &mut DbConn, child_id: &str) -> Result<Option<NaiveDate>, StorageError> {
    Ok(reports::table
        .filter(reports::child_id.eq(child_id))
        .filter(reports::urgent.eq(1))
        .select(diesel::dsl::max(reports::reported_on))
        .first::<Option<NaiveDate>>(conn)?)
}

/// Urgent reports that no visit of the child on or after the report's day has assessed.
pub fn urgent_unassessed(conn: &mut DbConn) -> Result<i64, StorageError> {
    let assessed = visits::table
        .filter(visits::child_id.eq(reports::child_id))
        .filter(visits::risk_level.is_not_null())
        .filter(visits::visited_on.ge(reports::reported_on));
    Ok(reports::table
        .filter(reports::urgent.eq(1))
        .filter(diesel::dsl::not(diesel::dsl::exists(assessed)))
        .count()
        .get_result(conn)?)
}

/// The ids of a child's reports (they go with a moved file).
pub fn ids_of_children(
    conn: &mut DbConn,
    children: &[String],
) -> Result<Vec<String>, StorageError> {
    let mut out = Vec::new();
    for chunk in children.chunks(500) {
        out.extend(
            reports::table
                .filter(reports::child_id.eq_any(chunk))
                .select(reports::report_id)
                .load::<String>(conn)?,
        );
    }
    Ok(out)
}

/// The child each of these reports is about.
pub fn children_of(
    conn: &mut DbConn,
    ids: &[String],
) -> Result<std::collections::HashMap<String, String>, StorageError> {
    let mut out = std::collections::HashMap::new();
    for chunk in ids.chunks(500) {
        let rows: Vec<(String, String)> = reports::table
            .filter(reports::report_id.eq_any(chunk))
            .select((reports::report_id, reports::child_id))
            .load(conn)?;
        out.extend(rows);
    }
    Ok(out)
}

pub fn count(conn: &mut DbConn) -> Result<i64, StorageError> {
    Ok(reports::table.count().get_result(conn)?)
}
