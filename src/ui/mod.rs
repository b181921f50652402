//! The administrators' web pages on the admin listener, under `/ui`: server-rendered HTML
//! (askama templates in `templates/`), in Chinese with English in brackets, usable without
//! JavaScript. Pages: login, the conflict review queue and a conflict's side-by-side view with
//! resolve buttons, the files list with filters and a new file (`files`), a child's file with
//! its history and forms to edit it, record a visit, open a case and end a benefit
//! (`casework`), the visits due, the ledger's upload and download (`ledger`), reports and referrals (`reports`), incoming and outgoing eligibility cases with their actions,
//! peers' status, reconciliation runs (and starting one), and the audit log with inclusion proofs.
//!
//! Security: a session cookie (HttpOnly, SameSite=Strict, Secure when the listener is TLS) from
//! `accounts::login`; every form carries the session's CSRF token (the login form a double-submit
//! token); roles are checked with the same permissions as the API; every page that shows a
//! child's data records the read in the audit trail.

mod casework;
mod files;
mod forms;
mod ledger;
mod pages;
mod render;
mod reports;
mod upload;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use crate::accounts::{self, AccountError, Permission, Principal};
use crate::api::error::ApiError;
use crate::api::AppState;
use crate::audit::Via;

use crate::accounts::SESSION_COOKIE;
/// The login form's double-submit token (there is no session yet to hold one).
const LOGIN_CSRF_COOKIE: &str = "hks_login_csrf";

/// Registers the pages.
pub fn configure(cfg: &mut web::ServiceConfig, secure_cookies: bool) {
    cfg.app_data(web::Data::new(CookiePolicy {
        secure: secure_cookies,
    }))
    .app_data(
        web::FormConfig::default()
            .limit(64 * 1024)
            .error_handler(|err, _req| {
                UiError::BadRequest(format!("the form could not be read: {err}")).into()
            }),
    )
    .route("/", web::get().to(pages::landing))
    .route("/ui", web::get().to(pages::landing))
    .route("/ui/", web::get().to(pages::landing))
    .route("/ui/login", web::get().to(pages::login_form))
    .route("/ui/login", web::post().to(pages::login))
    .route("/ui/logout", web::post().to(pages::logout))
    .route("/ui/conflicts", web::get().to(pages::queue))
    .route("/ui/conflicts/{id}", web::get().to(pages::conflict))
    .route("/ui/conflicts/{id}", web::post().to(pages::resolve))
    .route("/ui/children", web::get().to(files::list))
    .route("/ui/children/new", web::get().to(files::new_form))
    .route("/ui/children/new", web::post().to(files::create))
    .route("/ui/children/{id}", web::get().to(pages::child))
    .route("/ui/children/{id}", web::post().to(files::update))
    .route(
        "/ui/children/{id}/visits",
        web::post().to(casework::record_visit),
    )
    .route(
        "/ui/children/{id}/cases",
        web::post().to(casework::open_case),
    )
    .route(
        "/ui/children/{id}/benefits/end",
        web::post().to(casework::end_benefit),
    )
    .route("/ui/children/{id}/reports", web::post().to(reports::record))
    .route("/ui/visits/due", web::get().to(casework::due))
    .route("/ui/reports", web::get().to(reports::list))
    .route("/ui/ledger", web::get().to(ledger::show))
    .route("/ui/ledger", web::post().to(ledger::upload))
    .route("/ui/ledger/export", web::get().to(ledger::export))
    .route("/ui/cases", web::get().to(pages::cases))
    .route("/ui/cases/{id}", web::get().to(pages::case))
    .route("/ui/cases/{id}", web::post().to(casework::act))
    .route("/ui/peers", web::get().to(pages::peers))
    .route("/ui/stats", web::get().to(pages::stats))
    .route("/ui/stats/report.xlsx", web::get().to(pages::stats_report))
    .route("/ui/reconcile", web::get().to(pages::reconcile))
    .route("/ui/reconcile", web::post().to(pages::start_reconcile))
    .route("/ui/reconcile/{id}", web::get().to(pages::reconcile_run))
    .route("/ui/audit", web::get().to(pages::audit_log))
    .route("/ui/audit/{seq}", web::get().to(pages::audit_event));
}

/// The pages' routes and methods, as registered in [`configure`] (for 405 answers with
/// `Allow`; a test checks each one answers).
pub const ROUTES: &[(&str, &[&str])] = &[
    ("/", &["GET"]),
    ("/ui", &["GET"]),
    ("/ui/", &["GET"]),
    ("/ui/login", &["GET", "POST"]),
    ("/ui/logout", &["POST"]),
    ("/ui/conflicts", &["GET"]),
    ("/ui/conflicts/{id}", &["GET", "POST"]),
    ("/ui/children", &["GET"]),
    ("/ui/children/new", &["GET", "POST"]),
    ("/ui/children/{id}", &["GET", "POST"]),
    ("/ui/children/{id}/visits", &["POST"]),
    ("/ui/children/{id}/cases", &["POST"]),
    ("/ui/children/{id}/benefits/end", &["POST"]),
    ("/ui/children/{id}/reports", &["POST"]),
    ("/ui/visits/due", &["GET"]),
    ("/ui/reports", &["GET"]),
    ("/ui/ledger", &["GET", "POST"]),
    ("/ui/ledger/export", &["GET"]),
    ("/ui/cases", &["GET"]),
    ("/ui/cases/{id}", &["GET", "POST"]),
    ("/ui/peers", &["GET"]),
    ("/ui/stats", &["GET"]),
    ("/ui/stats/report.xlsx", &["GET"]),
    ("/ui/reconcile", &["GET", "POST"]),
    ("/ui/reconcile/{id}", &["GET"]),
    ("/ui/audit", &["GET"]),
    ("/ui/audit/{seq}", &["GET"]),
];

/// Whether cookies get the `Secure` attribute (the admin listener speaks TLS).
#[derive(Debug, Clone, Copy)]
pub struct CookiePolicy {
    pub secure: bool,
}

impl CookiePolicy {
    fn cookie<'c>(&self, name: &'c str, value: String, path: &'c str) -> Cookie<'c> {
        Cookie::build(name, value)
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(self.secure)
            .path(path)
            .finish()
    }
}

/// A page that could not be shown: an HTML answer, never a stack trace.
#[derive(Debug)]
pub enum UiError {
    /// Not logged in: go to the login page, then come back.
    Login {
        next: String,
    },
    Forbidden(String),
    NotFound(String),
    BadRequest(String),
    /// An upload over its bound; nothing was stored.
    TooLarge(String),
    Internal(String),
    /// A service's error, mapped to HTTP by `api::error`.
    Problem(ApiError),
}

impl std::fmt::Display for UiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UiError::Login { .. } => f.write_str("login required"),
            UiError::Forbidden(m)
            | UiError::NotFound(m)
            | UiError::BadRequest(m)
            | UiError::TooLarge(m)
            | UiError::Internal(m) => f.write_str(m),
            UiError::Problem(e) => write!(f, "{e}"),
        }
    }
}

impl ResponseError for UiError {
    fn status_code(&self) -> StatusCode {
        match self {
            UiError::Login { .. } => StatusCode::SEE_OTHER,
            UiError::Forbidden(_) => StatusCode::FORBIDDEN,
            UiError::NotFound(_) => StatusCode::NOT_FOUND,
            UiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            UiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            UiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            UiError::Problem(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (title, message) = match self {
            UiError::Login { next } => {
                return see_other(&format!("/ui/login?next={}", render::url_encode(next)))
            }
            UiError::Forbidden(m) => ("无权访问 (Forbidden)", m.clone()),
            UiError::NotFound(m) => ("未找到 (Not found)", m.clone()),
            UiError::BadRequest(m) => ("请求有误 (Bad request)", m.clone()),
            UiError::TooLarge(m) => ("文件过大 (Too large)", m.clone()),
            UiError::Internal(m) => {
                tracing::error!(error = %m, "page failed");
                (
                    "内部错误 (Internal error)",
                    "an internal error occurred; it has been logged".to_owned(),
                )
            }
            UiError::Problem(e) => {
                let status = e.status_code();
                if status.is_server_error() {
                    tracing::error!(error = %e.cause().unwrap_or(e.reason()), "page failed");
                }
                let title = match status {
                    StatusCode::NOT_FOUND => "未找到 (Not found)",
                    StatusCode::FORBIDDEN => "无权访问 (Forbidden)",
                    StatusCode::CONFLICT => "状态冲突 (Conflict)",
                    StatusCode::SERVICE_UNAVAILABLE => "暂不可用 (Unavailable)",
                    s if s.is_server_error() => "内部错误 (Internal error)",
                    _ => "请求有误 (Bad request)",
                };
                (title, e.reason().to_owned())
            }
        };
        render::html(self.status_code(), &render::ErrorPage { title, message })
    }
}

/// Service errors reach a page through the API's one mapping of errors to HTTP: the same
/// status and reason as the API would answer, shown as a page.
macro_rules! ui_error_via_api {
    ($($error:ty),* $(,)?) => {
        $(impl From<$error> for UiError {
            fn from(e: $error) -> Self {
                UiError::Problem(ApiError::from(e))
            }
        })*
    };
}

ui_error_via_api!(
    crate::storage::StorageError,
    AccountError,
    crate::sync::LedgerError,
    crate::audit::AuditError,
    crate::eligibility::service::CaseError,
    crate::reconcile::ReconcileError,
    crate::visits::VisitError,
);

/// `303 See Other` to a local path.
pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_owned()))
        .finish()
}

/// The logged-in user of a page request, allowed `p`; otherwise a redirect to the login page or
/// a 403 page.
pub async fn user(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    p: Permission,
) -> Result<Principal, UiError> {
    let next = req
        .uri()
        .path_and_query()
        .map_or("/ui/conflicts", |pq| pq.as_str())
        .to_owned();
    let Some(cookie) = req.cookie(SESSION_COOKIE) else {
        return Err(UiError::Login { next });
    };
    let Some(principal) = state.session_of(cookie.value()).await? else {
        return Err(UiError::Login { next });
    };
    if !principal.allows(p) {
        return Err(UiError::Forbidden(format!(
            "{} ({}) may not open this page",
            principal.role.label_zh(),
            principal.role
        )));
    }
    Ok(principal)
}

/// The audit actor of a page user.
pub fn actor(p: &Principal) -> crate::audit::Actor {
    p.actor(Via::Ui)
}

/// Refuses a form without the session's CSRF token.
pub fn check_csrf(p: &Principal, submitted: Option<&str>) -> Result<(), UiError> {
    if accounts::csrf_matches(p, submitted.unwrap_or("")) {
        Ok(())
    } else {
        Err(UiError::Forbidden(
            "the form's security token is missing or wrong; reload the page and try again (CSRF)"
                .into(),
        ))
    }
}
