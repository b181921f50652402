//! `/api/v1/lookups` and `/api/v1/children/{id}/handover`: ask the bureau serving a child's
//! hukou region whether it holds a file (a signed statement, verified and audited), check a
//! statement kept earlier, and ask that bureau to hand the residence role over so the file comes
//! here. The exchanges themselves are `sync::lookup`.

use actix_web::{post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::cases::parse;
use super::error::{ApiError, Problem};
use super::{input, now, parse_id, AppState};
use crate::accounts::Permission;
use crate::domain::child::Text;
use crate::domain::{IdNumber, RegionCode};
use crate::sync::lookup::{self, HandoverAnswer, LookupAnswer, LookupRequest, SignedStatement};

/// The hukou region named, or the region the ID number was issued in (422 on `hukou_region`
/// when that code is no longer in GB/T 2260: name it then).
fn hukou_region_of(named: Option<RegionCode>, id: &IdNumber) -> Result<RegionCode, ApiError> {
    match named {
        Some(r) => Ok(r),
        None => id.issuing_region().map_err(|_| {
            ApiError::unprocessable(
                "invalid_field",
                "the ID number's region is not a current GB/T 2260 code: name the hukou region",
            )
            .field("hukou_region")
        }),
    }
}

/// A lookup as a person asks it: the ID number, the purpose, and the hukou region when it is
/// not the one the ID number was issued in.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupInput {
    #[schema(value_type = String, min_length = 18, max_length = 18)]
    pub id_number: IdNumber,
    /// The child's hukou region; default: the region of the ID number's first six digits.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^[0-9]{6}$")]
    pub hukou_region: Option<RegionCode>,
    /// Why you ask; recorded by both bureaus.
    #[schema(value_type = String, min_length = 1, max_length = 200)]
    pub purpose: Text<200>,
}

/// Ask the hukou bureau whether it holds a child's file.
#[utoipa::path(post, path = "/api/v1/lookups", tag = "lookups", operation_id = "lookup_file",
    request_body = LookupInput,
    responses((status = 200, body = LookupAnswer),
        (status = 400, description = "malformed_json or duplicate_key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "body_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_field, or region_not_served: no bureau serves the hukou region", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "peer_unavailable, or statement_invalid: the answer did not verify", body = Problem, content_type = "application/problem+json")))]
#[post("/api/v1/lookups")]
pub async fn ask(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::EditChildren).await?;
    let input: LookupInput = parse(input::body(&req, body).await?)?;
    let hukou_region = hukou_region_of(input.hukou_region, &input.id_number)?;
    let request = LookupRequest {
        id_number: input.id_number,
        hukou_region,
        purpose: input.purpose,
        nonce: lookup::new_nonce()?,
    };
    let answer = lookup::ask(
        &state.store,
        &state.node,
        state.peer_clients.as_ref(),
        request,
        &actor,
        now(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// What checking a statement found.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatementCheck {
    /// Always true (a statement that does not verify is answered 422).
    pub genuine: bool,
    #[schema(value_type = String)]
    pub answered_by: crate::domain::NodeId,
    /// Whether it says a file exists.
    pub found: bool,
}

/// Check a lookup statement kept earlier: signed by a key of the bureau the directory routes
/// its hukou region to, valid at its time.
#[utoipa::path(post, path = "/api/v1/lookups/verify", tag = "lookups", operation_id = "verify_lookup_statement",
    request_body = SignedStatement,
    responses((status = 200, body = StatementCheck),
        (status = 400, description = "malformed_json or duplicate_key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "body_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_field, or statement_invalid: it does not verify", body = Problem, content_type = "application/problem+json")))]
#[post("/api/v1/lookups/verify")]
pub async fn verify(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(&state, Permission::ReadChildren).await?;
    let signed: SignedStatement = parse(input::body(&req, body).await?)?;
    let dir = state
        .node
        .directory
        .as_ref()
        .map(|d| d.current())
        .ok_or_else(|| ApiError::from(lookup::LookupError::NoDirectory))?;
    lookup::verify(&dir, &signed).map_err(|e| match e {
        lookup::LookupError::Forged(why) => {
            ApiError::unprocessable("statement_invalid", format!("not genuine: {why}"))
        }
        e => e.into(),
    })?;
    Ok(HttpResponse::Ok().json(StatementCheck {
        genuine: true,
        answered_by: signed.statement.answered_by.clone(),
        found: signed.statement.file.is_some(),
    }))
}

/// A handover as a person asks it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandoverInput {
    /// The child's residence region now: one this node serves.
    #[schema(value_type = String, pattern = "^[0-9]{6}$")]
    pub residence_region: RegionCode,
    /// The child's hukou region; default: the region of the ID number's first six digits.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^[0-9]{6}$")]
    pub hukou_region: Option<RegionCode>,
    #[schema(value_type = String, min_length = 1, max_length = 200)]
    pub purpose: Text<200>,
}

/// Ask the hukou bureau to hand a child's residence role over to this node: it writes the move,
/// and the file's whole history arrives here by the normal push.
#[utoipa::path(post, path = "/api/v1/children/{id_number}/handover", tag = "lookups", operation_id = "request_handover",
    params(("id_number" = String, Path, description = "18-character resident ID number")),
    request_body = HandoverInput,
    responses((status = 202, body = HandoverAnswer),
        (status = 400, description = "malformed_json, duplicate_key or invalid_id_number", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "not_serving_region: the hukou bureau finds this node does not serve the new residence region; outside_scope: the new residence region is outside the regions the account covers; forbidden (role)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no_file: the hukou bureau holds no file of this child", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "body_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_field, or region_not_served: this node does not serve the residence region, or no bureau serves the hukou region", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "peer_unavailable", body = Problem, content_type = "application/problem+json")))]
#[post("/api/v1/children/{id_number}/handover")]
pub async fn handover(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&state, Permission::EditChildren).await?;
    let child = parse_id(&path)?;
    let input: HandoverInput = parse(input::body(&req, body).await?)?;
    let hukou_region = hukou_region_of(input.hukou_region, &child)?;
    let request = lookup::HandoverRequest {
        id_number: child,
        residence_region: input.residence_region,
        purpose: input.purpose,
    };
    let answer = lookup::request_handover(
        &state.store,
        &state.node,
        state.peer_clients.as_ref(),
        request,
        &hukou_region,
        &actor,
        now(),
    )
    .await?;
    Ok(HttpResponse::Accepted().json(answer))
}
