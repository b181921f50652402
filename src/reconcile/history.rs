//! The record of past and current runs, read the same way for the admin API, the pages and the
//! CLI: the list, newest first, and one run with its parsed report. A stored report that does
//! not parse is an error ([`crate::storage::StorageError::Corrupt`]), never a missing report.

use super::ReconcileError;
use crate::storage::reconcile as repo;
use crate::storage::DbConn;

pub use crate::storage::reconcile::Run;

/// Runs, newest first, optionally only those with `peer`, keyset-paged before the run id
/// `before`.
pub fn list(
    conn: &mut DbConn,
    peer: Option<&str>,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<Run>, ReconcileError> {
    Ok(repo::list_runs(conn, peer, before, limit)?)
}

/// One run, if `id` names one.
pub fn find(conn: &mut DbConn, id: &str) -> Result<Option<Run>, ReconcileError> {
    Ok(repo::get_run(conn, id)?)
}

/// One run; [`ReconcileError::NoSuchRun`] if `id` names none.
pub fn get(conn: &mut DbConn, id: &str) -> Result<Run, ReconcileError> {
    find(conn, id)?.ok_or_else(|| ReconcileError::NoSuchRun(id.to_owned()))
}
