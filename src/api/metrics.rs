//! `GET /metrics`: Prometheus text exposition of what an operator watches — outbox depth and
//! delivery age per peer, overdue and due-soon eligibility cases, files with concurrent heads,
//! the size of the audit log, the last reconciliation run per peer, and stale files.

use actix_web::{get, web, HttpResponse};

use super::error::ApiError;
use super::AppState;

/// Metrics in the Prometheus text format (version 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let node = state.node.clone();
    let stale_days = state.settings.records.stale_after_days;
    let text = state
        .store
        .run(move |c| {
            let mut text = crate::sync::sender::metrics_text(c, &node)?;
            text.push_str(&crate::reconcile::metrics_text(
                c,
                &node,
                stale_days,
                chrono::Utc::now(),
            )?);
            Ok::<_, ApiError>(text)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}
