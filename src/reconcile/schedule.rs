//! Scheduled runs: cron expressions from the configuration (`[[reconcile.schedule]]`), read in
//! China Standard Time (UTC+8, the bureaus' wall clock), and the job that runs each one until
//! shutdown. A run still going when the next is due makes that one skip (the lock refuses it).

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Offset as _, Utc};

use super::run::{Reconciler, RunOptions, StartedBy};
use super::ReconcileError;
use crate::audit::Actor;
use crate::domain::NodeId;

/// A parsed cron expression.
#[derive(Debug, Clone)]
pub struct CronSchedule(cron::Schedule);

/// Why a cron expression was refused.
#[derive(Debug, thiserror::Error)]
#[error("{expr:?} is not a cron expression ({reason}); use 5 fields (min hour day month weekday) or 6-7 with seconds (and year), e.g. \"0 30 2 * * *\"")]
pub struct CronError {
    expr: String,
    reason: String,
}

/// China Standard Time: schedules are in the bureaus' wall time.
fn cst() -> FixedOffset {
    // +8 h is within the ±24 h an offset may have, so the fallback is never taken.
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix())
}

/// Parses a cron expression: 5 fields (standard, minute first) or 6–7 (seconds first, optional
/// year).
pub fn parse(expr: &str) -> Result<CronSchedule, CronError> {
    let fields = expr.split_whitespace().count();
    let full = match fields {
        5 => format!("0 {}", expr.trim()),
        6 | 7 => expr.trim().to_owned(),
        n => {
            return Err(CronError {
                expr: expr.to_owned(),
                reason: format!("{n} fields"),
            })
        }
    };
    let s = cron::Schedule::from_str(&full).map_err(|e| CronError {
        expr: expr.to_owned(),
        reason: e.to_string(),
    })?;
    if s.after(&Utc::now().with_timezone(&cst())).next().is_none() {
        return Err(CronError {
            expr: expr.to_owned(),
            reason: "it never fires again".into(),
        });
    }
    Ok(CronSchedule(s))
}

impl CronSchedule {
    /// The next firing strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0
            .after(&t.with_timezone(&cst()))
            .next()
            .map(|n| n.with_timezone(&Utc))
    }
}

/// Runs `peer`'s reconciliation at every firing of `schedule` until `shutdown` turns true.
pub async fn scheduled_runs(
    reconciler: Reconciler,
    peer: NodeId,
    schedule: CronSchedule,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let Some(next) = schedule.next_after(Utc::now()) else {
            return;
        };
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn five_and_six_field_expressions_parse() {
        let s = parse("30 2 * * *").unwrap();
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap();
        // 02:30 CST is 18:30 UTC the day before; next after 00:00 UTC is 18:30 UTC.
        assert_eq!(
            s.next_after(t).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 23, 18, 30, 0).unwrap()
        );
        assert!(parse("0 30 2 * * *").is_ok());
        assert!(parse("0 0 3 * * Sun 2099").is_ok());
    }

    #[test]
    fn bad_expressions_are_refused_with_the_reason() {
        for bad in ["", "every night", "61 * * * *", "* * *", "0 0 0 1 1 * 2020"] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("not a cron expression"), "{bad}: {e}");
        }
    }
}
