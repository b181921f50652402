//! HTTP manners of the admin listener, for every response it gives (API, pages, errors): one
//! middleware ([`manners`]) that
//!
//! - answers `HEAD` on every `GET` route (the `GET` handler runs; its body is dropped);
//! - sends `X-Content-Type-Options: nosniff` on every response, and `Cache-Control: no-store` on
//!   the API's and the pages' (they hold children's data);
//! - adds `WWW-Authenticate: Bearer realm="hukou-sync"` to every 401 that has none;
//! - turns a panic inside a handler into a 500 problem+json `internal` and an ERROR log line,
//!   never a dropped connection.
//!
//! and [`unmatched`], the default service: 405 with `Allow` for a known route asked with another
//! method, 404 `not_found` otherwise. Known routes are the OpenAPI document's paths plus the
//! pages' table the start-up code passes in ([`KnownRoutes`]).

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ResourceDef, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use super::error::ApiError;

/// The challenge sent with every 401.
const CHALLENGE: &str = "Bearer realm=\"hukou-sync\"";

/// Polls a future, catching a panic of any poll as an `Err` with its payload.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// A panic's message, with ID numbers masked (the log never shows a full one).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    crate::domain::IdNumber::mask_within(&text)
}

/// The middleware (see the module documentation). Wrap it innermost of the admin listener's
/// middlewares, so every response passes through it.
pub async fn manners(
    mut req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let head = req.method() == Method::HEAD;
    if head {
        // Routed as GET; the body is dropped below.
        req.head_mut().method = Method::GET;
    }
    let path = req.path().to_owned();
    // The request cannot be cloned here (routing needs it unshared), so a panic is answered as
    // an error, which actix turns into its problem+json response (with nosniff, see
    // `ApiError::problem_response`).
    let mut res = match CatchUnwind(Box::pin(next.call(req))).await {
        Ok(res) => res?,
        Err(payload) => {
            tracing::error!(
                path = %crate::domain::IdNumber::mask_within(&path),
                panic = %panic_message(payload.as_ref()),
                "a request handler panicked"
            );
            return Err(PanicError.into());
        }
    };
    let headers = res.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if path.starts_with("/api/") || path == "/ui" || path.starts_with("/ui/") {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if res.status() == StatusCode::UNAUTHORIZED
        && !res.headers().contains_key(header::WWW_AUTHENTICATE)
    {
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(CHALLENGE),
        );
    }
    if head {
        return Ok(res.map_body(|_, _| actix_web::body::None::new().boxed()));
    }
    Ok(res)
}

/// A handler's panic, answered as 500 problem+json `internal` (already logged, with the
/// panic's message, by [`manners`]).
#[derive(Debug)]
struct PanicError;

impl std::fmt::Display for PanicError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a request handler panicked")
    }
}

impl ResponseError for PanicError {
    fn status_code(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = ApiError::internal("a request handler panicked").problem_response();
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

/// Routes the listener serves, with their methods, for 405 answers.
pub struct KnownRoutes(Vec<(ResourceDef, Vec<Method>)>);

impl KnownRoutes {
    /// The API's routes (from the OpenAPI document) and `pages` (the web pages' table).
    pub fn new(pages: &[(&str, &[&str])]) -> Self {
        let mut routes: Vec<(String, Vec<Method>)> = Vec::new();
        let mut add = |path: &str, method: Method| match routes.iter_mut().find(|(p, _)| p == path)
        {
            Some((_, ms)) if !ms.contains(&method) => ms.push(method),
            Some(_) => {}
            None => routes.push((path.to_owned(), vec![method])),
        };
        let doc = <super::ApiDoc as utoipa::OpenApi>::openapi();
        for (path, item) in &doc.paths.paths {
            let ops = [
                (Method::GET, item.get.is_some()),
                (Method::POST, item.post.is_some()),
                (Method::PUT, item.put.is_some()),
                (Method::PATCH, item.patch.is_some()),
                (Method::DELETE, item.delete.is_some()),
            ];
            for (m, present) in ops {
                if present {
                    add(path, m);
                }
            }
        }
        for (path, methods) in pages {
            for m in *methods {
                if let Ok(m) = Method::from_bytes(m.as_bytes()) {
                    add(path, m);
                }
            }
        }
        Self(
            routes
                .into_iter()
                .map(|(p, ms)| (ResourceDef::new(p), ms))
                .collect(),
        )
    }

    /// The methods a path answers, `GET` implying `HEAD`; empty for an unknown path. A route
    /// spelled out literally (`/api/v1/reconcile/runs`) hides the templates it also matches
    /// (`/api/v1/reconcile/{peer}`): it is the resource the path names.
    pub fn allowed(&self, path: &str) -> Vec<Method> {
        let literal = self.0.iter().any(|(def, _)| {
            !def.is_prefix() && !def.pattern().unwrap_or("{").contains('{') && def.is_match(path)
        });
        let mut out: Vec<Method> = Vec::new();
        for (def, methods) in &self.0 {
            let templated = def.pattern().unwrap_or("{").contains('{');
            if def.is_match(path) && !(literal && templated) {
                for m in methods {
                    if !out.contains(m) {
                        out.push(m.clone());
                    }
                }
            }
        }
        if out.contains(&Method::GET) {
            out.push(Method::HEAD);
        }
        out
    }
}

/// The default service: 405 with `Allow` for a known route, 404 otherwise.
pub async fn unmatched(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let allowed = req
        .app_data::<web::Data<KnownRoutes>>()
        .map(|k| k.allowed(req.path()))
        .unwrap_or_default();
    if allowed.is_empty() {
        return Err(ApiError::not_found("no such route"));
    }
    let allow = allowed
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let e = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed here; use {allow}", req.method()),
    );
    let mut resp = e.problem_response();
    if let Ok(v) = HeaderValue::from_str(&allow) {
        resp.headers_mut().insert(header::ALLOW, v);
    }
    Ok(resp)
}

/// `GET /api/v1/test/panic`: panics. Registered only when `admin.panic_route_for_tests` is set
/// (off by default; the integration tests' way to prove a panic becomes a 500).
pub async fn panic_for_tests() -> HttpResponse {
    // Deliberate: this route exists to panic.
    #[allow(clippy::panic)]
    {
        panic!("the test-only panic route was called");
    }
}
