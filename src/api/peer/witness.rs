//! `POST /peer/v1/witness/add-checkpoint` (C2SP tlog-witness over the peer listener): a peer
//! sends its latest checkpoint with a consistency proof and gets this node's `cosignature/v1`,
//! a 409 naming the size this node last cosigned (`text/x.tlog.size`), or a refusal
//! (problem+json; 422 when the log misbehaved, with the evidence kept). The service is
//! `sync::witness::add_checkpoint`.

use actix_web::{post, web, HttpRequest, HttpResponse};
use chrono::Utc;

use super::authenticate;
use crate::api::error::ApiError;
use crate::api::AppState;
use crate::audit::witness::MAX_REQUEST_BYTES;
use crate::sync::witness::{self, WitnessError};

/// Witness a peer's checkpoint.
#[post("/peer/v1/witness/add-checkpoint")]
pub async fn add_checkpoint(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let peer = authenticate(&state, &req).await?;
    if body.len() > MAX_REQUEST_BYTES {
        return Err(ApiError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("an add-checkpoint body is at most {MAX_REQUEST_BYTES} bytes"),
        ));
    }
    let node = state.node.clone();
    let dir = node
        .directory
        .as_ref()
        .map(|d| d.current())
        .ok_or_else(|| ApiError::internal("peer listener without a directory"))?;
    let answer = state
        .store
        .run(move |c| witness::add_checkpoint(c, &node, &dir, &peer, &body, Utc::now()))
        .await;
    match answer {
        Ok(lines) => Ok(HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(lines)),
        Err(WitnessError::Conflict { held }) => Ok(HttpResponse::Conflict()
            .content_type("text/x.tlog.size")
            .body(format!("{held}\n"))),
        Err(e) => Err(e.into()),
    }
}
