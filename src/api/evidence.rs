//! Evidence files (证明材料) on the admin API: `POST /api/v1/evidence` stores a file at this
//! node (the requesting bureau uploads before it names the file in a case), and
//! `GET /api/v1/cases/{case_id}/evidence/{sha256}` downloads a file a case names (the deciding
//! bureau's reviewer reads it), audited. The service is `eligibility::evidence`.

use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};
use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use futures_core::Stream;

use super::auth::Caller;
use super::error::ApiError;
use super::{now, purpose_of, AppState};
use crate::accounts::Permission;
use crate::crypto::hash::Digest;
use crate::domain::evidence_file::MediaType;
use crate::eligibility::evidence::{self, StoredEvidence};

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "evidence_too_large",
        format!("the file is larger than {limit} bytes ([evidence] max_bytes); nothing was stored"),
    )
}

/// Reads the body, at most `limit` bytes: refused by its declared length before any of it is
/// read, or as soon as it grows past the limit.
async fn read_file(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut payload).poll_next(cx)).await
    {
        let chunk = chunk.map_err(|e| ApiError::bad_request("bad_body", e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Store an evidence file here (the raw file as the body), to name it in a case by its SHA-256.
///
/// The `Content-Type` is `application/pdf`, `image/jpeg` or `image/png`, and the file must
/// start like one (`%PDF-`, `FF D8 FF`, the PNG signature). The file is stored encrypted
/// (AES-256-GCM under the node's key file); the same file again is answered 200 and stored once.
#[utoipa::path(post, path = "/api/v1/evidence", tag = "cases", operation_id = "upload_evidence",
    request_body(description = "The file itself (at most `[evidence] max_bytes`, default 10 MiB).",
        content(("application/pdf"), ("image/jpeg"), ("image/png"))),
    responses((status = 201, description = "Stored", body = StoredEvidence),
        (status = 200, description = "Stored already (the same file)", body = StoredEvidence),
        (status = 413, description = "evidence_too_large: larger than [evidence] max_bytes; nothing stored", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "evidence_type: not PDF, JPEG or PNG, or the file does not start like the declared type; nothing stored", body = super::error::Problem, content_type = "application/problem+json")))]
#[post("/api/v1/evidence")]
pub async fn upload(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::EditChildren).await?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if MediaType::from_content_type(&content_type).is_none() {
        return Err(ApiError::from(evidence::EvidenceError::Type(
            crate::domain::evidence_file::TypeError::Unsupported(content_type),
        )));
    }
    let bytes = read_file(&req, body, state.evidence.max_bytes).await?;
    let (node, vault) = (state.node.clone(), state.evidence.clone());
    let at = now();
    let (stored, created) = state
        .store
        .run(move |c| evidence::upload(c, &node, &vault, &content_type, &bytes, &actor, at))
        .await?;
    Ok(if created {
        HttpResponse::Created().json(stored)
    } else {
        HttpResponse::Ok().json(stored)
    })
}

/// A SHA-256 from a path: 400 `invalid_path` unless 64 lower-case hex characters.
fn parse_sha256(raw: &str) -> Result<Digest, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::bad_request("invalid_path", "sha256 is 64 lower-case hex characters")
            .field("sha256")
    })
}

/// Download an evidence file a case names (decrypted), audited `evidence.download`.
#[utoipa::path(get, path = "/api/v1/cases/{case_id}/evidence/{sha256}", tag = "cases", operation_id = "download_evidence",
    params(("case_id" = String, Path), ("sha256" = String, Path, description = "The file's SHA-256 as the case names it")),
    responses((status = 200, description = "The file, as an attachment",
            content(("application/pdf"), ("image/jpeg"), ("image/png"))),
        (status = 404, description = "not_found: no such case, or the case names no such file", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "evidence_not_present: named, but not (yet) stored and verified at this node", body = super::error::Problem, content_type = "application/problem+json")))]
#[get("/api/v1/cases/{case_id}/evidence/{sha256}")]
pub async fn download(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::ReadChildren).await?;
    let (case_id, sha) = path.into_inner();
    let case_id = super::parse_uuid(&case_id, "case_id")?.to_string();
    let sha256 = parse_sha256(&sha)?;
    let purpose = purpose_of(&req)?;
    let (node, vault) = (state.node.clone(), state.evidence.clone());
    let at = now();
    let (media, bytes) = state
        .store
        .run(move |c| {
            evidence::download(
                c,
                &node,
                &vault,
                &case_id,
                &sha256,
                &actor,
                purpose.as_deref(),
                at,
            )
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type(media.as_str())
        .insert_header(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(format!(
                "{sha256}.{}",
                media.extension()
            ))],
        })
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(bytes))
}
