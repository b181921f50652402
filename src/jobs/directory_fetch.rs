//! Spreads a new directory serial across the network: every `[directory] fetch_interval_secs`
//! the node asks the authority's publication point (`[directory] publication_url`, when set:
//! `GET` of the signed file over HTTPS, the server verified against `publication_ca`), then its
//! peers — each node of its directory but itself, in the directory's order,
//! one at a time — for the signed directory they use (`GET /peer/v1/directory`), and stops at
//! the first that is newer. What a peer answers is judged by `directory::fetch::judge`: it must
//! verify exactly as the node's own file does on load and carry a higher serial.
//!
//! - A newer directory is installed through `DirectoryHandle::install` (which refuses a
//!   rollback under its lock), then written over the node's directory file byte for byte,
//!   atomically and with the file's mode, so a restart keeps it; the file watch
//!   (`jobs::directory`) then finds the file holding the directory in use. Audited
//!   `directory.install` with `from: <peer>` (or `from: "publication"` and its `url`).
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
    /// The authority's publication point, asked first each round.
    pub publication: Option<Publication>,
}

/// The authority's publication point: the URL of the signed directory file and a client that
/// verifies its server (no client certificate).
#[derive(Clone)]
pub struct Publication {
    pub url: String,
    pub client: reqwest::Client,
}

/// Where an offered directory came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Source {
    Peer(NodeId),
    Publication(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Peer(p) => write!(f, "peer {p}"),
            Source::Publication(u) => write!(f, "the publication point {u}"),
        }
    }
}

impl Source {
    /// The audit details naming it.
    fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        match self {
            Source::Peer(p) => {
                m.insert("from".into(), p.as_str().into());
            }
            Source::Publication(u) => {
                m.insert("from".into(), "publication".into());
                m.insert("url".into(), u.as_str().into());
            }
        }
        m
    }
}

/// Why asking a peer gave no directory to judge.
#[derive(Debug, thiserror::Error)]
enum AskError {
    #[error("no client for the peer: {0}")]
    Client(String),
    #[error("could not be reached: {0}")]
    Unreachable(#[source] reqwest::Error),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("the answer is larger than {MAX_DIRECTORY_FILE_LEN} bytes")]
    TooLarge,
}

/// A refusal already reported: the peer, the serial it offered (when it could be read) and the
/// kind of refusal (not its message, which may name the current time).
type Reported = (Source, Option<u64>, Discriminant<DirectoryError>);

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
    let mut sources: Vec<(Source, String)> = Vec::new();
    if let Some(p) = &ctx.publication {
        sources.push((Source::Publication(p.url.clone()), p.url.clone()));
    }
    sources.extend(
        ctx.handle
            .current()
            .nodes()
            .filter(|n| n.id != ctx.node.id && !n.endpoint.is_empty())
            .map(|n| {
                let url = format!("{}/peer/v1/directory", n.endpoint.trim_end_matches('/'));
                (Source::Peer(n.id.clone()), url)
            }),
    );
    for (source, url) in sources {
        if *shutdown.borrow() {
            return;
        }
        let client = match &source {
            Source::Peer(peer) => (ctx.clients)(peer).map_err(AskError::Client),
            Source::Publication(_) => Ok(ctx
                .publication
                .as_ref()
                .map(|p| p.client.clone())
                .unwrap_or_default()),
        };
        // A source that hangs must not hold the shutdown up.
        let mut stop = shutdown.clone();
        let asked = match client {
            Ok(client) => tokio::select! {
                r = ask(&client, &url) => r,
                _ = stop.wait_for(|s| *s) => return,
            },
            Err(e) => Err(e),
        };
        let bytes = match asked {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(%source, error = %e, "no directory from this source this round");
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
                if take(ctx, &source, *d).await {
                    return;
                }
            }
            Ok(Err((e, serial))) => refuse(ctx, reported, &source, serial, e).await,
            Err(e) => tracing::warn!(%source, error = %e, "judging an offered directory failed"),
        }
    }
}

/// `GET url` (a peer's `/peer/v1/directory`, or the publication point), its body read up to
/// [`MAX_DIRECTORY_FILE_LEN`] bytes.
async fn ask(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, AskError> {
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

/// Installs a newer directory from `source`, writes it to the node's file and audits it; `true`
/// when it was installed.
async fn take(ctx: &FetchContext, source: &Source, new: crate::directory::Directory) -> bool {
    let bytes = new.signed_json().clone();
    let new_serial = new.serial();
    // `install` compares the serials again under its lock: the file watch may have installed
    // another directory since this one was judged.
    match ctx.handle.install(new) {
        Ok(ReloadOutcome::Replaced { old_serial, .. }) => {
            tracing::info!(%source, old_serial, new_serial, "installed a newer directory");
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
                    tracing::error!(%source, error = %e, "installed a fetched directory but could not write the directory file; a restart would load the older one");
                    false
                }
                Err(e) => {
                    tracing::error!(%source, error = %e, "writing the directory file failed");
                    false
                }
            };
            let mut details = source.details();
            details.insert("old_serial".into(), old_serial.into());
            details.insert("new_serial".into(), new_serial.into());
            details.insert("file".into(), ctx.path.display().to_string().into());
            details.insert("file_written".into(), file_written.into());
            let event = Event::new(Actor::job("directory"), "directory.install", Outcome::Ok)
                .details(serde_json::Value::Object(details));
            record(ctx, event).await;
            true
        }
        Ok(ReloadOutcome::Unchanged) => false,
        Err(e) => {
            // Another install (the file watch) went further meanwhile: nothing to do.
            tracing::debug!(%source, new_serial, error = %e, "a fetched directory was overtaken");
            false
        }
    }
}

/// Logs and audits a refused directory from `source`, once per source, serial and kind.
async fn refuse(
    ctx: &FetchContext,
    reported: &mut HashSet<Reported>,
    source: &Source,
    serial: Option<u64>,
    error: DirectoryError,
) {
    if !reported.insert((source.clone(), serial, std::mem::discriminant(&error))) {
        tracing::debug!(%source, error = %error, "an offered directory is refused again");
        return;
    }
    tracing::warn!(%source, serial, error = %error, "refused an offered directory; the directory in use stays");
    let event = Event::new(
        Actor::job("directory"),
        "directory.refuse",
        Outcome::Rejected,
    )
    .details({
        let mut details = source.details();
        details.insert("serial".into(), serial.into());
        details.insert("reason".into(), error.to_string().into());
        serde_json::Value::Object(details)
    });
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
