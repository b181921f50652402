//! `/api/v1/cases`: eligibility cases — open one (residence side), list incoming and outgoing
//! with filters, show one with its history and deadline, and make transitions.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::IntoParams;

use super::auth::Caller;
use super::error::{ApiError, Problem};
use super::{input, now, purpose_of, AppState};
use crate::accounts::Permission;
use crate::domain::case::state::{CaseState, Transition};
use crate::domain::child::Benefit;
use crate::eligibility::service::{self, CaseQuery, CaseSummary, CaseView, NewCase};

/// Deserialises a body naming the field at fault.
pub(crate) fn parse<T: DeserializeOwned>(v: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let field = e.path().to_string();
        let reason = e.into_inner().to_string();
        let reason = reason
            .split(" at line ")
            .next()
            .unwrap_or(&reason)
            .to_owned();
        ApiError::unprocessable("invalid_field", reason).field(field)
    })
}

fn parse_case_id(raw: &str) -> Result<String, ApiError> {
    super::parse_uuid(raw, "case_id").map(|u| u.to_string())
}

/// Open a case: ask the hukou bureau to confirm one benefit for a child whose file is here.
#[utoipa::path(post, path = "/api/v1/cases", tag = "cases", operation_id = "create_case", request_body = NewCase,
    responses((status = 201, body = CaseView),
        (status = 400, description = "malformed_json or duplicate_key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "not_residence: only the residence bureau submits; outside_scope: the child is outside the regions the account covers", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "child_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_field, decider_not_party, no_decider", body = Problem, content_type = "application/problem+json")))]
#[post("/api/v1/cases")]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::EditChildren).await?;
    let new: NewCase = parse(input::body(&req, body).await?)?;
    let node = state.node.clone();
    let deadlines = state.deadlines.clone();
    let at = now();
    let view = state
        .store
        .run(move |c| service::create(c, &node, &deadlines, new, &actor, at))
        .await?;
    Ok(HttpResponse::Created().json(view))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    /// `{"action": "receive" | "request_info" | "provide_info" | "approve" | "deny" | "withdraw", ...}`.
    #[schema(value_type = Object)]
    pub transition: Transition,
    /// Reference of the officer making it.
    #[serde(default)]
    pub officer: Option<String>,
}

/// Make a transition as this node's party in the case.
#[utoipa::path(post, path = "/api/v1/cases/{case_id}/transitions", tag = "cases", operation_id = "transition_case", request_body = TransitionRequest,
    params(("case_id" = String, Path)),
    responses((status = 200, body = CaseView),
        (status = 400, description = "malformed_json, duplicate_key or invalid_path", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "wrong_party or not_party; outside_scope: the child is outside the regions the account covers", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "terminal_state or illegal_transition", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "missing_reason or invalid_field", body = Problem, content_type = "application/problem+json")))]
#[post("/api/v1/cases/{case_id}/transitions")]
pub async fn transition(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::EditChildren).await?;
    let case_id = parse_case_id(&path)?;
    let t: TransitionRequest = parse(input::body(&req, body).await?)?;
    t.transition
        .validate()
        .map_err(|e| ApiError::from(service::CaseError::Step(e.into())))?;
    if let Some(officer) = &t.officer {
        crate::domain::text::check(officer, false)
            .map_err(|reason| ApiError::unprocessable("invalid_field", reason).field("officer"))?;
    }
    let node = state.node.clone();
    let deadlines = state.deadlines.clone();
    let at = now();
    let view = state
        .store
        .run(move |c| {
            service::transition(
                c,
                &node,
                &deadlines,
                &case_id,
                t.transition,
                t.officer,
                &actor,
                at,
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// A case with its full history, deadline and the actions this node may take.
#[utoipa::path(get, path = "/api/v1/cases/{case_id}", tag = "cases", operation_id = "read_case", params(("case_id" = String, Path)),
    responses((status = 200, body = CaseView), (status = 404, description = "not_found", body = Problem, content_type = "application/problem+json")))]
#[get("/api/v1/cases/{case_id}")]
pub async fn read(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::ReadChildren).await?;
    let case_id = parse_case_id(&path)?;
    let purpose = purpose_of(&req)?;
    let node = state.node.clone();
    let deadlines = state.deadlines.clone();
    let at = now();
    let view = state
        .store
        .run(move |c| {
            service::read(
                c,
                &node,
                &deadlines,
                &case_id,
                &actor,
                purpose.as_deref(),
                at,
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CaseListQuery {
    /// `incoming` (this node decides) or `outgoing` (this node asked).
    direction: Option<String>,
    /// submitted, received, info_requested, info_provided, approved, denied, withdrawn.
    #[param(value_type = Option<String>)]
    state: Option<CaseState>,
    benefit: Option<Benefit>,
    /// Only open cases past their deadline.
    overdue: Option<bool>,
    /// Keyset paging: the `next_after` of the previous page.
    #[param(value_type = Option<String>, format = "uuid")]
    after: Option<String>,
    /// 1 to 1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

impl input::Bounds for CaseListQuery {
    fn check_bounds(&self) -> Result<(), ApiError> {
        input::within("limit", self.limit, input::limits::CASES_PAGE)
    }
}

/// A page of cases, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CasePage {
    pub items: Vec<CaseSummary>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<String>,
}

/// Incoming and outgoing cases, with deadlines flagged.
#[utoipa::path(get, path = "/api/v1/cases", tag = "cases", operation_id = "list_cases", params(CaseListQuery),
    responses((status = 200, body = CasePage), (status = 400, description = "invalid_query (field: the parameter) or invalid_header (X-Purpose)", body = Problem, content_type = "application/problem+json")))]
#[get("/api/v1/cases")]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::ReadChildren).await?;
    let q: CaseListQuery = input::query(&req)?;
    let purpose = purpose_of(&req)?;
    let incoming = match q.direction.as_deref() {
        None => None,
        Some("incoming") => Some(true),
        Some("outgoing") => Some(false),
        Some(_) => {
            return Err(
                ApiError::bad_request("invalid_query", "direction is incoming or outgoing")
                    .field("direction"),
            )
        }
    };
    let limit = q.limit.unwrap_or(100);
    if let Some(after) = &q.after {
        if uuid::Uuid::parse_str(after).is_err() {
            return Err(
                ApiError::bad_request("invalid_query", "after is a case id (UUID)").field("after"),
            );
        }
    }
    let query = CaseQuery {
        incoming,
        state: q.state,
        benefit: q.benefit,
        overdue_only: q.overdue.unwrap_or(false),
        after: q.after,
        limit: i64::from(limit),
        // The service limits the list to the caller's scope.
        scope: Default::default(),
    };
    let node = state.node.clone();
    let deadlines = state.deadlines.clone();
    let at = now();
    let list = state
        .store
        .run(move |c| {
            service::list_for(c, &node, &deadlines, &query, &actor, purpose.as_deref(), at)
        })
        .await?;
    let next_after = (list.len() == limit as usize)
        .then(|| list.last().map(|c| c.case_id.clone()))
        .flatten();
    Ok(HttpResponse::Ok().json(CasePage {
        items: list,
        next_after,
    }))
}
