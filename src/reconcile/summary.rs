//! The per-peer summary: for every peer, the leaves `(kind, doc_id, sorted heads)` of the
//! documents both nodes are party to, and per bucket the XOR of its leaves.
//!
//! It is maintained incrementally: every change of heads marks its document dirty (in
//! `storage::records`, whatever path stored the version), and [`catch_up`] folds the dirty
//! documents in, a chunk per transaction — so an interrupted catch-up leaves a consistent
//! summary and the next one goes on. A document's parties are read from its current view (a
//! child's hukou and residence regions routed through the directory; a case's requester and
//! decider; a visit's or a report's child's). A document this node is not a party of, one with no heads (lost by a restored
//! backup), or one with a version whose body no longer hashes to its id (`sync::integrity`) is
//! in no peer's summary: a run then shows it as differing, never as equal. Parties depend on the directory's routing, so when the
//! directory's serial changes every document is re-examined once.

use std::collections::{BTreeSet, HashMap};

use super::tree::{self, Tree};
use super::ReconcileError;
use crate::crypto::hash::{Digest, HashAlg};
use crate::domain::{DocKind, NodeId, RegionCode};
use crate::storage::reconcile::{self as repo, BucketRow, SummaryRow};
use crate::storage::{self, DbConn};
use crate::sync::LedgerError;
use crate::sync::LocalNode;

/// Dirty documents folded in per transaction.
pub const CATCH_UP_CHUNK: i64 = 5000;

/// Folds every dirty document into the summaries; returns how many were processed. `progress`
/// gets the running count. Idempotent; safe beside writers and beside another catch-up.
pub fn catch_up(
    conn: &mut DbConn,
    node: &LocalNode,
    progress: &mut dyn FnMut(usize),
) -> Result<usize, ReconcileError> {
    // Parties come from the directory's routing: under a new directory every document is
    // re-examined once.
    if let Some(serial) = node.directory.as_ref().map(|d| d.current().serial()) {
        // Serials are small counters; one past i64 would be a forged directory, refused here.
        let serial = i64::try_from(serial).map_err(|_| {
            ReconcileError::Ledger(LedgerError::Internal(format!(
                "directory serial {serial} is out of range"
            )))
        })?;
        storage::transaction(conn, |c| -> Result<(), ReconcileError> {
            repo::lock_catch_up(c)?;
            if repo::meta(c, "directory_serial")? != Some(serial) {
                repo::mark_all_dirty(c)?;
                repo::set_meta(c, "directory_serial", serial)?;
            }
            Ok(())
        })?;
    }
    let mut total = 0;
    loop {
        let n = storage::transaction(conn, |c| -> Result<usize, ReconcileError> {
            repo::lock_catch_up(c)?;
            let dirty = repo::dirty_chunk(c, CATCH_UP_CHUNK)?;
            if dirty.is_empty() {
                return Ok(0);
            }
            let mut children: Vec<String> = Vec::new();
            for kind in DocKind::ALL {
                let mut docs: Vec<String> = dirty
                    .iter()
                    .filter(|d| d.kind == kind)
                    .map(|d| d.doc_id.clone())
                    .collect();
                // A child's visits and reports share its parties: a changed file (a move)
                // re-examines them.
                if !children.is_empty() && matches!(kind, DocKind::Visit | DocKind::Report) {
                    docs.extend(if kind == DocKind::Visit {
                        crate::storage::visits::ids_of_children(c, &children)?
                    } else {
                        crate::storage::reports::ids_of_children(c, &children)?
                    });
                    docs.sort_unstable();
                    docs.dedup();
                }
                if kind == DocKind::Child {
                    children = docs.clone();
                }
                if !docs.is_empty() {
                    refresh(c, node, kind.as_str(), &docs)?;
                }
            }
            repo::clear_dirty(c, &dirty)?;
            Ok(dirty.len())
        })?;
        if n == 0 {
            return Ok(total);
        }
        total += n;
        progress(total);
    }
}

/// The peers (other than this node) that share each document, from its current view.
fn sharing_peers(
    conn: &mut DbConn,
    node: &LocalNode,
    kind: &str,
    docs: &[String],
) -> Result<HashMap<String, BTreeSet<NodeId>>, ReconcileError> {
    let mut out = HashMap::new();
    let parties_of = |a: &str, b: &str, routed: bool| -> BTreeSet<NodeId> {
        if routed {
            match (RegionCode::parse(a), RegionCode::parse(b)) {
                (Ok(h), Ok(r)) => node.parties(&h, &r),
                _ => BTreeSet::new(),
            }
        } else {
            [a, b]
                .iter()
                .filter_map(|n| NodeId::parse(n).ok())
                .collect()
        }
    };
    let rows = match kind {
        "child" => repo::child_regions(conn, docs)?
            .into_iter()
            .map(|(d, (h, r))| (d, parties_of(&h, &r, true)))
            .collect::<Vec<_>>(),
        "case" => repo::case_parties(conn, docs)?
            .into_iter()
            .map(|(d, (q, r))| (d, parties_of(&q, &r, false)))
            .collect(),
        // A visit's and a report's parties are its child's.
        "visit" | "report" => {
            let child_of = if kind == "visit" {
                crate::storage::visits::children_of(conn, docs)?
            } else {
                crate::storage::reports::children_of(conn, docs)?
            };
            let children: Vec<String> = child_of.values().cloned().collect();
            let regions = repo::child_regions(conn, &children)?;
            child_of
                .into_iter()
                .filter_map(|(d, c)| regions.get(&c).map(|(h, r)| (d, parties_of(h, r, true))))
                .collect()
        }
        _ => Vec::new(),
    };
    for (doc, mut parties) in rows {
        if parties.remove(&node.id) {
            out.insert(doc, parties);
        }
    }
    Ok(out)
}

/// Recomputes the leaves of `docs` for every peer and adjusts the buckets by the difference.
fn refresh(
    conn: &mut DbConn,
    node: &LocalNode,
    kind: &str,
    docs: &[String],
) -> Result<(), ReconcileError> {
    let mut heads = repo::heads_of_docs(conn, kind, docs)?;
    // A document with a tampered version is in no summary: never counted equal (module doc).
    for d in crate::storage::records::tampered_docs(conn, kind)? {
        heads.remove(&d);
    }
    let peers = sharing_peers(conn, node, kind, docs)?;
    let old = repo::summary_rows_of_docs(conn, kind, docs)?;
    let mut new = Vec::new();
    for doc in docs {
        let (Some(h), Some(ps)) = (heads.get(doc), peers.get(doc)) else {
            continue;
        };
        if h.is_empty() || ps.is_empty() {
            continue;
        }
        let bucket = i64::from(tree::bucket_of(node.hash, doc));
        let leaf = tree::leaf(node.hash, kind, doc, h).to_string();
        let joined = h.join(",");
        for p in ps {
            new.push(SummaryRow {
                peer: p.to_string(),
                kind: kind.to_owned(),
                doc_id: doc.clone(),
                bucket,
                heads: joined.clone(),
                leaf: leaf.clone(),
            });
        }
    }
    // Per (peer, bucket): the XOR of leaves leaving and entering, and the change in count.
    let mut delta: HashMap<(String, i64), (Digest, i64)> = HashMap::new();
    for (row, sign) in old
        .iter()
        .map(|r| (r, -1))
        .chain(new.iter().map(|r| (r, 1)))
    {
        let leaf: Digest = row
            .leaf
            .parse()
            .map_err(|e| storage::StorageError::corrupt("recon_docs", format!("leaf: {e}")))?;
        let e = delta
            .entry((row.peer.clone(), row.bucket))
            .or_insert((Digest([0; 32]), 0));
        e.0 = tree::xor(&e.0, &leaf);
        e.1 += sign;
    }
    delta.retain(|_, (acc, n)| *n != 0 || *acc != Digest([0; 32]));
    repo::delete_summary_rows(conn, kind, docs)?;
    repo::insert_summary_rows(conn, &new)?;
    let mut by_peer: HashMap<String, Vec<i64>> = HashMap::new();
    for (peer, bucket) in delta.keys() {
        by_peer.entry(peer.clone()).or_default().push(*bucket);
    }
    let mut updated = Vec::new();
    for (peer, buckets) in by_peer {
        let current: HashMap<i64, BucketRow> = repo::get_buckets(conn, &peer, &buckets)?
            .into_iter()
            .map(|b| (b.bucket, b))
            .collect();
        for b in buckets {
            // Invariant: (peer, b) was read from `delta`'s own keys above.
            let (d_acc, d_n) = delta[&(peer.clone(), b)];
            let (acc, n) = match current.get(&b) {
                Some(row) => (
                    row.acc.parse::<Digest>().map_err(|e| {
                        storage::StorageError::corrupt("recon_buckets", format!("accumulator: {e}"))
                    })?,
                    row.docs,
                ),
                None => (Digest([0; 32]), 0),
            };
            updated.push(BucketRow {
                peer: peer.clone(),
                bucket: b,
                acc: tree::xor(&acc, &d_acc).to_string(),
                docs: n + d_n,
            });
        }
    }
    repo::put_buckets(conn, &updated)?;
    Ok(())
}

/// The tree of the summary kept for `peer` (hashed with the network's content hash `alg`), and
/// how many documents it covers.
pub fn tree_for(
    conn: &mut DbConn,
    alg: HashAlg,
    peer: &str,
) -> Result<(Tree, u64), ReconcileError> {
    let rows = repo::all_buckets(conn, peer)?;
    let mut docs = 0u64;
    let mut buckets = Vec::with_capacity(rows.len());
    for r in rows {
        let acc: Digest = r.acc.parse().map_err(|e| {
            storage::StorageError::corrupt("recon_buckets", format!("accumulator: {e}"))
        })?;
        let n = u64::try_from(r.docs).unwrap_or(0);
        docs += n;
        buckets.push((usize::try_from(r.bucket).unwrap_or(usize::MAX), acc, n));
    }
    Ok((Tree::from_buckets(alg, buckets), docs))
}

/// Recomputes the summary kept for `peer` from scratch (every stored document), as rows sorted
/// by (kind, doc_id) — what [`catch_up`] must have produced. For tests and checks.
pub fn recompute(
    conn: &mut DbConn,
    node: &LocalNode,
    peer: &str,
) -> Result<Vec<SummaryRow>, ReconcileError> {
    let mut out = Vec::new();
    for kind in ["child", "case"] {
        let docs = repo::all_doc_ids(conn, kind)?;
        let mut heads = repo::heads_of_docs(conn, kind, &docs)?;
        for d in crate::storage::records::tampered_docs(conn, kind)? {
            heads.remove(&d);
        }
        let peers = sharing_peers(conn, node, kind, &docs)?;
        for doc in &docs {
            let (Some(h), Some(ps)) = (heads.get(doc), peers.get(doc)) else {
                continue;
            };
            if ps.iter().any(|p| p.as_str() == peer) && !h.is_empty() {
                out.push(SummaryRow {
                    peer: peer.to_owned(),
                    kind: kind.to_owned(),
                    doc_id: doc.clone(),
                    bucket: i64::from(tree::bucket_of(node.hash, doc)),
                    heads: h.join(","),
                    leaf: tree::leaf(node.hash, kind, doc, h).to_string(),
                });
            }
        }
    }
    out.sort_by(|a, b| (&a.kind, &a.doc_id).cmp(&(&b.kind, &b.doc_id)));
    Ok(out)
}
