//! `GET /peer/v1/evidence/{sha256}`: the deciding bureau fetches an evidence file a case names
//! (the pull of `eligibility::evidence`). Served only to a peer (the node of the verified client
//! certificate) that is the requester or decider of a case stored here naming the file; to any
//! other peer, and for a file not stored here, the same 404 — the route tells nobody what exists.

use actix_web::{get, web, HttpRequest, HttpResponse};
use chrono::Utc;

use super::authenticate;
use crate::api::error::ApiError;
use crate::api::AppState;
use crate::crypto::hash::Digest;
use crate::eligibility::evidence;

#[get("/peer/v1/evidence/{sha256}")]
pub async fn file(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let peer = authenticate(&state, &req).await?;
    let not_found = || ApiError::not_found("no such evidence file for this peer");
    let sha256: Digest = path.parse().map_err(|_| not_found())?;
    let (node, vault) = (state.node.clone(), state.evidence.clone());
    let served = state
        .store
        .run(move |c| evidence::serve_to_peer(c, &node, &vault, &peer, &sha256, Utc::now()))
        .await?;
    let (media, bytes) = served.ok_or_else(not_found)?;
    Ok(HttpResponse::Ok()
        .content_type(media.as_str())
        .insert_header((actix_web::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(bytes))
}
