//! `/api/v1/peers`: delivery state of each peer (outbox depth, lag, last success, last error).

use actix_web::{get, web, HttpResponse};

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;
use crate::accounts::Permission;
use crate::sync::sender::{self, PeerStatus};

/// Delivery state of every peer.
#[utoipa::path(get, path = "/api/v1/peers", tag = "exchange", operation_id = "list_peers", responses((status = 200, body = Vec<PeerStatus>)))]
#[get("/api/v1/peers")]
pub async fn peers(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require(&state, Permission::ViewOperations).await?;
    let node = state.node.clone();
    let list = state
        .store
        .run(move |c| sender::peer_statuses(c, &node))
        .await?;
    Ok(HttpResponse::Ok().json(list))
}
