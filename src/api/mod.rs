//! The admin HTTP API on the admin listener: routes, extractor limits, the OpenAPI document, and
//! (in [`error`]) the one mapping from errors to `application/problem+json`.

pub mod audit;
pub mod auth;
pub mod cases;
pub mod children;
pub mod conflicts;
pub mod error;
pub mod input;
pub mod manners;
pub mod metrics;
pub mod peer;
pub mod peers;
pub mod reconcile;

use std::sync::Arc;

use actix_web::{get, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use utoipa::OpenApi;

use crate::audit::Event;
use crate::config::Settings;
use crate::eligibility::service::Deadlines;
use crate::storage::Store;
use crate::sync::LocalNode;
use error::ApiError;

/// What every handler can reach.
pub struct AppState {
    pub store: Store,
    pub node: Arc<LocalNode>,
    pub settings: Arc<Settings>,
    /// Deadlines of eligibility cases, built from `settings.eligibility` at start.
    pub deadlines: Arc<Deadlines>,
    /// Receives peers' batches (`POST /peer/v1/versions`).
    pub receiver: Arc<crate::sync::receive::Receiver>,
    /// Failed logins per client address (`admin.login_attempts_per_client`).
    pub login_limiter: Arc<crate::accounts::ClientLimiter>,
}

impl AppState {
    /// Appends an event to the audit log on its own, for refusals answered with an error: the
    /// refusal stands even if the log cannot be written, which is logged.
    pub async fn record(&self, event: Event) {
        let node = self.node.clone();
        let result = self
            .store
            .run(move |c| {
                crate::storage::transaction(c, |c| {
                    crate::audit::append(c, node.clock.now(), Utc::now(), &event)
                })
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "could not audit a refusal");
        }
    }

    /// The user of a session cookie; `None` when the session has ended or the user is disabled.
    pub async fn session_of(
        &self,
        cookie: &str,
    ) -> Result<Option<crate::accounts::Principal>, crate::accounts::AccountError> {
        use crate::accounts::{self, AccountError};
        let value = cookie.to_owned();
        match self
            .store
            .run(move |c| accounts::session(c, &value, Utc::now()))
            .await
        {
            Ok(p) => Ok(Some(p)),
            Err(AccountError::NoSession | AccountError::Disabled) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Registers the admin routes and their extractor configuration. `panic_route` adds the
/// test-only `GET /api/v1/test/panic` (`admin.panic_route_for_tests`, off by default).
pub fn configure(cfg: &mut web::ServiceConfig, body_limit: usize, panic_route: bool) {
    if panic_route {
        cfg.route(
            "/api/v1/test/panic",
            web::get().to(manners::panic_for_tests),
        );
    }
    cfg.app_data(
        web::JsonConfig::default()
            .limit(body_limit)
            .error_handler(error::json_error),
    )
    .app_data(web::PayloadConfig::default().limit(body_limit))
    .app_data(web::QueryConfig::default().error_handler(error::query_error))
    .app_data(web::PathConfig::default().error_handler(error::path_error))
    .service(healthz)
    .service(openapi_json)
    .service(metrics::metrics)
    .service(conflicts::queue)
    .service(conflicts::of_file)
    .service(conflicts::resolve)
    .service(children::create)
    .service(children::list)
    .service(children::read)
    .service(children::update)
    .service(audit::events)
    .service(audit::event)
    .service(audit::consistency)
    .service(audit::tree_head)
    .service(audit::sign_tree_head)
    .service(peers::peers)
    .service(cases::create)
    .service(cases::list)
    .service(cases::read)
    .service(cases::transition)
    .service(reconcile::runs)
    .service(reconcile::run)
    .service(reconcile::start)
    .service(reconcile::stale)
    .default_service(web::to(manners::unmatched));
}

/// An ID number from a request path: 400 `invalid_id_number` if it is not one.
pub fn parse_id(raw: &str) -> Result<crate::domain::IdNumber, ApiError> {
    crate::domain::IdNumber::parse(raw)
        .map_err(|e| ApiError::bad_request("invalid_id_number", e.to_string()).field("id_number"))
}

/// The `X-Purpose` header: why a person or system reads a child's data (at most 200 characters).
pub fn purpose_of(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(v) = req.headers().get("x-purpose") else {
        return Ok(None);
    };
    let s = v.to_str().map_err(|_| {
        ApiError::bad_request(
            "invalid_header",
            "X-Purpose must be visible ASCII; percent-encode other text",
        )
        .field("X-Purpose")
    })?;
    let s = percent_decode(s);
    if let Some((at, c, why)) = crate::domain::text::first_refused(&s, false) {
        return Err(ApiError::bad_request(
            "invalid_header",
            format!(
                "X-Purpose character {at} is U+{:04X}, {why}; send visible text",
                u32::from(c)
            ),
        )
        .field("X-Purpose"));
    }
    if s.chars().count() > 200 {
        return Err(
            ApiError::bad_request("invalid_header", "X-Purpose is at most 200 characters")
                .field("X-Purpose"),
        );
    }
    Ok(Some(s))
}

/// Decodes `%XX` escapes (UTF-8), leaving malformed ones as they are.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn now() -> DateTime<Utc> {
    Utc::now()
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    status: &'static str,
    node: String,
    database: &'static str,
}

/// Liveness and database reachability.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, body = Health), (status = 503, description = "unavailable", body = error::Problem, content_type = "application/problem+json")))]
#[get("/healthz")]
pub async fn healthz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let backend = state.store.backend();
    state.store.run(crate::storage::ping).await?;
    Ok(HttpResponse::Ok().json(Health {
        status: "ok",
        node: state.node.id.to_string(),
        database: match backend {
            crate::storage::Backend::Sqlite => "sqlite",
            crate::storage::Backend::Postgres => "postgres",
        },
    }))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hukou-sync admin API",
        description = "Children's files, their history and the audit trail of one hukou-sync node."
    ),
    paths(
        healthz,
        openapi_json,
        metrics::metrics,
        children::create,
        children::read,
        children::update,
        children::list,
        audit::events,
        audit::event,
        audit::consistency,
        audit::tree_head,
        audit::sign_tree_head,
        peers::peers,
        cases::create,
        cases::list,
        cases::read,
        cases::transition,
        reconcile::start,
        reconcile::runs,
        reconcile::run,
        reconcile::stale,
        conflicts::queue,
        conflicts::of_file,
        conflicts::resolve,
    ),
    components(schemas(error::Problem))
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, description = "OpenAPI 3.1 document")))]
#[get("/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
