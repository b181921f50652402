//! Reading a request's input, always **after** the caller's permission is checked (a handler
//! takes the raw `web::Payload` and `HttpRequest`, calls `Caller::require`, then these): JSON
//! bodies ([`body`]: size, media type, duplicate member names, shape) and query strings
//! ([`query`]: the parameter at fault named, never its value; every numeric parameter bounded by
//! the one table of [`Bounds`]). Each refusal is a problem+json.

use std::fmt::Display;
use std::ops::RangeInclusive;

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::AppState;

/// Bounds of the numeric query parameters, in one place.
pub mod limits {
    use std::ops::RangeInclusive;

    /// `stale_days` / `days`: a day to a hundred years (the CLI's bound too).
    pub const STALE_DAYS: RangeInclusive<u32> = 1..=36_500;
    /// Page sizes.
    pub const CHILDREN_PAGE: RangeInclusive<u32> = 1..=500;
    pub const CONFLICTS_PAGE: RangeInclusive<u32> = 1..=500;
    pub const AUDIT_PAGE: RangeInclusive<u32> = 1..=1000;
    pub const CASES_PAGE: RangeInclusive<u32> = 1..=1000;
    pub const RUNS_PAGE: RangeInclusive<u32> = 1..=200;
    pub const VISITS_PAGE: RangeInclusive<u32> = 1..=500;
    /// `within_days` of the due list: today to a year ahead.
    pub const DUE_WITHIN_DAYS: RangeInclusive<u32> = 0..=366;
    /// Audit sequence numbers and tree sizes (they are `BIGINT`s).
    pub const SEQ: RangeInclusive<i64> = 0..=i64::MAX;
    pub const TREE_SIZE: RangeInclusive<u64> = 0..=(i64::MAX as u64);
}

/// A query whose numeric parameters are checked against [`limits`].
pub trait Bounds {
    fn check_bounds(&self) -> Result<(), ApiError>;
}

/// `value` within `range`, else 400 `invalid_query` naming `field`.
pub fn within<T: PartialOrd + Display>(
    field: &'static str,
    value: Option<T>,
    range: RangeInclusive<T>,
) -> Result<(), ApiError> {
    match value {
        Some(v) if !range.contains(&v) => Err(ApiError::bad_request(
            "invalid_query",
            format!("{field} is {} to {}", range.start(), range.end()),
        )
        .field(field)),
        _ => Ok(()),
    }
}

/// The quoted name in a serde message such as "unknown field `x`, expected …".
fn quoted(message: &str) -> Option<String> {
    message.split('`').nth(1).map(str::to_owned)
}

/// The query string as `T`, its numbers within bounds. 400 `invalid_query` with `field` the
/// parameter's name (never its value).
pub fn query<T: DeserializeOwned + Bounds>(req: &HttpRequest) -> Result<T, ApiError> {
    let raw = req.query_string();
    if raw.len() > 8 * 1024 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "the query string is longer than 8192 bytes",
        ));
    }
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw.as_bytes()));
    let value: T = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        let field = if message.starts_with("unknown field") || message.starts_with("missing field")
        {
            quoted(&message)
        } else if path != "." && !path.is_empty() {
            Some(path)
        } else {
            None
        };
        let mut api = ApiError::bad_request("invalid_query", message);
        if let Some(f) = field {
            api = api.field(f);
        }
        api
    })?;
    value.check_bounds()?;
    Ok(value)
}

/// Whether a request says its body is JSON (`application/json` or `*/*+json`).
fn is_json(req: &HttpRequest) -> bool {
    let Some(v) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = v
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The JSON body as `T`: 413 `body_too_large` past `admin.body_limit`, 415
/// `unsupported_media_type` without a JSON content type, 400 `malformed_json`, 400
/// `duplicate_key` (`field` the name) when an object names a member twice, 422 `invalid_body`
/// (`field` the path, when known) when it is JSON of the wrong shape.
pub async fn body<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, ApiError> {
    let limit = req
        .app_data::<web::Data<AppState>>()
        .map_or(64 * 1024, |s| s.settings.admin.body_limit);
    if !is_json(req) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send Content-Type: application/json",
        ));
    }
    let bytes = payload
        .to_bytes_limited(limit)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body exceeds {limit} bytes"),
            )
        })?
        .map_err(|e| ApiError::bad_request("bad_body", format!("cannot read the body: {e}")))?;
    parse_json(&bytes)
}

/// JSON text as `T`, refusing duplicate member names (see [`body`]).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let malformed = |e: serde_json::Error| {
        ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}"))
    };
    if let Some(name) = crate::crypto::jcs::first_duplicate_key(bytes).map_err(malformed)? {
        return Err(ApiError::bad_request(
            "duplicate_key",
            "an object names this member twice; send it once",
        )
        .field(name));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if !inner.is_data() {
            return malformed(inner);
        }
        let reason = inner.to_string();
        let reason = reason
            .split(" at line ")
            .next()
            .unwrap_or(&reason)
            .to_owned();
        let api = ApiError::unprocessable("invalid_body", reason);
        if path != "." && !path.is_empty() {
            api.field(path)
        } else {
            api
        }
    })
}
