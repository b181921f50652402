//! The decider's evidence fetch loop: wakes when a received case names files
//! (`LocalNode::evidence_wanted`) and every `[evidence] retry_secs`, and fetches from the
//! requesters the files never tried or last tried longer ago than that
//! (`eligibility::evidence::Fetcher::fetch_due`).

use std::time::Duration;

use crate::eligibility::evidence::Fetcher;
use crate::sync::LocalNode;

pub async fn run(
    fetcher: Fetcher,
    node: std::sync::Arc<LocalNode>,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut wanted = node.evidence_wanted.subscribe();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            r = wanted.changed() => if r.is_err() { return },
            _ = shutdown.wait_for(|s| *s) => return,
        }
        match fetcher.fetch_due().await {
            Ok(s) if s.fetched + s.failed + s.mismatched > 0 => tracing::info!(
                fetched = s.fetched,
                failed = s.failed,
                mismatched = s.mismatched,
                "evidence files fetched from requesting bureaus"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "the evidence fetch round failed"),
        }
    }
}
