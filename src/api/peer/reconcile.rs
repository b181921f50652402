//! Reconciliation's responder routes on the peer listener (mutual TLS), under
//! `/peer/v1/reconcile/`: the asking peer is the node of the verified client certificate
//! (`peer::authenticate`), never a body field — bodies name no node at all and unknown fields
//! are refused — and every answer is about the documents both are party to.

use actix_web::{post, web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::de::DeserializeOwned;

use super::authenticate;
use crate::api::error::ApiError;
use crate::api::AppState;
use crate::reconcile::serve::{
    self, BucketsRequest, NodesRequest, RootRequest, VersionsRequest, WantRequest,
};

/// Reads a JSON body of at most `serve::MAX_BODY` bytes: 413, 400 or 422 problem+json otherwise.
async fn read_json<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, ApiError> {
    let body = super::read_body(req, payload, serve::MAX_BODY).await?;
    if let Ok(Some(name)) = crate::crypto::jcs::first_duplicate_key(&body) {
        return Err(ApiError::bad_request(
            "duplicate_key",
            "an object names this member twice; send it once",
        )
        .field(name));
    }
    serde_json::from_slice(&body).map_err(|e| {
        if e.is_data() {
            ApiError::unprocessable("invalid_body", format!("not a valid request: {e}"))
        } else {
            ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}"))
        }
    })
}

/// Registers the peer routes (called by `peer::configure`).
pub fn configure_peer(cfg: &mut web::ServiceConfig) {
    cfg.service(peer_root)
        .service(peer_nodes)
        .service(peer_buckets)
        .service(peer_versions)
        .service(peer_want);
}

/// The root of the summary kept for the asking peer.
#[post("/peer/v1/reconcile/root")]
pub async fn peer_root(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let peer = authenticate(&state, &req).await?;
    let _: RootRequest = read_json(&req, payload).await?;
    let node = state.node.clone();
    let resp = state
        .store
        .run(move |c| serve::root(c, &node, &peer, Utc::now()))
        .await?;
    Ok(HttpResponse::Ok().json(resp))
}

#[post("/peer/v1/reconcile/nodes")]
pub async fn peer_nodes(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let peer = authenticate(&state, &req).await?;
    let body: NodesRequest = read_json(&req, payload).await?;
    let alg = state.node.hash;
    let resp = state
        .store
        .run(move |c| serve::nodes(c, alg, &peer, &body))
        .await?;
    Ok(HttpResponse::Ok().json(resp))
}

#[post("/peer/v1/reconcile/buckets")]
pub async fn peer_buckets(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let peer = authenticate(&state, &req).await?;
    let body: BucketsRequest = read_json(&req, payload).await?;
    let resp = state
        .store
        .run(move |c| serve::buckets(c, &peer, &body))
        .await?;
    Ok(HttpResponse::Ok().json(resp))
}

#[post("/peer/v1/reconcile/versions")]
pub async fn peer_versions(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let peer = authenticate(&state, &req).await?;
    let body: VersionsRequest = read_json(&req, payload).await?;
    let resp = state
        .store
        .run(move |c| serve::versions(c, &peer, &body))
        .await?;
    Ok(HttpResponse::Ok().json(resp))
}

/// Queue versions for the asking peer; this node's sender delivers them by push.
#[post("/peer/v1/reconcile/want")]
pub async fn peer_want(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let peer = authenticate(&state, &req).await?;
    let body: WantRequest = read_json(&req, payload).await?;
    let node = state.node.clone();
    let resp = state
        .store
        .run(move |c| serve::want(c, &node, &peer, &body, Utc::now()))
        .await?;
    if resp.queued > 0 {
        state.node.wake_senders();
    }
    Ok(HttpResponse::Ok().json(resp))
}
