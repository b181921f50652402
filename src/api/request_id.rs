//! Request ids: every request on both listeners carries one, so one delivery can be followed
//! across two nodes' logs. A request's `X-Request-Id` is kept when it is 1 to 64 characters of
//! letters, digits, `.`, `_` and `-` (a sender's, a proxy's); otherwise a new one (UUIDv7, 32 hex
//! digits) is made. The id is answered in `X-Request-Id`, written in the access log line, and set
//! on a tracing span around the handler, so the handler's own log lines (JSON logs: the span's
//! `request_id` field) carry it. The sender puts a new id on each batch it pushes and logs it
//! with the delivery (`domain::request_id`).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use tracing::Instrument;

use crate::domain::request_id::{acceptable, new, HEADER};

/// The id of the request being served (in the request's extensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The middleware (see the module documentation). Wrap it outside the access log, so the log
/// line sees the answer's header.
pub async fn request_id<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map_or_else(new, str::to_owned);
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id);
    let mut res = next.call(req).instrument(span).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(HEADER), value);
    }
    Ok(res)
}
