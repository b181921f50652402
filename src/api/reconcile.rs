//! Reconciliation on the admin listener (`/api/v1`): start a run, list and read reports, and list
//! stale files. The responder's routes for peers live in `api::peer::reconcile`.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use super::auth::Caller;
use super::error::{ApiError, Problem};
use super::{input, purpose_of, AppState};
use crate::accounts::Permission;
use crate::reconcile::report::Report;
use crate::reconcile::stale::StaleList;
use crate::reconcile::{history, Reconciler, RunOptions, StartedBy};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StartQuery {
    /// Compare and report only.
    dry_run: Option<bool>,
}

impl input::Bounds for StartQuery {
    fn check_bounds(&self) -> Result<(), ApiError> {
        Ok(())
    }
}

/// A run as the API shows it; `report` once it finished.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunView {
    pub id: String,
    pub peer: String,
    pub started_by: String,
    pub dry_run: bool,
    /// running | ok | failed | interrupted.
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub differences: u64,
    pub report: Option<Report>,
}

impl input::Bounds for StaleQuery {
    fn check_bounds(&self) -> Result<(), ApiError> {
        input::within("days", self.days, input::limits::STALE_DAYS)
    }
}

impl From<history::Run> for RunView {
    fn from(r: history::Run) -> Self {
        Self {
            id: r.id.to_string(),
            peer: r.peer.to_string(),
            started_by: r.started_by,
            dry_run: r.dry_run,
            status: r.status.as_str().to_owned(),
            started_at: r.started_at,
            finished_at: r.finished_at,
            differences: r.differences,
            report: r.report,
        }
    }
}

/// Start a reconciliation run with a peer. It runs in the background: follow it at the
/// returned `Location`.
#[utoipa::path(post, path = "/api/v1/reconcile/{peer}", tag = "reconcile", operation_id = "start_reconcile",
    params(("peer" = String, Path, description = "The peer's node id"), StartQuery),
    responses((status = 202, body = RunView, description = "started"),
        (status = 404, description = "unknown_peer", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "already_running or no_peers", body = Problem, content_type = "application/problem+json")))]
#[post("/api/v1/reconcile/{peer}")]
pub async fn start(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::Operate).await?;
    let q: StartQuery = input::query(&req)?;
    let Some(rec) = req.app_data::<web::Data<Reconciler>>().cloned() else {
        return Err(crate::reconcile::ReconcileError::NoDirectory.into());
    };
    let opts = RunOptions {
        dry_run: q.dry_run.unwrap_or(false),
        started_by: StartedBy::Api,
        actor,
    };
    let handle = rec.start(&path.into_inner(), opts).await?;
    let id = handle.run_id().to_owned();
    tokio::spawn(async move {
        if let Err(e) = handle.execute(std::sync::Arc::new(|_| {})).await {
            tracing::warn!(error = %e, "could not store a reconciliation report");
        }
    });
    let id2 = id.clone();
    let row = state
        .store
        .run(move |c| history::find(c, &id2))
        .await?
        .ok_or_else(|| ApiError::internal("a started run has no row"))?;
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("/api/v1/reconcile/runs/{id}")))
        .json(RunView::from(row)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Only runs with this peer.
    peer: Option<String>,
    /// Keyset paging: the `next_after` of the previous page (runs older than this run id).
    after: Option<String>,
    /// 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

impl input::Bounds for RunsQuery {
    fn check_bounds(&self) -> Result<(), ApiError> {
        input::within("limit", self.limit, input::limits::RUNS_PAGE)
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunPage {
    pub items: Vec<RunView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<String>,
}

/// Reconciliation runs and their reports, newest first.
#[utoipa::path(get, path = "/api/v1/reconcile/runs", tag = "reconcile", operation_id = "list_reconcile_runs", params(RunsQuery),
    responses((status = 200, body = RunPage), (status = 400, description = "invalid_query", body = Problem, content_type = "application/problem+json")))]
#[get("/api/v1/reconcile/runs")]
pub async fn runs(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    caller.require(&state, Permission::ViewOperations).await?;
    let q: RunsQuery = input::query(&req)?;
    let limit = q.limit.unwrap_or(50);
    let rows = state
        .store
        .run(move |c| history::list(c, q.peer.as_deref(), q.after.as_deref(), i64::from(limit)))
        .await?;
    let next_after = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(HttpResponse::Ok().json(RunPage {
        items: rows.into_iter().map(RunView::from).collect(),
        next_after,
    }))
}

/// One run and its report.
#[utoipa::path(get, path = "/api/v1/reconcile/runs/{id}", tag = "reconcile", operation_id = "read_reconcile_run",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, body = RunView), (status = 404, description = "not_found", body = Problem, content_type = "application/problem+json")))]
#[get("/api/v1/reconcile/runs/{id}")]
pub async fn run(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&state, Permission::ViewOperations).await?;
    let id = path.into_inner();
    let row = state.store.run(move |c| history::get(c, &id)).await?;
    Ok(HttpResponse::Ok().json(RunView::from(row)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StaleQuery {
    /// Window in days, 1 to 36500 (default `records.stale_after_days`, 183).
    #[param(minimum = 1, maximum = 36500)]
    days: Option<u32>,
    /// Only children with a region under this prefix, e.g. `4101`, or naming this 9-digit
    /// township, e.g. `410105001`.
    #[param(pattern = "^(\\*|[0-9]{2}|[0-9]{4}|[0-9]{6}|[0-9]{9})$")]
    region: Option<String>,
}

/// Children whose file was neither updated nor visited within the window, per region. A read of
/// children's data: audited (`stale.list`), with the `X-Purpose` header.
#[utoipa::path(get, path = "/api/v1/stale", tag = "reconcile", operation_id = "list_stale", params(StaleQuery),
    responses((status = 200, body = StaleList), (status = 400, description = "invalid_query", body = Problem, content_type = "application/problem+json")))]
#[get("/api/v1/stale")]
pub async fn stale(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::ReadChildren).await?;
    let q: StaleQuery = input::query(&req)?;
    let days = q.days.unwrap_or(state.settings.records.stale_after_days);
    input::within("days", Some(days), input::limits::STALE_DAYS)?;
    if let Some(r) = &q.region {
        crate::domain::division::check_region_or_township(r)
            .map_err(|e| ApiError::bad_request("invalid_query", e).field("region"))?;
    }
    let purpose = purpose_of(&req)?;
    let node = state.node.clone();
    let list = state
        .store
        .run(move |c| {
            crate::reconcile::stale::read_list(
                c,
                &node,
                days,
                q.region.as_deref(),
                &actor,
                purpose.as_deref(),
                Utc::now(),
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(list))
}
