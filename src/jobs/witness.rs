//! Asks each peer to cosign this node's checkpoint (DESIGN §8): every round (`[audit.witness]
//! interval_secs`) a peer is asked when the log grew since the size it last cosigned — pushes,
//! receipts and every audited action grow it — and, when nothing grew, once per `idle_secs`.
//! A peer that failed is asked again after a doubling wait (at most `idle_secs`). The request
//! itself is `sync::witness::request_cosignature`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::domain::NodeId;
use crate::storage::Store;
use crate::sync::sender::ClientFactory;
use crate::sync::witness::{self, CosignError};
use crate::sync::LocalNode;

/// Timing of the rounds.
#[derive(Debug, Clone, Copy)]
pub struct WitnessTiming {
    pub interval: Duration,
    pub idle: Duration,
}

#[derive(Default)]
struct PeerState {
    client: Option<reqwest::Client>,
    /// When the peer may next be asked although the log did not grow.
    next_idle: Option<Instant>,
    /// After a failure: not before this.
    not_before: Option<Instant>,
    failures: u32,
}

pub async fn run(
    store: Store,
    node: Arc<LocalNode>,
    clients: ClientFactory,
    timing: WitnessTiming,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    // The first round one interval after the start (the start's own events are then in).
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + timing.interval,
        timing.interval,
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut peers: HashMap<NodeId, PeerState> = HashMap::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let Some(dir) = node.directory.as_ref().map(|d| d.current()) else {
            return;
        };
        let ids: Vec<NodeId> = dir
            .nodes()
            .map(|n| n.id.clone())
            .filter(|id| id != &node.id)
            .collect();
        for peer in ids {
            if *shutdown.borrow() {
                return;
            }
            let state = peers.entry(peer.clone()).or_default();
            round(&store, &node, &clients, timing, &peer, state).await;
        }
    }
}

async fn round(
    store: &Store,
    node: &Arc<LocalNode>,
    clients: &ClientFactory,
    timing: WitnessTiming,
    peer: &NodeId,
    state: &mut PeerState,
) {
    let now = Instant::now();
    if state.not_before.is_some_and(|t| now < t) {
        return;
    }
    let p = peer.clone();
    let sizes = store
        .run(move |c| {
            let cosigned = witness::last_cosigned(c, &p)?;
            let size = crate::storage::audit::size(c)?;
            Ok::<_, crate::storage::StorageError>((cosigned, size.max(0) as u64))
        })
        .await;
    let (cosigned, size) = match sizes {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "witnessing: cannot read the log's size");
            return;
        }
    };
    if size == 0 || (size <= cosigned && state.next_idle.is_some_and(|t| now < t)) {
        return;
    }
    let http = match &state.client {
        Some(c) => c.clone(),
        None => match clients(peer) {
            Ok(c) => {
                state.client = Some(c.clone());
                c
            }
            Err(e) => {
                tracing::warn!(peer = %peer, error = %e, "witnessing: cannot build the TLS client");
                return;
            }
        },
    };
    match witness::request_cosignature(store, node, peer, &http).await {
        Ok(c) => {
            tracing::debug!(peer = %peer, size = c.size, "checkpoint cosigned");
            state.failures = 0;
            state.not_before = None;
            state.next_idle = Some(now + timing.idle);
        }
        Err(e) => {
            state.failures = state.failures.saturating_add(1);
            let wait = timing
                .interval
                .saturating_mul(1u32 << state.failures.min(16))
                .min(timing.idle);
            state.not_before = Some(now + wait);
            match &e {
                CosignError::Behind { .. } => {
                    tracing::error!(peer = %peer, error = %e, "this node's audit log is behind what its witness cosigned")
                }
                CosignError::Transport(_) => {
                    state.client = None;
                    tracing::info!(peer = %peer, error = %e, "witnessing: peer unreachable")
                }
                _ => {
                    tracing::warn!(peer = %peer, error = %e, "witnessing: the peer did not cosign")
                }
            }
        }
    }
}
