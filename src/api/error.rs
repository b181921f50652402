//! The one place errors become HTTP responses.
//!
//! Policy: every handler returns `Result<_, ApiError>`. Service errors convert into `ApiError`
//! by an exhaustive match, so a new service error cannot silently become a 500. Client mistakes
//! are 4xx `application/problem+json` (RFC 9457) with a stable `code`, the `field` when one is at
//! fault, and a `reason` a person can act on. Internal errors are logged with their cause chain
//! and answered with a bare 500 that reveals nothing.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};

use crate::audit::AuditError;
use crate::storage::StorageError;
use crate::sync::ledger::LedgerError;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:hukou-sync:problem:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    /// Stable machine-readable code, e.g. `invalid_field`.
    pub code: String,
    /// The field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Why, in words a caseworker or integrator can act on.
    pub reason: String,
    /// Extension members (RFC 9457 §3.2), e.g. `current` for a stale resolution.
    #[serde(flatten, skip_serializing_if = "serde_json::Map::is_empty", default)]
    #[schema(value_type = Object)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

/// An error answered to an HTTP client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    field: Option<String>,
    reason: String,
    /// Logged, never sent.
    internal: Option<String>,
    /// Seconds for a `Retry-After` header (a temporary refusal).
    retry_after: Option<u16>,
    extensions: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, reason: impl Into<String>) -> Self {
        Self {
            status,
            code,
            field: None,
            reason: reason.into(),
            internal: None,
            retry_after: None,
            extensions: Default::default(),
        }
    }

    /// Adds an extension member to the problem document.
    pub fn extension(mut self, name: &str, value: serde_json::Value) -> Self {
        self.extensions.insert(name.to_owned(), value);
        self
    }

    /// A temporary refusal: the client may retry after `secs` seconds (`Retry-After`).
    pub fn retry_after(mut self, secs: u16) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn bad_request(code: &'static str, reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, reason)
    }

    pub fn unprocessable(code: &'static str, reason: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, reason)
    }

    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", reason)
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            field: None,
            reason: "an internal error occurred; it has been logged".into(),
            internal: Some(cause.to_string()),
            retry_after: None,
            extensions: Default::default(),
        }
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The words a person can act on (what a page shows).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The member or parameter at fault, when the error names one (a page shows the reason
    /// beside that field).
    pub fn field_name(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// The logged cause of an internal error.
    pub fn cause(&self) -> Option<&str> {
        self.internal.as_deref()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.reason)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(cause) = &self.internal {
            tracing::error!(error = %cause, "internal error");
        }
        self.problem_response()
    }
}

impl ApiError {
    /// The problem+json response, without logging (`error_response` logs internal causes).
    pub fn problem_response(&self) -> HttpResponse {
        let problem = Problem {
            problem_type: format!("urn:hukou-sync:problem:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            code: self.code.to_owned(),
            field: self.field.clone(),
            reason: self.reason.clone(),
            extensions: self.extensions.clone(),
        };
        let mut resp = HttpResponse::build(self.status);
        resp.content_type("application/problem+json")
            .insert_header((actix_web::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
        if self.status == StatusCode::UNAUTHORIZED {
            resp.insert_header((
                actix_web::http::header::WWW_AUTHENTICATE,
                "Bearer realm=\"hukou-sync\"",
            ));
        }
        if let Some(secs) = self.retry_after {
            resp.insert_header((actix_web::http::header::RETRY_AFTER, secs.to_string()));
        }
        resp.json(problem)
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Pool(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database is busy; retry shortly",
            )
            .retry_after(1),
            // The database restarted or failed over under the request: temporary, the pool
            // reconnects. (Its transaction was rolled back, unless the commit itself was cut.)
            e if e.is_unavailable() => {
                tracing::warn!(error = %e, "the database connection was lost under a request");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is unavailable; retry shortly",
                )
                .retry_after(1)
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::NoSuchEvent(seq) => ApiError::not_found(format!("no audit event {seq}")),
            AuditError::NoTreeHead => ApiError::not_found("no signed tree head yet"),
            AuditError::Range(r) => ApiError::bad_request("invalid_range", r),
            AuditError::Storage(s) => s.into(),
            e @ (AuditError::Canonical(_) | AuditError::Corrupt(_) | AuditError::Note(_)) => {
                ApiError::internal(e)
            }
        }
    }
}

impl From<crate::sync::witness::WitnessError> for ApiError {
    fn from(e: crate::sync::witness::WitnessError) -> Self {
        use crate::sync::witness::WitnessError as W;
        match e {
            W::Malformed(r) => ApiError::bad_request("malformed_checkpoint", r),
            e @ W::UnknownLog(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_log", e.to_string())
            }
            W::Forbidden(r) => ApiError::new(StatusCode::FORBIDDEN, "checkpoint_not_trusted", r),
            e @ W::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "old_size_mismatch", e.to_string())
            }
            e @ W::Inconsistent { .. } => {
                ApiError::unprocessable("inconsistent_checkpoint", e.to_string())
            }
            e @ W::Suspended(_) => ApiError::unprocessable("cosigning_suspended", e.to_string()),
            W::Storage(s) => s.into(),
            W::Audit(a) => a.into(),
        }
    }
}

impl From<crate::sync::lookup::LookupError> for ApiError {
    fn from(e: crate::sync::lookup::LookupError) -> Self {
        use crate::sync::lookup::LookupError as L;
        let reason = e.to_string();
        match e {
            L::NotServed(_) => ApiError::unprocessable("region_not_served", reason),
            L::NotAsker(_) => ApiError::new(StatusCode::FORBIDDEN, "not_serving_region", reason)
                .field("residence_region"),
            L::NoFile => ApiError::new(StatusCode::NOT_FOUND, "no_file", reason),
            L::BadNonce => ApiError::unprocessable("invalid_field", reason).field("nonce"),
            L::Forged(_) => ApiError::new(StatusCode::BAD_GATEWAY, "statement_invalid", reason),
            L::Peer { .. } => ApiError::new(StatusCode::BAD_GATEWAY, "peer_unavailable", reason),
            L::NoDirectory => ApiError::unprocessable("region_not_served", reason),
            L::Ledger(l) => l.into(),
            L::Storage(s) => s.into(),
            L::Audit(a) => a.into(),
        }
    }
}

impl From<crate::stats::StatsError> for ApiError {
    fn from(e: crate::stats::StatsError) -> Self {
        match e {
            crate::stats::StatsError::Storage(s) => s.into(),
            crate::stats::StatsError::Audit(a) => a.into(),
        }
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Invalid(f) => {
                ApiError::unprocessable("invalid_field", f.reason).field(f.field)
            }
            LedgerError::UnknownField(f) => {
                ApiError::unprocessable("unknown_field", "this field does not exist").field(f)
            }
            LedgerError::NotFound(_) => ApiError::not_found("no child with this ID number"),
            LedgerError::AlreadyExists(_) => ApiError::new(
                StatusCode::CONFLICT,
                "already_exists",
                "a file for this ID number already exists; update it instead",
            )
            .field("id_number"),
            e @ LedgerError::NotParty { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "not_party", e.to_string())
            }
            e @ LedgerError::OutsideScope { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "outside_scope", e.to_string())
            }
            LedgerError::FieldNotOwned { field, authority } => ApiError::new(
                StatusCode::FORBIDDEN,
                "field_not_owned",
                format!("this field is decided by the {authority:?} bureau of the child")
                    .to_lowercase(),
            )
            .field(field),
            LedgerError::RecognitionNotOwned(c) => ApiError::new(
                StatusCode::FORBIDDEN,
                "recognition_not_owned",
                format!(
                    "{} ({}) is recognised (认定) by the child's hukou bureau: ask it, or submit an eligibility case",
                    c.label_zh(),
                    c.code()
                ),
            )
            .field("categories"),
            LedgerError::ImmutableId => {
                ApiError::unprocessable("immutable_field", "the ID number cannot change")
                    .field("id_number")
            }
            LedgerError::UnderReview(f) => ApiError::new(
                StatusCode::CONFLICT,
                "field_under_review",
                "this field has an open conflict; it can change only by a resolution",
            )
            .field(f),
            LedgerError::Storage(s) => s.into(),
            LedgerError::Audit(a) => a.into(),
            e @ (LedgerError::Version(_) | LedgerError::Internal(_)) => ApiError::internal(e),
        }
    }
}

impl From<crate::sync::receive::PushError> for ApiError {
    fn from(e: crate::sync::receive::PushError) -> Self {
        use crate::sync::receive::PushError as P;
        let reason = e.to_string();
        match e {
            P::Busy { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", reason).retry_after(1)
            }
            P::TooManyVersions { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_many_versions", reason)
                    .field("versions")
            }
            P::Malformed(_) => ApiError::bad_request("malformed_json", reason),
            P::DuplicateKey(name) => ApiError::bad_request("duplicate_key", reason).field(name),
            P::Invalid(_) => ApiError::unprocessable("invalid_body", reason),
            P::SenderMismatch { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "sender_mismatch", reason).field("sender")
            }
            P::Ledger(l) => l.into(),
        }
    }
}

impl From<crate::eligibility::service::CaseError> for ApiError {
    fn from(e: crate::eligibility::service::CaseError) -> Self {
        use crate::eligibility::service::CaseError as C;
        match e {
            C::NotFound(_) => ApiError::not_found("no such case"),
            C::ChildNotFound => ApiError::new(
                StatusCode::NOT_FOUND,
                "child_not_found",
                "no file for this child on this node",
            )
            .field("child_id"),
            e @ C::NotResidence(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "not_residence", e.to_string())
            }
            e @ C::NoDecider(_) => ApiError::unprocessable("no_decider", e.to_string()),
            e @ C::DeciderNotParty(_) => {
                ApiError::unprocessable("decider_not_party", e.to_string()).field("decider")
            }
            C::Step(s) => {
                let code = s.code();
                let status = match code {
                    "wrong_party" | "not_party" => StatusCode::FORBIDDEN,
                    "terminal_state" | "illegal_transition" => StatusCode::CONFLICT,
                    _ => StatusCode::UNPROCESSABLE_ENTITY,
                };
                let mut api = ApiError::new(status, code, s.to_string());
                if code == "missing_reason" {
                    api = api.field("transition.reason_text");
                }
                api
            }
            C::EvidenceMissing { field, sha256 } => {
                let reason = C::EvidenceMissing {
                    field: String::new(),
                    sha256: sha256.clone(),
                }
                .to_string();
                ApiError::unprocessable("evidence_missing", reason)
                    .field(field)
                    .extension("sha256", serde_json::json!(sha256))
            }
            C::EvidenceNotVerified {
                missing,
                mismatching,
            } => {
                let (m, x) = (serde_json::json!(missing), serde_json::json!(mismatching));
                let reason = C::EvidenceNotVerified {
                    missing,
                    mismatching,
                }
                .to_string();
                ApiError::new(StatusCode::CONFLICT, "evidence_not_verified", reason)
                    .extension("missing", m)
                    .extension("mismatching", x)
            }
            C::BenefitExcluded(x) => ApiError::unprocessable("benefit_excluded", x.to_string())
                .field("benefit")
                .extension("conflicting_benefit", serde_json::json!(x.held)),
            C::Ledger(l) => l.into(),
        }
    }
}

impl From<crate::eligibility::evidence::EvidenceError> for ApiError {
    fn from(e: crate::eligibility::evidence::EvidenceError) -> Self {
        use crate::eligibility::evidence::EvidenceError as E;
        match e {
            e @ E::TooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "evidence_too_large",
                format!("{e}; nothing was stored"),
            ),
            E::Type(t) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "evidence_type",
                format!("{t}; nothing was stored"),
            ),
            E::CaseNotFound => ApiError::not_found("no such case"),
            e @ E::NotNamed => ApiError::not_found(e.to_string()).field("sha256"),
            e @ E::NotPresent(_) => {
                ApiError::new(StatusCode::CONFLICT, "evidence_not_present", e.to_string())
                    .field("sha256")
            }
            E::Case(c) => c.into(),
            E::Storage(s) => s.into(),
            E::Audit(a) => a.into(),
            e @ E::Sealed(_) => ApiError::internal(e),
        }
    }
}

impl From<crate::visits::VisitError> for ApiError {
    fn from(e: crate::visits::VisitError) -> Self {
        use crate::visits::VisitError as V;
        match e {
            V::NotFound(_) => ApiError::not_found("no such visit"),
            V::ChildNotFound => ApiError::new(
                StatusCode::NOT_FOUND,
                "child_not_found",
                "no file for this child on this node",
            )
            .field("id_number"),
            e @ V::NotAuthor(..) => {
                ApiError::new(StatusCode::FORBIDDEN, "not_author", e.to_string())
            }
            V::Ledger(l) => l.into(),
        }
    }
}

impl From<crate::reconcile::ReconcileError> for ApiError {
    fn from(e: crate::reconcile::ReconcileError) -> Self {
        use crate::reconcile::ReconcileError as R;
        match e {
            e @ R::NoDirectory => ApiError::new(StatusCode::CONFLICT, "no_peers", e.to_string()),
            e @ R::UnknownPeer(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_peer", e.to_string()).field("peer")
            }
            e @ R::SelfPeer(_) => ApiError::unprocessable("self_peer", e.to_string()).field("peer"),
            e @ R::AlreadyRunning { .. } => {
                ApiError::new(StatusCode::CONFLICT, "already_running", e.to_string())
            }
            e @ R::NoSuchRun(_) => ApiError::not_found(e.to_string()),
            R::Invalid {
                code,
                field,
                reason,
            } => ApiError::unprocessable(code, reason).field(field),
            R::Ledger(l) => l.into(),
            R::Audit(a) => a.into(),
            R::Storage(s) => s.into(),
            e @ (R::Client(_) | R::Transport(_) | R::Peer { .. } | R::BadResponse(_)) => {
                ApiError::internal(e)
            }
        }
    }
}

/// Maps the JSON extractor's failures (body too large, wrong content type, bad JSON).
pub fn json_error(
    err: actix_web::error::JsonPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as J;
    let api = match &err {
        J::Overflow { limit } | J::OverflowKnownLength { limit, .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body exceeds {limit} bytes"),
        ),
        J::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send Content-Type: application/json",
        ),
        J::Deserialize(e) if e.is_data() => {
            ApiError::unprocessable("invalid_body", "the body must be a JSON object of fields")
        }
        J::Deserialize(e) => {
            ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}"))
        }
        other => ApiError::bad_request("bad_body", other.to_string()),
    };
    api.into()
}

/// Maps query-string failures.
pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    let reason = err.to_string();
    // Only these messages quote the parameter's name; the others quote its value.
    let names_parameter = ["unknown field", "missing field"]
        .iter()
        .any(|p| reason.contains(p));
    let field = names_parameter
        .then(|| reason.split('`').nth(1).map(str::to_owned))
        .flatten();
    let mut api = ApiError::bad_request("invalid_query", reason);
    api.field = field;
    api.into()
}

/// Maps path failures.
pub fn path_error(
    err: actix_web::error::PathError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::bad_request("invalid_path", err.to_string()).into()
}

impl From<crate::accounts::AccountError> for ApiError {
    fn from(e: crate::accounts::AccountError) -> Self {
        use crate::accounts::AccountError as A;
        match e {
            e @ A::UnknownRole(_) => {
                ApiError::unprocessable("invalid_role", e.to_string()).field("role")
            }
            e @ A::BadUsername => {
                ApiError::unprocessable("invalid_username", e.to_string()).field("username")
            }
            e @ A::BadTokenName => {
                ApiError::unprocessable("invalid_token_name", e.to_string()).field("name")
            }
            e @ A::WeakPassword => {
                ApiError::unprocessable("weak_password", e.to_string()).field("password")
            }
            e @ A::Exists(_) => {
                ApiError::new(StatusCode::CONFLICT, "already_exists", e.to_string())
            }
            e @ A::NotFound(_) => ApiError::not_found(e.to_string()),
            e @ (A::BadCredentials | A::NoSession | A::BadToken) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", e.to_string())
            }
            e @ A::Locked { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "account_locked", e.to_string())
            }
            e @ A::Disabled => {
                ApiError::new(StatusCode::FORBIDDEN, "account_disabled", e.to_string())
            }
            A::Storage(s) => s.into(),
            A::Audit(a) => a.into(),
            e @ (A::Hashing(_) | A::Random) => ApiError::internal(e),
        }
    }
}

impl From<crate::conflicts::ConflictError> for ApiError {
    fn from(e: crate::conflicts::ConflictError) -> Self {
        use crate::conflicts::ConflictError as C;
        match e {
            C::NotFound(_) => ApiError::not_found("no child with this ID number"),
            e @ C::NothingOpen => {
                ApiError::new(StatusCode::CONFLICT, "no_open_conflict", e.to_string())
            }
            e @ C::NotOwner { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "not_review_owner", e.to_string())
            }
            C::Stale {
                missing,
                unknown,
                current,
            } => match serde_json::to_value(&*current) {
                Ok(current) => ApiError::new(
                    StatusCode::CONFLICT,
                    "stale_resolution",
                    stale_reason(&missing, &unknown),
                )
                .field("heads")
                .extension("current", current),
                Err(e) => ApiError::internal(format!("serialising the current file: {e}")),
            },
            C::NotInConflict(f) => ApiError::unprocessable(
                "not_in_conflict",
                "this field has no open conflict reviewed here",
            )
            .field(f),
            C::MissingChoice(f) => {
                ApiError::unprocessable("missing_choice", "choose a value for every disputed field")
                    .field(f)
            }
            C::UnknownField(f) => {
                ApiError::unprocessable("unknown_field", "this field does not exist").field(f)
            }
            C::BadHead(_) => {
                ApiError::unprocessable("invalid_head", "heads are 64-character hex version ids")
                    .field("heads")
            }
            C::Invalid(f) => ApiError::unprocessable("invalid_field", f.reason).field(f.field),
            C::Ledger(l) => l.into(),
            C::Audit(a) => a.into(),
            C::Storage(s) => s.into(),
        }
    }
}

/// Why a resolution's heads do not fit: the current heads it did not name (a resolution names
/// every head; a head not seen means the file changed since it was shown) and the heads it named
/// that are no longer the file's (the file moved on).
fn stale_reason(missing: &[String], unknown: &[String]) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!(
            "the file's current head(s) {} are not named: a resolution names every head (if you were not shown them, the file changed since it was shown)",
            missing.join(", ")
        ));
    }
    if !unknown.is_empty() {
        parts.push(format!(
            "head(s) {} are no longer the file's: it changed since it was shown",
            unknown.join(", ")
        ));
    }
    parts.push("review its current state (in `current`) and resolve again".into());
    parts.join("; ")
}
