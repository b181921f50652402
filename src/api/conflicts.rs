//! `/api/v1/conflicts` and `/api/v1/children/{id}/conflicts`: the review queue, a file's open
//! conflicts, and resolving them (reviewers on the owning node).

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;

use super::auth::Caller;
use super::error::{ApiError, Problem};
use super::{input, now, parse_id, AppState};
use crate::accounts::Permission;
use crate::conflicts::{self, FileConflicts, QueuePage, Resolution};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QueueQuery {
    /// `here` (default: conflicts this node reviews) or `all`.
    owner: Option<String>,
    /// `next_after` of the previous page.
    after: Option<String>,
    /// 1 to 500, default 100.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

impl input::Bounds for QueueQuery {
    fn check_bounds(&self) -> Result<(), ApiError> {
        input::within("limit", self.limit, input::limits::CONFLICTS_PAGE)
    }
}

/// The review queue: open conflicts, oldest first.
#[utoipa::path(get, path = "/api/v1/conflicts", tag = "conflicts", operation_id = "list_conflicts", params(QueueQuery),
    responses((status = 200, body = QueuePage), (status = 400, description = "invalid_query", body = Problem, content_type = "application/problem+json")))]
#[get("/api/v1/conflicts")]
pub async fn queue(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::ReadChildren).await?;
    let q: QueueQuery = input::query(&req)?;
    let owner = match q.owner.as_deref() {
        None | Some("here") => Some(state.node.id.to_string()),
        Some("all") => None,
        Some(_) => {
            return Err(
                ApiError::bad_request("invalid_query", "owner is here or all").field("owner"),
            )
        }
    };
    let limit = i64::from(q.limit.unwrap_or(100));
    let page = state
        .store
        .run(move |c| {
            conflicts::queue(c, owner.as_deref(), q.after.as_deref(), limit, &actor.scope)
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// A file's open conflicts: each disputed field, the common ancestor's value, the competing
/// values with author and time, and who reviews it. The read is audited.
#[utoipa::path(get, path = "/api/v1/children/{id_number}/conflicts", tag = "conflicts", operation_id = "read_file_conflicts",
    params(("id_number" = String, Path, description = "18-character resident ID number")),
    responses((status = 200, body = FileConflicts),
        (status = 400, description = "invalid_id_number", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found", body = Problem, content_type = "application/problem+json")))]
#[get("/api/v1/children/{id_number}/conflicts")]
pub async fn of_file(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::ReadChildren).await?;
    let id = parse_id(&path)?;
    let node = state.node.clone();
    let at = now();
    let file = state
        .store
        .run(move |c| conflicts::read(c, &node, &id, &actor, at))
        .await?;
    Ok(HttpResponse::Ok().json(file))
}

/// Resolve a file's open conflicts: a signed resolution version (all heads as parents) with the
/// chosen value of every disputed field this node reviews. Applies only if the file's heads are
/// still those sent; otherwise 409 `stale_resolution` with the current state in `current`.
#[utoipa::path(post, path = "/api/v1/children/{id_number}/conflicts/resolve", tag = "conflicts", operation_id = "resolve_conflicts",
    params(("id_number" = String, Path, description = "18-character resident ID number")),
    request_body = Resolution,
    responses((status = 200, description = "Resolved; the file's remaining conflicts", body = FileConflicts),
        (status = 400, description = "malformed_json, duplicate_key or invalid_id_number", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden (role) or not_review_owner (another node reviews these); outside_scope: the child is outside the regions the account covers", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "stale_resolution or no_open_conflict", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "missing_choice, not_in_conflict, invalid_field, unknown_field, invalid_head or invalid_body", body = Problem, content_type = "application/problem+json")))]
#[post("/api/v1/children/{id_number}/conflicts/resolve")]
pub async fn resolve(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::ResolveConflicts).await?;
    let id = parse_id(&path)?;
    let body: Value = input::body(&req, body).await?;
    let resolution: Resolution = serde_json::from_value(body)
        .map_err(|e| ApiError::unprocessable("invalid_body", format!("not a resolution: {e}")))?;
    let node = state.node.clone();
    let at = now();
    let file = state
        .store
        .run(move |c| conflicts::resolve(c, &node, &id, resolution, &actor, at))
        .await?;
    Ok(HttpResponse::Ok().json(file))
}
