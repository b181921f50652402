//! The report of a run. The plain data lives in `domain::reconcile_report` (storage keeps it with
//! the run); this module names it where reconciliation's users expect it.

pub use crate::domain::reconcile_report::{Report, RunStatus, StaleSummary};
