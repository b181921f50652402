//! Spreads a new directory serial across the network: every `[directory] fetch_interval_secs`
//! the node asks its peers — each node of its directory but itself, in the directory's order,
//! one at a time — for the signed directory they use (`GET /peer/v1/directory`), and stops at
//! the first that is newer. What a peer answers is judged by `directory::fetch::judge`: it must
//! verify exactly as the node's own file does on load and carry a higher serial.
//!
//! - A newer directory is installed through `DirectoryHandle::install` (which refuses a
//!   rollback under its lock), then written over the node's directory file byte for byte,
//!   atomically and with the file's mode, so a restart keeps it; the file watch
//!   (`jobs::directory`) then finds the file holding the directory in use. Audited
//!   `directory.install` with `from: <peer>`.
//! - A lower or equal serial is ignored.
//! - A peer answering something that does not verify (garbage, a forged or expired directory,
//!   another content hash) changes nothing; it is logged at `warn` and audited
//!   `directory.refuse` once per peer, offered serial and kind of refusal.
//! - A peer that cannot be reached, or answers with an error status, is logged at `debug` and
//!   skipped: peers come and go, and the next round asks again.

use std::collections::HashSet;
use std::mem::Discriminant;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::audit::{Actor, Event, Outcome};
use crate::crypto::PublicKey;
use crate::directory::fetch::{self, Offer};
use crate::directory::{
    replace_with_bytes, DirectoryError, DirectoryHandle, ReloadOutcome, MAX_DIRECTORY_FILE_LEN,
};
use crate::domain::NodeId;
use crate::storage::Store;
use crate::sync::sender::ClientFactory;
use crate::sync::LocalNode;

/// Where a node keeps its directory and how it checks one.
pub struct FetchContext {
    pub store: Store,
    pub node: Arc<LocalNode>,
    pub handle: DirectoryHandle,
    pub clients: ClientFactory,
    /// The node's directory file, rewritten when a newer directory is taken from a peer.
    pub path: PathBuf,
    /// The directory authority's key: the only key a directory from a peer may be signed by.
    pub authority: PublicKey,
}

/// Why asking a peer gave no directory to judge.
#[derive(Debug, thiserror::Error)]
enum AskError {
    #[error("no client for the peer: {0}")]
    Client(String),
    #[error("the peer could not be reached: {0}")]
    Unreachable(#[source] reqwest::Error),
    #[error("the peer answered HTTP {0}")]
    Status(u16),
    #[error("the peer's answer is larger than {MAX_DIRECTORY_FILE_LEN} bytes")]
    TooLarge,
}

/// A refusal already reported: the peer, the serial it offered (when it could be read) and the
/// kind of refusal (not its message, which may name the current time).
type Reported = (NodeId, Option<u64>, Discriminant<DirectoryError>);

/// Asks the peers every `interval` (the first round one interval after the start) until
/// `shutdown` flips to true.
pub async fn run(
    ctx: FetchContext,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let interval = interval.max(Duration::from_millis(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported: HashSet<Reported> = HashSet::new();
    tracing::info!(?interval, "fetching newer directories from peers");
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        round(&ctx, &mut reported, &shutdown).await;
    }
}

/// One round: the peers in the directory's order, until one offers a newer directory.
async fn round(
    ctx: &FetchContext,
    reported: &mut HashSet<Reported>,
    shutdown: &tokio::sync::watch::Receiver<bool>,
) {
    let peers: Vec<(NodeId, String)> = ctx
        .handle
        .current()
        .nodes()
        .filter(|n| n.id != ctx.node.id && !n.endpoint.is_empty())
        .map(|n| (n.id.clone(), n.endpoint.clone()))
        .collect();
    for (peer, endpoint) in peers {
        if *shutdown.borrow() {
            return;
        }
        // A peer that hangs must not hold the shutdown up.
        let mut stop = shutdown.clone();
        let asked = tokio::select! {
            r = ask(&ctx.clients, &peer, &endpoint) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        let bytes = match asked {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(peer = %peer, error = %e, "no directory from this peer this round");
                continue;
            }
        };
        let (current, authority) = (ctx.handle.current(), ctx.authority);
        let judged = tokio::task::spawn_blocking(move || {
            fetch::judge(&current, &bytes, &authority, Utc::now())
                .map_err(|e| (e, offered_serial(&bytes)))
        })
        .await;
        match judged {
            Ok(Ok(Offer::NotNewer { .. })) => {}
            Ok(Ok(Offer::Newer(d))) => {
                if take(ctx, &peer, *d).await {
                    return;
                }
            }
            Ok(Err((e, serial))) => refuse(ctx, reported, &peer, serial, e).await,
            Err(e) => tracing::warn!(peer = %peer, error = %e, "judging a peer's directory failed"),
        }
    }
}

/// `GET {endpoint}/peer/v1/directory`, its body read up to [`MAX_DIRECTORY_FILE_LEN`] bytes.
async fn ask(clients: &ClientFactory, peer: &NodeId, endpoint: &str) -> Result<Vec<u8>, AskError> {
    let client = clients(peer).map_err(AskError::Client)?;
    let url = format!("{}/peer/v1/directory", endpoint.trim_end_matches('/'));
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(AskError::Unreachable)?;
    if !resp.status().is_success() {
        return Err(AskError::Status(resp.status().as_u16()));
    }
    let limit = usize::try_from(MAX_DIRECTORY_FILE_LEN).unwrap_or(usize::MAX);
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_DIRECTORY_FILE_LEN)
    {
        return Err(AskError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(AskError::Unreachable)? {
        if body.len() + chunk.len() > limit {
            return Err(AskError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Installs a newer directory from `peer`, writes it to the node's file and audits it; `true`
/// when it was installed.
async fn take(ctx: &FetchContext, peer: &NodeId, new: crate::directory::Directory) -> bool {
    let bytes = new.signed_json().clone();
    let new_serial = new.serial();
    // `install` compares the serials again under its lock: the file watch may have installed
    // another directory since this one was judged.
    match ctx.handle.install(new) {
        Ok(ReloadOutcome::Replaced { old_serial, .. }) => {
            tracing::info!(peer = %peer, old_serial, new_serial, "installed a newer directory from a peer");
            let path = ctx.path.clone();
            let handle = ctx.handle.clone();
            // Written only while it is still the directory in use (the file watch may have
            // installed a newer one from the file meanwhile).
            let written = tokio::task::spawn_blocking(move || {
                if handle.current().serial() == new_serial {
                    replace_with_bytes(&path, &bytes).map(|()| true)
                } else {
                    Ok(false)
                }
            })
            .await;
            let file_written = match written {
                Ok(Ok(w)) => w,
                Ok(Err(e)) => {
                    tracing::error!(peer = %peer, error = %e, "installed a directory from a peer but could not write the directory file; a restart would load the older one");
                    false
                }
                Err(e) => {
                    tracing::error!(peer = %peer, error = %e, "writing the directory file failed");
                    false
                }
            };
            let event = Event::new(Actor::job("directory"), "directory.install", Outcome::Ok)
                .details(serde_json::json!({
                    "from": peer.as_str(),
                    "old_serial": old_serial,
                    "new_serial": new_serial,
                    "file": ctx.path.display().to_string(),
                    "file_written": file_written,
                }));
            record(ctx, event).await;
            true
        }
        Ok(ReloadOutcome::Unchanged) => false,
        Err(e) => {
            // Another install (the file watch) went further meanwhile: nothing to do.
            tracing::debug!(peer = %peer, new_serial, error = %e, "a peer's directory was overtaken");
            false
        }
    }
}

/// Logs and audits a refused directory from `peer`, once per peer, serial and kind.
async fn refuse(
    ctx: &FetchContext,
    reported: &mut HashSet<Reported>,
    peer: &NodeId,
    serial: Option<u64>,
    error: DirectoryError,
) {
    if !reported.insert((peer.clone(), serial, std::mem::discriminant(&error))) {
        tracing::debug!(peer = %peer, error = %error, "a peer's directory is refused again");
        return;
    }
    tracing::warn!(peer = %peer, serial, error = %error, "refused the directory a peer offered; the directory in use stays");
    let event = Event::new(
        Actor::job("directory"),
        "directory.refuse",
        Outcome::Rejected,
    )
    .details(serde_json::json!({
        "from": peer.as_str(),
        "serial": serial,
        "reason": error.to_string(),
    }));
    record(ctx, event).await;
}

/// The serial an offered (and refused) directory claims, when it is JSON with one; for
/// reporting only, never trusted.
fn offered_serial(bytes: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()?
        .pointer("/directory/serial")?
        .as_u64()
}

/// Appends `event` to the audit log; a failure is logged.
async fn record(ctx: &FetchContext, event: Event) {
    let node = ctx.node.clone();
    let r = ctx
        .store
        .run(move |c| {
            crate::storage::transaction(c, |c| {
                crate::audit::append(c, node.clock.now(), Utc::now(), &event)
            })
        })
        .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "could not audit a directory fetched from a peer");
    }
}
