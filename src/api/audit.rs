//! `/api/v1/audit`: events with filters, an event with its inclusion proof, consistency proofs,
//! and signed tree heads. Every read of the log is itself recorded in it.

use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use super::auth::Caller;
use super::error::{ApiError, Problem};
use super::{now, AppState};
use crate::accounts::Permission;
use crate::audit::log::{self, AuditEntry, ConsistencyProof, SignedTreeHead};
use crate::storage::audit::EventFilter;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Actor id, e.g. `console:root` or a node id.
    actor: Option<String>,
    /// Action, e.g. `child.read`.
    action: Option<String>,
    object_kind: Option<String>,
    object_id: Option<String>,
    /// RFC 3339, inclusive.
    since: Option<DateTime<Utc>>,
    /// RFC 3339, exclusive.
    until: Option<DateTime<Utc>>,
    /// Keyset paging: events after this sequence number.
    after_seq: Option<i64>,
    /// 1 to 1000, default 100.
    limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EventPage {
    items: Vec<AuditEntry>,
}

/// List audit events.
#[utoipa::path(get, path = "/api/v1/audit/events", tag = "audit", operation_id = "list_audit_events", params(EventQuery),
    responses((status = 200, body = EventPage), (status = 400, description = "invalid_query", body = Problem, content_type = "application/problem+json")))]
#[get("/api/v1/audit/events")]
pub async fn events(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<EventQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("invalid_query", "limit is 1 to 1000").field("limit"));
    }
    let filter = EventFilter {
        actor_id: q.actor,
        action: q.action,
        object_kind: q.object_kind,
        object_id: q.object_id,
        since: q.since.map(|t| t.naive_utc()),
        until: q.until.map(|t| t.naive_utc()),
        after_seq: q.after_seq,
        limit: i64::from(limit),
    };
    let actor = caller.require(&state, Permission::ReadAudit).await?;
    let node = state.node.clone();
    let items = state
        .store
        .run(move |conn| log::read_events(conn, &filter, &actor, node.clock.now(), now()))
        .await?;
    Ok(HttpResponse::Ok().json(EventPage { items }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EventWithProof {
    entry: AuditEntry,
    tree_head: SignedTreeHead,
}

/// One event with its inclusion proof against the latest signed tree head.
#[utoipa::path(get, path = "/api/v1/audit/events/{seq}", tag = "audit", operation_id = "read_audit_event",
    params(("seq" = i64, Path, description = "Sequence number")),
    responses((status = 200, body = EventWithProof), (status = 404, description = "not_found", body = Problem, content_type = "application/problem+json")))]
#[get("/api/v1/audit/events/{seq}")]
pub async fn event(
    state: web::Data<AppState>,
    caller: Caller,
    seq: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let seq = seq.into_inner();
    let actor = caller.require(&state, Permission::ReadAudit).await?;
    let node = state.node.clone();
    let (entry, head) = state
        .store
        .run(move |conn| log::read_event(conn, seq, &actor, node.clock.now(), now()))
        .await?;
    Ok(HttpResponse::Ok().json(EventWithProof {
        entry,
        tree_head: head,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    old_size: u64,
    new_size: u64,
}

/// RFC 9162 consistency proof between two tree sizes.
#[utoipa::path(get, path = "/api/v1/audit/consistency", tag = "audit", operation_id = "audit_consistency", params(ConsistencyQuery),
    responses((status = 200, body = ConsistencyProof), (status = 400, description = "invalid_range or invalid_query", body = Problem, content_type = "application/problem+json")))]
#[get("/api/v1/audit/consistency")]
pub async fn consistency(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<ConsistencyQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&state, Permission::ReadAudit).await?;
    let (old, new) = (q.old_size, q.new_size);
    let proof = state
        .store
        .run(move |conn| log::consistency(conn, old, new))
        .await?;
    Ok(HttpResponse::Ok().json(proof))
}

/// The latest signed tree head.
#[utoipa::path(get, path = "/api/v1/audit/tree-head", tag = "audit", operation_id = "read_tree_head",
    responses((status = 200, body = SignedTreeHead), (status = 404, description = "not_found", body = Problem, content_type = "application/problem+json")))]
#[get("/api/v1/audit/tree-head")]
pub async fn tree_head(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    caller.require(&state, Permission::ReadAudit).await?;
    let head = state
        .store
        .run(|conn| log::latest_tree_head(conn)?.ok_or(crate::audit::AuditError::NoTreeHead))
        .await?;
    Ok(HttpResponse::Ok().json(head))
}

/// Sign a tree head for the current size now (also done on the configured interval).
#[utoipa::path(post, path = "/api/v1/audit/tree-head", tag = "audit", operation_id = "sign_tree_head", responses((status = 200, body = SignedTreeHead)))]
#[post("/api/v1/audit/tree-head")]
pub async fn sign_tree_head(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    caller.require(&state, Permission::Operate).await?;
    let node = state.node.clone();
    let head = state
        .store
        .run(move |conn| log::sign_tree_head(conn, &node.key, now()))
        .await?;
    Ok(HttpResponse::Ok().json(head))
}
