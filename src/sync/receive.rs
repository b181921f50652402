//! Receiving a peer's batch (DESIGN §6): the service behind `POST /peer/v1/versions`. Given the
//! authenticated peer and its parsed request, it verifies and ingests the versions, signs and
//! stores the receipt in the batch's transaction, retries the write races of concurrent
//! deliveries on PostgreSQL, witnesses the sender's tree head, wakes the senders when something
//! new must be forwarded, and lets the services that react to received case versions react
//! ([`CaseReactions`], which eligibility implements; `startup` wires it in).
//!
//! It also bounds what one peer can make this node hold ([`PushLimits`]): batches in flight per
//! peer ([`Receiver::admit`], taken before the body is read), bytes per body (the listener reads
//! at most [`PushLimits::max_bytes`]), the bytes of all batches being received node-wide (a
//! budget of [`PushLimits::at_once`] largest bodies, taken by each batch in proportion to its
//! declared length) and versions per batch ([`parse_push`], which counts the versions before
//! parsing any of them and borrows the body instead of copying it). A batch's refusals are one
//! audit event, whatever their number (`ingest`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::error::LedgerError;
use super::ingest::{self, IngestOutcome};
use super::node::LocalNode;
use super::receipt::{self, PushRequest, ReceiptBody, SignedReceipt};
use crate::audit;
use crate::directory::Directory;
use crate::domain::NodeId;
use crate::storage::{Backend, DbConn, Store};

/// What a service does after versions of cases were received and stored (eligibility refreshes
/// their views and receives new requests it decides). Called in its own transaction, after the
/// batch's; a failure is logged, the batch stands.
pub trait CaseReactions: Send + Sync {
    fn after_ingest(
        &self,
        conn: &mut DbConn,
        node: &LocalNode,
        case_ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;
}

/// What a service does after visits of children were received and stored (the visits service
/// brings the file's last visit and risk in line at the child's residence bureau). Called in its
/// own transaction per child, after the batch's; a failure is logged, the batch stands.
pub trait FileReactions: Send + Sync {
    fn after_visits(
        &self,
        conn: &mut DbConn,
        node: &LocalNode,
        child_ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;
}

/// How many times a batch is ingested when concurrent deliveries of the same versions race
/// (each race needs a delivery that committed in between, so a few attempts always suffice in
/// practice; past them the sender gets a 500 and retries later, as after any failure).
const INGEST_ATTEMPTS: u32 = 4;

/// What one peer may make this node hold (`[sync]` settings).
#[derive(Debug, Clone, Copy)]
pub struct PushLimits {
    /// Batches of one peer being received at once (past it: 503 `busy`).
    pub in_flight_per_peer: usize,
    /// Largest batches (of `max_bytes`) of all peers read, parsed and stored at once; the
    /// others admitted wait, their bodies unread. A smaller batch takes its share of that budget
    /// by its declared length ([`budget_units`]), so several ordinary batches are received at
    /// once — one verified while another is stored — within the same bound. What a batch holds
    /// while it is received (its body, its parsed versions, its records, its receipt: about six
    /// times its body) is bounded node-wide by this.
    pub at_once: usize,
    /// Versions in one batch.
    pub max_versions: usize,
    /// Bytes of one request body.
    pub max_bytes: usize,
}

impl Default for PushLimits {
    fn default() -> Self {
        PushLimits {
            in_flight_per_peer: 4,
            at_once: 1,
            max_versions: 5000,
            max_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Why a push was refused as a whole (each version's refusals are in the receipt instead).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{peer} already has {limit} batches being received; retry later")]
    Busy { peer: NodeId, limit: usize },
    #[error("the batch holds {count} versions; at most {limit} are accepted at once")]
    TooManyVersions { count: usize, limit: usize },
    #[error("the body is not valid JSON: {0}")]
    Malformed(String),
    #[error("not a push request: {0}")]
    Invalid(String),
    #[error("an object names the member {0:?} twice; send it once")]
    DuplicateKey(String),
    #[error("the body names {claimed} but the certificate is {peer}'s")]
    SenderMismatch { claimed: NodeId, peer: NodeId },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// A batch being received from a peer: while it lives, it counts against the peer's
/// [`PushLimits::in_flight_per_peer`], and holds its share of the node's budget
/// ([`PushLimits::at_once`] largest bodies).
pub struct Admission {
    counts: Arc<Mutex<HashMap<NodeId, usize>>>,
    peer: NodeId,
    working: Option<tokio::sync::OwnedSemaphorePermit>,
    at_once: Arc<tokio::sync::Semaphore>,
    /// The whole budget, in [`BUDGET_UNIT`]s: all of it available means no batch is being
    /// received.
    limit: usize,
    /// Set when a large body was received since memory was last given back (shared by all
    /// admissions): only a burst of large batches is worth a trim.
    large_since_trim: Arc<std::sync::atomic::AtomicBool>,
}

/// A body from this size up makes the node give memory back once it is idle again.
const LARGE_BODY: usize = 1024 * 1024;

/// The grain of the node's budget for batches being received, in bytes of body.
const BUDGET_UNIT: usize = 64 * 1024;

/// The share of the budget a batch of `declared` bytes takes (its declared length, or the
/// largest allowed body when it declared none, as a chunked body may grow to it): one unit per
/// [`BUDGET_UNIT`] begun, at least one, at most one largest body's worth (the bytes are capped
/// at the largest body first).
fn budget_units(declared: Option<usize>, limits: &PushLimits) -> usize {
    let bytes = declared.unwrap_or(limits.max_bytes).min(limits.max_bytes);
    bytes.div_ceil(BUDGET_UNIT).max(1)
}

/// The share of the budget the largest allowed body takes.
fn largest_units(limits: &PushLimits) -> usize {
    limits.max_bytes.div_ceil(BUDGET_UNIT).max(1)
}

/// The whole budget: [`PushLimits::at_once`] largest bodies.
fn budget_total(limits: &PushLimits) -> usize {
    largest_units(limits).saturating_mul(limits.at_once.max(1))
}

impl Admission {
    /// Notes the size of the body read for this batch.
    pub fn body_read(&self, len: usize) {
        if len >= LARGE_BODY {
            self.large_since_trim
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        {
            let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = counts.get_mut(&self.peer) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.remove(&self.peer);
                }
            }
        }
        if self.working.take().is_some()
            && self.at_once.available_permits() == self.limit
            && self
                .large_since_trim
                .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            // The last batch being received after large ones is done: once its answer is sent
            // too (a moment later), and if no other batch started meanwhile, what they held goes
            // back to the system.
            let (at_once, limit) = (self.at_once.clone(), self.limit);
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(500));
                if at_once.available_permits() == limit {
                    crate::sync::memory::give_back_freed_memory();
                }
            });
        }
    }
}

/// Reads a push request from its body: the sender first (it must be `peer`), then how many
/// versions it holds (borrowed, unparsed), and only then each version. The body is borrowed
/// throughout: the versions are parsed from it once, into their final form.
pub fn parse_push(
    body: &[u8],
    peer: &NodeId,
    max_versions: usize,
) -> Result<PushRequest, PushError> {
    use serde::Deserialize;
    use serde_json::value::RawValue;
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw<'a> {
        sender: NodeId,
        #[serde(borrow)]
        versions: Vec<&'a RawValue>,
        #[serde(default)]
        tree_head: Option<crate::audit::SignedTreeHead>,
    }
    let classify = |e: serde_json::Error| {
        if e.is_data() {
            PushError::Invalid(e.to_string())
        } else {
            PushError::Malformed(e.to_string())
        }
    };
    // A signed body must have one meaning: a repeated member name is refused, not resolved.
    match crate::crypto::jcs::first_duplicate_key(body) {
        Ok(Some(name)) => return Err(PushError::DuplicateKey(name)),
        Ok(None) => {}
        Err(e) => return Err(PushError::Malformed(e.to_string())),
    }
    let raw: Raw<'_> = serde_json::from_slice(body).map_err(classify)?;
    if &raw.sender != peer {
        return Err(PushError::SenderMismatch {
            claimed: raw.sender,
            peer: peer.clone(),
        });
    }
    if raw.versions.len() > max_versions {
        return Err(PushError::TooManyVersions {
            count: raw.versions.len(),
            limit: max_versions,
        });
    }
    let versions = raw
        .versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_str(v.get())
                .map_err(|e| PushError::Invalid(format!("versions[{i}]: {e}")))
        })
        .collect::<Result<_, _>>()?;
    Ok(PushRequest {
        sender: raw.sender,
        versions,
        tree_head: raw.tree_head,
    })
}

/// The receiving side of the exchange.
pub struct Receiver {
    store: Store,
    node: Arc<LocalNode>,
    cases: Arc<dyn CaseReactions>,
    files: Arc<dyn FileReactions>,
    limits: PushLimits,
    in_flight: Arc<Mutex<HashMap<NodeId, usize>>>,
    at_once: Arc<tokio::sync::Semaphore>,
    large_since_trim: Arc<std::sync::atomic::AtomicBool>,
}

impl Receiver {
    pub fn new(
        store: Store,
        node: Arc<LocalNode>,
        cases: Arc<dyn CaseReactions>,
        files: Arc<dyn FileReactions>,
        limits: PushLimits,
    ) -> Self {
        Receiver {
            store,
            node,
            cases,
            files,
            limits,
            in_flight: Arc::default(),
            at_once: Arc::new(tokio::sync::Semaphore::new(budget_total(&limits))),
            large_since_trim: Arc::default(),
        }
    }

    pub fn limits(&self) -> PushLimits {
        self.limits
    }

    /// Admits one more batch of `peer`, whose body declares `declared` bytes (`None`: no
    /// length), or refuses it at once when the peer already has
    /// [`PushLimits::in_flight_per_peer`] being received; then waits for the batch's share of
    /// the node's budget ([`PushLimits::at_once`]; first come, first served, so a large batch
    /// is not overtaken forever by small ones). Called before the body is read.
    pub async fn admit(
        &self,
        peer: &NodeId,
        declared: Option<usize>,
    ) -> Result<Admission, PushError> {
        let limit = self.limits.in_flight_per_peer;
        {
            let mut counts = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            let n = counts.entry(peer.clone()).or_insert(0);
            if *n >= limit {
                return Err(PushError::Busy {
                    peer: peer.clone(),
                    limit,
                });
            }
            *n += 1;
        }
        let mut admission = Admission {
            counts: self.in_flight.clone(),
            peer: peer.clone(),
            working: None,
            at_once: self.at_once.clone(),
            limit: budget_total(&self.limits),
            large_since_trim: self.large_since_trim.clone(),
        };
        // Never closed: an error cannot happen; if it did, the batch goes on without a permit.
        // A share is at most the whole budget (`budget_units`), so it is always granted in time.
        let units = u32::try_from(budget_units(declared, &self.limits)).unwrap_or(u32::MAX);
        admission.working = self.at_once.clone().acquire_many_owned(units).await.ok();
        Ok(admission)
    }

    /// Receives a batch from `peer` (authenticated by the caller; `request.sender` is it) and
    /// returns the receipt this node signed and stored with it.
    pub async fn receive(
        &self,
        peer: NodeId,
        request: PushRequest,
    ) -> Result<SignedReceipt, LedgerError> {
        let node = self.node.clone();
        let dir = node
            .directory
            .as_ref()
            .map(|d| d.current())
            .ok_or_else(|| LedgerError::Internal("peer listener without a directory".into()))?;
        let now = Utc::now();
        // SQLite runs one writer at a time: there a unique violation is never a race.
        let may_race = matches!(self.store.backend(), Backend::Postgres);
        let (outcome, receipt) = self
            .store
            .run(move |c| {
                // The receipt says "stored": its commit is durable before it is sent.
                let stored = crate::storage::durable_commits(c, |c| {
                    ingest_with_retries(c, &node, &dir, &peer, &request, now, may_race)
                })?;
                // The sender's tree head is kept on its own, after the batch: inside the batch's
                // transaction, two batches from one peer carrying the same head would each hold
                // what the other waits for (on PostgreSQL, a deadlock).
                if let Some(h) = &request.tree_head {
                    receipt::witness(c, &dir, &peer, h, now)?;
                }
                Ok::<_, LedgerError>(stored)
            })
            .await?;
        if !outcome.cases.is_empty() {
            self.react_to_cases(outcome.cases.clone()).await;
        }
        if !outcome.visited_children.is_empty() {
            let (node, files) = (self.node.clone(), self.files.clone());
            let children = outcome.visited_children.clone();
            let r = self
                .store
                .run(move |c| {
                    files
                        .after_visits(c, &node, &children, Utc::now())
                        .map_err(|e| LedgerError::Internal(e.to_string()))
                })
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "could not bring files in line with received visits");
            }
        }
        if outcome.stored > 0 {
            self.node.wake_senders();
        }
        Ok(receipt)
    }

    /// New requests this node decides are received at once (in their own transaction).
    async fn react_to_cases(&self, cases: Vec<String>) {
        let node = self.node.clone();
        let reactions = self.cases.clone();
        let r = self
            .store
            .run(move |c| {
                reactions
                    .after_ingest(c, &node, &cases, Utc::now())
                    .map_err(|e| LedgerError::Internal(e.to_string()))
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "could not process received case versions");
        }
    }
}

/// Ingests the batch with its signed receipt in one transaction. The same versions may arrive
/// twice at once (a sender's retry while the first delivery is still being stored, or one
/// version forwarded by two parties). On PostgreSQL the later transaction then fails on a key the
/// earlier one committed; run again, it finds those versions stored and acknowledges them as
/// duplicates.
fn ingest_with_retries(
    c: &mut DbConn,
    node: &LocalNode,
    dir: &Directory,
    peer: &NodeId,
    request: &PushRequest,
    now: DateTime<Utc>,
    may_race: bool,
) -> Result<(IngestOutcome, SignedReceipt), LedgerError> {
    let batch = request.batch_digest(node.hash);
    let mut attempt = 1;
    loop {
        let stored = ingest::ingest(c, node, dir, peer, &request.versions, now, |c, outcome| {
            sign_and_store_receipt(c, node, peer, batch, outcome, now)
        });
        match stored {
            Err(e) if may_race && e.is_write_race() && attempt < INGEST_ATTEMPTS => {
                tracing::info!(
                    %peer,
                    attempt,
                    "a concurrent delivery stored some of this batch first; ingesting it again"
                );
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The receipt for a batch, signed, and kept (non-repudiation both ways) with the batch it
/// answers, inside the batch's transaction.
fn sign_and_store_receipt(
    c: &mut DbConn,
    node: &LocalNode,
    peer: &NodeId,
    batch: crate::crypto::hash::Digest,
    outcome: &IngestOutcome,
    now: DateTime<Utc>,
) -> Result<SignedReceipt, LedgerError> {
    let receipt = ReceiptBody {
        issuer: node.id.clone(),
        recipient: peer.clone(),
        issued_at: now,
        batch,
        accepted: outcome.accepted.clone(),
        rejected: outcome.rejected.clone(),
        tree_head: audit::log::latest_tree_head(c)?,
    }
    .sign(&node.key)
    .map_err(|e| LedgerError::Internal(e.to_string()))?;
    receipt::store(c, node.hash, &receipt, now.naive_utc())?;
    Ok(receipt)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The budget is `at_once` largest bodies; a batch takes a share by its declared length.
    #[test]
    fn a_batch_takes_its_share_of_the_budget_by_its_declared_length() {
        let limits = PushLimits::default();
        let largest = largest_units(&limits);
        assert_eq!(largest, 256, "16 MiB in 64 KiB units");
        assert_eq!(budget_total(&limits), largest);
        assert_eq!(budget_units(Some(2 * 1024 * 1024), &limits), 32);
        assert_eq!(budget_units(Some(64 * 1024 + 1), &limits), 2);
        assert_eq!(budget_units(Some(0), &limits), 1, "at least one unit");
        // No declared length: it may grow to the limit. Past the limit: the listener refuses
        // it (413) once admitted; it never takes more than the whole budget.
        assert_eq!(budget_units(None, &limits), largest);
        assert_eq!(budget_units(Some(usize::MAX), &limits), largest);
        let two = PushLimits {
            at_once: 2,
            ..limits
        };
        assert_eq!(budget_total(&two), 2 * largest);
    }

    /// Ordinary batches are received side by side; a largest one waits for the budget, and
    /// one that comes after it waits behind it (first come, first served).
    #[tokio::test]
    async fn ordinary_batches_share_the_budget_and_a_large_one_is_not_overtaken() {
        let limits = PushLimits::default();
        let budget = Arc::new(tokio::sync::Semaphore::new(budget_total(&limits)));
        let units = move |declared| u32::try_from(budget_units(declared, &limits)).unwrap();
        let small = Some(2 * 1024 * 1024);
        let first = budget.clone().try_acquire_many_owned(units(small)).unwrap();
        let second = budget.clone().try_acquire_many_owned(units(small)).unwrap();
        let large = tokio::spawn({
            let budget = budget.clone();
            async move { budget.acquire_many_owned(units(None)).await.unwrap() }
        });
        // Queued first, the large batch takes what is free and waits for the rest.
        for _ in 0..10_000 {
            if budget.available_permits() == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(budget.available_permits(), 0);
        assert!(!large.is_finished());
        // A small batch arriving now waits behind it.
        assert!(budget.try_acquire_many(units(small)).is_err());
        drop((first, second));
        let large = large.await.unwrap();
        assert_eq!(budget.available_permits(), 0);
        drop(large);
        assert_eq!(budget.available_permits(), budget_total(&limits));
    }
}
