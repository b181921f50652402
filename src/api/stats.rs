//! `GET /api/v1/stats`: statistics for superiors — the files this node serves counted by region,
//! township, category, risk level and responsible worker; visits due, overdue and per month;
//! cases by state and timeliness; stale files. The service is `stats`; working days come from
//! the eligibility calendar.

use actix_web::{get, web, HttpResponse};

use super::auth::Caller;
use super::error::ApiError;
use super::{now, AppState};
use crate::accounts::Permission;
use crate::stats::{self, Inputs, Stats};

/// The figures, computed now (the read is audited as `stats.read`; no child is named).
#[utoipa::path(get, path = "/api/v1/stats", tag = "stats", operation_id = "statistics",
    responses((status = 200, body = Stats)))]
#[get("/api/v1/stats")]
pub async fn read(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::ReadChildren).await?;
    Ok(HttpResponse::Ok().json(figures(&state, actor).await?))
}

/// The figures for `actor` (the API and the statistics page).
pub async fn figures(state: &AppState, actor: crate::audit::Actor) -> Result<Stats, ApiError> {
    let node = state.node.clone();
    let deadlines = state.deadlines.clone();
    let stale_days = state.settings.records.stale_after_days;
    let at = now();
    state
        .store
        .run(move |c| {
            let working = |a, b| deadlines.calendar.working_days_between(a, b);
            let input = Inputs::at(at, stale_days, &working);
            stats::compute(c, &node, &input, &actor, at)
        })
        .await
        .map_err(ApiError::from)
}
