//! The report of a reconciliation run: what was compared, what differed, what was repaired each
//! way, conflicts, bytes on the wire, duration, errors and the stale files among the shared
//! documents. Plain data: `reconcile` fills it in, `storage` keeps it (as JSON) with the run, the
//! admin API serves it and the CLI and the pages render it for people.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    /// Completed; every difference found was repaired (or, in a dry run, reported).
    Ok,
    /// Stopped by an error (see `errors`); what was done stays done.
    Failed,
    /// The process stopped mid-run; the next run completes the work.
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Ok => "ok",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// The status named by [`RunStatus::as_str`]; `None` for any other text.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "running" => Some(RunStatus::Running),
            "ok" => Some(RunStatus::Ok),
            "failed" => Some(RunStatus::Failed),
            "interrupted" => Some(RunStatus::Interrupted),
            _ => None,
        }
    }
}

/// Children's files not refreshed within the window, per region this node serves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StaleSummary {
    pub after_days: u32,
    pub total: u64,
    /// Region code → stale files there.
    pub per_region: BTreeMap<String, u64>,
}

/// One run's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Report {
    pub run_id: String,
    pub peer: String,
    /// cli | api | schedule.
    pub started_by: String,
    pub dry_run: bool,
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: u64,
    /// Hex roots of the two summaries when compared.
    pub local_root: Option<String>,
    pub peer_root: Option<String>,
    /// Documents in this node's and in the peer's summary for each other.
    pub local_documents: u64,
    pub peer_documents: u64,
    /// Distinct documents in either summary.
    pub documents_compared: u64,
    pub documents_equal: u64,
    pub documents_differing: u64,
    /// Buckets whose contents were listed.
    pub buckets_differing: u64,
    /// Versions the peer lacked, sent by push (in a dry run: that would be sent).
    pub versions_to_peer: u64,
    pub documents_repaired_to_peer: u64,
    /// Versions this node lacked, asked of the peer (in a dry run: that would be asked).
    pub versions_from_peer: u64,
    /// Of those, arrived during the run.
    pub versions_received_from_peer: u64,
    /// Asked but not arrived within the wait (e.g. this node's peer listener is not running):
    /// the peer keeps them queued and delivers them when it can.
    pub versions_pending_from_peer: u64,
    pub documents_repaired_from_peer: u64,
    /// Differing documents that, after repair, have concurrent heads (merged on read).
    pub conflicts_found: u64,
    /// Of those, files with an open field conflict waiting in the review queue.
    pub open_conflicts_found: u64,
    /// Request and response bodies of the protocol and of the repair pushes.
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Requests made to the peer.
    pub round_trips: u64,
    pub stale: StaleSummary,
    /// Evidence files cases with the peer name that this node (their decider) fetched from it
    /// during the run, and those still not here after it.
    #[serde(default)]
    pub evidence_fetched: u64,
    #[serde(default)]
    pub evidence_missing: u64,
    pub errors: Vec<String>,
}

impl Report {
    pub fn new(
        run_id: &str,
        peer: &str,
        started_by: &str,
        dry_run: bool,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            run_id: run_id.to_owned(),
            peer: peer.to_owned(),
            started_by: started_by.to_owned(),
            dry_run,
            status: RunStatus::Running,
            started_at: at,
            finished_at: None,
            duration_ms: 0,
            local_root: None,
            peer_root: None,
            local_documents: 0,
            peer_documents: 0,
            documents_compared: 0,
            documents_equal: 0,
            documents_differing: 0,
            buckets_differing: 0,
            versions_to_peer: 0,
            documents_repaired_to_peer: 0,
            versions_from_peer: 0,
            versions_received_from_peer: 0,
            versions_pending_from_peer: 0,
            documents_repaired_from_peer: 0,
            conflicts_found: 0,
            open_conflicts_found: 0,
            bytes_sent: 0,
            bytes_received: 0,
            round_trips: 0,
            stale: StaleSummary::default(),
            evidence_fetched: 0,
            evidence_missing: 0,
            errors: Vec::new(),
        }
    }

    /// Differences found: the headline number of a run.
    pub fn differences(&self) -> u64 {
        self.documents_differing
    }

    /// A few lines for people.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let dry = if self.dry_run { " (dry run)" } else { "" };
        let _ = writeln!(
            s,
            "reconciliation with {} — {}{dry}, run {}",
            self.peer,
            self.status.as_str(),
            self.run_id
        );
        let _ = writeln!(
            s,
            "  compared   {:>9} documents ({} here, {} at the peer): {} equal, {} differing",
            self.documents_compared,
            self.local_documents,
            self.peer_documents,
            self.documents_equal,
            self.documents_differing
        );
        let verb = if self.dry_run { "would send" } else { "sent" };
        let _ = writeln!(
            s,
            "  to peer    {verb} {} versions of {} documents",
            self.versions_to_peer, self.documents_repaired_to_peer
        );
        let verb = if self.dry_run { "would ask" } else { "asked" };
        let _ = writeln!(
            s,
            "  from peer  {verb} {} versions of {} documents; {} arrived, {} pending",
            self.versions_from_peer,
            self.documents_repaired_from_peer,
            self.versions_received_from_peer,
            self.versions_pending_from_peer
        );
        let _ = writeln!(
            s,
            "  conflicts  {} documents with concurrent heads, {} with fields awaiting review",
            self.conflicts_found, self.open_conflicts_found
        );
        if self.evidence_fetched > 0 || self.evidence_missing > 0 {
            let _ = writeln!(
                s,
                "  evidence   {} files fetched from the peer, {} still missing",
                self.evidence_fetched, self.evidence_missing
            );
        }
        let _ = writeln!(
            s,
            "  wire       {} bytes sent, {} received, {} requests, {} differing buckets; {} ms",
            self.bytes_sent,
            self.bytes_received,
            self.round_trips,
            self.buckets_differing,
            self.duration_ms
        );
        let _ = writeln!(
            s,
            "  stale      {} shared files not updated or visited in {} days",
            self.stale.total, self.stale.after_days
        );
        for (region, n) in &self.stale.per_region {
            let _ = writeln!(s, "             {region}: {n}");
        }
        for e in &self.errors {
            let _ = writeln!(s, "  error      {e}");
        }
        s
    }
}
