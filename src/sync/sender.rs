//! Delivery to one peer (DESIGN §6): take the oldest queued versions (parents before
//! children), post them over mutual TLS, verify and store the signed receipt, drop what it
//! accepted or refused; [`backoff`] says how long to wait after a failure. The loop that drains
//! the queue until shutdown is a job (`jobs::sender`). The queue is
//! in the database, so a restart loses nothing and sends nothing twice in effect (a duplicate is
//! accepted again by the receiver).
//!
//! A backlog drains with up to [`WINDOW`] batches in flight, so the peer verifies one batch
//! while it stores the one before and neither node waits on the other. A batch goes out beside
//! others only when it cannot need them: it holds child versions only, shares no document with
//! the batches in flight, and none of its versions has a parent still queued outside it.
//! Anything else waits until the batches in flight are settled, so a version never reaches the
//! peer before its parents.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::ledger::LedgerError;
use super::node::LocalNode;
use serde::Serialize;
use serde_json::value::RawValue;

use super::receipt::{RejectCode, SignedReceipt};
use super::version::{DocKind, VersionError};
use crate::audit::{self, Actor, Event, Outcome, SignedTreeHead};
use crate::crypto::hash::Digest;
use crate::crypto::hlc::Hlc;
use crate::crypto::keys::Signature;
use crate::domain::NodeId;
use crate::storage::exchange;
use crate::storage::leases::Lease;
use crate::storage::records::StoredVersion;
use crate::storage::{self, Store};

/// Batches in flight to one peer at most.
pub const WINDOW: usize = 2;

/// How many times [`deliver_queued`] waits for a peer that answers 503 `busy` (it has as many of
/// our batches in flight as it accepts at once) before it reports the delivery as failed.
const BUSY_WAITS: u32 = 30;

/// Builds the mutual-TLS HTTP client for a peer (pinned to its node id). Made by `startup`,
/// which owns the TLS material.
pub type ClientFactory = Arc<dyn Fn(&NodeId) -> Result<reqwest::Client, String> + Send + Sync>;

/// Settings of the loop.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    pub batch_size: usize,
    pub max_backoff: Duration,
    /// Wait between checks when nothing wakes the loop.
    pub idle_poll: Duration,
}

/// Why one delivery attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("peer {0} is not in the directory")]
    NotInDirectory(NodeId),
    #[error("cannot build the TLS client: {0}")]
    Client(String),
    #[error("transport: {0}")]
    Transport(String),
    #[error("the peer answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("bad receipt: {0}")]
    Receipt(String),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Another process of this node took the sending lease over (this one stalled past it):
    /// what this one posted is settled by its successor, which posts it again.
    #[error("the lease to send to this peer passed to another process")]
    LeaseLost,
}

impl SendError {
    /// The peer is busy receiving other batches of ours (503 with the problem code `busy`):
    /// temporary, not a failure of the peer; retry after a short wait. Any other 503 (the
    /// peer's database is down or restarting: `unavailable`) is a failure, retried with the
    /// growing backoff.
    pub fn is_busy(&self) -> bool {
        #[derive(serde::Deserialize)]
        struct Code<'a> {
            code: &'a str,
        }
        match self {
            SendError::Status { status: 503, body } => {
                serde_json::from_str::<Code>(body).is_ok_and(|p| p.code == "busy")
            }
            _ => false,
        }
    }
}

/// Records a failed delivery to `peer` (its status for people and monitoring); a failure to
/// record it is logged.
pub async fn record_failure(store: &Store, peer: &NodeId, message: String) {
    let p = peer.to_string();
    let r = store
        .run(move |c| {
            exchange::mark_failure(c, &p, &message, Utc::now().naive_utc())
                .map_err(StorageErr::from)
        })
        .await;
    if let Err(e) = r {
        tracing::warn!(peer = %peer, error = %e, "could not record a failed delivery");
    }
}

/// Exponential backoff from 200 ms, capped, with full jitter (a random wait up to the bound),
/// so peers that failed together do not retry together.
pub fn backoff(failures: u32, max: Duration) -> Duration {
    let bound = Duration::from_millis(200u64.saturating_mul(1u64 << failures.min(20))).min(max);
    let mut b = [0u8; 8];
    let r = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map(|_| u64::from_le_bytes(b))
        .unwrap_or(u64::MAX / 2);
    let millis = bound.as_millis().max(1) as u64;
    Duration::from_millis(millis / 2 + r % (millis / 2 + 1))
}

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct StorageErr(#[from] storage::StorageError);
/// What one batch did.
#[derive(Debug, Clone, Default)]
struct Batch {
    /// Versions posted (0: the queue was empty).
    sent: usize,
    /// Their ids.
    ids: Vec<String>,
    /// Versions that left the queue (accepted or refused by the receipt).
    settled: usize,
    bytes_sent: u64,
    bytes_received: u64,
}

/// What [`deliver_queued`] delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Versions that left the queue with a verified receipt.
    pub settled: usize,
    pub batches: usize,
    /// Request and response bodies.
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// Delivers everything queued for `peer` now, batch after batch, through the same path as the
/// loop (verified receipts, stored and audited). For callers that cannot wait for the loop — a
/// reconciliation run from the CLI may have no server running. Stops at the first failure.
pub async fn deliver_queued(
    store: &Store,
    node: &Arc<LocalNode>,
    peer: &NodeId,
    clients: &ClientFactory,
    config: &SenderConfig,
) -> Result<Delivered, String> {
    let mut link = Link::default();
    let mut total = Delivered::default();
    let mut busy_waits = 0;
    loop {
        let b = match send_once(store, node, peer, clients, &mut link, config).await {
            // The peer is receiving other batches of ours (the sender loop's): wait a moment.
            Err(e) if e.is_busy() && busy_waits < BUSY_WAITS => {
                busy_waits += 1;
                tokio::time::sleep(backoff(1, config.max_backoff)).await;
                continue;
            }
            r => r.map_err(|e| e.to_string())?,
        };
        if b.sent == 0 {
            return Ok(total);
        }
        total.settled += b.settled;
        total.batches += 1;
        total.bytes_sent += b.bytes_sent;
        total.bytes_received += b.bytes_received;
        if b.settled == 0 {
            // Another delivery to the same peer (the sender loop, beside a reconciliation run)
            // may have posted the same batch and settled it first: then nothing is left to do
            // for these versions. A receipt that leaves them queued is an error.
            let (p, ids) = (peer.to_string(), b.ids);
            let left = store
                .run(move |c| exchange::still_queued(c, &p, &ids))
                .await
                .map_err(|e| e.to_string())?;
            if left > 0 {
                return Err(format!(
                    "{peer}'s receipt settled none of {} versions",
                    b.sent
                ));
            }
        }
    }
}

/// A queue position: a version's stamp and id (the queue's order).
type Position = (i64, String);

/// A batch read from the queue and serialized, ready to post.
struct Prepared {
    /// The request's body.
    body: Vec<u8>,
    /// The digest of its ids, which the receipt must name.
    batch: Digest,
    ids: Vec<String>,
    /// The documents of its versions.
    docs: HashSet<String>,
    /// Every version is a child version (a case version waits for all before it).
    children_only: bool,
    /// Some version has a parent still queued outside the batch (possible only when read after
    /// a position: the parent was queued behind it later).
    parent_queued: bool,
    /// The position of its last version: a batch read beside it starts after it.
    last: Position,
}

impl Prepared {
    /// Whether this batch may be in flight beside batches holding `busy` documents, of which
    /// `busy_cases` hold case versions.
    fn independent_of(&self, busy: &HashSet<String>, busy_cases: bool) -> bool {
        !busy_cases && self.children_only && !self.parent_queued && self.docs.is_disjoint(busy)
    }
}

/// Reads the oldest `limit` versions queued for `peer` (after `after`, if given) and serializes
/// the request, on the blocking pool. `None`: nothing is queued there.
async fn prepare(
    store: &Store,
    node: &Arc<LocalNode>,
    peer: &NodeId,
    limit: usize,
    after: Option<Position>,
) -> Result<Option<Prepared>, SendError> {
    let (p, sender, alg) = (peer.to_string(), node.id.clone(), node.hash);
    let prepared = store
        .run(move |c| -> Result<_, LedgerError> {
            let exchange::QueuedBatch {
                versions: rows,
                last,
            } = exchange::next_batch(c, &p, limit as i64, after.as_ref())?;
            let Some(last) = last else {
                return Ok(None);
            };
            let ids: Vec<String> = rows.iter().map(|r| r.id.to_string()).collect();
            let parent_queued = match after {
                None => false,
                Some(_) => {
                    let inside: HashSet<&str> = ids.iter().map(String::as_str).collect();
                    let mut outside = Vec::new();
                    for r in &rows {
                        outside.extend(
                            r.parents
                                .iter()
                                .map(ToString::to_string)
                                .filter(|p| !inside.contains(p.as_str())),
                        );
                    }
                    !outside.is_empty() && exchange::still_queued(c, &p, &outside)? > 0
                }
            };
            let docs = rows.iter().map(|r| r.doc_id.clone()).collect();
            let children_only = rows.iter().all(|r| r.kind == DocKind::Child);
            let body = request_body(&sender, &rows, audit::log::latest_tree_head(c)?)?;
            Ok(Some(Prepared {
                body,
                batch: super::receipt::batch_digest(alg, &ids),
                ids,
                docs,
                children_only,
                parent_queued,
                last,
            }))
        })
        .await?;
    Ok(prepared)
}

fn corrupt(id: &str, what: &str) -> LedgerError {
    LedgerError::from(VersionError::Corrupt(format!("version {id}: {what}")))
}

/// A stored version as posted: the JSON of [`SignedVersion`], with the body copied from the row
/// as stored (checked to be JSON) instead of parsed into a value and written again.
/// The receiver checks the id against the content, so a damaged row is refused there.
#[derive(Serialize)]
struct WireVersion<'a> {
    id: &'a Digest,
    version: WireContent<'a>,
    signature: &'a Signature,
    #[serde(skip_serializing_if = "Option::is_none")]
    second_signature: Option<&'a Signature>,
}

#[derive(Serialize)]
struct WireContent<'a> {
    kind: DocKind,
    doc_id: &'a str,
    parents: &'a [Digest],
    author_node: &'a NodeId,
    hlc: Hlc,
    resolution: bool,
    body: Box<RawValue>,
}

/// The JSON of the [`PushRequest`] of `rows`.
fn request_body(
    sender: &NodeId,
    rows: &[StoredVersion],
    tree_head: Option<SignedTreeHead>,
) -> Result<Vec<u8>, LedgerError> {
    #[derive(Serialize)]
    struct WireRequest<'a> {
        sender: &'a NodeId,
        versions: Vec<WireVersion<'a>>,
        tree_head: Option<SignedTreeHead>,
    }
    let mut versions = Vec::with_capacity(rows.len());
    for r in rows {
        versions.push(WireVersion {
            id: &r.id,
            version: WireContent {
                kind: r.kind,
                doc_id: &r.doc_id,
                parents: &r.parents,
                author_node: &r.author_node,
                hlc: r.hlc,
                resolution: r.resolution,
                body: RawValue::from_string(r.body.as_str().to_owned())
                    .map_err(|_| corrupt(&r.id.to_string(), "body"))?,
            },
            signature: &r.signature,
            second_signature: r.second_signature.as_ref(),
        });
    }
    serde_json::to_vec(&WireRequest {
        sender,
        versions,
        tree_head,
    })
    .map_err(|e| LedgerError::Internal(format!("cannot serialize a batch: {e}")))
}

/// A sender's way to one peer: the TLS client (built once, dropped after a failure and when a
/// new directory serial is in use, so the next batch dials anew and the handshake judges the
/// peer's certificate by the new directory — a revoked one is refused) and which of the peer's
/// endpoints it posts to.
#[derive(Default)]
pub struct Link {
    client: Option<reqwest::Client>,
    /// The directory serial `client` was built under.
    serial: u64,
    /// Index into the peer's endpoints (`endpoint`, then `endpoints`), modulo their number.
    at: usize,
}

impl Link {
    /// After a failed delivery: a new client next time, and the peer's next endpoint (a peer
    /// running several processes lists them all; one that lists one stays on it).
    pub fn fail_over(&mut self) {
        self.client = None;
        self.at = self.at.wrapping_add(1);
    }
}

/// The peer's endpoint and a client for it.
fn endpoint(
    node: &LocalNode,
    peer: &NodeId,
    clients: &ClientFactory,
    link: &mut Link,
) -> Result<(reqwest::Client, String), SendError> {
    let dir = node
        .directory
        .as_ref()
        .map(|d| d.current())
        .ok_or_else(|| SendError::NotInDirectory(peer.clone()))?;
    let entry = dir
        .node(peer)
        .ok_or_else(|| SendError::NotInDirectory(peer.clone()))?;
    let count = 1 + entry.endpoints.len();
    let base = entry
        .all_endpoints()
        .nth(link.at % count)
        .unwrap_or(entry.endpoint.as_str());
    let url = format!("{}/peer/v1/versions", base.trim_end_matches('/'));
    if link.serial != dir.serial() {
        // Pooled connections were verified under the old directory.
        link.client = None;
        link.serial = dir.serial();
    }
    let http = match &link.client {
        Some(c) => c.clone(),
        None => {
            let c = clients(peer).map_err(SendError::Client)?;
            link.client = Some(c.clone());
            c
        }
    };
    Ok((http, url))
}

/// One batch, alone.
async fn send_once(
    store: &Store,
    node: &Arc<LocalNode>,
    peer: &NodeId,
    clients: &ClientFactory,
    link: &mut Link,
    config: &SenderConfig,
) -> Result<Batch, SendError> {
    let Some(prepared) = prepare(store, node, peer, config.batch_size, None).await? else {
        return Ok(Batch::default());
    };
    let (http, url) = endpoint(node, peer, clients, link)?;
    post(
        store.clone(),
        node.clone(),
        peer.clone(),
        http,
        url,
        prepared,
        None,
    )
    .await
}

/// Delivers what is queued for `peer`, with up to [`WINDOW`] batches in flight, until the queue
/// is empty, a batch fails, `shutdown` flips to true or `lease` is no longer held (then the
/// batches in flight are settled first — each under the fencing check of the lease it was
/// posted under). Returns how many versions were posted.
#[allow(clippy::too_many_arguments)]
pub async fn drain(
    store: &Store,
    node: &Arc<LocalNode>,
    peer: &NodeId,
    clients: &ClientFactory,
    link: &mut Link,
    config: &SenderConfig,
    shutdown: &tokio::sync::watch::Receiver<bool>,
    lease: &tokio::sync::watch::Receiver<Option<Lease>>,
) -> Result<usize, SendError> {
    type Flight = (HashSet<String>, bool, Result<Batch, SendError>);
    let mut flights: tokio::task::JoinSet<Flight> = tokio::task::JoinSet::new();
    // The documents of the batches in flight, and whether one of them holds case versions.
    let mut busy: HashSet<String> = HashSet::new();
    let mut busy_cases = false;
    let mut after: Option<Position> = None;
    let mut held: Option<Prepared> = None;
    let mut failed: Option<SendError> = None;
    // Read past the batches in flight only while that is known to be safe.
    let mut read_ahead = true;
    let mut sent = 0;
    loop {
        while failed.is_none() && flights.len() < WINDOW && !*shutdown.borrow() {
            let Some(under) = lease.borrow().clone() else {
                break;
            };
            let mut next = match held.take() {
                Some(p) => p,
                None if !read_ahead && !flights.is_empty() => break,
                None => {
                    let from = read_from(flights.len(), &after);
                    match prepare(store, node, peer, config.batch_size, from).await {
                        Ok(Some(p)) => p,
                        Ok(None) => break,
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
            };
            if !flights.is_empty() && !next.independent_of(&busy, busy_cases) {
                if next.parent_queued {
                    // Something queued behind the position must go first: settle what is in
                    // flight, then start again from the head of the queue.
                    read_ahead = false;
                } else {
                    held = Some(next);
                }
                break;
            }
            let (http, url) = match endpoint(node, peer, clients, link) {
                Ok(x) => x,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            };
            after = Some(next.last.clone());
            let (docs, children_only) = (std::mem::take(&mut next.docs), next.children_only);
            busy.extend(docs.iter().cloned());
            busy_cases |= !children_only;
            let (s, n, p) = (store.clone(), node.clone(), peer.clone());
            flights.spawn(async move {
                let r = post(s, n, p, http, url, next, Some(under)).await;
                (docs, children_only, r)
            });
        }
        let Some(joined) = flights.join_next().await else {
            return match failed {
                Some(e) => Err(e),
                None => Ok(sent),
            };
        };
        let (docs, children_only, result) = match joined {
            Ok(flight) => flight,
            Err(e) => {
                // A delivery task panicked: its versions stay queued. Nothing else is tracked
                // for it, so settle the rest and retry from the head of the queue.
                failed.get_or_insert(SendError::Transport(format!("a delivery task failed: {e}")));
                busy.clear();
                busy_cases = false;
                continue;
            }
        };
        for d in &docs {
            busy.remove(d);
        }
        if !children_only {
            busy_cases = false;
        }
        if flights.is_empty() {
            // Everything settled: the next read starts from the head ([`read_from`]), and
            // batches may be read past it again.
            read_ahead = true;
        }
        match result {
            Ok(b) => sent += b.sent,
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
}

/// Where the next batch is read from, with `in_flight` batches in flight that end at `after`:
/// past them, or — with nothing in flight — from the head of the queue. A version stamped
/// before the last one sent but committed after it (on PostgreSQL, writers commit out of stamp
/// order) is so sent the next time nothing is in flight (after at most the one batch held back
/// then), instead of waiting behind newer ones until the queue runs dry. (Read from the head, a
/// batch can have no parent queued before it: only a batch read past others is checked for
/// that, [`Prepared::parent_queued`].)
fn read_from(in_flight: usize, after: &Option<Position>) -> Option<Position> {
    if in_flight == 0 {
        None
    } else {
        after.clone()
    }
}

/// Posts a prepared batch, verifies the signed receipt and stores it.
async fn post(
    store: Store,
    node: Arc<LocalNode>,
    peer: NodeId,
    http: reqwest::Client,
    url: String,
    prepared: Prepared,
    lease: Option<Lease>,
) -> Result<Batch, SendError> {
    let Prepared {
        body, batch, ids, ..
    } = prepared;
    let bytes_sent = body.len() as u64;
    // One id per delivery, in both nodes' logs (`api::request_id`): logged here at info, before
    // the batch leaves, so a failed delivery is found by it as well as a delivered one.
    let request_id = crate::domain::request_id::new();
    tracing::info!(peer = %peer, versions = ids.len(), %request_id, "pushing a batch");
    let resp = http
        .post(&url)
        .header(crate::domain::request_id::HEADER, &request_id)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| SendError::Transport(error_chain(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        let body: String = resp
            .text()
            .await
            .unwrap_or_else(|e| format!("(the answer's body could not be read: {e})"))
            .chars()
            .take(500)
            .collect();
        return Err(SendError::Status {
            status: status.as_u16(),
            body,
        });
    }
    let answer = resp
        .bytes()
        .await
        .map_err(|e| SendError::Transport(error_chain(&e)))?;
    let receipt: SignedReceipt =
        serde_json::from_slice(&answer).map_err(|e| SendError::Receipt(e.to_string()))?;
    let dir = node
        .directory
        .as_ref()
        .map(|d| d.current())
        .ok_or_else(|| SendError::NotInDirectory(peer.clone()))?;
    let keys = dir.signing_keys_at(&peer, Utc::now());
    receipt
        .verify(&keys, &peer, &node.id, &batch)
        .map_err(|e| SendError::Receipt(e.to_string()))?;
    let n = ids.len();
    node.wire.add(n as u64, bytes_sent, answer.len() as u64);
    let peer2 = peer.clone();
    let done = store
        .run(move |c| store_receipt(c, &node, &peer2, &receipt, lease.as_ref()))
        .await?
        .ok_or(SendError::LeaseLost)?;
    tracing::debug!(peer = %peer, sent = n, %request_id, "batch delivered");
    Ok(Batch {
        sent: n,
        ids,
        settled: done,
        bytes_sent,
        bytes_received: answer.len() as u64,
    })
}

/// Stores a verified receipt and settles the queue by it, with an audit event, atomically.
/// Accepted versions leave the queue, and any earlier refusal of them is forgotten (it was
/// repaired). A refusal is kept and the version leaves the queue — except `unknown_parents` the
/// first time: the peer lacks the file's history (a peer restored from an old backup), so the
/// version stays queued and the history is queued with it, at its stamp, to travel in one
/// batch ([`requeue_with_history`]). Returns how many versions the receipt settled (those kept
/// for another try included).
fn store_receipt(
    conn: &mut storage::DbConn,
    node: &LocalNode,
    peer: &NodeId,
    receipt: &SignedReceipt,
    lease: Option<&Lease>,
) -> Result<Option<usize>, LedgerError> {
    let now = Utc::now();
    let at = now.naive_utc();
    let r = &receipt.receipt;
    storage::transaction(conn, |c| {
        // The fencing check: only the lease's holder settles the queue.
        if let Some(lease) = lease {
            if !storage::leases::holds(c, lease)? {
                return Ok(None);
            }
        }
        let receipt_id = super::receipt::store(c, node.hash, receipt, at)?.to_string();
        let accepted: Vec<String> = r.accepted.iter().map(ToString::to_string).collect();
        let mut done = exchange::dequeue(c, peer.as_str(), &accepted)?;
        let repaired = exchange::clear_rejections(c, peer.as_str(), &accepted)?;
        let mut retried = 0;
        for rej in &r.rejected {
            let id = rej.id.to_string();
            if rej.code == RejectCode::UnknownParents
                && exchange::rejection_code(c, peer.as_str(), &id)?.as_deref()
                    != Some(RejectCode::UnknownParents.as_str())
                && requeue_with_history(c, peer, &id, at)?
            {
                exchange::record_rejection(
                    c,
                    peer.as_str(),
                    &id,
                    rej.code.as_str(),
                    &rej.reason,
                    at,
                )?;
                retried += 1;
                done += 1;
                continue;
            }
            if rej.code == RejectCode::UnknownParents {
                tracing::warn!(
                    %peer, version = %rej.id.short(),
                    "the peer refused a version for unknown parents again after its history was sent; it is dropped from the queue (run a reconciliation with the peer)"
                );
            }
            exchange::record_rejection(c, peer.as_str(), &id, rej.code.as_str(), &rej.reason, at)?;
            done += exchange::dequeue(c, peer.as_str(), &[id])?;
        }
        exchange::mark_success(c, peer.as_str(), r.accepted.len() as i64, at)?;
        if let Some(h) = &r.tree_head {
            if let Some(dir) = node.directory.as_ref().map(|d| d.current()) {
                super::receipt::witness(c, &dir, peer, h, now)?;
            }
        }
        if retried > 0 {
            tracing::warn!(
                %peer, versions = retried,
                "the peer lacks the history of versions it was sent (unknown_parents): their files' history is queued for it and they are sent again"
            );
        }
        audit::append(
            c,
            node.clock.now(),
            now,
            &Event::new(Actor::job(&format!("sender:{peer}")), "receipt.store", Outcome::Ok).details(serde_json::json!({
                "receipt": receipt_id, "issuer": r.issuer, "accepted": r.accepted.len(),
                "rejected": r.rejected.iter().map(|x| serde_json::json!({"id": x.id, "code": x.code})).collect::<Vec<_>>(),
                "refusals_repaired": repaired, "resent_with_history": retried,
            })),
        )?;
        Ok(Some(done))
    })
}

/// Keeps version `id` queued for `peer` and queues its file's whole stored history beside it,
/// at its queue stamp (so they go in one batch; the receiver orders a batch parents first).
/// False if the version is no longer queued or not stored here (nothing to resend).
fn requeue_with_history(
    c: &mut storage::DbConn,
    peer: &NodeId,
    id: &str,
    at: chrono::NaiveDateTime,
) -> Result<bool, LedgerError> {
    let Some(stamp) = exchange::queued_stamp(c, peer.as_str(), id)? else {
        return Ok(false);
    };
    let Some(v) = crate::storage::records::get_version(c, id)? else {
        return Ok(false);
    };
    let history: Vec<(String, i64)> =
        crate::storage::reconcile::history_ids(c, v.kind.as_str(), &v.doc_id)?
            .into_iter()
            .map(|vid| (vid, stamp))
            .collect();
    exchange::enqueue(c, peer.as_str(), &history, at)?;
    Ok(true)
}

/// An error and its sources, `outer: inner: …`, for logs and reports.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Delivery state of one peer, for people and monitoring.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PeerStatus {
    pub peer: String,
    pub endpoint: Option<String>,
    /// Versions waiting to be sent.
    pub outbox_depth: u64,
    /// Seconds the oldest waiting version has waited.
    pub lag_seconds: Option<i64>,
    pub delivered: u64,
    /// Versions the peer refused (kept, not retried).
    pub rejected: u64,
    pub last_success_at: Option<chrono::DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<chrono::DateTime<Utc>>,
    pub consecutive_failures: u32,
    /// The largest size of this node's log the peer cosigned (witnessing); `None`: never.
    pub cosigned_size: Option<u64>,
    /// The largest size of the peer's log this node cosigned; `None`: never (or since an
    /// acknowledged restore).
    pub witnessed_size: Option<u64>,
    /// Evidence against the peer's log not yet acknowledged by an administrator (while
    /// above 0, this node cosigns nothing for it).
    pub witness_inconsistent: u64,
}

/// Whether a peer's last error is newer than its last success.
fn error_is_current(s: &exchange::PeerStatus) -> bool {
    match (s.last_error_at, s.last_success_at) {
        (Some(e), Some(ok)) => e > ok,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Status of every peer in the directory (and any with queued versions).
pub fn peer_statuses(
    conn: &mut storage::DbConn,
    node: &LocalNode,
) -> Result<Vec<PeerStatus>, LedgerError> {
    let now = Utc::now();
    let depths = exchange::outbox_depths(conn)?;
    let statuses = exchange::statuses(conn)?;
    let dir = node.directory.as_ref().map(|d| d.current());
    let cosigned = crate::storage::witness::latest_cosignatures(conn)?;
    let witnessed = crate::storage::witness::all_witnessed(conn)?;
    let open = crate::storage::witness::evidence(conn, None, true)?;
    let mut peers: std::collections::BTreeSet<String> = dir
        .iter()
        .flat_map(|d| d.nodes().map(|n| n.id.to_string()).collect::<Vec<_>>())
        .filter(|p| p != node.id.as_str())
        .collect();
    peers.extend(depths.iter().map(|d| d.peer.to_string()));
    peers.extend(open.iter().map(|e| e.peer.clone()));
    let mut out = Vec::new();
    for peer in peers {
        let depth = depths.iter().find(|d| d.peer.as_str() == peer);
        let st = statuses.iter().find(|s| s.peer.as_str() == peer);
        out.push(PeerStatus {
            endpoint: dir.as_ref().and_then(|d| {
                NodeId::parse(&peer)
                    .ok()
                    .and_then(|id| d.node(&id).map(|n| n.endpoint.clone()))
            }),
            outbox_depth: depth.map_or(0, |d| d.depth),
            lag_seconds: depth
                .and_then(|d| d.oldest)
                .map(|t| (now - t).num_seconds().max(0)),
            delivered: st.map_or(0, |s| s.delivered),
            rejected: exchange::rejected_count(conn, &peer)?,
            last_success_at: st.and_then(|s| s.last_success_at),
            // An error older than the last success is history, not the state.
            last_error: st
                .filter(|s| error_is_current(s))
                .and_then(|s| s.last_error.clone()),
            last_error_at: st
                .filter(|s| error_is_current(s))
                .and_then(|s| s.last_error_at),
            consecutive_failures: st.map_or(0, |s| s.failures),
            cosigned_size: cosigned
                .iter()
                .find(|c| c.witness == peer)
                .map(|c| c.size.max(0) as u64),
            witnessed_size: witnessed
                .iter()
                .find(|w| w.peer == peer)
                .map(|w| w.size.max(0) as u64),
            witness_inconsistent: open.iter().filter(|e| e.peer == peer).count() as u64,
            peer,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_busy_peer_is_waited_for_without_backoff() {
        let status = |status, body: &str| SendError::Status {
            status,
            body: body.to_owned(),
        };
        assert!(status(503, r#"{"status":503,"code":"busy","reason":"r"}"#).is_busy());
        // The peer's database is down: a failure, with the growing backoff.
        assert!(!status(503, r#"{"status":503,"code":"unavailable","reason":"r"}"#).is_busy());
        assert!(!status(503, "Service Unavailable").is_busy());
        assert!(!status(500, r#"{"code":"busy"}"#).is_busy());
    }

    fn batch(docs: &[&str], children_only: bool, parent_queued: bool) -> Prepared {
        Prepared {
            body: Vec::new(),
            batch: Digest::of(b""),
            ids: Vec::new(),
            docs: docs.iter().map(|d| (*d).to_owned()).collect(),
            children_only,
            parent_queued,
            last: (0, String::new()),
        }
    }

    fn busy(docs: &[&str]) -> HashSet<String> {
        docs.iter().map(|d| (*d).to_owned()).collect()
    }

    /// The request written from stored rows is the JSON of the same signed versions.
    #[test]
    fn the_request_written_from_rows_reads_back_as_the_signed_versions() {
        use crate::sync::receipt::PushRequest;
        use crate::sync::version::Version;
        let key = crate::crypto::keys::SigningKey::generate().unwrap().0;
        let node = NodeId::parse("410100").unwrap();
        let first = Version::new(
            DocKind::Child,
            "11010520140101001X".into(),
            Vec::new(),
            node.clone(),
            Hlc::new(1_795_423_775_123, 7).unwrap(),
            serde_json::json!({"name": "张\"三\n", "score": 1.5, "tags": [null, true, {"z": 1, "a": []}]}),
        )
        .sign(&key, crate::crypto::hash::HashAlg::Sha256)
        .unwrap();
        let mut second = Version::new(
            DocKind::Case,
            "0193a000-0000-7000-8000-000000000000".into(),
            vec![first.id],
            node.clone(),
            Hlc::new(1_795_423_775_124, 0).unwrap(),
            serde_json::json!({"state": "requested"}),
        );
        second.resolution = true;
        let second = second
            .sign(&key, crate::crypto::hash::HashAlg::Sha256)
            .unwrap();
        let at = chrono::Utc::now().naive_utc();
        let rows: Vec<StoredVersion> = vec![first.to_row(at), second.to_row(at)]
            .into_iter()
            .map(|r| StoredVersion::try_from(r).unwrap())
            .collect();
        let body = request_body(&node, &rows, None).unwrap();
        let read: PushRequest = serde_json::from_slice(&body).unwrap();
        assert_eq!(read.sender, node);
        assert_eq!(read.versions, vec![first.clone(), second]);
        assert!(read.versions.iter().all(|v| v
            .verify(&key.public_key(), crate::crypto::hash::HashAlg::Sha256)
            .is_ok()));
        // A damaged row is an error here, not a request.
        let mut bad = StoredVersion::try_from(first.to_row(at)).unwrap();
        bad.body = crate::storage::records::StoredBody("{not json".into());
        assert!(request_body(&node, &[bad], None).is_err());
    }

    #[test]
    fn with_nothing_in_flight_the_next_batch_is_read_from_the_head_of_the_queue() {
        let last: Option<Position> = Some((42, "v".into()));
        assert_eq!(read_from(1, &last), last);
        assert_eq!(read_from(2, &last), last);
        // A version stamped before the last one sent, committed after it, is read next.
        assert_eq!(read_from(0, &last), None);
        assert_eq!(read_from(0, &None), None);
    }

    #[test]
    fn a_batch_flies_beside_others_only_when_it_cannot_need_them() {
        let in_flight = busy(&["a", "b"]);
        // Other children's versions, nothing queued behind: independent.
        assert!(batch(&["c", "d"], true, false).independent_of(&in_flight, false));
        // A child whose earlier version may still be in flight.
        assert!(!batch(&["c", "a"], true, false).independent_of(&in_flight, false));
        // A case version (its child may be in flight), or a case batch in flight.
        assert!(!batch(&["c"], false, false).independent_of(&in_flight, false));
        assert!(!batch(&["c"], true, false).independent_of(&in_flight, true));
        // A parent queued behind the read position must go first.
        assert!(!batch(&["c"], true, true).independent_of(&in_flight, false));
    }
}
