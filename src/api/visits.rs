//! `/api/v1/children/{id}/visits` and `/api/v1/visits`: record a visit (走访) of a child, amend
//! it, read one, list a child's visits, and the due list of visits per region, township and
//! responsible worker.

use actix_web::{get, post, put, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Caller;
use super::cases::parse;
use super::error::{ApiError, Problem};
use super::{input, now, parse_id, purpose_of, AppState};
use crate::accounts::Permission;
use crate::sync::ledger::china_today;
use crate::visits::{self, DuePage, VisitInput, VisitPage, VisitView};

fn parse_visit_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    super::parse_uuid(raw, "visit_id")
}

/// Record a visit of a child whose file is here. At the child's residence bureau the file's
/// last visit day and risk level follow (`file_updated`).
#[utoipa::path(post, path = "/api/v1/children/{id_number}/visits", tag = "visits", operation_id = "record_visit",
    params(("id_number" = String, Path, description = "18-character resident ID number")),
    request_body = VisitInput,
    responses((status = 201, body = VisitView),
        (status = 400, description = "malformed_json, duplicate_key or invalid_id_number", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "not_party: this node serves neither of the child's regions; outside_scope: the child is outside the regions the account covers", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "child_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "body_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_field (field: the member at fault)", body = Problem, content_type = "application/problem+json")))]
#[post("/api/v1/children/{id_number}/visits")]
pub async fn record(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::EditChildren).await?;
    let child = parse_id(&path)?;
    let input: VisitInput = parse(input::body(&req, body).await?)?;
    let node = state.node.clone();
    let at = now();
    let view = state
        .store
        .run(move |c| visits::record(c, &node, &child, input, &actor, at))
        .await?;
    Ok(HttpResponse::Created().json(view))
}

/// Amend a visit this node recorded: the whole visit again; its id and child stay.
#[utoipa::path(put, path = "/api/v1/visits/{visit_id}", tag = "visits", operation_id = "amend_visit",
    params(("visit_id" = String, Path, format = "uuid")),
    request_body = VisitInput,
    responses((status = 200, body = VisitView),
        (status = 400, description = "malformed_json, duplicate_key or invalid_path", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "not_author: another node recorded the visit; outside_scope: the child is outside the regions the account covers", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "body_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_field (field: the member at fault)", body = Problem, content_type = "application/problem+json")))]
#[put("/api/v1/visits/{visit_id}")]
pub async fn amend(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // `/api/v1/visits/due` is the due list (GET only), not a visit: 405 with `Allow`.
    if path.as_str() == "due" {
        return super::manners::unmatched(req).await;
    }
    let actor = caller.require(&state, Permission::EditChildren).await?;
    let id = parse_visit_id(&path)?;
    let input: VisitInput = parse(input::body(&req, body).await?)?;
    let node = state.node.clone();
    let at = now();
    let view = state
        .store
        .run(move |c| visits::amend(c, &node, &id, input, &actor, at))
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Read one visit. The read is audited.
#[utoipa::path(get, path = "/api/v1/visits/{visit_id}", tag = "visits", operation_id = "read_visit",
    params(("visit_id" = String, Path, format = "uuid"),
           ("X-Purpose" = Option<String>, Header, description = "Why the visit is read; recorded in the audit log")),
    responses((status = 200, body = VisitView),
        (status = 400, description = "invalid_path or invalid_header (X-Purpose)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found", body = Problem, content_type = "application/problem+json")))]
#[get("/api/v1/visits/{visit_id}")]
pub async fn read(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::ReadChildren).await?;
    let id = parse_visit_id(&path)?;
    let purpose = purpose_of(&req)?;
    let node = state.node.clone();
    let at = now();
    let view = state
        .store
        .run(move |c| visits::read(c, &node, &id, &actor, purpose.as_deref(), at))
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VisitListQuery {
    /// Keyset paging: the `next_after` of the previous page (`YYYY-MM-DD/visit-id`).
    after: Option<String>,
    /// 1 to 500, default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

impl input::Bounds for VisitListQuery {
    fn check_bounds(&self) -> Result<(), ApiError> {
        input::within("limit", self.limit, input::limits::VISITS_PAGE)
    }
}

/// A child's visits, latest first. The read is audited.
#[utoipa::path(get, path = "/api/v1/children/{id_number}/visits", tag = "visits", operation_id = "list_visits",
    params(("id_number" = String, Path, description = "18-character resident ID number"), VisitListQuery,
           ("X-Purpose" = Option<String>, Header, description = "Why the visits are read; recorded in the audit log")),
    responses((status = 200, body = VisitPage),
        (status = 400, description = "invalid_id_number, invalid_query (field: the parameter) or invalid_header", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "child_not_found", body = Problem, content_type = "application/problem+json")))]
#[get("/api/v1/children/{id_number}/visits")]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::ReadChildren).await?;
    let child = parse_id(&path)?;
    let q: VisitListQuery = input::query(&req)?;
    let purpose = purpose_of(&req)?;
    let after = q
        .after
        .as_deref()
        .map(|a| {
            visits::parse_list_cursor(a).ok_or_else(|| {
                ApiError::bad_request("invalid_query", "after is YYYY-MM-DD/visit-id")
                    .field("after")
            })
        })
        .transpose()?;
    let limit = i64::from(q.limit.unwrap_or(50));
    let node = state.node.clone();
    let at = now();
    let page = state
        .store
        .run(move |c| {
            visits::list(
                c,
                &node,
                &child,
                after,
                limit,
                &actor,
                purpose.as_deref(),
                at,
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DueQuery {
    /// Due within this many days from today (0: due today or overdue; default 7).
    #[param(minimum = 0, maximum = 366)]
    within_days: Option<u32>,
    /// Only overdue visits (due before today).
    overdue: Option<bool>,
    /// The residence region starts with this prefix (2, 4 or 6 digits).
    region: Option<String>,
    /// The residence township (9 digits).
    #[param(pattern = "^[0-9]{9}$")]
    township: Option<String>,
    /// The responsible worker's name (包保人).
    #[param(max_length = 50)]
    worker: Option<String>,
    /// Keyset paging: the `next_after` of the previous page (`YYYY-MM-DD/ID-number`).
    after: Option<String>,
    /// 1 to 500, default 100.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

impl input::Bounds for DueQuery {
    fn check_bounds(&self) -> Result<(), ApiError> {
        input::within("limit", self.limit, input::limits::VISITS_PAGE)?;
        input::within(
            "within_days",
            self.within_days,
            input::limits::DUE_WITHIN_DAYS,
        )
    }
}

/// Visits due: files this node serves as the residence bureau whose next visit — by the visit
/// schedule, from the last visit — is due within `within_days`, earliest first.
#[utoipa::path(get, path = "/api/v1/visits/due", tag = "visits", operation_id = "visits_due", params(DueQuery),
    responses((status = 200, body = DuePage),
        (status = 400, description = "invalid_query (field: the parameter)", body = Problem, content_type = "application/problem+json")))]
#[get("/api/v1/visits/due")]
pub async fn due(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::ReadChildren).await?;
    let q: DueQuery = input::query(&req)?;
    let today = china_today(now());
    let filter = visits::DueQuery {
        within_days: q.within_days.unwrap_or(7),
        overdue: q.overdue.unwrap_or(false),
        region: q.region.as_deref(),
        township: q.township.as_deref(),
        worker: q.worker.as_deref(),
        after: q.after.as_deref(),
        limit: i64::from(q.limit.unwrap_or(100)),
    }
    .filter(today)
    .map_err(|(field, why)| ApiError::bad_request("invalid_query", why).field(field))?;
    let node = state.node.clone();
    let page = state
        .store
        .run(move |c| visits::due(c, &node, filter, today, &actor.scope))
        .await?;
    Ok(HttpResponse::Ok().json(page))
}
