//! Lookup and handover of a child's file between bureaus (DESIGN §3, issue 22): a bureau a child
//! arrives at asks the bureau serving the child's hukou region whether it holds a file, and if
//! it does, asks it to hand the residence role over — so a family that moves again keeps one
//! file. This module owns both sides of both exchanges:
//!
//! * **Lookup.** The asker sends `{id_number, hukou_region, purpose, nonce}` to
//!   `POST /peer/v1/lookup` of the node the directory routes the hukou region to. That node
//!   answers only for a region it serves, records the asker's purpose in its audit log
//!   (`peer.lookup`), and answers with a **signed statement**: "no file", or the file's heads
//!   and regions, naming the asker, the ID number, the region, the asker's nonce and the time,
//!   signed with its record-signing key (context `lookup`). The asker accepts the statement only
//!   when it verifies ([`verify`]: a key of the node the directory routes the region to, valid at
//!   the statement's time) and answers its own question ([`Statement::answers`]: its nonce, its
//!   ID number, its region, fresh), and records it with its own purpose (`child.lookup`). A node
//!   serving the hukou region itself answers its own lookup with the same signed statement.
//! * **Handover.** The asker sends `{id_number, residence_region, purpose}` to
//!   `POST /peer/v1/handover`. The hukou bureau checks that the asker serves the new residence
//!   region (the directory) and that it holds the file as the child's hukou bureau, then writes
//!   the move as a signed version that changes `residence_region` alone
//!   ([`crate::domain::child::is_handover`]; audited `child.handover`). The one write path sends
//!   it to the child's parties: the new residence bureau becomes a party by the move and
//!   receives the file's whole history with it; the old residence bureau receives the move
//!   itself and no version after it — it keeps its copy as of the move, read-only.
//!
//! A file created anyway (the hukou bureau unreachable, a race) is a second root of the same
//! document, merged by rule 6 of [`super::merge`] without review.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use super::error::LedgerError;
use super::node::LocalNode;
use super::sender::ClientFactory;
use super::version::VersionId;
use crate::audit::{self, Actor, ActorKind, AuditError, Event, Outcome, Via};
use crate::crypto::hash::Digest;
use crate::crypto::jcs;
use crate::crypto::keys::{Signature, SigningContext};
use crate::directory::Directory;
use crate::domain::child::Text;
use crate::domain::{IdNumber, NodeId, RegionCode};
use crate::storage::records as repo;
use crate::storage::{self, DbConn, StorageError, Store};

/// The lookup route of the peer listener.
pub const LOOKUP_PATH: &str = "/peer/v1/lookup";
/// The handover route of the peer listener.
pub const HANDOVER_PATH: &str = "/peer/v1/handover";
/// The `format` of a lookup statement.
pub const STATEMENT_FORMAT: &str = "hukou-sync/lookup/v1";
/// How old a statement may be when its asker receives it (clocks differ a little).
pub const FRESH_SECS: i64 = 300;
/// The most bytes a lookup or handover request or answer may have.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Why a lookup or a handover failed. `api::error` maps each to its status.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// 422: no node of the directory serves the region, or (answering) not this one.
    #[error("{0}")]
    NotServed(String),
    /// 403: the asking node does not serve the residence region it asks the file for.
    #[error("{0}")]
    NotAsker(String),
    /// 404: this node holds no file of the child as its hukou bureau.
    #[error("this node holds no file of this child as its hukou bureau")]
    NoFile,
    /// 422: a nonce that is not 16–64 characters of `A–Z a–z 0–9 - _`.
    #[error("the nonce is 16 to 64 characters of A-Z, a-z, 0-9, - and _")]
    BadNonce,
    /// 502: the statement does not verify or does not answer the question asked.
    #[error("the lookup statement is not genuine: {0}")]
    Forged(String),
    /// 502: the hukou bureau could not be reached or refused.
    #[error("the hukou bureau {peer} did not answer: {reason}")]
    Peer { peer: NodeId, reason: String },
    /// 422: this node exchanges with nobody.
    #[error("this node has no directory: it exchanges with no other bureau")]
    NoDirectory,
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// A question to the hukou bureau: does it hold a file for this ID number?
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    #[schema(value_type = String, min_length = 18, max_length = 18)]
    pub id_number: IdNumber,
    /// The child's hukou region (6 digits).
    #[schema(value_type = String, pattern = "^[0-9]{6}$")]
    pub hukou_region: RegionCode,
    /// Why the asker asks; both sides record it.
    #[schema(value_type = String, max_length = 200)]
    pub purpose: Text<200>,
    /// Chosen by the asker; the statement repeats it, so an old statement is not a new answer.
    #[schema(min_length = 16, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub nonce: String,
}

/// What a file looks like to the bureau answering a lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileHeads {
    /// The file's current heads (version ids), sorted.
    #[schema(value_type = Vec<String>)]
    pub heads: Vec<VersionId>,
    #[schema(value_type = String)]
    pub hukou_region: RegionCode,
    #[schema(value_type = String)]
    pub residence_region: RegionCode,
}

/// The answer, as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    /// Always `hukou-sync/lookup/v1`.
    pub format: String,
    #[schema(value_type = String)]
    pub asked_by: NodeId,
    #[schema(value_type = String)]
    pub answered_by: NodeId,
    #[schema(value_type = String)]
    pub id_number: IdNumber,
    #[schema(value_type = String)]
    pub hukou_region: RegionCode,
    pub nonce: String,
    /// When the answer was given (whole seconds).
    pub at: DateTime<Utc>,
    /// `null`: no file at the answering bureau.
    pub file: Option<FileHeads>,
}

/// A statement with the answering node's signature over its RFC 8785 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedStatement {
    pub statement: Statement,
    /// Ed25519 (base64url), context `lookup`.
    #[schema(value_type = String)]
    pub signature: Signature,
}

impl Statement {
    fn bytes(&self) -> Result<Vec<u8>, LookupError> {
        jcs::to_canonical_vec(self).map_err(|e| LedgerError::Internal(e.to_string()).into())
    }

    /// Whether this statement answers `req`, asked by `asker` at `now`: the same ID number,
    /// region and nonce, and given within [`FRESH_SECS`] of `now`.
    pub fn answers(
        &self,
        asker: &NodeId,
        req: &LookupRequest,
        now: DateTime<Utc>,
    ) -> Result<(), LookupError> {
        let forged = |why: &str| Err(LookupError::Forged(why.to_owned()));
        if &self.asked_by != asker {
            return forged("it answers another bureau");
        }
        if self.id_number != req.id_number || self.hukou_region != req.hukou_region {
            return forged("it answers for another child or region");
        }
        if self.nonce != req.nonce {
            return forged("it repeats another question's nonce");
        }
        if (now - self.at).num_seconds().abs() > FRESH_SECS {
            return forged("it is not fresh");
        }
        Ok(())
    }

    /// The SHA-256 of the statement's signed bytes (what the audit log keeps of it).
    pub fn digest(&self) -> Result<Digest, LookupError> {
        Ok(Digest::of(&self.bytes()?))
    }
}

impl LookupRequest {
    /// The bounds serde does not check.
    pub fn check(&self) -> Result<(), LookupError> {
        let ok = (16..=64).contains(&self.nonce.len())
            && self
                .nonce
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(())
        } else {
            Err(LookupError::BadNonce)
        }
    }
}

/// Verifies a statement on its own: its format; the answering node is the one the directory
/// routes the statement's hukou region to; a key of it valid at the statement's time signed it.
pub fn verify(dir: &Directory, signed: &SignedStatement) -> Result<(), LookupError> {
    let s = &signed.statement;
    let forged = |why: String| Err(LookupError::Forged(why));
    if s.format != STATEMENT_FORMAT {
        return forged(format!("its format is not {STATEMENT_FORMAT}"));
    }
    match dir.route(&s.hukou_region) {
        Some(n) if n.id == s.answered_by => {}
        _ => {
            return forged(format!(
                "{} does not serve the hukou region {}",
                s.answered_by, s.hukou_region
            ))
        }
    }
    let bytes = s.bytes()?;
    let verifies = dir.signing_keys_at(&s.answered_by, s.at).iter().any(|k| {
        k.verify(SigningContext::Lookup, &bytes, &signed.signature)
            .is_ok()
    });
    if !verifies {
        return forged(format!(
            "no key of {} valid at {} verifies its signature",
            s.answered_by, s.at
        ));
    }
    Ok(())
}

/// The answering side: a signed statement for `req` from `asker`, its purpose audited
/// (`peer.lookup`). Refused unless this node serves the region asked about.
pub fn answer(
    conn: &mut DbConn,
    node: &LocalNode,
    asker: &NodeId,
    req: &LookupRequest,
    now: DateTime<Utc>,
) -> Result<SignedStatement, LookupError> {
    req.check()?;
    if !node.serves(&req.hukou_region) {
        return Err(LookupError::NotServed(format!(
            "this node does not serve the hukou region {}",
            req.hukou_region
        )));
    }
    storage::transaction(conn, |conn| {
        let file = file_here(conn, node, &req.id_number)?;
        let statement = Statement {
            format: STATEMENT_FORMAT.to_owned(),
            asked_by: asker.clone(),
            answered_by: node.id.clone(),
            id_number: req.id_number.clone(),
            hukou_region: req.hukou_region.clone(),
            nonce: req.nonce.clone(),
            at: now.trunc_subsecs(0),
            file,
        };
        let signature = node
            .key
            .sign(SigningContext::Lookup, &statement.bytes()?)
            .map_err(|e| LedgerError::Version(e.into()))?;
        let actor = Actor {
            kind: ActorKind::Node,
            id: asker.to_string(),
            via: Via::Peer,
            scope: crate::domain::Scope::whole_node(),
        };
        let event = Event::new(actor, "peer.lookup", Outcome::Ok)
            .object("child", req.id_number.as_str())
            .details(serde_json::json!({
                "purpose": req.purpose.as_str(),
                "hukou_region": req.hukou_region,
                "found": statement.file.is_some(),
                "statement_sha256": statement.digest()?.to_string(),
            }));
        audit::append(conn, node.clock.now(), now, &event)?;
        Ok(SignedStatement {
            statement,
            signature,
        })
    })
}

/// The file this node holds of the child as a bureau still serving it, with its heads.
fn file_here(
    conn: &mut DbConn,
    node: &LocalNode,
    id: &IdNumber,
) -> Result<Option<FileHeads>, LookupError> {
    let Some(view) = repo::get_child(conn, id.as_str())? else {
        return Ok(None);
    };
    if !node
        .roles(&view.hukou_region, &view.residence_region)
        .is_party()
    {
        return Ok(None);
    }
    let mut heads = repo::heads_of(conn, "child", id.as_str())?
        .iter()
        .map(|h| h.parse())
        .collect::<Result<Vec<VersionId>, _>>()
        .map_err(LedgerError::from)?;
    heads.sort();
    Ok(Some(FileHeads {
        heads,
        hukou_region: view.hukou_region,
        residence_region: view.residence_region,
    }))
}

/// What a lookup found, as the asker returns it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LookupAnswer {
    /// Whether the hukou bureau holds a file.
    pub found: bool,
    /// The node that answered (the one serving the hukou region).
    #[schema(value_type = String)]
    pub hukou_node: NodeId,
    /// Whether the file is here already (this node is a party of it).
    pub held_here: bool,
    /// The verified statement, to keep.
    pub statement: SignedStatement,
}

/// The asking side: asks the node serving `req.hukou_region` (or answers itself when it is
/// that node), verifies the statement, and audits the lookup with its purpose (`child.lookup`).
pub async fn ask(
    store: &Store,
    node: &std::sync::Arc<LocalNode>,
    clients: Option<&ClientFactory>,
    req: LookupRequest,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<LookupAnswer, LookupError> {
    req.check()?;
    let dir = directory(node)?;
    let hukou_node = dir
        .route(&req.hukou_region)
        .map(|n| n.id.clone())
        .ok_or_else(|| {
            LookupError::NotServed(format!(
                "no bureau in the directory serves the hukou region {}",
                req.hukou_region
            ))
        })?;
    let signed = if hukou_node == node.id {
        let (n, r) = (node.clone(), req.clone());
        let me = node.id.clone();
        store.run(move |c| answer(c, &n, &me, &r, now)).await?
    } else {
        let clients = clients.ok_or(LookupError::NoDirectory)?;
        post(&dir, clients, &hukou_node, LOOKUP_PATH, &req).await?
    };
    verify(&dir, &signed)?;
    signed.statement.answers(&node.id, &req, now)?;
    let (n, id, actor) = (node.clone(), req.id_number.clone(), actor.clone());
    let purpose = req.purpose.as_str().to_owned();
    let found = signed.statement.file.is_some();
    let digest = signed.statement.digest()?.to_string();
    let peer = hukou_node.clone();
    let held_here = store
        .run(move |c| {
            storage::transaction(c, |c| {
                let held = file_here(c, &n, &id)?.is_some();
                let event = Event::new(actor, "child.lookup", Outcome::Ok)
                    .object("child", id.as_str())
                    .details(serde_json::json!({
                        "purpose": purpose, "asked": peer, "found": found,
                        "statement_sha256": digest,
                    }));
                audit::append(c, n.clock.now(), now, &event)?;
                Ok::<_, LookupError>(held)
            })
        })
        .await?;
    Ok(LookupAnswer {
        found,
        hukou_node,
        held_here,
        statement: signed,
    })
}

/// A request to hand a child's residence role over to the asking bureau.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandoverRequest {
    #[schema(value_type = String, min_length = 18, max_length = 18)]
    pub id_number: IdNumber,
    /// The child's new residence region, served by the asking bureau.
    #[schema(value_type = String, pattern = "^[0-9]{6}$")]
    pub residence_region: RegionCode,
    #[schema(value_type = String, max_length = 200)]
    pub purpose: Text<200>,
}

/// What the hukou bureau did.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandoverAnswer {
    /// The move version written; `null` when the file already named that residence region.
    #[schema(value_type = Option<String>)]
    pub version: Option<VersionId>,
    /// The hukou bureau's node.
    #[schema(value_type = String)]
    pub hukou_node: NodeId,
    /// The residence region the file had before.
    #[schema(value_type = String)]
    pub from_region: RegionCode,
}

/// The hukou bureau's side of a handover: checks, then the move version (audited
/// `child.handover`, with the asker's purpose).
pub fn grant_handover(
    conn: &mut DbConn,
    node: &LocalNode,
    asker: &NodeId,
    req: &HandoverRequest,
    now: DateTime<Utc>,
) -> Result<HandoverAnswer, LookupError> {
    if node.node_for(&req.residence_region).as_ref() != Some(asker) {
        return Err(LookupError::NotAsker(format!(
            "{asker} does not serve the residence region {}",
            req.residence_region
        )));
    }
    let Some(view) = repo::get_child(conn, req.id_number.as_str())? else {
        return Err(LookupError::NoFile);
    };
    if !node.roles(&view.hukou_region, &view.residence_region).hukou {
        return Err(LookupError::NoFile);
    }
    let from_region = view.residence_region.clone();
    if from_region == req.residence_region {
        return Ok(HandoverAnswer {
            version: None,
            hukou_node: node.id.clone(),
            from_region,
        });
    }
    let actor = Actor {
        kind: ActorKind::Node,
        id: asker.to_string(),
        via: Via::Peer,
        scope: crate::domain::Scope::whole_node(),
    };
    let version = storage::transaction(conn, |conn| {
        super::ledger::apply_handover(
            conn,
            node,
            &req.id_number,
            &req.residence_region,
            req.purpose.as_str(),
            &actor,
            now,
        )
    })?;
    node.wake_senders();
    tracing::info!(child = %req.id_number.masked(), to = %asker, "residence role handed over");
    Ok(HandoverAnswer {
        version: Some(version),
        hukou_node: node.id.clone(),
        from_region,
    })
}

/// The asking side of a handover: the request to the hukou bureau, audited
/// (`child.handover_request`). The file arrives by the normal push.
pub async fn request_handover(
    store: &Store,
    node: &std::sync::Arc<LocalNode>,
    clients: Option<&ClientFactory>,
    req: HandoverRequest,
    hukou_region: &RegionCode,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<HandoverAnswer, LookupError> {
    let dir = directory(node)?;
    if !node.serves(&req.residence_region) {
        return Err(LookupError::NotServed(format!(
            "this node does not serve the residence region {}",
            req.residence_region
        )));
    }
    // A scoped account brings a child only into the regions it covers.
    if !actor.scope.covers_region(req.residence_region.as_str()) {
        return Err(LedgerError::OutsideScope {
            scope: actor.scope.to_string(),
        }
        .into());
    }
    let hukou_node = dir
        .route(hukou_region)
        .map(|n| n.id.clone())
        .ok_or_else(|| {
            LookupError::NotServed(format!(
                "no bureau in the directory serves the hukou region {hukou_region}"
            ))
        })?;
    let answer = if hukou_node == node.id {
        let (n, r, me) = (node.clone(), req.clone(), node.id.clone());
        store
            .run(move |c| grant_handover(c, &n, &me, &r, now))
            .await?
    } else {
        let clients = clients.ok_or(LookupError::NoDirectory)?;
        post(&dir, clients, &hukou_node, HANDOVER_PATH, &req).await?
    };
    let (n, actor, a) = (node.clone(), actor.clone(), answer.clone());
    let id = req.id_number.clone();
    let purpose = req.purpose.as_str().to_owned();
    store
        .run(move |c| {
            storage::transaction(c, |c| {
                let event = Event::new(actor, "child.handover_request", Outcome::Ok)
                    .object("child", id.as_str())
                    .details(serde_json::json!({
                        "purpose": purpose, "hukou_node": a.hukou_node,
                        "version": a.version, "from_region": a.from_region,
                        "to_region": req.residence_region,
                    }));
                audit::append(c, n.clock.now(), now, &event)
            })
        })
        .await?;
    Ok(answer)
}

fn directory(node: &LocalNode) -> Result<std::sync::Arc<Directory>, LookupError> {
    node.directory
        .as_ref()
        .map(|d| d.current())
        .ok_or(LookupError::NoDirectory)
}

/// Posts `body` to `path` of `peer` over mutual TLS; the answer is JSON of at most
/// [`MAX_BODY_BYTES`].
async fn post<B: Serialize, A: serde::de::DeserializeOwned>(
    dir: &Directory,
    clients: &ClientFactory,
    peer: &NodeId,
    path: &str,
    body: &B,
) -> Result<A, LookupError> {
    let failed = |reason: String| LookupError::Peer {
        peer: peer.clone(),
        reason,
    };
    let entry = dir
        .node(peer)
        .ok_or_else(|| failed("not in the directory".into()))?;
    let client = clients(peer).map_err(failed)?;
    let url = format!("{}{path}", entry.endpoint.trim_end_matches('/'));
    let resp = client
        .post(url)
        .timeout(std::time::Duration::from_secs(15))
        .json(body)
        .send()
        .await
        .map_err(|e| failed(format!("transport: {e}")))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| failed(format!("transport: {e}")))?;
    if bytes.len() > MAX_BODY_BYTES {
        return Err(failed("the answer is too large".into()));
    }
    if status.as_u16() == 404 && path == HANDOVER_PATH {
        return Err(LookupError::NoFile);
    }
    if !status.is_success() {
        let said: String = String::from_utf8_lossy(&bytes).chars().take(300).collect();
        return Err(failed(format!("{status}: {said}")));
    }
    serde_json::from_slice(&bytes).map_err(|e| LookupError::Forged(format!("not an answer: {e}")))
}

/// A fresh nonce for a lookup (128 random bits, base64url).
pub fn new_nonce() -> Result<String, LookupError> {
    use base64::Engine as _;
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| LedgerError::Internal("the system random generator failed".into()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}
