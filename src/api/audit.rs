//! `/api/v1/audit`: events with filters, an event with its inclusion proof, consistency proofs,
//! and signed tree heads. Every read of the log is itself recorded in it.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use super::auth::Caller;
use super::error::{ApiError, Problem};
use super::{input, now, AppState};
use crate::accounts::Permission;
use crate::audit::log::{self, AuditEntry, ConsistencyProof, SignedTreeHead};
use crate::domain::IdNumber;
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
    /// RFC 3339 (years 0001 to 9999), inclusive; 422 `invalid_field` otherwise.
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
    /// RFC 3339 (years 0001 to 9999), exclusive; 422 `invalid_field` otherwise.
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<String>,
    /// Keyset paging: the `next_after` of the previous page (events after this sequence number).
    #[param(minimum = 0)]
    after: Option<i64>,
    /// 1 to 1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

impl input::Bounds for EventQuery {
    fn check_bounds(&self) -> Result<(), ApiError> {
        input::within("after", self.after, input::limits::SEQ)?;
        input::within("limit", self.limit, input::limits::AUDIT_PAGE)
    }
}

/// An RFC 3339 time of a filter, compared as a time: 422 `invalid_field` naming the parameter
/// when it is not one (or its year is outside 0001..=9999, which RFC 3339 cannot write).
fn filter_time(field: &'static str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    let bad = || {
        ApiError::unprocessable(
            "invalid_field",
            "an RFC 3339 time with a four-digit year, e.g. 2026-12-05T10:00:00Z",
        )
        .field(field)
    };
    if !raw.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return Err(bad());
    }
    let t = DateTime::parse_from_rfc3339(raw).map_err(|_| bad())?;
    let t = t.with_timezone(&Utc);
    if !(1..=9999).contains(&chrono::Datelike::year(&t)) {
        return Err(bad());
    }
    Ok(Some(t))
}

/// Masks every ID number in an event shown to a role that may not read children's data (an
/// auditor): `object_id`, `purpose` and every string of `details` (`4101**********0012`, as the
/// logs write them). The leaf hash stays the stored event's, so such a reader cannot recompute
/// it; full events are for roles that may read children, and for `audit export`.
fn mask_entry(entry: &mut AuditEntry) {
    fn mask_value(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => *s = IdNumber::mask_within(s),
            serde_json::Value::Array(items) => items.iter_mut().for_each(mask_value),
            serde_json::Value::Object(map) => map.values_mut().for_each(mask_value),
            _ => {}
        }
    }
    if let Some(id) = entry.event.object_id.as_mut() {
        *id = IdNumber::mask_within(id);
    }
    if let Some(p) = entry.event.purpose.as_mut() {
        *p = IdNumber::mask_within(p);
    }
    mask_value(&mut entry.details);
}

/// A page of events, oldest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventPage {
    items: Vec<AuditEntry>,
    /// Pass as `after` for the next page; absent on the last page.
    next_after: Option<i64>,
}

/// List audit events.
#[utoipa::path(get, path = "/api/v1/audit/events", tag = "audit", operation_id = "list_audit_events", params(EventQuery),
    responses((status = 200, body = EventPage), (status = 400, description = "invalid_query", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_field: since or until is not an RFC 3339 time", body = Problem, content_type = "application/problem+json")))]
#[get("/api/v1/audit/events")]
pub async fn events(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::ReadAudit).await?;
    let q: EventQuery = input::query(&req)?;
    let limit = q.limit.unwrap_or(100);
    let since = filter_time("since", q.since.as_deref())?;
    let until = filter_time("until", q.until.as_deref())?;
    let filter = EventFilter {
        actor_id: q.actor,
        action: q.action,
        object_kind: q.object_kind,
        object_id: q.object_id,
        since: since.map(|t| t.naive_utc()),
        until: until.map(|t| t.naive_utc()),
        after_seq: q.after,
        limit: i64::from(limit),
    };
    let node = state.node.clone();
    let mut items = state
        .store
        .run(move |conn| log::read_events(conn, &filter, &actor, node.clock.now(), now()))
        .await?;
    if !caller.principal.allows(Permission::ReadChildren) {
        items.iter_mut().for_each(mask_entry);
    }
    let next_after = (items.len() == limit as usize)
        .then(|| items.last().map(|e| e.event.seq))
        .flatten();
    Ok(HttpResponse::Ok().json(EventPage { items, next_after }))
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
    seq: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::ReadAudit).await?;
    let seq: i64 = seq
        .parse()
        .ok()
        .filter(|s| input::limits::SEQ.contains(s))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_path",
                "a sequence number is a non-negative integer",
            )
            .field("seq")
        })?;
    let node = state.node.clone();
    let (mut entry, head) = state
        .store
        .run(move |conn| log::read_event(conn, seq, &actor, node.clock.now(), now()))
        .await?;
    if !caller.principal.allows(Permission::ReadChildren) {
        mask_entry(&mut entry);
    }
    Ok(HttpResponse::Ok().json(EventWithProof {
        entry,
        tree_head: head,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    old_size: u64,
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    new_size: u64,
}

impl input::Bounds for ConsistencyQuery {
    fn check_bounds(&self) -> Result<(), ApiError> {
        input::within("old_size", Some(self.old_size), input::limits::TREE_SIZE)?;
        input::within("new_size", Some(self.new_size), input::limits::TREE_SIZE)
    }
}

/// RFC 9162 consistency proof between two tree sizes.
#[utoipa::path(get, path = "/api/v1/audit/consistency", tag = "audit", operation_id = "audit_consistency", params(ConsistencyQuery),
    responses((status = 200, body = ConsistencyProof), (status = 400, description = "invalid_range or invalid_query", body = Problem, content_type = "application/problem+json")))]
#[get("/api/v1/audit/consistency")]
pub async fn consistency(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    caller.require(&state, Permission::ReadAudit).await?;
    let q: ConsistencyQuery = input::query(&req)?;
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
