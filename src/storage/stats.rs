//! Counts behind the statistics (`stats`), grouped in the database so no row per file is read.
//! The caller first counts files per pair of regions ([`pairs`], one pass) and so learns which
//! regions of files it holds it no longer serves (a file kept read-only after a move is not
//! counted); every other count of files is grouped by one column only, with those regions left
//! out ([`Files`]). Cases and visits are counted by their own columns. Every count takes the
//! reader's account scope: only children within it (cases and visits: of children within it).

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use super::records::{scope_condition, scope_exists};
use super::schema::{cases, child_benefits, children, visits};
use super::{DbConn, StorageError};
use crate::domain::Scope;

/// `(hukou_region, residence_region, files)`.
pub type PairCount = (String, String, i64);

/// Which files a figure counts: those within the reader's `scope`, less those whose hukou and
/// residence regions are both in `unserved` (the node keeps them read-only after a move; the
/// caller finds these regions among [`pairs`]).
#[derive(Debug, Clone, Default)]
pub struct Files {
    pub scope: Scope,
    pub unserved: Vec<String>,
}

/// A boxed `children` query limited to `files`.
macro_rules! counted {
    ($query:expr, $files:expr) => {{
        let mut q = $query.into_boxed();
        if let Some(c) = scope_condition(&$files.scope) {
            q = q.filter(c);
        }
        if !$files.unserved.is_empty() {
            q = q.filter(diesel::dsl::not(
                children::hukou_region
                    .eq_any($files.unserved.clone())
                    .and(children::residence_region.eq_any($files.unserved.clone())),
            ));
        }
        q
    }};
}

/// Files per pair of regions within the scope (every file, served or not): the caller decides
/// which pairs this node serves. One pass; as many rows as pairs.
pub fn pairs(conn: &mut DbConn, scope: &Scope) -> Result<Vec<PairCount>, StorageError> {
    let files = Files {
        scope: scope.clone(),
        unserved: Vec::new(),
    };
    Ok(counted!(
        children::table
            .group_by((children::hukou_region, children::residence_region))
            .select((
                children::hukou_region,
                children::residence_region,
                diesel::dsl::count_star(),
            )),
        files
    )
    .load(conn)?)
}

macro_rules! by_column {
    ($conn:expr, $files:expr, $column:expr, $ty:ty) => {{
        let rows: Vec<($ty, i64)> = counted!(
            children::table
                .group_by($column)
                .select(($column, diesel::dsl::count_star())),
            $files
        )
        .load($conn)?;
        Ok(rows)
    }};
}

/// Files per residence township (none: the file names no township).
pub fn by_township(
    conn: &mut DbConn,
    files: &Files,
) -> Result<Vec<(Option<String>, i64)>, StorageError> {
    by_column!(conn, files, children::residence_township, Option<String>)
}

/// Files per set of categories (`|flowing|left_behind|`).
pub fn by_categories(conn: &mut DbConn, files: &Files) -> Result<Vec<(String, i64)>, StorageError> {
    by_column!(conn, files, children::categories, String)
}

/// Files per risk level ("1".."4", none: not graded).
pub fn by_risk(
    conn: &mut DbConn,
    files: &Files,
) -> Result<Vec<(Option<String>, i64)>, StorageError> {
    by_column!(conn, files, children::risk_level, Option<String>)
}

/// Files per responsible worker (the view column's text; none: nobody named).
pub fn by_worker(
    conn: &mut DbConn,
    files: &Files,
) -> Result<Vec<(Option<String>, i64)>, StorageError> {
    by_column!(conn, files, children::responsible_worker, Option<String>)
}

/// Files per benefit held now (a file counts once for each benefit it holds).
pub fn by_benefit(conn: &mut DbConn, files: &Files) -> Result<Vec<(String, i64)>, StorageError> {
    let mut q = child_benefits::table
        .inner_join(children::table)
        .group_by(child_benefits::benefit)
        .select((child_benefits::benefit, diesel::dsl::count_star()))
        .into_boxed();
    if let Some(within) = scope_exists("child_benefits.id_number", &files.scope) {
        q = q.filter(within);
    }
    if !files.unserved.is_empty() {
        q = q.filter(diesel::dsl::not(
            children::hukou_region
                .eq_any(files.unserved.clone())
                .and(children::residence_region.eq_any(files.unserved.clone())),
        ));
    }
    Ok(q.load(conn)?)
}

/// In one pass: files whose visit is due before `today` (overdue), before `soon`, and files
/// neither visited nor confirmed since `stale_before` (the six-month rule).
pub fn due_and_stale(
    conn: &mut DbConn,
    files: &Files,
    today: NaiveDate,
    soon: NaiveDate,
    stale_before: NaiveDate,
) -> Result<(i64, i64, i64), StorageError> {
    // The dates are typed values printed as ISO dates: nothing else reaches the SQL text.
    let count_when = |condition: String| {
        diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
            "COALESCE(SUM(CASE WHEN {condition} THEN 1 ELSE 0 END), 0)"
        ))
    };
    let day = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
    let row: (i64, i64, i64) = counted!(
        children::table.select((
            count_when(format!("visit_due_on < '{}'", day(today))),
            count_when(format!("visit_due_on < '{}'", day(soon))),
            count_when(format!(
                "(refreshed_on IS NULL OR refreshed_on < '{}')",
                day(stale_before)
            )),
        )),
        files
    )
    .first(conn)?;
    Ok(row)
}

/// `(state, benefit, requester, decider, cases)`.
pub type CaseCount = (String, String, String, String, i64);

/// Cases per `(state, benefit, requester, decider)`.
pub fn cases_by_state(conn: &mut DbConn, scope: &Scope) -> Result<Vec<CaseCount>, StorageError> {
    let mut q = cases::table
        .group_by((
            cases::state,
            cases::benefit,
            cases::requester,
            cases::decider,
        ))
        .select((
            cases::state,
            cases::benefit,
            cases::requester,
            cases::decider,
            diesel::dsl::count_star(),
        ))
        .into_boxed();
    if let Some(within) = scope_exists("cases.child_id", scope) {
        q = q.filter(within);
    }
    Ok(q.load(conn)?)
}

/// Decided cases (approved or denied): `(submitted_at, decided_at, due_on)`, the decision being
/// the case's last change.
pub fn decided_cases(
    conn: &mut DbConn,
    scope: &Scope,
) -> Result<Vec<(NaiveDateTime, NaiveDateTime, NaiveDate)>, StorageError> {
    let mut q = cases::table
        .filter(cases::state.eq_any(["approved", "denied"]))
        .select((cases::submitted_at, cases::updated_at, cases::due_on))
        .into_boxed();
    if let Some(within) = scope_exists("cases.child_id", scope) {
        q = q.filter(within);
    }
    Ok(q.load(conn)?)
}

/// Open cases past their due day.
pub fn open_cases_overdue(
    conn: &mut DbConn,
    today: NaiveDate,
    scope: &Scope,
) -> Result<i64, StorageError> {
    let mut q = cases::table
        .filter(cases::state.ne_all(["approved", "denied", "withdrawn"]))
        .filter(cases::due_on.lt(today))
        .into_boxed();
    if let Some(within) = scope_exists("cases.child_id", scope) {
        q = q.filter(within);
    }
    Ok(q.count().get_result(conn)?)
}

/// Visits per day from `since` (the caller sums months; a day is portable SQL, a month is not).
pub fn visits_per_day(
    conn: &mut DbConn,
    since: NaiveDate,
    scope: &Scope,
) -> Result<Vec<(NaiveDate, i64)>, StorageError> {
    let mut q = visits::table
        .filter(visits::visited_on.ge(since))
        .group_by(visits::visited_on)
        .select((visits::visited_on, diesel::dsl::count_star()))
        .into_boxed();
    if let Some(within) = scope_exists("visits.child_id", scope) {
        q = q.filter(within);
    }
    Ok(q.load(conn)?)
}
