//! `GET /api/v1/stats`: statistics for superiors — the files this node serves counted by region,
//! township, category, risk level and responsible worker; visits due, overdue and per month;
//! cases by state and timeliness; stale files. The service is `stats`; working days come from
//! the eligibility calendar.

use actix_web::{get, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Caller;
use super::error::{ApiError, Problem};
use super::{input, now, AppState};
use crate::accounts::Permission;
use crate::domain::Month;
use crate::stats::{self, Inputs, Stats};

/// Which figures.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// A month's figures (YYYY-MM, not after the current one): counted at its last day, with
    /// the timeliness of the cases decided within it. Default: now, every decided case.
    #[param(value_type = Option<String>, pattern = "^[0-9]{4}-(0[1-9]|1[0-2])$")]
    pub month: Option<Month>,
}

impl input::Bounds for StatsQuery {
    fn check_bounds(&self) -> Result<(), ApiError> {
        Ok(())
    }
}

/// The figures, computed now or for a month (the read is audited as `stats.read`; no child is
/// named). An account with a region scope gets the figures of its scope.
#[utoipa::path(get, path = "/api/v1/stats", tag = "stats", operation_id = "statistics",
    params(StatsQuery),
    responses((status = 200, body = Stats),
        (status = 400, description = "invalid_query (field: month): not YYYY-MM, or a month that has not begun", body = Problem, content_type = "application/problem+json")))]
#[get("/api/v1/stats")]
pub async fn read(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::ReadChildren).await?;
    let q: StatsQuery = input::query(&req)?;
    Ok(HttpResponse::Ok().json(figures(&state, actor, q.month).await?))
}

/// The figures for `actor` (the API and the statistics page), now or for `month`.
pub async fn figures(
    state: &AppState,
    actor: crate::audit::Actor,
    month: Option<Month>,
) -> Result<Stats, ApiError> {
    let node = state.node.clone();
    let deadlines = state.deadlines.clone();
    let stale_days = state.settings.records.stale_after_days;
    let at = now();
    let not_begun = || {
        ApiError::bad_request(
            "invalid_query",
            "the month has not begun: figures cover a past or the current month",
        )
        .field("month")
    };
    // Checked before the store is asked, so a refusal reads nothing.
    if month.is_some_and(|m| m.first_day() > crate::sync::ledger::china_today(at)) {
        return Err(not_begun());
    }
    state
        .store
        .run(move |c| {
            let working = |a, b| deadlines.calendar.working_days_between(a, b);
            let input = match month {
                Some(m) => Inputs::for_month(m, at, stale_days, &working),
                None => Some(Inputs::at(at, stale_days, &working)),
            };
            match input {
                Some(input) => stats::compute(c, &node, &input, &actor, at).map(Some),
                None => Ok(None),
            }
        })
        .await?
        .ok_or_else(not_begun)
}
