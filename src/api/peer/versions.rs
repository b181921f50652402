//! `POST /peer/v1/versions`: a peer pushes a batch of signed versions and gets a signed receipt.
//! The peer is admitted (batches in flight) before its body is read, the body is read up to the
//! byte limit, and the versions are counted before any is parsed (`sync::receive`).

use actix_web::{post, web, HttpRequest, HttpResponse};

use super::authenticate;
use crate::api::error::ApiError;
use crate::api::AppState;
use crate::audit::{Actor, ActorKind, Event, Outcome, Via};
use crate::sync::receive::{self, PushError};

/// Receive a batch of signed versions; answer with a signed receipt.
#[post("/peer/v1/versions")]
pub async fn push_versions(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let peer = authenticate(&state, &req).await?;
    let receiver = &state.receiver;
    let admission = receiver.admit(&peer, super::declared_length(&req)).await?;
    let limits = receiver.limits();
    let body = super::read_body(&req, payload, limits.max_bytes).await?;
    admission.body_read(body.len());
    let request = match receive::parse_push(&body, &peer, limits.max_versions) {
        Ok(r) => r,
        Err(e @ PushError::SenderMismatch { .. }) => {
            let actor = Actor {
                kind: ActorKind::Node,
                id: peer.to_string(),
                via: Via::Peer,
                scope: crate::domain::Scope::whole_node(),
            };
            let details = serde_json::json!({"code": "sender_mismatch", "reason": e.to_string()});
            state
                .record(Event::new(actor, "peer.refused", Outcome::Denied).details(details))
                .await;
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    // The versions are parsed: the body's bytes are not needed while they are stored.
    drop(body);
    let from = peer.clone();
    let receipt = receiver.receive(peer, request).await?;
    // Inside the request's span: JSON logs carry the sender's request id with it.
    tracing::info!(
        peer = %from,
        accepted = receipt.receipt.accepted.len(),
        rejected = receipt.receipt.rejected.len(),
        "batch received"
    );
    Ok(HttpResponse::Ok().json(receipt))
}
