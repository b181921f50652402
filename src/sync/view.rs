//! The current view of a child's file: the merged view of all its versions (DESIGN §4) as the
//! `children` table stores it for queries (its row), and its open conflicts as the review queue
//! stores them. It depends on nothing above it in `sync`: [`super::store`] writes views through
//! it, the ledger and ingest read through it.

use chrono::NaiveDateTime;

use super::error::LedgerError;
use super::merge::{self, MergeInput, MergedView};
use super::node::LocalNode;
use super::version::SignedVersion;
use crate::domain::child::{ChildField, ChildRecord};
use crate::domain::visit::VisitSchedule;
use crate::domain::{Authority, NodeId, Roles};
use crate::storage::conflicts::{self, ConflictRow};
use crate::storage::records::{self as repo, ChildRow, StoredVersion};
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
    rows: &[StoredVersion],
) -> Result<(Vec<SignedVersion>, MergedView), LedgerError> {
    let versions: Vec<SignedVersion> = rows
        .iter()
        .map(SignedVersion::from_stored)
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
            let v = SignedVersion::from_stored(&row)?;
            if v.version.parents.is_empty() {
                let record = record_of(&v)?;
                put_row(
                    conn,
                    doc_id,
                    creation_row(&record, at, &node.visits),
                    &held_benefits(&record),
                )?;
                return Ok(record);
            }
        }
    }
    let (versions, view) = merged(conn, node, doc_id)?;
    put_merged(conn, node, doc_id, &versions, &view, at)
}

/// Stores the `children` row and the open conflicts of a document from its merged `view`, already
/// computed from `versions` (which hold every candidate side of its conflicts).
pub fn put_merged(
    conn: &mut DbConn,
    node: &LocalNode,
    doc_id: &str,
    versions: &[SignedVersion],
    view: &MergedView,
    at: NaiveDateTime,
) -> Result<ChildRecord, LedgerError> {
    let record = ChildRecord::from_fields_structural(&view.fields)?;
    put_row(
        conn,
        doc_id,
        row_for(&record, view.heads.len() as i64, at, at, &node.visits)?,
        &held_benefits(&record),
    )?;
    let rows = conflict_rows(node, &record, view, versions, at)?;
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
fn put_row(
    conn: &mut DbConn,
    doc_id: &str,
    row: ChildRow,
    benefits: &[&str],
) -> Result<(), LedgerError> {
    repo::set_benefits(conn, doc_id, benefits)?;
    match repo::child_created_at(conn, doc_id)? {
        Some(created_at) => repo::update_child(
            conn,
            &ChildRow {
                created_at: created_at.naive_utc(),
                ..row
            },
        )?,
        None => repo::insert_children(conn, &[row])?,
    }
    Ok(())
}

/// The current-view row of a record as first stored (benchmarks use it for the bare insert rate).
pub fn view_row(
    r: &ChildRecord,
    at: chrono::NaiveDateTime,
    schedule: &VisitSchedule,
) -> Result<ChildRow, LedgerError> {
    row_for(r, 1, at, at, schedule)
}

/// The view row of a new file whose only version is its creation: the record itself is not
/// repeated, it is that version's body (see [`ChildRow::record`]).
pub fn creation_row(
    r: &ChildRecord,
    at: chrono::NaiveDateTime,
    schedule: &VisitSchedule,
) -> ChildRow {
    row_with(r, 1, at, at, String::new(), schedule)
}

pub fn row_for(
    r: &ChildRecord,
    head_count: i64,
    created_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
    schedule: &VisitSchedule,
) -> Result<ChildRow, LedgerError> {
    let record = serde_json::to_string(r)
        .map_err(|e| LedgerError::Internal(format!("serialising a child's view: {e}")))?;
    Ok(row_with(
        r, head_count, created_at, updated_at, record, schedule,
    ))
}

/// When a child's next visit is due: its last visit (or, never visited, the day its facts were
/// last confirmed, or the day the file was stored here) plus the shortest interval the schedule
/// gives its categories and risk in its residence region; `None` when no rule applies or the
/// child is 18 by then.
pub fn visit_due_on(
    r: &ChildRecord,
    created: chrono::NaiveDate,
    schedule: &VisitSchedule,
) -> Option<chrono::NaiveDate> {
    let days = schedule.interval(r.residence_region.as_str(), &r.categories, r.risk_level)?;
    let base = r.last_visit_on.or(r.info_updated_on).unwrap_or(created);
    let due = base.checked_add_days(chrono::Days::new(u64::from(days)))?;
    // A visit due once the child is 18 is no child's visit: the file leaves the due list (and
    // an adult's past due date is cleared daily, `storage::visits::clear_adults_due`).
    let adult_on = r
        .id_number
        .birth_date()
        .checked_add_months(chrono::Months::new(12 * 18))?;
    (due < adult_on).then_some(due)
}

/// The benefits the child of `r` holds now (grants not ended), as codes: the
/// `child_benefits` rows kept with the view.
pub fn held_benefits(r: &ChildRecord) -> Vec<&'static str> {
    r.benefits
        .iter()
        .filter(|g| g.is_active())
        .map(|g| g.benefit.code())
        .collect()
}

/// Fills `child_benefits` for files stored before it existed, once (a meta key records it):
/// every view row's record is read and its benefits written, 1,000 files per transaction.
/// Returns how many files were read.
pub fn backfill_benefits(
    conn: &mut DbConn,
    progress: &mut dyn FnMut(usize),
) -> Result<usize, LedgerError> {
    const KEY: &str = "view_benefits_column";
    if crate::storage::reconcile::meta(conn, KEY)?.is_some() {
        return Ok(0);
    }
    let mut after: Option<String> = None;
    let mut n = 0;
    loop {
        let ids = crate::storage::visits::child_ids_after(conn, after.as_deref(), 1000)?;
        let Some(last) = ids.last().cloned() else {
            break;
        };
        crate::storage::transaction(conn, |conn| -> Result<(), LedgerError> {
            for id in &ids {
                if let Some(file) = repo::get_child(conn, id)? {
                    repo::set_benefits(conn, id, &held_benefits(&file.record))?;
                }
            }
            Ok(())
        })?;
        n += ids.len();
        progress(n);
        after = Some(last);
    }
    crate::storage::reconcile::set_meta(conn, KEY, 1)?;
    Ok(n)
}

fn row_with(
    r: &ChildRecord,
    head_count: i64,
    created_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
    record: String,
    schedule: &VisitSchedule,
) -> ChildRow {
    let categories: String = r
        .categories
        .iter()
        .map(|c| format!("|{}", c.code()))
        .collect::<String>()
        + "|";
    ChildRow {
        id_number: r.id_number.to_string(),
        name: r.name.as_str().to_owned(),
        hukou_region: r.hukou_region.to_string(),
        residence_region: r.residence_region.to_string(),
        categories,
        risk_level: r.risk_level.map(|l| l.as_str().to_owned()),
        last_visit_on: r.last_visit_on,
        refreshed_on: r.last_visit_on.max(r.info_updated_on),
        residence_township: r.residence_township.as_ref().map(ToString::to_string),
        hukou_township: r.hukou_township.as_ref().map(ToString::to_string),
        visit_due_on: visit_due_on(r, created_at.date(), schedule),
        responsible_worker: r
            .responsible_worker
            .as_ref()
            .map(|w| w.name.as_str().to_owned()),
        record,
        head_count,
        created_at,
        updated_at,
    }
}
