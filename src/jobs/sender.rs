//! The delivery loops: one per peer in the directory, kept by a supervisor that starts loops for
//! peers added later. Each loop drains the peer's queue (`sync::sender::drain`), waits for new
//! versions (or polls), and after a failure retries with exponential backoff and jitter.
//!
//! Every process of a node runs the loops, but a loop sends only while its process holds the
//! peer's lease (`send:<peer>`, [`super::lease`]): one process at a time sends to a given peer,
//! so the queue's order (parents first) holds; the others wait and take over when it expires.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::lease::Leases;
use super::Running;
use crate::domain::NodeId;
use crate::storage::Store;
use crate::sync::sender::{self, ClientFactory, SenderConfig};
use crate::sync::LocalNode;

/// Keeps one sender loop per peer in the directory until `shutdown` turns true, then waits for
/// the loops to stop.
pub async fn supervise(
    store: Store,
    node: Arc<LocalNode>,
    clients: ClientFactory,
    config: SenderConfig,
    leases: Leases,
    running: Running,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut loops: HashMap<NodeId, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        if let Some(d) = &node.directory {
            for entry in d.current().nodes() {
                if entry.id == node.id || loops.get(&entry.id).is_some_and(|h| !h.is_finished()) {
                    continue;
                }
                let lease = leases.keep(format!("send:{}", entry.id), &running, shutdown.clone());
                let task = running.spawn(run(
                    store.clone(),
                    node.clone(),
                    entry.id.clone(),
                    clients.clone(),
                    config.clone(),
                    lease,
                    shutdown.clone(),
                ));
                loops.insert(entry.id.clone(), task);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
    for (peer, h) in loops {
        if tokio::time::timeout(Duration::from_secs(5), h)
            .await
            .is_err()
        {
            tracing::warn!(peer = %peer, "a sender loop did not stop in time; abandoned");
        }
    }
}

/// Delivers to `peer` while `lease` is held, until `shutdown` flips to true.
pub async fn run(
    store: Store,
    node: Arc<LocalNode>,
    peer: NodeId,
    clients: ClientFactory,
    config: SenderConfig,
    mut lease: super::lease::Held,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut wake = node.outbox_changed.subscribe();
    let mut link = sender::Link::default();
    let mut failures: u32 = 0;
    loop {
        if *shutdown.borrow() {
            return;
        }
        if lease.borrow_and_update().is_none() {
            // Another process sends to this peer: wait until this one holds the lease.
            tokio::select! {
                r = lease.changed() => if r.is_err() { return },
                _ = shutdown.changed() => {}
            }
            continue;
        }
        match sender::drain(
            &store, &node, &peer, &clients, &mut link, &config, &shutdown, &lease,
        )
        .await
        {
            Ok(0) => {
                failures = 0;
                tokio::select! {
                    _ = wake.changed() => {}
                    _ = tokio::time::sleep(config.idle_poll) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Ok(_) => failures = 0,
            Err(e) if e.is_busy() => {
                // The peer is receiving other batches of ours: not a failure; wait a moment.
                tracing::info!(peer = %peer, "the peer is busy with our other batches; retrying shortly");
                tokio::select! {
                    _ = tokio::time::sleep(sender::backoff(1, config.max_backoff)) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                link.fail_over();
                let msg = e.to_string();
                tracing::warn!(peer = %peer, failures, error = %msg, "push failed");
                sender::record_failure(&store, &peer, msg).await;
                let wait = sender::backoff(failures, config.max_backoff);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
}
