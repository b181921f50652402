//! Repository of the cases view: one row per case, rebuilt from its versions by `eligibility`.
//! Rows go in as [`CaseRow`]; they come out typed ([`Case`]), and a stored value that does not
//! parse is [`StorageError::Corrupt`].

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::schema::cases;
use super::{DbConn, StorageError};
use crate::domain::case::state::CaseState;
use crate::domain::child::Benefit;
use crate::domain::{IdNumber, NodeId};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = cases)]
pub struct CaseRow {
    pub case_id: String,
    pub child_id: String,
    pub benefit: String,
    pub requester: String,
    pub decider: String,
    pub state: String,
    pub submitted_at: NaiveDateTime,
    pub due_on: NaiveDate,
    pub head_count: i64,
    pub body: String,
    pub updated_at: NaiveDateTime,
}

/// A case's view row as read back (the stored body stays in the database: readers of one case
/// merge its versions).
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub case_id: Uuid,
    pub child_id: IdNumber,
    pub benefit: Benefit,
    pub requester: NodeId,
    pub decider: NodeId,
    pub state: CaseState,
    pub submitted_at: DateTime<Utc>,
    pub due_on: NaiveDate,
    /// Heads of the case's version graph (more than one: concurrent transitions).
    pub head_count: i64,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<CaseRow> for Case {
    type Error = StorageError;

    fn try_from(r: CaseRow) -> Result<Self, StorageError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            StorageError::corrupt("cases", format!("case {}: {what}: {e}", r.case_id))
        };
        Ok(Case {
            case_id: Uuid::parse_str(&r.case_id).map_err(|e| bad("id", &e))?,
            child_id: IdNumber::parse(&r.child_id).map_err(|e| bad("child", &e))?,
            benefit: Benefit::ALL
                .iter()
                .copied()
                .find(|b| b.code() == r.benefit)
                .ok_or_else(|| bad("benefit", &format_args!("{:?}", r.benefit)))?,
            requester: NodeId::parse(&r.requester).map_err(|e| bad("requester", &e))?,
            decider: NodeId::parse(&r.decider).map_err(|e| bad("decider", &e))?,
            state: CaseState::ALL
                .into_iter()
                .find(|s| s.as_str() == r.state)
                .ok_or_else(|| bad("state", &format_args!("{:?}", r.state)))?,
            submitted_at: r.submitted_at.and_utc(),
            due_on: r.due_on,
            head_count: r.head_count,
            updated_at: r.updated_at.and_utc(),
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    pub requester: Option<NodeId>,
    pub decider: Option<NodeId>,
    pub state: Option<CaseState>,
    pub benefit: Option<Benefit>,
    /// Only open cases due before this date.
    pub due_before: Option<NaiveDate>,
    /// Only cases this node asked or decides (either side), when set.
    pub party: Option<NodeId>,
    /// Keyset paging: cases whose id sorts after this one (ids are UUIDv7: creation order).
    pub after: Option<String>,
    pub limit: i64,
    /// Only cases of children within this account scope (whose file this node holds).
    pub scope: crate::domain::Scope,
}

pub fn upsert(conn: &mut DbConn, row: &CaseRow) -> Result<(), StorageError> {
    per_backend!(conn, |c| diesel::insert_into(cases::table)
        .values(row)
        .on_conflict(cases::case_id)
        .do_update()
        .set(row)
        .execute(c))?;
    Ok(())
}

/// Writes many cases' view rows (inserted or replaced), each case once: on PostgreSQL one
/// statement per [`super::LIST_CHUNK`] rows (the columns bound as arrays, the rows in case order
/// so concurrent writers lock them in one order); on SQLite one in-process upsert per row. A case
/// named twice is written one row at a time, the last row winning.
pub fn upsert_many(conn: &mut DbConn, rows: &[CaseRow]) -> Result<(), StorageError> {
    let mut ids = std::collections::HashSet::with_capacity(rows.len());
    let distinct = rows.iter().all(|r| ids.insert(r.case_id.as_str()));
    match conn {
        DbConn::Postgres(pg) if distinct && rows.len() > 1 => {
            let mut sorted: Vec<&CaseRow> = rows.iter().collect();
            sorted.sort_unstable_by(|a, b| a.case_id.cmp(&b.case_id));
            for chunk in sorted.chunks(super::LIST_CHUNK) {
                UpsertCases::of(chunk).execute(pg)?;
            }
        }
        _ => {
            for row in rows {
                upsert(conn, row)?;
            }
        }
    }
    Ok(())
}

/// [`upsert_many`] on PostgreSQL: the rows' columns as arrays, in case order.
struct UpsertCases<'a> {
    case_id: Vec<&'a str>,
    child_id: Vec<&'a str>,
    benefit: Vec<&'a str>,
    requester: Vec<&'a str>,
    decider: Vec<&'a str>,
    state: Vec<&'a str>,
    submitted_at: Vec<NaiveDateTime>,
    due_on: Vec<NaiveDate>,
    head_count: Vec<i64>,
    body: Vec<&'a str>,
    updated_at: Vec<NaiveDateTime>,
}

impl<'a> UpsertCases<'a> {
    /// The columns of `sorted` (in case order).
    fn of(sorted: &[&'a CaseRow]) -> Self {
        let text = |f: fn(&'a CaseRow) -> &'a str| sorted.iter().map(|r| f(r)).collect();
        UpsertCases {
            case_id: text(|r| &r.case_id),
            child_id: text(|r| &r.child_id),
            benefit: text(|r| &r.benefit),
            requester: text(|r| &r.requester),
            decider: text(|r| &r.decider),
            state: text(|r| &r.state),
            submitted_at: sorted.iter().map(|r| r.submitted_at).collect(),
            due_on: sorted.iter().map(|r| r.due_on).collect(),
            head_count: sorted.iter().map(|r| r.head_count).collect(),
            body: text(|r| &r.body),
            updated_at: sorted.iter().map(|r| r.updated_at).collect(),
        }
    }
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for UpsertCases<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        use diesel::sql_types::{Array, BigInt, Date, Text, Timestamp};
        out.push_sql(
            "INSERT INTO cases (case_id, child_id, benefit, requester, decider, state, \
                                submitted_at, due_on, head_count, body, updated_at) \
             SELECT * FROM unnest(",
        );
        push_binds!(out;
            Array<Text> => &self.case_id,
            Array<Text> => &self.child_id,
            Array<Text> => &self.benefit,
            Array<Text> => &self.requester,
            Array<Text> => &self.decider,
            Array<Text> => &self.state,
            Array<Timestamp> => &self.submitted_at,
            Array<Date> => &self.due_on,
            Array<BigInt> => &self.head_count,
            Array<Text> => &self.body,
            Array<Timestamp> => &self.updated_at,
        );
        out.push_sql(
            ") ON CONFLICT (case_id) DO UPDATE SET child_id = excluded.child_id, \
               benefit = excluded.benefit, requester = excluded.requester, \
               decider = excluded.decider, state = excluded.state, \
               submitted_at = excluded.submitted_at, due_on = excluded.due_on, \
               head_count = excluded.head_count, body = excluded.body, \
               updated_at = excluded.updated_at",
        );
        Ok(())
    }
}
pg_cached_statement!(UpsertCases);

pub fn get(conn: &mut DbConn, case_id: &str) -> Result<Option<Case>, StorageError> {
    cases::table
        .find(case_id)
        .select(CaseRow::as_select())
        .first(conn)
        .optional()?
        .map(Case::try_from)
        .transpose()
}

pub fn list(conn: &mut DbConn, f: &CaseFilter) -> Result<Vec<Case>, StorageError> {
    let mut q = cases::table.select(CaseRow::as_select()).into_boxed();
    if let Some(v) = &f.requester {
        q = q.filter(cases::requester.eq(v.to_string()));
    }
    if let Some(v) = &f.decider {
        q = q.filter(cases::decider.eq(v.to_string()));
    }
    if let Some(v) = f.state {
        q = q.filter(cases::state.eq(v.as_str()));
    }
    if let Some(v) = f.benefit {
        q = q.filter(cases::benefit.eq(v.code()));
    }
    if let Some(d) = f.due_before {
        let terminal = CaseState::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .map(CaseState::as_str);
        q = q
            .filter(cases::due_on.lt(d))
            .filter(cases::state.ne_all(terminal.collect::<Vec<_>>()));
    }
    if let Some(me) = &f.party {
        q = q.filter(
            cases::requester
                .eq(me.to_string())
                .or(cases::decider.eq(me.to_string())),
        );
    }
    if let Some(within) = super::records::scope_exists("cases.child_id", &f.scope) {
        q = q.filter(within);
    }
    if let Some(after) = &f.after {
        q = q.filter(cases::case_id.gt(after.clone()));
    }
    let rows: Vec<CaseRow> = q.order(cases::case_id.asc()).limit(f.limit).load(conn)?;
    rows.into_iter().map(Case::try_from).collect()
}

/// The stored states of the cases among `case_ids` this node holds: `(case_id, state)`. On
/// PostgreSQL the statement is planned with its keys on every call (an index lookup): prepared
/// once, its generic plan was made while the table was nearly empty and scanned every row
/// (0.4 ms a call at 2,000 cases; `bench cases` asks this many times a second).
pub fn states_of(
    conn: &mut DbConn,
    case_ids: &[String],
) -> Result<Vec<(String, String)>, StorageError> {
    let DbConn::Postgres(pg) = conn else {
        return Ok(cases::table
            .filter(cases::case_id.eq_any(case_ids))
            .select((cases::case_id, cases::state))
            .load(conn)?);
    };
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        case_id: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        state: String,
    }
    let rows: Vec<Row> =
        diesel::sql_query("SELECT case_id, state FROM cases WHERE case_id = ANY($1)")
            .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(case_ids)
            .load(pg)?;
    Ok(rows.into_iter().map(|r| (r.case_id, r.state)).collect())
}

/// `(case_id, stored body)` of every case not yet decided or withdrawn.
pub fn open_bodies(conn: &mut DbConn) -> Result<Vec<(String, String)>, StorageError> {
    let terminal: Vec<&str> = CaseState::ALL
        .into_iter()
        .filter(|s| s.is_terminal())
        .map(CaseState::as_str)
        .collect();
    Ok(cases::table
        .filter(cases::state.ne_all(terminal))
        .select((cases::case_id, cases::body))
        .order(cases::case_id.asc())
        .load(conn)?)
}

/// Sets a case's due date; true when it changed.
pub fn set_due(conn: &mut DbConn, case_id: &str, due: NaiveDate) -> Result<bool, StorageError> {
    let n = diesel::update(cases::table.find(case_id).filter(cases::due_on.ne(due)))
        .set(cases::due_on.eq(due))
        .execute(conn)?;
    Ok(n > 0)
}
