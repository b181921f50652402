//! Counts behind the statistics (`stats`): every count of children's files is grouped in the
//! database by the file's pair of regions and one more column, so the caller keeps the files its
//! node serves (a file kept read-only after a move is not counted) without reading a row per
//! file. Cases and visits are counted by their own columns. Every count takes the caller's
//! account scope: only children within it (cases and visits: of children within it) count.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use super::records::{scope_condition, scope_exists};
use super::schema::{cases, child_benefits, children, visits};
use super::{DbConn, StorageError};
use crate::domain::Scope;

/// `(hukou_region, residence_region, value, files)`.
pub type PairCount<V> = (String, String, V, i64);

macro_rules! by_pair {
    ($conn:expr, $scope:expr, $column:expr, $ty:ty) => {{
        let mut q = children::table
            .group_by((children::hukou_region, children::residence_region, $column))
            .select((
                children::hukou_region,
                children::residence_region,
                $column,
                diesel::dsl::count_star(),
            ))
            .into_boxed();
        if let Some(c) = scope_condition($scope) {
            q = q.filter(c);
        }
        let rows: Vec<PairCount<$ty>> = q.load($conn)?;
        Ok(rows)
    }};
}

/// Files per residence township (none: the file names no township).
pub fn by_township(
    conn: &mut DbConn,
    scope: &Scope,
) -> Result<Vec<PairCount<Option<String>>>, StorageError> {
    by_pair!(conn, scope, children::residence_township, Option<String>)
}

/// Files per set of categories (`|flowing|left_behind|`).
pub fn by_categories(
    conn: &mut DbConn,
    scope: &Scope,
) -> Result<Vec<PairCount<String>>, StorageError> {
    by_pair!(conn, scope, children::categories, String)
}

/// Files per risk level ("1".."4", none: not graded).
pub fn by_risk(
    conn: &mut DbConn,
    scope: &Scope,
) -> Result<Vec<PairCount<Option<String>>>, StorageError> {
    by_pair!(conn, scope, children::risk_level, Option<String>)
}

/// Files per responsible worker (the view column's text; none: nobody named).
pub fn by_worker(
    conn: &mut DbConn,
    scope: &Scope,
) -> Result<Vec<PairCount<Option<String>>>, StorageError> {
    by_pair!(conn, scope, children::responsible_worker, Option<String>)
}

/// Files per benefit held now (a file counts once for each benefit it holds).
pub fn by_benefit(
    conn: &mut DbConn,
    scope: &Scope,
) -> Result<Vec<PairCount<String>>, StorageError> {
    let mut q = child_benefits::table
        .inner_join(children::table)
        .group_by((
            children::hukou_region,
            children::residence_region,
            child_benefits::benefit,
        ))
        .select((
            children::hukou_region,
            children::residence_region,
            child_benefits::benefit,
            diesel::dsl::count_star(),
        ))
        .into_boxed();
    if let Some(within) = scope_exists("child_benefits.id_number", scope) {
        q = q.filter(within);
    }
    Ok(q.load(conn)?)
}

/// Files whose visit is due before `before` (overdue: `before` = today), per pair of regions.
pub fn due_before(
    conn: &mut DbConn,
    before: NaiveDate,
    scope: &Scope,
) -> Result<Vec<PairCount<()>>, StorageError> {
    let mut q = children::table
        .filter(children::visit_due_on.lt(before))
        .group_by((children::hukou_region, children::residence_region))
        .select((
            children::hukou_region,
            children::residence_region,
            diesel::dsl::count_star(),
        ))
        .into_boxed();
    if let Some(c) = scope_condition(scope) {
        q = q.filter(c);
    }
    let rows: Vec<(String, String, i64)> = q.load(conn)?;
    Ok(rows.into_iter().map(|(h, r, n)| (h, r, (), n)).collect())
}

/// Files neither visited nor confirmed since `before` (the six-month rule), per pair of regions.
pub fn stale(
    conn: &mut DbConn,
    before: NaiveDate,
    scope: &Scope,
) -> Result<Vec<PairCount<()>>, StorageError> {
    let mut q = children::table
        .filter(
            children::refreshed_on
                .is_null()
                .or(children::refreshed_on.lt(before)),
        )
        .group_by((children::hukou_region, children::residence_region))
        .select((
            children::hukou_region,
            children::residence_region,
            diesel::dsl::count_star(),
        ))
        .into_boxed();
    if let Some(c) = scope_condition(scope) {
        q = q.filter(c);
    }
    let rows: Vec<(String, String, i64)> = q.load(conn)?;
    Ok(rows.into_iter().map(|(h, r, n)| (h, r, (), n)).collect())
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
