//! `/api/v1/children`: create, read, update and list children's files, and end a benefit a child
//! holds (the hukou bureau's 退出).

use actix_web::{get, patch, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::IntoParams;

use super::auth::Caller;
use super::error::{ApiError, Problem};
use super::{input, now, parse_id, purpose_of, AppState};
use crate::accounts::Permission;
use crate::domain::child::{Benefit, BenefitEnd, Category};
use crate::domain::{IdNumber, RegionPrefix};
use crate::storage::records::ChildFilter;
use crate::sync::ledger::{self, ChildFile, ChildPage};

/// Create a child's file (一人一档). The body is a full record; sex and birth date come from the ID number.
#[utoipa::path(
    post, path = "/api/v1/children", tag = "children", operation_id = "create_child",
    request_body(content = Object, description = "A ChildRecord: id_number, name, hukou_region and residence_region are required"),
    responses(
        (status = 201, description = "Created", body = ChildFile),
        (status = 400, description = "malformed_json or duplicate_key (field: the member named twice)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "not_party: this node serves neither region; outside_scope: the child is outside the regions the account covers", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "already_exists, or file_at_hukou_bureau: the hukou bureau holds this child's file (ask for it: POST /api/v1/children/{id}/handover)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "body_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "unsupported_media_type", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_field, unknown_field or invalid_body", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "statement_invalid: the hukou bureau's answer did not verify", body = Problem, content_type = "application/problem+json"),
    ),
    params(CreateQuery)
)]
#[post("/api/v1/children")]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::EditChildren).await?;
    let query: CreateQuery = input::query(&req)?;
    let body: Map<String, Value> = input::body(&req, body).await?;
    let node = state.node.clone();
    let at = now();
    let record = ledger::parse_record(&node, body, at)?;
    if query.lookup.unwrap_or(true) {
        ask_hukou_bureau_first(&state, &record, &actor).await?;
    }
    let file = state
        .store
        .run(move |conn| ledger::create_child(conn, &node, record, &actor, at))
        .await?;
    Ok(HttpResponse::Created().json(file))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CreateQuery {
    /// Ask the bureau serving the hukou region whether it holds a file first (default true).
    /// `false`: create without asking (the bureau is known to be unreachable); a file it holds
    /// merges with this one by the first-file rule, without review.
    lookup: Option<bool>,
}

impl input::Bounds for CreateQuery {
    fn check_bounds(&self) -> Result<(), ApiError> {
        Ok(())
    }
}

/// Before a file is created for a child whose hukou region another bureau serves: asks that
/// bureau (a signed, audited lookup). It holds a file → 409 `file_at_hukou_bureau` (ask for
/// it instead); it cannot be reached → the file is created (warned in the log; the two files
/// merge when they meet); an answer that does not verify → 502.
pub(crate) async fn ask_hukou_bureau_first(
    state: &AppState,
    record: &crate::domain::child::ChildRecord,
    actor: &crate::audit::Actor,
) -> Result<(), ApiError> {
    use crate::sync::lookup::{self, LookupError, LookupRequest};
    let Some(clients) = state.peer_clients.as_ref() else {
        return Ok(());
    };
    if state.node.serves(&record.hukou_region)
        || state.node.node_for(&record.hukou_region).is_none()
    {
        return Ok(());
    }
    let request = LookupRequest {
        id_number: record.id_number.clone(),
        hukou_region: record.hukou_region.clone(),
        purpose: crate::domain::child::Text::parse("建档前核查 (lookup before creating a file)")
            .map_err(ApiError::internal)?,
        nonce: lookup::new_nonce()?,
    };
    match lookup::ask(&state.store, &state.node, Some(clients), request, actor, now()).await {
        Ok(a) if a.found && !a.held_here => Err(ApiError::new(
            actix_web::http::StatusCode::CONFLICT,
            "file_at_hukou_bureau",
            format!(
                "the hukou bureau {} holds this child's file: ask for it (POST /api/v1/children/{{id}}/handover) instead of starting a second one",
                a.hukou_node
            ),
        )
        .field("id_number")
        .extension("hukou_node", serde_json::json!(a.hukou_node))),
        Ok(_) => Ok(()),
        Err(LookupError::Peer { peer, reason }) => {
            tracing::warn!(hukou_node = %peer, %reason, "the hukou bureau did not answer the lookup before a creation; creating the file");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Read a child's file: the current view and its full version history. The read is audited.
#[utoipa::path(
    get, path = "/api/v1/children/{id_number}", tag = "children", operation_id = "read_child",
    params(("id_number" = String, Path, description = "18-character resident ID number"),
           ("X-Purpose" = Option<String>, Header, description = "Why the file is read; recorded in the audit log")),
    responses(
        (status = 200, description = "The file", body = ChildFile),
        (status = 400, description = "invalid_id_number or invalid_header (X-Purpose)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/children/{id_number}")]
pub async fn read(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::ReadChildren).await?;
    let id = parse_id(&path)?;
    let purpose = purpose_of(&req)?;
    let node = state.node.clone();
    let at = now();
    let file = state
        .store
        .run(move |conn| ledger::read_child(conn, &node, &id, &actor, purpose.as_deref(), at))
        .await?;
    Ok(HttpResponse::Ok().json(file))
}

/// Change some fields. Creates a version whose parents are all current heads. A node may change
/// only the fields its role owns for this child (hukou or residence), plus shared fields.
#[utoipa::path(
    patch, path = "/api/v1/children/{id_number}", tag = "children", operation_id = "update_child",
    params(("id_number" = String, Path, description = "18-character resident ID number")),
    request_body(content = Object, description = "Fields to set; null clears an optional field"),
    responses(
        (status = 200, description = "The updated file", body = ChildFile),
        (status = 400, description = "malformed_json, duplicate_key or invalid_id_number", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "field_not_owned; outside_scope: the child is outside the regions the account covers", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "body_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_field, unknown_field, immutable_field or invalid_body", body = Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/api/v1/children/{id_number}")]
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::EditChildren).await?;
    let id = parse_id(&path)?;
    let patch: Map<String, Value> = input::body(&req, body).await?;
    let node = state.node.clone();
    let at = now();
    let file = state
        .store
        .run(move |conn| ledger::update_child(conn, &node, &id, patch, &actor, at))
        .await?;
    Ok(HttpResponse::Ok().json(file))
}

/// Filters of the list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Hukou or residence region starts with this prefix (2, 4 or 6 digits).
    pub region: Option<String>,
    pub hukou_region: Option<String>,
    pub residence_region: Option<String>,
    /// A category code: flowing, left_behind, in_difficulty, orphan, de_facto_unsupported.
    pub category: Option<String>,
    /// A risk level: this node's label (e.g. 红) or the level on the common scale, 1 (most
    /// severe) to 4.
    pub risk_level: Option<String>,
    /// Files whose residence or hukou township (9-digit NBS code) is this one.
    #[param(pattern = "^[0-9]{9}$")]
    pub township: Option<String>,
    /// Only files neither visited nor confirmed for this many days (the six-month rule: 183);
    /// 1 to 36500.
    #[param(minimum = 1, maximum = 36500)]
    pub stale_days: Option<u32>,
    /// Files holding this benefit now: its code (dibao, tekun, orphan_allowance,
    /// unsupported_child_subsidy) or Chinese label.
    pub benefit: Option<String>,
    /// The responsible worker's name (包保人).
    #[param(max_length = 50)]
    pub worker: Option<String>,
    /// Only files whose next visit is due within this many days from today, overdue included
    /// (0: due today or overdue); 0 to 366.
    #[param(minimum = 0, maximum = 366)]
    pub visits_due_days: Option<u32>,
    /// Keyset paging: the `next_after` of the previous page.
    pub after: Option<String>,
    /// Page size, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

impl input::Bounds for ListQuery {
    fn check_bounds(&self) -> Result<(), ApiError> {
        input::within("stale_days", self.stale_days, input::limits::STALE_DAYS)?;
        input::within(
            "visits_due_days",
            self.visits_due_days,
            input::limits::DUE_WITHIN_DAYS,
        )?;
        input::within("limit", self.limit, input::limits::CHILDREN_PAGE)
    }
}

/// List files with filters and paging. Which files were returned is audited.
#[utoipa::path(
    get, path = "/api/v1/children", tag = "children", operation_id = "list_children",
    params(ListQuery, ("X-Purpose" = Option<String>, Header, description = "Why; recorded in the audit log")),
    responses(
        (status = 200, description = "A page", body = ChildPage),
        (status = 400, description = "invalid_query (field: the parameter) or invalid_header (X-Purpose)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/children")]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::ReadChildren).await?;
    let q: ListQuery = input::query(&req)?;
    let at = now();
    let filter = child_filter(&state.node, q, at)?;
    let purpose = purpose_of(&req)?;
    let node = state.node.clone();
    let page = state
        .store
        .run(move |conn| {
            ledger::list_children(conn, &node, &filter, &actor, purpose.as_deref(), at)
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// The storage filter of a list query at `at`: the one reading of the list's parameters, for
/// `GET /api/v1/children` and the files page (`/ui/children`).
pub fn child_filter(
    node: &crate::sync::LocalNode,
    q: ListQuery,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<ChildFilter, ApiError> {
    input::Bounds::check_bounds(&q)?;
    let prefix = |field: &'static str, v: Option<String>| -> Result<Option<String>, ApiError> {
        v.map(|p| {
            RegionPrefix::parse(&p)
                .map(|p| p.digits().to_owned())
                .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()).field(field))
        })
        .transpose()
    };
    let category = q
        .category
        .map(|c| {
            Category::ALL
                .iter()
                .find(|k| k.code() == c || k.label_zh() == c)
                .map(|k| k.code().to_owned())
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_query", "unknown category").field("category")
                })
        })
        .transpose()?;
    let risk_level = q
        .risk_level
        .map(|r| {
            node.palette.level_of(&r).map_err(|e| {
                ApiError::bad_request("invalid_query", e.to_string()).field("risk_level")
            })
        })
        .transpose()?;
    let township = q
        .township
        .map(|t| {
            crate::domain::division::TownshipCode::parse(&t)
                .map(|t| t.to_string())
                .map_err(|e| {
                    ApiError::bad_request("invalid_query", e.to_string()).field("township")
                })
        })
        .transpose()?;
    let benefit = q
        .benefit
        .as_deref()
        .map(|b| {
            parse_benefit(b).map_err(|_| {
                ApiError::bad_request(
                    "invalid_query",
                    "unknown benefit: dibao, tekun, orphan_allowance or unsupported_child_subsidy (or the Chinese label)",
                )
                .field("benefit")
            })
        })
        .transpose()?
        .map(|b| b.code().to_owned());
    let limit = q.limit.unwrap_or(100);
    if let Some(a) = &q.after {
        IdNumber::parse(a)
            .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()).field("after"))?;
    }
    Ok(ChildFilter {
        benefit,
        region_prefix: prefix("region", q.region)?,
        hukou_prefix: prefix("hukou_region", q.hukou_region)?,
        residence_prefix: prefix("residence_region", q.residence_region)?,
        category,
        risk_level,
        township,
        stale_before: match q.stale_days {
            Some(d) => Some(
                at.checked_sub_signed(chrono::Duration::days(i64::from(d)))
                    .ok_or_else(|| {
                        ApiError::bad_request("invalid_query", "stale_days reaches before year 1")
                            .field("stale_days")
                    })?
                    .naive_utc(),
            ),
            None => None,
        },
        worker: match q.worker.map(|w| w.trim().to_owned()) {
            Some(w) if w.chars().count() > 50 => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    "a worker's name is at most 50 characters",
                )
                .field("worker"))
            }
            w => w.filter(|w| !w.is_empty()),
        },
        visit_due_by: q
            .visits_due_days
            .map(|d| crate::sync::ledger::china_today(at) + chrono::Duration::days(i64::from(d))),
        after: q.after,
        limit: i64::from(limit),
        // The service limits the list to the caller's scope.
        scope: Default::default(),
    })
}

/// End a benefit the child holds (退出), as the child's hukou bureau: the grant stays in the file
/// with its end month and reason; a signed version carries it to the residence bureau, and the
/// change is audited (`benefit.end`).
#[utoipa::path(
    post, path = "/api/v1/children/{id_number}/benefits/{benefit}/end", tag = "children", operation_id = "end_benefit",
    params(("id_number" = String, Path, description = "18-character resident ID number"),
           ("benefit" = Benefit, Path, description = "The benefit's code or Chinese label")),
    request_body = BenefitEnd,
    responses(
        (status = 200, description = "The updated file", body = ChildFile),
        (status = 400, description = "malformed_json, duplicate_key, invalid_id_number or invalid_path (field: benefit)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "field_not_owned (benefits are decided by the hukou bureau) or not_party; outside_scope: the child is outside the regions the account covers", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "field_under_review: benefits have an open conflict", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "body_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "unsupported_media_type", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_field: the child does not hold the benefit (field: benefit), or the end month is before its start (field: month)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/api/v1/children/{id_number}/benefits/{benefit}/end")]
pub async fn end_benefit(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::EditChildren).await?;
    let (id, benefit) = path.into_inner();
    let id = parse_id(&id)?;
    let benefit = parse_benefit(&benefit)?;
    let end: BenefitEnd = super::cases::parse(input::body(&req, body).await?)?;
    let node = state.node.clone();
    let at = now();
    let file = state
        .store
        .run(move |conn| ledger::end_benefit(conn, &node, &id, benefit, end, &actor, at))
        .await?;
    Ok(HttpResponse::Ok().json(file))
}

/// A benefit named in a path: its code or Chinese label.
pub(crate) fn parse_benefit(raw: &str) -> Result<Benefit, ApiError> {
    Benefit::ALL
        .iter()
        .copied()
        .find(|b| b.code() == raw || b.label_zh() == raw)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_path",
                format!(
                    "unknown benefit; one of {}",
                    Benefit::ALL
                        .iter()
                        .map(|b| b.code())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .field("benefit")
        })
}
