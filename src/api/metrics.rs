//! `GET /metrics`: Prometheus text exposition of what an operator watches — outbox depth and
//! delivery age per peer, overdue and due-soon eligibility cases, files with concurrent heads,
//! and the size of the audit log.

use actix_web::{get, web, HttpResponse};

use super::error::ApiError;
use super::AppState;

/// Metrics in the Prometheus text format (version 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let node = state.node.clone();
    let text = state
        .store
        .run(move |c| crate::sync::sender::metrics_text(c, &node))
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}
