//! The current view of a child's file: the merged view of all its versions (DESIGN §4) as the
//! `children` table stores it for queries, its open conflicts as the review queue stores them,
//! and the outbox entries a new version creates.

use std::collections::BTreeSet;

use chrono::NaiveDateTime;

use super::ledger::LedgerError;
use super::merge::{self, MergeInput, MergedView};
use super::node::LocalNode;
use super::version::SignedVersion;
use crate::domain::child::{ChildField, ChildRecord};
use crate::domain::{Authority, NodeId, Roles};
use crate::storage::conflicts::{self, ConflictRow};
use crate::storage::exchange;
use crate::storage::records::{self as repo, ChildRow, VersionRow};
use crate::storage::DbConn;

/// A version's record, read structurally (versions were validated when made or ingested).
pub fn record_of(v: &SignedVersion) -> Result<ChildRecord, LedgerError> {
    Ok(ChildRecord::from_json_structural(&v.version.body)?)
}

/// The merge's view of one version: who authored it, as what, and its fields.
pub fn merge_input(node: &LocalNode, v: &SignedVersion) -> Result<MergeInput, LedgerError> {
    let record = record_of(v)?;
    let author_roles = author_roles(node, &v.version.author_node, &record);
    Ok(MergeInput {
        id: v.id,
        parents: v.version.parents.clone(),
        author_roles,
        resolution: v.version.resolution,
        hlc: v.version.hlc.to_i64(),
        fields: record.to_fields(),
    })
}

fn author_roles(node: &LocalNode, author: &NodeId, r: &ChildRecord) -> Roles {
    node.roles_of(author, &r.hukou_region, &r.residence_region)
}

/// Loads every version of a child and merges them.
pub fn merged(
    conn: &mut DbConn,
    node: &LocalNode,
    doc_id: &str,
) -> Result<(Vec<SignedVersion>, MergedView), LedgerError> {
    let rows = repo::versions_of(conn, "child", doc_id)?;
    merged_from_rows(node, &rows)
}

pub fn merged_from_rows(
    node: &LocalNode,
    rows: &[VersionRow],
) -> Result<(Vec<SignedVersion>, MergedView), LedgerError> {
    let versions: Vec<SignedVersion> = rows
        .iter()
        .map(SignedVersion::from_row)
        .collect::<Result<_, _>>()?;
    let inputs: Vec<MergeInput> = versions
        .iter()
        .map(|v| merge_input(node, v))
        .collect::<Result<_, _>>()?;
    let view = merge::merged_view(&inputs).map_err(|e| LedgerError::Internal(e.to_string()))?;
    Ok((versions, view))
}

/// Recomputes and stores the `children` row of a document from its versions.
pub fn refresh_child_row(
    conn: &mut DbConn,
    node: &LocalNode,
    doc_id: &str,
    at: NaiveDateTime,
) -> Result<ChildRecord, LedgerError> {
    // A file whose only version is its creation needs no merge: the view is that version.
    let heads = repo::heads_of(conn, "child", doc_id)?;
    if let [only] = heads.as_slice() {
        if let Some(row) = repo::get_version(conn, only)? {
            let v = SignedVersion::from_row(&row)?;
            if v.version.parents.is_empty() {
                let record = record_of(&v)?;
                put_row(conn, doc_id, super::ledger::creation_row(&record, at))?;
                return Ok(record);
            }
        }
    }
    let (versions, view) = merged(conn, node, doc_id)?;
    let record = ChildRecord::from_fields_structural(&view.fields)?;
    put_row(
        conn,
        doc_id,
        super::ledger::row_for(&record, view.heads.len() as i64, at, at),
    )?;
    let rows = conflict_rows(node, &record, &view, &versions, at)?;
    conflicts::replace_for(conn, doc_id, &rows)?;
    Ok(record)
}

/// The node whose reviewers resolve a conflict on `field` of this child: the hukou side for
/// hukou and shared fields (it keeps the review queue), the residence side for its own fields.
pub fn review_owner(node: &LocalNode, record: &ChildRecord, field: ChildField) -> NodeId {
    let region = match field.authority() {
        Authority::Residence => &record.residence_region,
        Authority::Hukou | Authority::Shared => &record.hukou_region,
    };
    node.node_for(region).unwrap_or_else(|| node.id.clone())
}

/// The stored form of a view's open conflicts.
pub fn conflict_rows(
    node: &LocalNode,
    record: &ChildRecord,
    view: &MergedView,
    versions: &[SignedVersion],
    at: NaiveDateTime,
) -> Result<Vec<ConflictRow>, LedgerError> {
    let by_id: std::collections::HashMap<_, _> = versions.iter().map(|v| (v.id, v)).collect();
    view.conflicts
        .iter()
        .map(|c| {
            let candidates: Vec<serde_json::Value> = c
                .candidates
                .iter()
                .map(|cand| {
                    let side = by_id.get(&cand.side);
                    serde_json::json!({
                        "side": cand.side,
                        "author": side.map(|v| v.version.author_node.to_string()),
                        "hlc": side.map(|v| v.version.hlc.to_string()),
                        "at": side.map(|v| v.version.hlc.wall_time()),
                        "value": cand.value,
                    })
                })
                .collect();
            Ok(ConflictRow {
                doc_id: record.id_number.to_string(),
                field: c.field.name().to_owned(),
                merge_point: c.merge_point.map(|m| m.to_string()).unwrap_or_default(),
                owner: review_owner(node, record, c.field).to_string(),
                base: c.base.to_string(),
                candidates: serde_json::Value::Array(candidates).to_string(),
                opened_at: at,
            })
        })
        .collect()
}

/// Writes a file's view row, keeping its creation time if it exists.
fn put_row(conn: &mut DbConn, doc_id: &str, row: ChildRow) -> Result<(), LedgerError> {
    match repo::child_created_at(conn, doc_id)? {
        Some(created_at) => repo::update_child(conn, &ChildRow { created_at, ..row })?,
        None => repo::insert_children(conn, &[row])?,
    }
    Ok(())
}

/// Queues a stored version for every party of it and of its parents except this node and `skip`
/// (the peer it came from). Returns the peers queued for.
pub fn enqueue_for_parties(
    conn: &mut DbConn,
    node: &LocalNode,
    v: &SignedVersion,
    record: &ChildRecord,
    parent_records: &[ChildRecord],
    skip: Option<&NodeId>,
    at: NaiveDateTime,
) -> Result<BTreeSet<NodeId>, LedgerError> {
    let peers = parties_to_forward(node, record, parent_records, skip);
    enqueue_to(conn, v, &peers, at)?;
    Ok(peers)
}

/// The other parties of a version of `record` (and of its parents' records): every node that
/// serves one of their regions, except this node and `skip` (the peer it came from).
pub fn parties_to_forward(
    node: &LocalNode,
    record: &ChildRecord,
    parent_records: &[ChildRecord],
    skip: Option<&NodeId>,
) -> BTreeSet<NodeId> {
    if node.directory.is_none() {
        return BTreeSet::new();
    }
    let mut peers = node.parties(&record.hukou_region, &record.residence_region);
    for p in parent_records {
        peers.extend(node.parties(&p.hukou_region, &p.residence_region));
    }
    peers.remove(&node.id);
    if let Some(s) = skip {
        peers.remove(s);
    }
    peers
}

/// Queues a stored version for each of `peers`.
pub fn enqueue_to(
    conn: &mut DbConn,
    v: &SignedVersion,
    peers: &BTreeSet<NodeId>,
    at: NaiveDateTime,
) -> Result<(), LedgerError> {
    for peer in peers {
        exchange::enqueue(
            conn,
            peer.as_str(),
            &[(v.id.to_string(), v.version.hlc.to_i64())],
            at,
        )?;
    }
    Ok(())
}

/// Queues brand-new creation versions (bulk import) for their other parties.
pub fn enqueue_new(
    conn: &mut DbConn,
    node: &LocalNode,
    records: &[(crate::domain::RegionCode, crate::domain::RegionCode, i64)],
    heads: &[(String, String)],
    at: NaiveDateTime,
) -> Result<(), LedgerError> {
    if node.directory.is_none() {
        return Ok(());
    }
    let mut per_peer: std::collections::BTreeMap<NodeId, Vec<(String, i64)>> = Default::default();
    for ((hukou, residence, hlc), (_, version)) in records.iter().zip(heads) {
        for peer in node.parties(hukou, residence) {
            if peer != node.id {
                per_peer
                    .entry(peer)
                    .or_default()
                    .push((version.clone(), *hlc));
            }
        }
    }
    for (peer, items) in per_peer {
        exchange::enqueue_new(conn, peer.as_str(), &items, at)?;
    }
    Ok(())
}
