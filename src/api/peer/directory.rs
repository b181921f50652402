//! `GET /peer/v1/directory`: a node of the directory asks which signed directory this node
//! uses (the job `jobs::directory_fetch` asks each peer, to reach a newer serial without anyone
//! copying files). The answer is the signed directory file this node verified, byte for byte:
//! public content (nodes, endpoints, fingerprints, keys), no child data, bounded by the
//! directory's own size limit, served from memory. The asking peer is authenticated by its
//! certificate as on every peer route; it must verify what it receives against its own
//! authority key, so serving it proves nothing by itself.

use actix_web::{get, web, HttpRequest, HttpResponse};

use super::authenticate;
use crate::api::error::ApiError;
use crate::api::AppState;

#[get("/peer/v1/directory")]
pub async fn current(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &req).await?;
    let dir = state
        .node
        .directory
        .as_ref()
        .map(|d| d.current())
        .ok_or_else(|| ApiError::internal("peer listener without a directory"))?;
    let body = web::Bytes::from_owner(dir.signed_json().clone());
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("X-Directory-Serial", dir.serial().to_string()))
        .body(body))
}
