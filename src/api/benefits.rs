//! `/api/v1/benefits`: the review due list (复核) of the benefits this node decides as the hukou
//! bureau. Ending a benefit is on the child (`api::children::end_benefit`).

use actix_web::{get, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Caller;
use super::error::{ApiError, Problem};
use super::{input, now, purpose_of, AppState};
use crate::accounts::Permission;
use crate::domain::IdNumber;
use crate::eligibility::benefits::{self, ReviewPage};
use crate::sync::ledger::china_today;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReviewQuery {
    /// Review due within this many days from today (0: due today or overdue; default 30).
    #[param(minimum = 0, maximum = 366)]
    within_days: Option<u32>,
    /// Keyset paging: the `next_after` of the previous page (an ID number).
    after: Option<String>,
    /// Files scanned per page, 1 to 500 (default 500): a page lists the due grants among them.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

impl input::Bounds for ReviewQuery {
    fn check_bounds(&self) -> Result<(), ApiError> {
        input::within("limit", self.limit, input::limits::CHILDREN_PAGE)?;
        input::within(
            "within_days",
            self.within_days,
            input::limits::DUE_WITHIN_DAYS,
        )
    }
}

/// Benefits due for review (复核): active grants of files this node keeps as the hukou bureau
/// whose `review_on` is within `within_days`, by review date. A page scans `limit` files in ID
/// order; continue with `next_after` until it is null. Audited (`benefit.review_due`).
#[utoipa::path(get, path = "/api/v1/benefits/review-due", tag = "children", operation_id = "benefits_review_due",
    params(ReviewQuery, ("X-Purpose" = Option<String>, Header, description = "Why; recorded in the audit log")),
    responses((status = 200, body = ReviewPage),
        (status = 400, description = "invalid_query (field: the parameter) or invalid_header (X-Purpose)", body = Problem, content_type = "application/problem+json")))]
#[get("/api/v1/benefits/review-due")]
pub async fn review_due(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::ReadChildren).await?;
    let q: ReviewQuery = input::query(&req)?;
    if let Some(a) = &q.after {
        IdNumber::parse(a)
            .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()).field("after"))?;
    }
    let purpose = purpose_of(&req)?;
    let at = now();
    let due_by = china_today(at) + chrono::Days::new(u64::from(q.within_days.unwrap_or(30)));
    let scan = i64::from(q.limit.unwrap_or(500));
    let node = state.node.clone();
    let page = state
        .store
        .run(move |c| {
            benefits::review_due_for(
                c,
                &node,
                due_by,
                q.after.as_deref(),
                scan,
                &actor,
                purpose.as_deref(),
                at,
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}
