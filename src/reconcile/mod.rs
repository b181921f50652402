//! Reconciliation (DESIGN §7): Merkle anti-entropy between two nodes, the repairs it drives, its
//! reports, and the six-month staleness check (the scheduled runs are a job: `jobs::reconcile`).
//!
//! Push can lose work (a restored backup, a bug, an operator's mistake); a run proves that this
//! node and a peer hold the same versions of every document both are party to, and repairs what
//! differs through the normal push path (same verification, same signed receipts).
//!
//! - [`tree`] — pure: buckets, leaves, the 16-ary tree over 65,536 bucket accumulators.
//! - [`summary`] — the per-peer summary, caught up incrementally from the documents whose heads
//!   changed (`storage::records` marks them), and the tree built from it.
//! - [`serve`] — the responder's side of the protocol, for the peer listener's routes.
//! - [`run`] — the asker's side: compare roots, descend into differing nodes, exchange head and
//!   version sets of differing documents, repair both ways, write and audit the report. At most
//!   one run per peer at a time, across processes (a lease in the database).
//! - [`report`] — the report of a run, as JSON and for people.
//! - [`history`] — the stored runs and their reports, for the API, the pages and the CLI.
//! - [`stale`] — children whose file was neither updated nor visited within the policy window.
//!
//! Bytes on the wire: equal nodes exchange only the roots; otherwise the descent costs about
//! `differences × depth × 16` hashes, and only documents in differing buckets are listed.

pub mod history;
pub mod report;
pub mod run;
pub mod serve;
pub mod stale;
pub mod summary;
pub mod tree;

#[cfg(test)]
mod fuzz;

pub use report::{Report, RunStatus};
pub use run::{Reconciler, RunHandle, RunOptions, StartedBy};

use crate::audit::AuditError;
use crate::storage::StorageError;
use crate::sync::ledger::LedgerError;

/// Errors of reconciliation. Bad input from a peer is [`ReconcileError::Invalid`]; the HTTP
/// mapping lives in `api::error`.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("this node has no directory and exchanges with nobody")]
    NoDirectory,
    #[error("{0} is not a peer in the directory")]
    UnknownPeer(String),
    #[error("{0} is this node itself")]
    SelfPeer(String),
    #[error("a reconciliation with {peer} is already running (run {run_id}, since {since} UTC)")]
    AlreadyRunning {
        peer: String,
        run_id: String,
        since: chrono::NaiveDateTime,
    },
    #[error("no reconciliation run {0}")]
    NoSuchRun(String),
    #[error("{field}: {reason}")]
    Invalid {
        code: &'static str,
        field: String,
        reason: String,
    },
    #[error("cannot build the TLS client: {0}")]
    Client(String),
    #[error("the peer could not be reached: {0}")]
    Transport(String),
    #[error("the peer answered {status}: {body}")]
    Peer { status: u16, body: String },
    #[error("the peer's answer is not understood: {0}")]
    BadResponse(String),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl ReconcileError {
    pub(crate) fn invalid(code: &'static str, field: &str, reason: impl Into<String>) -> Self {
        ReconcileError::Invalid {
            code,
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

/// What `/metrics` shows of reconciliation: per peer, the last finished run; and the stale
/// files of this node (counts only). The exposition itself is `api::metrics`'.
pub struct Figures {
    pub runs: Vec<crate::storage::reconcile::Run>,
    pub stale: stale::StaleList,
}

/// Reads the [`Figures`] at `now`.
pub fn figures(
    conn: &mut crate::storage::DbConn,
    node: &crate::sync::LocalNode,
    stale_after_days: u32,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Figures, ReconcileError> {
    let runs = crate::storage::reconcile::last_finished_runs(conn)?;
    let stale = stale::list(
        conn,
        node,
        stale_after_days,
        None,
        None,
        now,
        false,
        &crate::domain::Scope::whole_node(),
    )?;
    Ok(Figures { runs, stale })
}
