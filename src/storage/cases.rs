//! Repository of the cases view.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use super::schema::cases;
use super::{DbConn, StorageError};

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

#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    pub requester: Option<String>,
    pub decider: Option<String>,
    pub state: Option<String>,
    pub benefit: Option<String>,
    /// Only open cases due before this date.
    pub due_before: Option<NaiveDate>,
    pub limit: i64,
}

pub fn upsert(conn: &mut DbConn, row: &CaseRow) -> Result<(), StorageError> {
    let exists: i64 = cases::table.find(&row.case_id).count().get_result(conn)?;
    if exists == 0 {
        diesel::insert_into(cases::table)
            .values(row)
            .execute(conn)?;
    } else {
        diesel::update(cases::table.find(&row.case_id))
            .set(row)
            .execute(conn)?;
    }
    Ok(())
}

pub fn get(conn: &mut DbConn, case_id: &str) -> Result<Option<CaseRow>, StorageError> {
    cases::table
        .find(case_id)
        .select(CaseRow::as_select())
        .first(conn)
        .optional()
        .map_err(StorageError::from)
}

pub fn list(conn: &mut DbConn, f: &CaseFilter) -> Result<Vec<CaseRow>, StorageError> {
    let mut q = cases::table.select(CaseRow::as_select()).into_boxed();
    if let Some(v) = &f.requester {
        q = q.filter(cases::requester.eq(v.clone()));
    }
    if let Some(v) = &f.decider {
        q = q.filter(cases::decider.eq(v.clone()));
    }
    if let Some(v) = &f.state {
        q = q.filter(cases::state.eq(v.clone()));
    }
    if let Some(v) = &f.benefit {
        q = q.filter(cases::benefit.eq(v.clone()));
    }
    if let Some(d) = f.due_before {
        q = q.filter(cases::due_on.lt(d)).filter(cases::state.ne_all([
            "approved",
            "denied",
            "withdrawn",
        ]));
    }
    q.order(cases::submitted_at.asc())
        .limit(f.limit)
        .load(conn)
        .map_err(StorageError::from)
}
