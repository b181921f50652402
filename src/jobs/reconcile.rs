//! Scheduled reconciliation: runs a peer's reconciliation at every firing of its cron
//! expression (`[[reconcile.schedule]]`, in China Standard Time) until shutdown. A run still
//! going when the next is due makes that one skip (the lock refuses it).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::audit::Actor;
use crate::config::CronSchedule;
use crate::domain::NodeId;
use crate::reconcile::{ReconcileError, Reconciler, RunOptions, StartedBy};

/// Runs `peer`'s reconciliation at every firing of `schedule` until `shutdown` turns true.
pub async fn run(
    reconciler: Reconciler,
    peer: NodeId,
    schedule: CronSchedule,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let Some(next) = schedule.next_after(Utc::now()) else {
            return;
        };
        // A firing already past (negative, not representable) is waited for not at all.
        let wait = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tracing::debug!(peer = %peer, at = %next, "next scheduled reconciliation");
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let opts = RunOptions {
            dry_run: false,
            started_by: StartedBy::Schedule,
            actor: Actor::job(&format!("reconcile:{peer}")),
        };
        let run = reconciler.run(peer.as_str(), opts, Arc::new(|_| {}));
        tokio::select! {
            r = run => match r {
                Ok(_) => {}
                Err(e @ ReconcileError::AlreadyRunning { .. }) => {
                    tracing::info!(peer = %peer, reason = %e, "scheduled reconciliation skipped");
                }
                Err(e) => tracing::warn!(peer = %peer, error = %e, "scheduled reconciliation failed"),
            },
            // Dropping the run stops it; its lock is released, and the next run completes it.
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}
