//! Who is calling the admin listener: [`Caller`], an extractor every `/api/v1` handler takes. A
//! bureau's local systems send `Authorization: Bearer hks_…`; a browser sends its session cookie,
//! and then every request that changes something must also carry the session's CSRF token in
//! `X-CSRF-Token` (the pages put it in a hidden form field instead, see `ui`). No credentials →
//! 401; a role without the permission → 403, audited.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::{Method, StatusCode};
use actix_web::{web, FromRequest, HttpRequest};
use chrono::Utc;

use super::error::ApiError;
use super::AppState;
use crate::accounts::{self, AccountError, Permission, Principal};
use crate::audit::{Actor, Event, Outcome, Via};

use crate::accounts::SESSION_COOKIE;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// How it reached us, for the audit trail.
    pub via: Via,
}

impl Caller {
    /// The caller as an audit actor, if its role allows `p`; otherwise a 403 (and an audit
    /// event recording the refusal).
    pub async fn require(
        &self,
        state: &web::Data<AppState>,
        p: Permission,
    ) -> Result<Actor, ApiError> {
        let actor = self.principal.actor(self.via);
        if self.principal.allows(p) {
            return Ok(actor);
        }
        let role = self.principal.role;
        state
            .record(
                Event::new(actor, "access.denied", Outcome::Denied)
                    .details(serde_json::json!({"role": role.as_str(), "needs": p})),
            )
            .await;
        Err(forbidden(role, p))
    }
}

pub fn forbidden(role: accounts::Role, p: Permission) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("the role {role} may not do this ({p:?})"),
    )
}

pub fn unauthenticated(reason: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", reason)
}

/// The bearer token of a request, if it sends one.
fn bearer(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let mut all = req.headers().get_all("authorization");
    let Some(h) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(ApiError::bad_request(
            "invalid_header",
            "send one Authorization header, not several",
        )
        .field("Authorization"));
    }
    let h = h
        .to_str()
        .map_err(|_| unauthenticated("the Authorization header is not ASCII"))?;
    match h.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            Ok(Some(token.trim().to_owned()))
        }
        _ => Err(unauthenticated("use Authorization: Bearer <token>")),
    }
}

/// Authenticates a request by bearer token or session cookie; `None` when it has neither.
pub async fn principal_of(
    state: &web::Data<AppState>,
    req: &HttpRequest,
) -> Result<Option<(Principal, Via)>, ApiError> {
    let now = Utc::now();
    if let Some(token) = bearer(req)? {
        let p = state
            .store
            .run(move |c| accounts::bearer(c, &token, now))
            .await
            .map_err(|e| match e {
                AccountError::BadToken => unauthenticated("the token is unknown or revoked"),
                other => other.into(),
            })?;
        return Ok(Some((p, Via::Api)));
    }
    let Some(cookie) = req.cookie(SESSION_COOKIE) else {
        return Ok(None);
    };
    Ok(state
        .session_of(cookie.value())
        .await?
        .map(|p| (p, Via::Ui)))
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| ApiError::internal("no application state"))?;
            let (principal, via) = principal_of(&state, &req)
                .await?
                .ok_or_else(|| unauthenticated("log in, or send Authorization: Bearer <token>"))?;
            // A browser session changing something must prove it comes from our own page.
            let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
            if via == Via::Ui && !safe {
                let sent = req
                    .headers()
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !accounts::csrf_matches(&principal, sent) {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "csrf_token_invalid",
                        "a session's changes need its CSRF token in X-CSRF-Token",
                    ));
                }
            }
            Ok(Caller { principal, via })
        })
    }
}
