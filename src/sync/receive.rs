//! Receiving a peer's batch (DESIGN §6): the service behind `POST /peer/v1/versions`. Given the
//! authenticated peer and its parsed request, it verifies and ingests the versions, signs and
//! stores the receipt in the batch's transaction, retries the write races of concurrent
//! deliveries on PostgreSQL, witnesses the sender's tree head, wakes the senders when something
//! new must be forwarded, and lets the services that react to received case versions react
//! ([`CaseReactions`], which eligibility implements; `startup` wires it in).

use std::sync::Arc;

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

/// How many times a batch is ingested when concurrent deliveries of the same versions race
/// (each race needs a delivery that committed in between, so a few attempts always suffice in
/// practice; past them the sender gets a 500 and retries later, as after any failure).
const INGEST_ATTEMPTS: u32 = 4;

/// The receiving side of the exchange.
pub struct Receiver {
    store: Store,
    node: Arc<LocalNode>,
    cases: Arc<dyn CaseReactions>,
}

impl Receiver {
    pub fn new(store: Store, node: Arc<LocalNode>, cases: Arc<dyn CaseReactions>) -> Self {
        Receiver { store, node, cases }
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
                let stored = ingest_with_retries(c, &node, &dir, &peer, &request, now, may_race)?;
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
    let batch = request.batch_digest();
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
    receipt::store(c, &receipt, now.naive_utc())?;
    Ok(receipt)
}
