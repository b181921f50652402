//! Once a day (and once at start), ends the age-limited benefits of the young people who turned
//! 18 in files this node keeps as the hukou bureau (`eligibility::benefits::age_out`), and takes
//! every file of a child who turned 18 off the visit due list (`visits::clear_adults_due`).

use std::sync::Arc;
use std::time::Duration;

use crate::storage::Store;
use crate::sync::LocalNode;

/// Between runs.
pub const EVERY: Duration = Duration::from_secs(24 * 60 * 60);

pub async fn run(
    store: Store,
    node: Arc<LocalNode>,
    every: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    super::every(every, shutdown, || async {
        let n = node.clone();
        let r = store
            .run(move |c| crate::eligibility::benefits::age_out(c, &n, chrono::Utc::now()))
            .await;
        match r {
            Ok(0) => {}
            Ok(files) => tracing::info!(files, "age-limited benefits ended at 18"),
            Err(e) => tracing::warn!(error = %e, "the age-out run failed"),
        }
        let r = store
            .run(|c| crate::visits::clear_adults_due(c, chrono::Utc::now()))
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "could not take adults off the visit due list");
        }
    })
    .await;
}
