//! Re-hashes stored versions, a page every `[audit] version_check_interval_secs`
//! (`sync::integrity::check_page`): a full pass over a million versions at the default page
//! of 2,000 every 10 s takes under 1.5 hours of mostly idle time.

use std::sync::Arc;
use std::time::Duration;

use crate::storage::Store;
use crate::sync::LocalNode;

pub async fn run(
    store: Store,
    node: Arc<LocalNode>,
    every: Duration,
    page: i64,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    super::every(every, shutdown, || async {
        let n = node.clone();
        let r = store
            .run(move |c| crate::sync::integrity::check_page(c, &n, page, chrono::Utc::now()))
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "version integrity check failed");
        }
    })
    .await;
}
