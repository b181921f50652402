//! The peer listener's routes (mutual TLS): `POST /peer/v1/versions` (in [`versions`]),
//! `POST /peer/v1/witness/add-checkpoint` (in [`witness`]), `POST /peer/v1/lookup` and
//! `POST /peer/v1/handover` (in [`lookup`]), reconciliation's `/peer/v1/reconcile/...` (in
//! [`reconcile`]), `GET /peer/v1/evidence/{sha256}` (in [`evidence`]) and `GET /peer/v1/directory`
//! (in [`directory`]). The peer is the node of
//! the verified client certificate — never a header or a body field — checked against the
//! signed directory (known, pinned, not revoked); every body field that names a node is checked
//! against it. Refusals are answered with problem+json and recorded in the audit log.

pub mod directory;
pub mod evidence;
pub mod lookup;
pub mod reconcile;
pub mod versions;
pub mod witness;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use rustls_pki_types::CertificateDer;

use super::error::ApiError;
use super::AppState;
use crate::audit::{Actor, ActorKind, Event, Outcome, Via};
use crate::domain::NodeId;

/// The client certificate of a TLS connection, stored by the server's `on_connect` hook.
#[derive(Clone)]
pub struct PeerCertificate(pub CertificateDer<'static>);

/// Registers the peer routes.
pub fn configure(cfg: &mut web::ServiceConfig, body_limit: usize) {
    cfg.app_data(web::PayloadConfig::default().limit(body_limit))
        .service(versions::push_versions)
        .service(witness::add_checkpoint)
        .service(lookup::answer)
        .service(lookup::hand_over)
        .service(evidence::file)
        .service(directory::current)
        .configure(reconcile::configure_peer)
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(ApiError::not_found("no such route"))
        }));
}

/// The body's length as its `Content-Length` declares it (`None`: not declared, or not a
/// number — the body is then read up to the limit and no further).
pub(crate) fn declared_length(req: &HttpRequest) -> Option<usize> {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

/// Reads a request body of at most `limit` bytes into one buffer (of the declared length when
/// there is one, so a large body is not copied as its buffer grows): 413 problem+json
/// `body_too_large` when the declared length is larger (before reading any of it) or when the
/// body grows past the limit.
pub(crate) async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    use futures_core::Stream;
    let too_large = || {
        ApiError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body exceeds {limit} bytes"),
        )
    };
    let declared = declared_length(req);
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut payload).poll_next(cx)).await
    {
        let chunk = chunk.map_err(|e| ApiError::bad_request("bad_body", e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Identifies the peer of a request from its certificate and the directory.
pub(crate) async fn authenticate(state: &AppState, req: &HttpRequest) -> Result<NodeId, ApiError> {
    use actix_web::http::StatusCode;
    let cert = req.conn_data::<PeerCertificate>().ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "no_client_certificate",
            "a client certificate is required",
        )
    })?;
    let dir = state
        .node
        .directory
        .as_ref()
        .map(|d| d.current())
        .ok_or_else(|| ApiError::internal("peer listener without a directory"))?;
    let refused = |code: &'static str, reason: String, claimed: String| async move {
        let details =
            serde_json::json!({"code": code, "reason": reason, "certificate_node": claimed});
        let actor = Actor {
            kind: ActorKind::Node,
            id: "unauthenticated".into(),
            via: Via::Peer,
            scope: crate::domain::Scope::whole_node(),
        };
        state
            .record(Event::new(actor, "peer.refused", Outcome::Denied).details(details))
            .await;
        ApiError::new(StatusCode::FORBIDDEN, code, reason)
    };
    let san = match crate::tls::node_id_of(&cert.0) {
        Ok(s) => s,
        Err(e) => {
            return Err(refused("bad_certificate_identity", e.to_string(), String::new()).await)
        }
    };
    let fingerprint = crate::tls::fingerprint(&cert.0);
    match dir.authenticate_peer(&san, &fingerprint, Utc::now()) {
        Ok(entry) => Ok(entry.id.clone()),
        Err(e) => Err(refused(e.code(), e.to_string(), san).await),
    }
}
