//! Signs a tree head of the audit log on an interval when the log has grown.

use std::sync::Arc;
use std::time::Duration;

use crate::storage::Store;
use crate::sync::LocalNode;

/// Signs a tree head every `every` until `shutdown` turns true.
pub async fn run(
    store: Store,
    node: Arc<LocalNode>,
    every: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    super::every(every, shutdown, || async {
        let n = node.clone();
        let r = store
            .run(move |conn| crate::audit::log::sign_tree_head(conn, &n.key, chrono::Utc::now()))
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "could not sign a tree head");
        }
    })
    .await;
}
