//! `/api/v1/children/{id}/reports` and `/api/v1/reports`: mandatory reports and referrals
//! (强制报告与转介) — record one about a child, amend it, read one, list a child's or all, urgent
//! first.

use actix_web::{get, post, put, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Caller;
use super::cases::parse;
use super::error::{ApiError, Problem};
use super::{input, now, parse_id, purpose_of, AppState};
use crate::accounts::Permission;
use crate::visits::reports::{self, ReportInput, ReportPage, ReportView};

fn parse_report_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    super::parse_uuid(raw, "report_id")
}

/// Record a report about a child whose file is here. An urgent one makes the child's risk red
/// at the residence bureau until a visit assesses the child (`file_updated`).
#[utoipa::path(post, path = "/api/v1/children/{id_number}/reports", tag = "reports", operation_id = "record_report",
    params(("id_number" = String, Path, description = "18-character resident ID number")),
    request_body = ReportInput,
    responses((status = 201, body = ReportView),
        (status = 400, description = "malformed_json, duplicate_key or invalid_id_number", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "not_party: this node serves neither of the child's regions; outside_scope: the child is outside the regions the account covers", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "child_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "body_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_field (field: the member at fault)", body = Problem, content_type = "application/problem+json")))]
#[post("/api/v1/children/{id_number}/reports")]
pub async fn record(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::EditChildren).await?;
    let child = parse_id(&path)?;
    let input: ReportInput = parse(input::body(&req, body).await?)?;
    let node = state.node.clone();
    let at = now();
    let view = state
        .store
        .run(move |c| reports::record(c, &node, &child, input, &actor, at))
        .await?;
    Ok(HttpResponse::Created().json(view))
}

/// Amend a report this node took (e.g. what the referral came to): the whole report again.
#[utoipa::path(put, path = "/api/v1/reports/{report_id}", tag = "reports", operation_id = "amend_report",
    params(("report_id" = String, Path, format = "uuid")),
    request_body = ReportInput,
    responses((status = 200, body = ReportView),
        (status = 400, description = "malformed_json, duplicate_key or invalid_path", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "not_author: another node took the report; outside_scope: the child is outside the regions the account covers", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "body_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_field (field: the member at fault)", body = Problem, content_type = "application/problem+json")))]
#[put("/api/v1/reports/{report_id}")]
pub async fn amend(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::EditChildren).await?;
    let id = parse_report_id(&path)?;
    let input: ReportInput = parse(input::body(&req, body).await?)?;
    let node = state.node.clone();
    let at = now();
    let view = state
        .store
        .run(move |c| reports::amend(c, &node, &id, input, &actor, at))
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Read one report. The read is audited.
#[utoipa::path(get, path = "/api/v1/reports/{report_id}", tag = "reports", operation_id = "read_report",
    params(("report_id" = String, Path, format = "uuid"),
           ("X-Purpose" = Option<String>, Header, description = "Why the report is read; recorded in the audit log")),
    responses((status = 200, body = ReportView),
        (status = 400, description = "invalid_path or invalid_header (X-Purpose)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found", body = Problem, content_type = "application/problem+json")))]
#[get("/api/v1/reports/{report_id}")]
pub async fn read(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::ReadChildren).await?;
    let id = parse_report_id(&path)?;
    let purpose = purpose_of(&req)?;
    let node = state.node.clone();
    let at = now();
    let view = state
        .store
        .run(move |c| reports::read(c, &node, &id, &actor, purpose.as_deref(), at))
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportListQuery {
    /// Only urgent reports.
    urgent: Option<bool>,
    /// Keyset paging: the `next_after` of the previous page (`1/report-id` or `0/report-id`).
    after: Option<String>,
    /// 1 to 500, default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

impl input::Bounds for ReportListQuery {
    fn check_bounds(&self) -> Result<(), ApiError> {
        input::within("limit", self.limit, input::limits::VISITS_PAGE)
    }
}

fn cursor(q: &ReportListQuery) -> Result<Option<(i64, String)>, ApiError> {
    q.after
        .as_deref()
        .map(|a| {
            reports::parse_cursor(a).ok_or_else(|| {
                ApiError::bad_request("invalid_query", "after is 0/report-id or 1/report-id")
                    .field("after")
            })
        })
        .transpose()
}

/// Reports held here, urgent first, then newest first. The read is audited.
#[utoipa::path(get, path = "/api/v1/reports", tag = "reports", operation_id = "list_reports",
    params(ReportListQuery, ("X-Purpose" = Option<String>, Header, description = "Why; recorded in the audit log")),
    responses((status = 200, body = ReportPage),
        (status = 400, description = "invalid_query (field: the parameter) or invalid_header", body = Problem, content_type = "application/problem+json")))]
#[get("/api/v1/reports")]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::ReadChildren).await?;
    let q: ReportListQuery = input::query(&req)?;
    let purpose = purpose_of(&req)?;
    let after = cursor(&q)?;
    let (urgent, limit) = (q.urgent.unwrap_or(false), i64::from(q.limit.unwrap_or(50)));
    let node = state.node.clone();
    let at = now();
    let page: ReportPage = state
        .store
        .run(move |c| {
            reports::list(
                c,
                &node,
                None,
                urgent,
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

/// A child's reports, urgent first, then newest first. The read is audited.
#[utoipa::path(get, path = "/api/v1/children/{id_number}/reports", tag = "reports", operation_id = "list_child_reports",
    params(("id_number" = String, Path, description = "18-character resident ID number"), ReportListQuery,
           ("X-Purpose" = Option<String>, Header, description = "Why; recorded in the audit log")),
    responses((status = 200, body = ReportPage),
        (status = 400, description = "invalid_id_number, invalid_query (field: the parameter) or invalid_header", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "child_not_found", body = Problem, content_type = "application/problem+json")))]
#[get("/api/v1/children/{id_number}/reports")]
pub async fn of_child(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::ReadChildren).await?;
    let child = parse_id(&path)?;
    let q: ReportListQuery = input::query(&req)?;
    let purpose = purpose_of(&req)?;
    let after = cursor(&q)?;
    let (urgent, limit) = (q.urgent.unwrap_or(false), i64::from(q.limit.unwrap_or(50)));
    let node = state.node.clone();
    let at = now();
    let page: ReportPage = state
        .store
        .run(move |c| {
            reports::list(
                c,
                &node,
                Some(&child),
                urgent,
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
