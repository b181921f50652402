//! Evidence files (证明材料) that travel with cases (issue 22 #4): uploaded at the requester's
//! node, stored encrypted, **pulled** by the decider over mutual TLS, verified by their SHA-256,
//! shown to the reviewer and downloaded with an audit event.
//!
//! - **Upload** ([`upload`]): the declared type must be PDF, JPEG or PNG and the file's magic
//!   must agree (`domain::evidence_file`); at most `[evidence] max_bytes`. The file is sealed
//!   with AES-256-GCM under the node's key file (`crypto::at_rest`), its SHA-256 as associated
//!   data, and stored once per hash. Audited `evidence.upload` (hash, size, type — never the
//!   content).
//! - **Naming**: a submission or an answer may name only files stored at the requester
//!   ([`check_stored`]); the case's view row keeps which files it names (`case_evidence`).
//! - **Expiry** ([`expire_unnamed`]): a file uploaded here that no case names after
//!   `[evidence] unnamed_days` (a submission refused or never made) is deleted, audited
//!   `evidence.expire`; the job runs daily under a lease.
//! - **Travel, by pull** ([`Fetcher`]): after a case version naming files it lacks arrives, the
//!   decider asks the requester `GET /peer/v1/evidence/{sha256}`; the requester answers only a
//!   peer that is the requester or decider of a stored case naming the file ([`serve_to_peer`],
//!   404 otherwise, so the route is no oracle of what exists). What arrives is hashed: a file of
//!   another hash is kept out and recorded as `mismatch` (WARN log without personal data, the
//!   `hukou_evidence_mismatch` gauge). Files still missing are retried every
//!   `[evidence] retry_secs` by the job and at once by a reconciliation run with the requester.
//! - **Decision**: an approval or denial is refused while a file the case names is not present
//!   and verified at the decider ([`unverified`], `CaseError::EvidenceNotVerified`); asking for
//!   information stays allowed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::service::{self, CaseError};
use crate::audit::{self, Actor, ActorKind, Event, Outcome, Via};
use crate::crypto::hash::Digest;
use crate::crypto::{AtRestError, AtRestKey};
use crate::domain::case::state::Transition;
use crate::domain::case::{CaseBody, Evidence};
use crate::domain::evidence_file::{checked_type, EvidenceStatus, MediaType, TypeError};
use crate::domain::NodeId;
use crate::storage::evidence::{self as repo, EvidenceFileRow};
use crate::storage::{self, DbConn, StorageError, Store};
use crate::sync::sender::ClientFactory;
use crate::sync::LocalNode;

/// Where evidence files are sealed and how large they may be.
pub struct Vault {
    key: AtRestKey,
    /// The largest file accepted (`[evidence] max_bytes`), uploaded or fetched.
    pub max_bytes: usize,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("key", &self.key)
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

impl Vault {
    pub fn new(key: AtRestKey, max_bytes: usize) -> Self {
        Self { key, max_bytes }
    }

    /// The associated data of a file's seal: its SHA-256, so a sealed file moved to another
    /// row does not open.
    fn aad(sha256: &Digest) -> &[u8] {
        sha256.as_bytes()
    }

    fn seal_row(
        &self,
        sha256: &Digest,
        media: MediaType,
        bytes: &[u8],
        source: Option<&NodeId>,
        now: DateTime<Utc>,
    ) -> Result<EvidenceFileRow, EvidenceError> {
        let (nonce, ciphertext) = self.key.seal(Self::aad(sha256), bytes)?;
        Ok(EvidenceFileRow {
            sha256: sha256.to_string(),
            media_type: media.as_str().to_owned(),
            size: bytes.len() as i64,
            nonce: nonce.to_vec(),
            ciphertext,
            stored_at: now.naive_utc(),
            source_node: source.map(ToString::to_string),
        })
    }

    /// The plaintext of a stored row, checked against its hash.
    fn open_row(&self, row: &EvidenceFileRow) -> Result<(MediaType, Vec<u8>), EvidenceError> {
        let sha: Digest = row
            .sha256
            .parse()
            .map_err(|e| StorageError::corrupt("evidence_files", format!("sha256: {e}")))?;
        let media = MediaType::parse(&row.media_type).ok_or_else(|| {
            StorageError::corrupt("evidence_files", format!("media type {:?}", row.media_type))
        })?;
        let plain = self
            .key
            .open(Self::aad(&sha), &row.nonce, &row.ciphertext)?;
        Ok((media, plain))
    }
}

/// Why an evidence operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("the file is larger than {limit} bytes ([evidence] max_bytes)")]
    TooLarge { limit: usize },
    #[error(transparent)]
    Type(#[from] TypeError),
    #[error("no such case")]
    CaseNotFound,
    #[error("the case names no file with this SHA-256")]
    NotNamed,
    #[error("the file is not stored and verified at this node ({}); it is fetched from the requesting bureau", .0.as_str())]
    NotPresent(EvidenceStatus),
    /// The file does not open under this node's key (changed in the database, or another key).
    #[error(transparent)]
    Sealed(#[from] AtRestError),
    #[error(transparent)]
    Case(#[from] CaseError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
}

/// A stored file, as the upload answers it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StoredEvidence {
    /// SHA-256 of the file, 64 lower-case hex characters: what a case names it by.
    #[schema(value_type = String)]
    pub sha256: Digest,
    pub media_type: MediaType,
    /// Bytes.
    pub size: u64,
}

/// Stores an uploaded file (type checked against its magic, size bounded) unless it is stored
/// already; audited `evidence.upload`. Returns the file and whether it is new here.
pub fn upload(
    conn: &mut DbConn,
    node: &LocalNode,
    vault: &Vault,
    content_type: &str,
    bytes: &[u8],
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(StoredEvidence, bool), EvidenceError> {
    if bytes.len() > vault.max_bytes {
        return Err(EvidenceError::TooLarge {
            limit: vault.max_bytes,
        });
    }
    let media = checked_type(content_type, bytes)?;
    let sha256 = Digest::of(bytes);
    let stored = StoredEvidence {
        sha256,
        media_type: media,
        size: bytes.len() as u64,
    };
    let created = storage::transaction(conn, |conn| -> Result<bool, EvidenceError> {
        let created = match repo::get_file(conn, &sha256.to_string())? {
            Some(_) => false,
            None => repo::insert_file(conn, &vault.seal_row(&sha256, media, bytes, None, now)?)?,
        };
        audit::append(
            conn,
            node.clock.now(),
            now,
            &Event::new(actor.clone(), "evidence.upload", Outcome::Ok)
                .object("evidence", &sha256.to_string())
                .details(serde_json::json!({
                    "sha256": sha256, "size": bytes.len(), "media_type": media, "new": created,
                })),
        )?;
        Ok(created)
    })?;
    Ok((stored, created))
}

/// Most files one [`expire_unnamed`] transaction deletes; a run repeats until none is left.
const EXPIRE_PER_TRANSACTION: i64 = 500;

/// Deletes the files uploaded here more than `unnamed_for` before `now` that no case names (a
/// caseworker uploads, then submits; a submission refused, or never made, left its files behind),
/// each audited `evidence.expire` (hash, size, when stored — never the content) in the
/// transaction that deletes it. Files fetched from a peer are always named and never expire
/// here; a file a case names at the same moment is kept ([`repo::expire_unnamed`]). Returns
/// how many files were deleted.
pub fn expire_unnamed(
    conn: &mut DbConn,
    node: &LocalNode,
    unnamed_for: chrono::Duration,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<usize, EvidenceError> {
    let cutoff = (now - unnamed_for).naive_utc();
    let mut total = 0;
    loop {
        let n = storage::transaction(conn, |conn| -> Result<usize, EvidenceError> {
            let gone = repo::expire_unnamed(conn, cutoff, EXPIRE_PER_TRANSACTION)?;
            if gone.is_empty() {
                return Ok(0);
            }
            let events: Vec<Event> = gone
                .iter()
                .map(|f| {
                    Event::new(actor.clone(), "evidence.expire", Outcome::Ok)
                        .object("evidence", &f.sha256)
                        .details(serde_json::json!({
                            "sha256": f.sha256, "size": f.size,
                            "stored_at": f.stored_at.and_utc(),
                            "unnamed_days": unnamed_for.num_days(),
                        }))
                })
                .collect();
            let hlcs: Vec<_> = events.iter().map(|_| node.clock.now()).collect();
            audit::append_many(conn, &hlcs, now, &events)?;
            Ok(gone.len())
        })?;
        total += n;
        if n < EXPIRE_PER_TRANSACTION as usize {
            return Ok(total);
        }
    }
}

/// Every document a case names, grounds first, then each answer's, each hash once.
pub fn named(body: &CaseBody) -> Vec<&Evidence> {
    let mut seen = BTreeSet::new();
    body.grounds
        .evidence
        .iter()
        .chain(body.history.iter().flat_map(|s| match &s.transition {
            Transition::ProvideInfo { evidence, .. } => evidence.as_slice(),
            _ => &[],
        }))
        .filter(|e| seen.insert(e.sha256))
        .collect()
}

/// The hashes a case names, as stored.
pub fn named_hashes(body: &CaseBody) -> BTreeSet<String> {
    named(body).iter().map(|e| e.sha256.to_string()).collect()
}

/// Refuses a list of documents (at `field`, e.g. `grounds.evidence`) naming a file not stored
/// here: 422 `evidence_missing` naming `field[i].sha256`. The files found stay locked against
/// [`expire_unnamed`] until the caller's transaction ends (it names them in it).
pub fn check_stored(conn: &mut DbConn, list: &[Evidence], field: &str) -> Result<(), CaseError> {
    let shas: Vec<String> = list.iter().map(|e| e.sha256.to_string()).collect();
    let present = repo::present_for_naming(conn, &shas)?;
    match shas.iter().position(|s| !present.contains(s)) {
        None => Ok(()),
        Some(i) => Err(CaseError::EvidenceMissing {
            field: format!("{field}[{i}].sha256"),
            sha256: shas[i].clone(),
        }),
    }
}

/// One document a case names, with where its file stands at this node.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EvidenceView {
    #[schema(value_type = String)]
    pub sha256: Digest,
    pub doc_type: String,
    pub issuer: String,
    pub number: String,
    /// `present` (stored here, hash verified), `missing` (not here yet) or `mismatch` (what the
    /// requesting bureau served did not match the hash; kept out).
    pub status: EvidenceStatus,
    /// Of a present file.
    pub media_type: Option<MediaType>,
    /// Bytes of a present file.
    pub size: Option<u64>,
}

/// The status of each document `body` names at this node.
pub fn statuses(conn: &mut DbConn, body: &CaseBody) -> Result<Vec<EvidenceView>, StorageError> {
    let list = named(body);
    let shas: Vec<String> = list.iter().map(|e| e.sha256.to_string()).collect();
    let present = repo::present(conn, &shas)?;
    let fetches = repo::fetches(conn, &shas)?;
    Ok(list
        .into_iter()
        .zip(shas)
        .map(|(e, sha)| {
            let here = present.get(&sha);
            let status = match (here, fetches.get(&sha)) {
                (Some(_), _) => EvidenceStatus::Present,
                (None, Some(f)) if f.outcome == "mismatch" => EvidenceStatus::Mismatch,
                (None, _) => EvidenceStatus::Missing,
            };
            EvidenceView {
                sha256: e.sha256,
                doc_type: e.doc_type.as_str().to_owned(),
                issuer: e.issuer.as_str().to_owned(),
                number: e.number.as_str().to_owned(),
                status,
                media_type: here.and_then(|(m, _)| MediaType::parse(m)),
                size: here.map(|(_, n)| *n as u64),
            }
        })
        .collect())
}

/// The hashes a case names that are missing here, and those whose fetch did not match.
pub fn unverified(
    conn: &mut DbConn,
    body: &CaseBody,
) -> Result<(Vec<String>, Vec<String>), StorageError> {
    let (mut missing, mut mismatching) = (Vec::new(), Vec::new());
    for v in statuses(conn, body)? {
        match v.status {
            EvidenceStatus::Present => {}
            EvidenceStatus::Missing => missing.push(v.sha256.to_string()),
            EvidenceStatus::Mismatch => mismatching.push(v.sha256.to_string()),
        }
    }
    Ok((missing, mismatching))
}

/// The decrypted file `sha256` of case `case_id` for a person or local system, audited
/// `evidence.download` (the case, the hash, the purpose).
#[allow(clippy::too_many_arguments)]
pub fn download(
    conn: &mut DbConn,
    node: &LocalNode,
    vault: &Vault,
    case_id: &str,
    sha256: &Digest,
    actor: &Actor,
    purpose: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(MediaType, Vec<u8>), EvidenceError> {
    let (body, _) = match service::load(conn, case_id) {
        Err(CaseError::NotFound(_)) => return Err(EvidenceError::CaseNotFound),
        other => other?,
    };
    // A case of a child outside the account's scope is not there for it.
    if crate::sync::ledger::check_scope_of(conn, actor, body.child_id.as_str(), false).is_err() {
        return Err(EvidenceError::CaseNotFound);
    }
    if !named(&body).iter().any(|e| &e.sha256 == sha256) {
        return Err(EvidenceError::NotNamed);
    }
    let sha = sha256.to_string();
    let Some(row) = repo::get_file(conn, &sha)? else {
        let mismatch = repo::fetches(conn, std::slice::from_ref(&sha))?
            .get(&sha)
            .is_some_and(|f| f.outcome == "mismatch");
        return Err(EvidenceError::NotPresent(if mismatch {
            EvidenceStatus::Mismatch
        } else {
            EvidenceStatus::Missing
        }));
    };
    let (media, bytes) = vault.open_row(&row)?;
    if &Digest::of(&bytes) != sha256 {
        return Err(StorageError::corrupt(
            "evidence_files",
            format!("{sha} does not hash to itself"),
        )
        .into());
    }
    storage::transaction(conn, |conn| {
        audit::append(
            conn,
            node.clock.now(),
            now,
            &Event::new(actor.clone(), "evidence.download", Outcome::Ok)
                .object("case", case_id)
                .purpose(purpose)
                .details(
                    serde_json::json!({"sha256": sha, "size": bytes.len(), "media_type": media}),
                ),
        )
    })?;
    Ok((media, bytes))
}

/// The decrypted file for a peer that is the requester or decider of a case stored here naming
/// it; `None` (a 404, the same as for a file that does not exist) otherwise. Audited
/// `evidence.serve`.
pub fn serve_to_peer(
    conn: &mut DbConn,
    node: &LocalNode,
    vault: &Vault,
    peer: &NodeId,
    sha256: &Digest,
    now: DateTime<Utc>,
) -> Result<Option<(MediaType, Vec<u8>)>, EvidenceError> {
    let sha = sha256.to_string();
    if !repo::named_for_party(conn, &sha, peer.as_str())? {
        return Ok(None);
    }
    let Some(row) = repo::get_file(conn, &sha)? else {
        return Ok(None);
    };
    let (media, bytes) = vault.open_row(&row)?;
    storage::transaction(conn, |conn| {
        audit::append(
            conn,
            node.clock.now(),
            now,
            &Event::new(peer_actor(peer), "evidence.serve", Outcome::Ok)
                .object("evidence", &sha)
                .details(serde_json::json!({"size": bytes.len(), "media_type": media})),
        )
    })?;
    Ok(Some((media, bytes)))
}

fn peer_actor(peer: &NodeId) -> Actor {
    Actor {
        kind: ActorKind::Node,
        id: peer.to_string(),
        via: Via::Peer,
        scope: crate::domain::Scope::whole_node(),
    }
}

/// What a round of fetching did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FetchSummary {
    /// Files fetched, verified and stored.
    pub fetched: u64,
    /// Files the peer did not serve (unreachable, 404, too large, wrong type).
    pub failed: u64,
    /// Files the peer served with another hash (kept out).
    pub mismatched: u64,
}

/// The decider's side of the travel: fetches the files its cases name from their requesters.
#[derive(Clone)]
pub struct Fetcher {
    store: Store,
    node: Arc<LocalNode>,
    vault: Arc<Vault>,
    clients: ClientFactory,
    /// A file whose last attempt failed is tried again after this long (by [`Fetcher::fetch_due`]).
    retry: Duration,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("node", &self.node.id)
            .field("retry", &self.retry)
            .finish()
    }
}

enum Fetched {
    Stored,
    Failed(String),
    Mismatch(Digest),
}

impl Fetcher {
    pub fn new(
        store: Store,
        node: Arc<LocalNode>,
        vault: Arc<Vault>,
        clients: ClientFactory,
        retry: Duration,
    ) -> Self {
        Self {
            store,
            node,
            vault,
            clients,
            retry,
        }
    }

    /// Fetches the files missing here that were never tried, or whose last attempt is older
    /// than the retry interval.
    pub async fn fetch_due(&self) -> Result<FetchSummary, EvidenceError> {
        let retry = chrono::Duration::from_std(self.retry).unwrap_or(chrono::Duration::MAX);
        let now = Utc::now();
        self.fetch(None, move |last| {
            last.map_or(true, |t| now.naive_utc() - t >= retry)
        })
        .await
    }

    /// Fetches every file missing here that cases `peer` asked name (a reconciliation run with
    /// `peer`), whenever it was last tried.
    pub async fn fetch_from(&self, peer: &NodeId) -> Result<FetchSummary, EvidenceError> {
        self.fetch(Some(peer), |_| true).await
    }

    async fn fetch(
        &self,
        only: Option<&NodeId>,
        due: impl Fn(Option<chrono::NaiveDateTime>) -> bool,
    ) -> Result<FetchSummary, EvidenceError> {
        let me = self.node.id.to_string();
        let (wanted, tried) = self
            .store
            .run(move |c| -> Result<_, StorageError> {
                let wanted = repo::wanted(c, &me)?;
                let shas: Vec<String> = wanted.keys().cloned().collect();
                Ok((wanted, repo::fetches(c, &shas)?))
            })
            .await?;
        let mut summary = FetchSummary::default();
        for (sha, requesters) in wanted {
            if !due(tried.get(&sha).map(|f| f.last_attempt_at)) {
                continue;
            }
            let Ok(digest) = sha.parse::<Digest>() else {
                continue;
            };
            let mut last = None;
            for peer in requesters {
                let Ok(peer) = NodeId::parse(&peer) else {
                    continue;
                };
                if only.is_some_and(|o| o != &peer) {
                    continue;
                }
                let outcome = self.fetch_one(&digest, &peer).await?;
                let stored = matches!(outcome, Fetched::Stored);
                last = Some(outcome);
                if stored {
                    break;
                }
            }
            match last {
                Some(Fetched::Stored) => summary.fetched += 1,
                Some(Fetched::Failed(_)) => summary.failed += 1,
                Some(Fetched::Mismatch(_)) => summary.mismatched += 1,
                None => {}
            }
        }
        Ok(summary)
    }

    /// Asks `peer` for one file, verifies it and stores it; records the attempt either way.
    async fn fetch_one(&self, sha256: &Digest, peer: &NodeId) -> Result<Fetched, EvidenceError> {
        let outcome = match self.download_from(sha256, peer).await {
            Ok((content_type, bytes)) => {
                let got = Digest::of(&bytes);
                if &got != sha256 {
                    Fetched::Mismatch(got)
                } else {
                    match checked_type(&content_type, &bytes) {
                        Ok(media) => {
                            self.store_fetched(sha256, media, bytes, peer).await?;
                            Fetched::Stored
                        }
                        Err(e) => Fetched::Failed(e.to_string()),
                    }
                }
            }
            Err(reason) => Fetched::Failed(reason),
        };
        let (label, detail) = match &outcome {
            Fetched::Stored => ("fetched", None),
            Fetched::Failed(reason) => {
                tracing::info!(%peer, sha256 = %sha256, reason = %reason, "evidence file not fetched; retried later");
                ("failed", Some(reason.clone()))
            }
            Fetched::Mismatch(got) => {
                tracing::warn!(%peer, sha256 = %sha256, served = %got,
                    "an evidence file the peer served does not match the SHA-256 its case names; kept out, the decision stays blocked");
                (
                    "mismatch",
                    Some(format!("the peer served a file whose SHA-256 is {got}")),
                )
            }
        };
        let (node, sha, p) = (self.node.clone(), sha256.to_string(), peer.clone());
        let now = Utc::now();
        self.store
            .run(move |c| {
                storage::transaction(c, |c| -> Result<(), EvidenceError> {
                    repo::record_fetch(
                        c,
                        &sha,
                        p.as_str(),
                        label,
                        detail.as_deref(),
                        now.naive_utc(),
                    )?;
                    if label == "mismatch" {
                        audit::append(
                            c,
                            node.clock.now(),
                            now,
                            &Event::new(
                                Actor::job("evidence-fetch"),
                                "evidence.mismatch",
                                Outcome::Rejected,
                            )
                            .object("evidence", &sha)
                            .details(serde_json::json!({"peer": p, "detail": detail})),
                        )?;
                    }
                    Ok(())
                })
            })
            .await?;
        Ok(outcome)
    }

    /// `GET /peer/v1/evidence/{sha256}` at `peer`: its Content-Type and body (at most
    /// `max_bytes`), or why not.
    async fn download_from(
        &self,
        sha256: &Digest,
        peer: &NodeId,
    ) -> Result<(String, Vec<u8>), String> {
        let endpoint = self
            .node
            .directory
            .as_ref()
            .and_then(|d| d.current().node(peer).map(|n| n.endpoint.clone()))
            .ok_or_else(|| format!("{peer} is not in the directory"))?;
        let url = format!(
            "{}/peer/v1/evidence/{sha256}",
            endpoint.trim_end_matches('/')
        );
        let http = (self.clients)(peer)?;
        let mut resp = http
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("the peer answered {}", resp.status()));
        }
        let limit = self.vault.max_bytes;
        if resp.content_length().is_some_and(|n| n > limit as u64) {
            return Err(format!("larger than {limit} bytes ([evidence] max_bytes)"));
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("reading the file: {e}"))?
        {
            if body.len() + chunk.len() > limit {
                return Err(format!("larger than {limit} bytes ([evidence] max_bytes)"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((content_type, body))
    }

    async fn store_fetched(
        &self,
        sha256: &Digest,
        media: MediaType,
        bytes: Vec<u8>,
        peer: &NodeId,
    ) -> Result<(), EvidenceError> {
        let now = Utc::now();
        let row = self
            .vault
            .seal_row(sha256, media, &bytes, Some(peer), now)?;
        let (node, p) = (self.node.clone(), peer.clone());
        let size = bytes.len();
        self.store
            .run(move |c| {
                storage::transaction(c, |c| -> Result<(), EvidenceError> {
                    if repo::insert_file(c, &row)? {
                        audit::append(
                            c,
                            node.clock.now(),
                            now,
                            &Event::new(
                                Actor::job("evidence-fetch"),
                                "evidence.receive",
                                Outcome::Ok,
                            )
                            .object("evidence", &row.sha256)
                            .details(
                                serde_json::json!({"peer": p, "size": size, "media_type": media}),
                            ),
                        )?;
                    }
                    Ok(())
                })
            })
            .await
    }
}

/// Records which files the open cases name (`case_evidence`), once, for cases stored before the
/// table existed (their views were built without it): without the rows a requester would not
/// serve their files to the decider. Returns the cases recorded, `None` when done before.
pub fn backfill_named(conn: &mut DbConn) -> Result<Option<usize>, StorageError> {
    const KEY: &str = "case_evidence_backfill";
    if storage::reconcile::meta(conn, KEY)?.is_some() {
        return Ok(None);
    }
    storage::transaction(conn, |conn| {
        let mut n = 0;
        for (case_id, body) in storage::cases::open_bodies(conn)? {
            let body: CaseBody = serde_json::from_str(&body).map_err(|e| {
                StorageError::corrupt("cases", format!("case {case_id}: body: {e}"))
            })?;
            let named = named_hashes(&body);
            if !named.is_empty() {
                repo::name_for_case(conn, &case_id, &named)?;
                n += 1;
            }
        }
        storage::reconcile::set_meta(conn, KEY, 1)?;
        Ok(Some(n))
    })
}
