//! `POST /peer/v1/lookup` and `POST /peer/v1/handover`: another bureau asks whether this node
//! holds a child's file (answered with a signed statement) and asks it to hand the child's
//! residence role over. The peer is the node of the verified client certificate; the service is
//! `sync::lookup`.

use actix_web::{post, web, HttpRequest, HttpResponse};
use chrono::Utc;

use super::{authenticate, read_body};
use crate::api::cases::parse;
use crate::api::error::ApiError;
use crate::api::input::parse_json;
use crate::api::AppState;
use crate::sync::lookup::{self as service, HandoverRequest, LookupRequest, MAX_BODY_BYTES};

/// Answer a lookup with a signed statement.
#[post("/peer/v1/lookup")]
pub async fn answer(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let peer = authenticate(&state, &req).await?;
    let body = read_body(&req, body, MAX_BODY_BYTES).await?;
    let request: LookupRequest = parse(parse_json(&body)?)?;
    let node = state.node.clone();
    let statement = state
        .store
        .run(move |c| service::answer(c, &node, &peer, &request, Utc::now()))
        .await?;
    Ok(HttpResponse::Ok().json(statement))
}

/// Hand a child's residence role over to the asking bureau.
#[post("/peer/v1/handover")]
pub async fn hand_over(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let peer = authenticate(&state, &req).await?;
    let body = read_body(&req, body, MAX_BODY_BYTES).await?;
    let request: HandoverRequest = parse(parse_json(&body)?)?;
    let node = state.node.clone();
    let granted = state
        .store
        .run(move |c| service::grant_handover(c, &node, &peer, &request, Utc::now()))
        .await?;
    Ok(HttpResponse::Ok().json(granted))
}
