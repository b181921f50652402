//! The admin HTTP API on the admin listener: routes, extractor limits, the OpenAPI document, and
//! (in [`error`]) the one mapping from errors to `application/problem+json`.

pub mod audit;
pub mod auth;
pub mod benefits;
pub mod cases;
pub mod children;
pub mod conflicts;
pub mod error;
pub mod evidence;
pub mod input;
pub mod lookups;
pub mod manners;
pub mod metrics;
pub mod peer;
pub mod peers;
pub mod reconcile;
pub mod reports;
pub mod request_id;
pub mod stats;
pub mod visits;

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
    /// Mutual-TLS clients to peers (lookups and handovers); `None` without a directory.
    pub peer_clients: Option<crate::sync::sender::ClientFactory>,
    /// Evidence files: the key they are sealed under and the size limit (`[evidence]`).
    pub evidence: Arc<crate::eligibility::evidence::Vault>,
    /// Requests and latency of both listeners (`api::metrics`), for the node's life.
    pub http_metrics: Arc<metrics::HttpMetrics>,
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
    .service(children::end_benefit)
    .service(lookups::handover)
    .service(lookups::verify)
    .service(lookups::ask)
    .service(benefits::review_due)
    .service(stats::read)
    .service(audit::events)
    .service(audit::event)
    .service(audit::consistency)
    .service(audit::tree_head)
    .service(audit::checkpoint)
    .service(audit::sign_tree_head)
    .service(peers::peers)
    .service(cases::create)
    .service(cases::list)
    .service(cases::read)
    .service(cases::transition)
    .service(evidence::upload)
    .service(evidence::download)
    .service(reconcile::runs)
    .service(reconcile::run)
    .service(reconcile::start)
    .service(reconcile::stale)
    .service(visits::due)
    .service(visits::record)
    .service(visits::list)
    .service(visits::read)
    .service(visits::amend)
    .service(reports::record)
    .service(reports::of_child)
    .service(reports::list)
    .service(reports::read)
    .service(reports::amend)
    .default_service(web::to(manners::unmatched));
}

/// An ID number from a request path: 400 `invalid_id_number` if it is not one.
pub fn parse_id(raw: &str) -> Result<crate::domain::IdNumber, ApiError> {
    crate::domain::IdNumber::parse(raw)
        .map_err(|e| ApiError::bad_request("invalid_id_number", e.to_string()).field("id_number"))
}

/// A document id (UUID) from a request path: 400 `invalid_path` naming `field` if it is not one.
pub fn parse_uuid(raw: &str, field: &'static str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| {
        ApiError::bad_request("invalid_path", format!("{field} is a UUID")).field(field)
    })
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
#[utoipa::path(get, path = "/healthz", tag = "ops", operation_id = "health",
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
        children::end_benefit,
        lookups::ask,
        lookups::verify,
        lookups::handover,
        benefits::review_due,
        stats::read,
        audit::events,
        audit::event,
        audit::consistency,
        audit::tree_head,
        audit::checkpoint,
        audit::sign_tree_head,
        peers::peers,
        cases::create,
        cases::list,
        cases::read,
        cases::transition,
        evidence::upload,
        evidence::download,
        reconcile::start,
        reconcile::runs,
        reconcile::run,
        reconcile::stale,
        conflicts::queue,
        conflicts::of_file,
        conflicts::resolve,
        visits::record,
        visits::list,
        visits::read,
        visits::amend,
        visits::due,
        reports::record,
        reports::of_child,
        reports::list,
        reports::read,
        reports::amend,
    ),
    components(schemas(error::Problem, crate::domain::child::ChildRecord))
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", operation_id = "openapi",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
#[get("/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(document())
}

/// The OpenAPI document served at `/openapi.json`: what the annotations say, completed with what
/// holds for every `/api/v1` operation alike and is therefore written once here — the security
/// schemes (a bearer token, or a session cookie whose changes carry the CSRF header), the error
/// statuses every authenticated route can answer, and the bodies of children's files.
pub fn document() -> serde_json::Value {
    let mut doc = match serde_json::to_value(ApiDoc::openapi()) {
        Ok(doc) => doc,
        // Serialising plain data cannot fail; an empty document would fail every client test.
        Err(_) => return serde_json::Value::Null,
    };
    complete(&mut doc);
    doc
}

/// A problem response with `description`.
fn problem(description: &str) -> serde_json::Value {
    serde_json::json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

fn complete(doc: &mut serde_json::Value) {
    use serde_json::{json, Value};
    let schemas = &mut doc["components"]["schemas"];
    // The create body: a record with only the four fields a file cannot lack required.
    if let Some(record) = schemas.get("ChildRecord").cloned() {
        let mut new_child = record.clone();
        new_child["required"] = json!(["id_number", "name", "hukou_region", "residence_region"]);
        new_child["description"] = json!("A child's full record. id_number, name, hukou_region and residence_region are required; other fields are null, [] or absent when empty.");
        let mut patch = record;
        if let Some(o) = patch.as_object_mut() {
            o.remove("required");
        }
        patch["description"] = json!("Fields to set; null clears an optional field. id_number cannot change (422 immutable_field).");
        // What people write: a risk level as the level or as this node's label.
        let risk_input = json!({
            "description": "The risk level: on the common scale, 1 (most severe) to 4, or this node's label of it (records.risk_palette, e.g. 红); stored and exchanged as the number. Anything else is refused (422 invalid_field, field risk_level).",
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": 4},
                {"type": "string", "minLength": 1, "maxLength": 16},
                {"type": "null"}
            ]
        });
        new_child["properties"]["risk_level"] = risk_input.clone();
        patch["properties"]["risk_level"] = risk_input;
        schemas["NewChild"] = new_child;
        schemas["ChildPatch"] = patch;
    }
    schemas["Transition"] = transition_schema();
    if let Some(t) = schemas.pointer_mut("/TransitionRequest/properties/transition") {
        *t = json!({"$ref": "#/components/schemas/Transition"});
    }
    // Evidence files travel as themselves: the upload's body and the download's answer.
    let file = || {
        let binary = json!({"schema": {"type": "string", "format": "binary"}});
        json!({"application/pdf": binary, "image/jpeg": binary, "image/png": binary})
    };
    if let Some(op) = doc["paths"]["/api/v1/evidence"].get_mut("post") {
        op["requestBody"]["content"] = file();
        op["requestBody"]["required"] = json!(true);
    }
    if let Some(op) = doc["paths"]["/api/v1/cases/{case_id}/evidence/{sha256}"].get_mut("get") {
        op["responses"]["200"]["content"] = file();
    }
    for (path, method, schema) in [
        ("/api/v1/children", "post", "NewChild"),
        ("/api/v1/children/{id_number}", "patch", "ChildPatch"),
    ] {
        if let Some(op) = doc["paths"][path].get_mut(method) {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {
                "schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
        }
    }
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for op in item.values_mut() {
                let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
                    continue;
                };
                for param in params {
                    let name = param["name"].as_str().unwrap_or_default().to_owned();
                    if let Some(extra) = parameter_schema(path, &name) {
                        if let (Some(schema), Some(extra)) =
                            (param["schema"].as_object_mut(), extra.as_object())
                        {
                            for (k, v) in extra {
                                schema.insert(k.clone(), v.clone());
                            }
                        }
                    }
                }
            }
        }
    }
    doc["components"]["securitySchemes"] = json!({
        "bearer": {"type": "http", "scheme": "bearer",
                   "description": "A token from `hukou-sync admin token create NAME --role R` (hks_…)."},
        "session": {"type": "apiKey", "in": "cookie", "name": crate::accounts::SESSION_COOKIE,
                    "description": "A logged-in browser's session cookie."},
        "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token",
                 "description": "The session's CSRF token; a session's changes need it."}
    });
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            let has_body = op.get("requestBody").is_some();
            // A JSON body (every one but the evidence upload, whose refusals are its own).
            let json_body = op
                .pointer("/requestBody/content/application~1json")
                .is_some();
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let in_path = params.iter().any(|p| p["in"] == "path");
            let in_query_or_header = params
                .iter()
                .any(|p| p["in"] == "query" || p["in"] == "header");
            let Some(responses) = op["responses"].as_object_mut() else {
                continue;
            };
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| problem(description));
            };
            if path.starts_with("/api/v1/") {
                add(
                    "400",
                    "invalid_header (X-Purpose, Authorization), invalid_query or invalid_path",
                );
                add(
                    "401",
                    "unauthenticated: no credentials, or an unknown, revoked or ended one",
                );
                add(
                    "403",
                    "forbidden: the caller's role lacks the permission; csrf_token_invalid",
                );
                add("503", "unavailable: the database is busy; retry");
            }
            if in_path {
                add("400", "invalid_path or invalid_id_number");
                add("404", "not_found");
            }
            if in_query_or_header {
                add("400", "invalid_query or invalid_header");
            }
            if has_body && !json_body {
                add("400", "bad_body: the body could not be read");
            }
            if json_body {
                add("400", "malformed_json: the body is not JSON");
                add("413", "body_too_large");
                add(
                    "415",
                    "unsupported_media_type: send Content-Type: application/json",
                );
                add("422", "invalid_field, unknown_field or invalid_body");
            }
            if path.starts_with("/api/v1/") {
                let mut session = json!({"session": []});
                if method != "get" {
                    session["csrf"] = json!([]);
                }
                op["security"] = Value::Array(vec![json!({"bearer": []}), session]);
            }
        }
    }
}

/// Constraints of a parameter the handler checks beyond its Rust type: patterns, bounds, the
/// values an enumerated string takes. Kept beside each other so the document states every bound
/// the handlers enforce (`limit` differs per route).
fn parameter_schema(path: &str, name: &str) -> Option<serde_json::Value> {
    use serde_json::json;
    const ID_NUMBER: &str = "^[0-9]{17}[0-9Xx]$";
    const REGION_PREFIX: &str = "^[0-9]{2}([0-9]{2}){0,2}$";
    let category: Vec<&str> = crate::domain::child::Category::ALL
        .iter()
        .flat_map(|c| [c.code(), c.label_zh()])
        .collect();
    Some(match (path, name) {
        (_, "id_number") => json!({"pattern": ID_NUMBER, "minLength": 18, "maxLength": 18}),
        (_, "case_id") => json!({"format": "uuid"}),
        (_, "sha256") => json!({"pattern": "^[0-9a-f]{64}$", "minLength": 64, "maxLength": 64}),
        ("/api/v1/children", "after") => json!({"pattern": ID_NUMBER}),
        (_, "region" | "hukou_region" | "residence_region") => json!({"pattern": REGION_PREFIX}),
        (_, "category") => json!({"enum": category}),
        ("/api/v1/children", "stale_days") => json!({"minimum": 1, "maximum": 36_500}),
        ("/api/v1/children", "township") => json!({"pattern": "^[0-9]{9}$"}),
        ("/api/v1/children", "limit") => json!({"minimum": 1, "maximum": 500}),
        ("/api/v1/conflicts", "limit") => json!({"minimum": 1, "maximum": 500}),
        ("/api/v1/conflicts", "owner") => json!({"enum": ["here", "all"]}),
        ("/api/v1/cases", "limit") => json!({"minimum": 1, "maximum": 1000}),
        ("/api/v1/cases", "direction") => json!({"enum": ["incoming", "outgoing"]}),
        ("/api/v1/cases", "state") => {
            json!({"enum": wire_names(crate::domain::case::state::CaseState::ALL)})
        }
        ("/api/v1/audit/events", "limit") => json!({"minimum": 1, "maximum": 1000}),
        ("/api/v1/audit/events/{seq}", "seq") => json!({"minimum": 0}),
        ("/api/v1/audit/consistency", "old_size" | "new_size") => json!({"minimum": 1}),
        ("/api/v1/reconcile/runs", "limit") => json!({"minimum": 1, "maximum": 200}),
        ("/api/v1/stale", "days") => json!({"minimum": 1, "maximum": 36_500}),
        ("/api/v1/reconcile/runs/{id}", "id") => json!({"format": "uuid"}),
        _ => return None,
    })
}

/// A case transition as `POST /api/v1/cases/{case_id}/transitions` takes it: one object per
/// action, no other members (`domain::case::state::Transition` on the wire).
fn transition_schema() -> serde_json::Value {
    use serde_json::json;
    let action = |name: &str, props: serde_json::Value, required: &[&str]| {
        let mut properties = json!({"action": {"type": "string", "const": name}});
        if let (Some(p), Some(extra)) = (properties.as_object_mut(), props.as_object()) {
            for (k, v) in extra {
                p.insert(k.clone(), v.clone());
            }
        }
        let mut req = vec!["action"];
        req.extend_from_slice(required);
        json!({"type": "object", "properties": properties, "required": req,
               "additionalProperties": false})
    };
    json!({
        "description": "One step of a case: its `action` and that action's fields.",
        "oneOf": [
            action("submit", json!({}), &[]),
            action("receive", json!({}), &[]),
            action("request_info", json!({"question": {"type": "string"}}), &["question"]),
            action("provide_info", json!({"answer": {"type": "string"},
                "evidence": {"type": "array", "maxItems": crate::domain::case::MAX_EVIDENCE,
                    "items": {"$ref": "#/components/schemas/Evidence"}}}), &["answer"]),
            action("approve", json!({
                "effective_month": {"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"},
                "review_on": {"type": ["string", "null"], "format": "date"}}), &["effective_month"]),
            action("deny", json!({
                "reason_code": {"type": "string",
                    "enum": wire_names(crate::domain::case::state::DenialReason::ALL)},
                "reason_text": {"type": "string"}}), &["reason_code", "reason_text"]),
            action("withdraw", json!({"reason": {"type": ["string", "null"]}}), &[]),
        ]
    })
}

/// How serde spells each value of an enum: the document's `enum` list.
fn wire_names<T: serde::Serialize>(all: impl IntoIterator<Item = T>) -> Vec<serde_json::Value> {
    all.into_iter()
        .filter_map(|v| serde_json::to_value(v).ok())
        .collect()
}
