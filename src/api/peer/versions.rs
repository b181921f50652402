//! `POST /peer/v1/versions`: a peer pushes a batch of signed versions and gets a signed receipt.

use actix_web::{post, web, HttpRequest, HttpResponse};
use chrono::Utc;

use super::authenticate;
use crate::api::error::ApiError;
use crate::api::AppState;
use crate::audit;
use crate::sync::ingest;
use crate::sync::receipt::{PushRequest, ReceiptBody};

/// How many times a batch is ingested when concurrent deliveries of the same versions race
/// (each race needs a delivery that committed in between, so a few attempts always suffice in
/// practice; past them the sender gets a 500 and retries later, as after any failure).
const INGEST_ATTEMPTS: u32 = 4;

/// Receive a batch of signed versions; answer with a signed receipt.
#[post("/peer/v1/versions")]
pub async fn push_versions(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let peer = authenticate(&state, &req).await?;
    let request: PushRequest = serde_json::from_slice(&body).map_err(|e| {
        if e.is_data() {
            ApiError::unprocessable("invalid_body", format!("not a push request: {e}"))
        } else {
            ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}"))
        }
    })?;
    if request.sender != peer {
        return Err(ApiError::new(
            actix_web::http::StatusCode::FORBIDDEN,
            "sender_mismatch",
            format!(
                "the body names {} but the certificate is {peer}'s",
                request.sender
            ),
        )
        .field("sender"));
    }
    let node = state.node.clone();
    let dir = node
        .directory
        .as_ref()
        .map(|d| d.current())
        .ok_or_else(|| ApiError::internal("peer listener without a directory"))?;
    let batch = request.batch_digest();
    let now = Utc::now();
    // SQLite runs one writer at a time: there a unique violation is never a race.
    let may_race = matches!(state.store.backend(), crate::storage::Backend::Postgres);
    let (outcome, receipt) = state
        .store
        .run(move |c| {
            // The same versions may arrive twice at once (a sender's retry while the first
            // delivery is still being stored, or one version forwarded by two parties). On
            // PostgreSQL the later transaction then fails on a key the earlier one committed;
            // run again, it finds those versions stored and acknowledges them as duplicates.
            let mut attempt = 1;
            let stored = loop {
                let stored = ingest::ingest(
                    c,
                    &node,
                    &dir,
                    &peer,
                    &request.versions,
                    now,
                    |c, outcome| {
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
                        .map_err(|e| crate::sync::LedgerError::Internal(e.to_string()))?;
                        // Keep what we signed (non-repudiation both ways), with the batch it
                        // answers.
                        crate::sync::receipt::store(c, &receipt, now.naive_utc())?;
                        Ok(receipt)
                    },
                );
                match stored {
                    Err(e) if may_race && e.is_write_race() && attempt < INGEST_ATTEMPTS => {
                        tracing::info!(
                            %peer,
                            attempt,
                            "a concurrent delivery stored some of this batch first; \
                             ingesting it again"
                        );
                        attempt += 1;
                    }
                    other => break other?,
                }
            };
            // The sender's tree head is kept on its own, after the batch: inside the batch's
            // transaction, two batches from one peer carrying the same head would each hold
            // what the other waits for (on PostgreSQL, a deadlock).
            if let Some(h) = &request.tree_head {
                crate::sync::receipt::witness(c, &dir, &peer, h, now)?;
            }
            Ok::<_, crate::sync::LedgerError>(stored)
        })
        .await?;
    if !outcome.cases.is_empty() {
        // New requests this node decides are received at once (in their own transaction).
        let node = state.node.clone();
        let deadlines = state.deadlines.clone();
        let cases = outcome.cases.clone();
        let r = state
            .store
            .run(move |c| {
                crate::eligibility::service::after_ingest(c, &node, &deadlines, &cases, Utc::now())
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "could not process received case versions");
        }
    }
    if outcome.stored > 0 {
        state.node.wake_senders();
    }
    Ok(HttpResponse::Ok().json(receipt))
}
