//! The decider's evidence fetch loop: wakes when a received case names files
//! (`LocalNode::evidence_wanted`) and every `[evidence] retry_secs`, and fetches from the
//! requesters the files never tried or last tried longer ago than that
//! (`eligibility::evidence::Fetcher::fetch_due`); and, at start and once a day, the expiry of
//! the files uploaded here that no case names (`eligibility::evidence::expire_unnamed`).

use std::time::Duration;

use crate::audit::Actor;
use crate::eligibility::evidence::Fetcher;
use crate::storage::Store;
use crate::sync::LocalNode;

/// Between expiry runs.
pub const EXPIRE_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

/// Deletes the files uploaded here longer than `unnamed` ago that no case names, at start and
/// every `every`.
pub async fn expire(
    store: Store,
    node: std::sync::Arc<LocalNode>,
    unnamed: chrono::Duration,
    every: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    super::every(every, shutdown, || async {
        let n = node.clone();
        let r = store
            .run(move |c| {
                crate::eligibility::evidence::expire_unnamed(
                    c,
                    &n,
                    unnamed,
                    &Actor::job("evidence_expiry"),
                    chrono::Utc::now(),
                )
            })
            .await;
        match r {
            Ok(0) => {}
            Ok(files) => tracing::info!(files, "evidence files no case named were deleted"),
            Err(e) => tracing::warn!(error = %e, "the evidence expiry run failed"),
        }
    })
    .await;
}

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
