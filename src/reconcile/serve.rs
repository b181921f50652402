//! The responder's side of the protocol and its wire types. Every answer is about the summary
//! this node keeps **for the asking peer** — the node of the verified client certificate, which
//! the caller passes in; no body names a node. Nothing outside the documents both are party to
//! is listed, counted or queued.
//!
//! Routes (under `/peer/v1/reconcile/`, one request each):
//! `root` → the root and document count (after catching the summary up);
//! `nodes {level, indices}` → the 16 child hashes of each named node;
//! `buckets {buckets}` → the documents and sorted heads in each named bucket;
//! `versions {docs}` → every version id held of each named document;
//! `want {versions}` → queue those versions for the asker; its sender delivers them by push.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::summary;
use super::tree::{self, DEPTH};
use super::ReconcileError;
use crate::audit::{self, Actor, ActorKind, Event, Outcome, Via};
use crate::crypto::hash::{Digest, HashAlg};
use crate::domain::NodeId;
use crate::storage::reconcile as repo;
use crate::storage::{self, DbConn};
use crate::sync::LocalNode;

/// Most node indices in one `nodes` request (a whole level 3).
pub const MAX_INDICES: usize = 4096;
/// Most buckets in one `buckets` request.
pub const MAX_BUCKETS: usize = 4096;
/// Most documents in one `versions` request.
pub const MAX_DOCS: usize = 5000;
/// Most versions in one `want` request.
pub const MAX_WANT: usize = 10_000;
/// Largest request body on these routes.
pub const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RootRequest {}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RootResponse {
    #[schema(value_type = String)]
    pub root: Digest,
    /// Documents in the summary kept for the asker.
    pub docs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodesRequest {
    /// 0 (the root) to 3.
    pub level: u32,
    /// Nodes of that level, each below `16^level`.
    pub indices: Vec<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodesResponse {
    /// For each requested node, in order, its 16 children's hashes.
    #[schema(value_type = Vec<Vec<String>>)]
    pub children: Vec<Vec<Digest>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BucketsRequest {
    /// Buckets, each below 65,536.
    pub buckets: Vec<u32>,
}

/// A document's kind, id and sorted heads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocHeads {
    pub kind: String,
    pub doc_id: String,
    pub heads: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BucketsResponse {
    pub docs: Vec<DocHeads>,
}

#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct DocRef {
    /// `child` or `case`.
    pub kind: String,
    pub doc_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionsRequest {
    pub docs: Vec<DocRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocVersions {
    pub kind: String,
    pub doc_id: String,
    /// Every version id held, oldest first. Empty for a document not shared with the asker.
    pub versions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionsResponse {
    pub docs: Vec<DocVersions>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WantRequest {
    #[schema(value_type = Vec<String>)]
    pub versions: Vec<Digest>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WantResponse {
    /// Versions queued for the asker (its sender delivers them by push).
    pub queued: usize,
    /// Versions not held here or of documents not shared with the asker.
    pub unavailable: usize,
}

/// Catches the summary up and answers the root, auditing that the peer reconciled.
pub fn root(
    conn: &mut DbConn,
    node: &LocalNode,
    asker: &NodeId,
    now: DateTime<Utc>,
) -> Result<RootResponse, ReconcileError> {
    summary::catch_up(conn, node, &mut |_| {})?;
    let (tree, docs) = summary::tree_for(conn, node.hash, asker.as_str())?;
    let root = tree.root();
    storage::transaction(conn, |c| {
        audit::append(
            c,
            node.clock.now(),
            now,
            &Event::new(peer_actor(asker), "reconcile.serve", Outcome::Ok)
                .details(serde_json::json!({"root": root, "docs": docs})),
        )
    })?;
    Ok(RootResponse { root, docs })
}

fn peer_actor(asker: &NodeId) -> Actor {
    Actor {
        kind: ActorKind::Node,
        id: asker.to_string(),
        via: Via::Peer,
        scope: crate::domain::Scope::whole_node(),
    }
}

impl NodesRequest {
    /// A level of the tree and at most [`MAX_INDICES`] of its nodes.
    pub fn check(&self) -> Result<(), ReconcileError> {
        let level = self.level as usize;
        if level >= DEPTH {
            return Err(ReconcileError::invalid(
                "invalid_level",
                "level",
                format!("level must be below {DEPTH}"),
            ));
        }
        check_len("indices", self.indices.len(), MAX_INDICES)?;
        let width = tree::level_width(level);
        if let Some(bad) = self.indices.iter().find(|i| **i as usize >= width) {
            return Err(ReconcileError::invalid(
                "invalid_index",
                "indices",
                format!("{bad} is not a node of level {level} (below {width})"),
            ));
        }
        Ok(())
    }
}

impl BucketsRequest {
    /// At most [`MAX_BUCKETS`] buckets, each below [`tree::BUCKETS`].
    pub fn check(&self) -> Result<(), ReconcileError> {
        check_len("buckets", self.buckets.len(), MAX_BUCKETS)?;
        if let Some(bad) = self.buckets.iter().find(|b| **b as usize >= tree::BUCKETS) {
            return Err(ReconcileError::invalid(
                "invalid_bucket",
                "buckets",
                format!("{bad} is not a bucket (below {})", tree::BUCKETS),
            ));
        }
        Ok(())
    }
}

/// The children of the named nodes.
pub fn nodes(
    conn: &mut DbConn,
    alg: HashAlg,
    asker: &NodeId,
    req: &NodesRequest,
) -> Result<NodesResponse, ReconcileError> {
    req.check()?;
    let level = req.level as usize;
    let (tree, _) = summary::tree_for(conn, alg, asker.as_str())?;
    let children = req
        .indices
        .iter()
        .map(|i| {
            tree.children(level, *i as usize)
                .map(<[Digest]>::to_vec)
                .unwrap_or_default()
        })
        .collect();
    Ok(NodesResponse { children })
}

fn check_len(field: &str, n: usize, max: usize) -> Result<(), ReconcileError> {
    if n > max {
        return Err(ReconcileError::invalid(
            "too_many_items",
            field,
            format!("at most {max} per request"),
        ));
    }
    Ok(())
}

/// The documents and heads in the named buckets of the asker's summary.
pub fn buckets(
    conn: &mut DbConn,
    asker: &NodeId,
    req: &BucketsRequest,
) -> Result<BucketsResponse, ReconcileError> {
    req.check()?;
    let ids: Vec<i64> = req.buckets.iter().map(|b| i64::from(*b)).collect();
    let rows = repo::summary_in_buckets(conn, asker.as_str(), &ids)?;
    Ok(BucketsResponse {
        docs: rows
            .into_iter()
            .map(|r| DocHeads {
                heads: split_heads(&r.heads),
                kind: r.kind,
                doc_id: r.doc_id,
            })
            .collect(),
    })
}

pub(crate) fn split_heads(joined: &str) -> Vec<String> {
    joined
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(crate) fn check_docs(docs: &[DocRef]) -> Result<(), ReconcileError> {
    check_len("docs", docs.len(), MAX_DOCS)?;
    for d in docs {
        if d.kind != "child" && d.kind != "case" {
            return Err(ReconcileError::invalid(
                "invalid_kind",
                "docs.kind",
                "kind is child or case",
            ));
        }
        if d.doc_id.is_empty() || d.doc_id.len() > 64 {
            return Err(ReconcileError::invalid(
                "invalid_doc_id",
                "docs.doc_id",
                "a document id has 1 to 64 characters",
            ));
        }
    }
    Ok(())
}

/// Every version id held of each named document shared with the asker.
pub fn versions(
    conn: &mut DbConn,
    asker: &NodeId,
    req: &VersionsRequest,
) -> Result<VersionsResponse, ReconcileError> {
    check_docs(&req.docs)?;
    let mut out = Vec::with_capacity(req.docs.len());
    for kind in ["child", "case"] {
        let docs: Vec<String> = req
            .docs
            .iter()
            .filter(|d| d.kind == kind)
            .map(|d| d.doc_id.clone())
            .collect();
        if docs.is_empty() {
            continue;
        }
        let shared = repo::shared_docs(conn, asker.as_str(), kind, &docs)?;
        let shared_list: Vec<String> = docs
            .iter()
            .filter(|d| shared.contains(*d))
            .cloned()
            .collect();
        let mut held: std::collections::HashMap<String, Vec<String>> = Default::default();
        for (doc, id, _) in repo::versions_of_docs(conn, kind, &shared_list)? {
            held.entry(doc).or_default().push(id);
        }
        for doc in docs {
            out.push(DocVersions {
                kind: kind.to_owned(),
                versions: held.remove(&doc).unwrap_or_default(),
                doc_id: doc,
            });
        }
    }
    Ok(VersionsResponse { docs: out })
}

/// Queues the wanted versions that are held here, of documents shared with the asker, in the
/// outbox for the asker, with an audit event. The caller wakes the senders.
pub fn want(
    conn: &mut DbConn,
    node: &LocalNode,
    asker: &NodeId,
    req: &WantRequest,
    now: DateTime<Utc>,
) -> Result<WantResponse, ReconcileError> {
    check_len("versions", req.versions.len(), MAX_WANT)?;
    let ids: Vec<String> = req.versions.iter().map(ToString::to_string).collect();
    let refs = repo::version_refs(conn, &ids)?;
    let mut items = Vec::new();
    for kind in ["child", "case"] {
        let docs: Vec<String> = refs
            .iter()
            .filter(|r| r.1 == kind)
            .map(|r| r.2.clone())
            .collect();
        let shared = repo::shared_docs(conn, asker.as_str(), kind, &docs)?;
        items.extend(
            refs.iter()
                .filter(|r| r.1 == kind && shared.contains(&r.2))
                .map(|r| (r.0.clone(), r.3)),
        );
    }
    let queued = items.len();
    storage::transaction(conn, |c| -> Result<(), ReconcileError> {
        crate::sync::store::requeue(c, asker, &items, now.naive_utc())?;
        audit::append(
            c,
            node.clock.now(),
            now,
            &Event::new(peer_actor(asker), "reconcile.want", Outcome::Ok)
                .details(serde_json::json!({"requested": ids.len(), "queued": queued})),
        )?;
        Ok(())
    })?;
    Ok(WantResponse {
        queued,
        unavailable: ids.len() - queued,
    })
}
