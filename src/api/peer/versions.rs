//! `POST /peer/v1/versions`: a peer pushes a batch of signed versions and gets a signed receipt.

use actix_web::{post, web, HttpRequest, HttpResponse};

use super::authenticate;
use crate::api::error::ApiError;
use crate::api::AppState;
use crate::sync::receipt::PushRequest;

/// Receive a batch of signed versions; answer with a signed receipt.
#[post("/peer/v1/versions")]
pub async fn push_versions(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let peer = authenticate(&state, &req).await?;
    // A signed body must have one meaning: no member named twice.
    if let Ok(Some(name)) = crate::crypto::jcs::first_duplicate_key(&body) {
        return Err(ApiError::bad_request(
            "duplicate_key",
            "an object names this member twice; send it once",
        )
        .field(name));
    }
    let request: PushRequest = serde_json::from_slice(&body).map_err(|e| {
        if e.is_data() {
            ApiError::unprocessable("invalid_body", format!("not a push request: {e}"))
        } else {
            ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}"))
        }
    })?;
    if request.sender != peer {
        return Err(ApiError::new(
            actix_web::http::StatusCode::FORBIDDEN,
            "sender_mismatch",
            format!(
                "the body names {} but the certificate is {peer}'s",
                request.sender
            ),
        )
        .field("sender"));
    }
    let receipt = state.receiver.receive(peer, request).await?;
    Ok(HttpResponse::Ok().json(receipt))
}
