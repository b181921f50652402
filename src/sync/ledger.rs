//! The ledger of children's files on this node (一人一档): create, update, import, read and list.
//! Each operation loads, decides (pure domain rules), then persists through [`super::store`] the
//! version, the heads, the current view, the outbox rows and its audit event in one transaction —
//! or nothing.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

pub use super::error::LedgerError;
use super::merge::{self, MergeInput};
use super::node::LocalNode;
use super::store::{self, Batch};
use super::version::{DocKind, SignedVersion, Version, VersionError, VersionId};
use super::view::creation_row;
/// Kept here for the benchmarks, which measure the bare insert rate of view rows.
pub use super::view::view_row;
use crate::audit::{self, Actor, Event, Outcome};
use crate::domain::child::{Benefit, BenefitEnd, ChildField, ChildRecord, Fields, RecordRules};
use crate::domain::{IdNumber, NodeId, RiskLevel, Sex};
use crate::storage::records::{self as repo, ChildFilter, ChildListing};
use crate::storage::{self, DbConn, StorageError};

/// Today's date in China (UTC+8, no daylight saving), the calendar bureaus work in.
pub fn china_today(now: DateTime<Utc>) -> NaiveDate {
    (now + chrono::Duration::hours(8)).date_naive()
}

/// A child's file as a reader sees it: the current view, what the ID number says, and history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChildFile {
    #[schema(value_type = Object)]
    pub record: ChildRecord,
    /// This node's label of the record's `risk_level` (its palette, e.g. 红 for level 1); the
    /// label is local, the exchange carries the level.
    #[schema(max_length = 16, example = "红")]
    pub risk_label: Option<String>,
    pub sex: Sex,
    pub birth_date: NaiveDate,
    pub hukou_region_name: String,
    pub residence_region_name: String,
    /// Current heads; more than one means concurrent edits awaiting merge.
    #[schema(value_type = Vec<String>)]
    pub heads: Vec<VersionId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Every version, oldest first.
    pub history: Vec<VersionSummary>,
    /// Whether this node still serves one of the child's regions. A file it no longer serves
    /// (the child moved to another bureau's region) is kept as of the move, read-only: its
    /// bureaus are `now_served_by`, and `updated_at` is when this node stored the move.
    pub served_here: bool,
    /// The nodes serving the child's current regions (by the directory), when not this one.
    #[schema(value_type = Vec<String>)]
    pub now_served_by: Vec<NodeId>,
    /// The categories the hukou bureau recognised (认定: 孤儿, 事实无人抚养), apart from the
    /// categories observed (the rest of `record.categories`).
    pub recognised_categories: Vec<crate::domain::child::Category>,
}

/// One entry of a file's history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VersionSummary {
    #[schema(value_type = String)]
    pub id: VersionId,
    #[schema(value_type = Vec<String>)]
    pub parents: Vec<VersionId>,
    pub author_node: String,
    /// Hybrid logical clock stamp.
    pub hlc: String,
    pub stored_at: DateTime<Utc>,
    /// Fields that differ from the first parent (all fields for a creation).
    pub changed: Vec<String>,
    pub resolution: bool,
}

/// One row of a list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChildSummary {
    pub id_number: String,
    pub name: String,
    pub hukou_region: String,
    pub residence_region: String,
    pub categories: Vec<String>,
    /// The risk level on the common scale, 1 (most severe) to 4.
    #[schema(value_type = Option<u8>, minimum = 1, maximum = 4, example = 1)]
    pub risk_level: Option<RiskLevel>,
    /// This node's label of `risk_level` (e.g. 红).
    #[schema(max_length = 16, example = "红")]
    pub risk_label: Option<String>,
    pub last_visit_on: Option<NaiveDate>,
    pub updated_at: DateTime<Utc>,
}

/// A page of a list; pass `next_after` as `after` for the next one.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChildPage {
    pub items: Vec<ChildSummary>,
    pub next_after: Option<String>,
}

pub(crate) fn rules(node: &LocalNode, now: DateTime<Utc>) -> RecordRules<'_> {
    RecordRules {
        today: china_today(now),
        palette: &node.palette,
    }
}

/// Parses a JSON object of fields, refusing unknown ones.
pub fn parse_fields(body: Map<String, Value>) -> Result<Fields, LedgerError> {
    ChildRecord::fields_from_json(body).map_err(|e| LedgerError::UnknownField(e.field))
}

/// Validates a full record body (a creation).
pub fn parse_record(
    node: &LocalNode,
    body: Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<ChildRecord, LedgerError> {
    let fields = parse_fields(body)?;
    let mut record = ChildRecord::from_fields(fields, &rules(node, now))?;
    // A file created by hand records facts confirmed today, unless it says when.
    if record.info_updated_on.is_none() {
        record.info_updated_on = Some(china_today(now));
    }
    Ok(record)
}

/// Creates a child's file from a full record.
pub fn create_child(
    conn: &mut DbConn,
    node: &LocalNode,
    record: ChildRecord,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<ChildFile, LedgerError> {
    let roles = node.roles(&record.hukou_region, &record.residence_region);
    if !roles.is_party() {
        return Err(LedgerError::NotParty {
            hukou: record.hukou_region.to_string(),
            residence: record.residence_region.to_string(),
        });
    }
    check_scope(actor, &record)?;
    check_recognitions(roles, &Default::default(), &record.categories)?;
    let version = new_version(node, &record, vec![])?;
    let id = record.id_number.clone();
    storage::transaction(conn, |conn| {
        if repo::child_created_at(conn, id.as_str())?.is_some() {
            return Err(LedgerError::AlreadyExists(id.masked()));
        }
        let mut batch = Batch::new(node, now);
        batch.add_child(conn, &version, &record, &[], None)?;
        batch.new_file(&record);
        batch.event(
            Event::new(actor.clone(), "child.create", Outcome::Ok)
                .object("child", id.as_str())
                .details(serde_json::json!({"version": version.id})),
        );
        batch.finish(conn)
    })?;
    node.wake_senders();
    tracing::info!(child = %id.masked(), version = %version.id.short(), "child file created");
    read_file(conn, node, &id)
}

/// Whether the child of `r` is within the actor's account scope (`domain::Scope::admits`).
pub fn within_scope(actor: &Actor, r: &ChildRecord) -> bool {
    actor.scope.admits_record(r)
}

/// Checks that the file `id` is within the actor's scope before it is read (outside: 404, as
/// if absent) or changed (outside: 403 `outside_scope`). No file: `NotFound`.
pub fn check_scope_of(
    conn: &mut DbConn,
    actor: &Actor,
    id: &str,
    write: bool,
) -> Result<(), LedgerError> {
    if actor.scope.is_whole_node() {
        return Ok(());
    }
    match repo::child_in_scope(conn, id, &actor.scope)? {
        Some(true) => Ok(()),
        Some(false) if write => Err(LedgerError::OutsideScope {
            scope: actor.scope.to_string(),
        }),
        _ => Err(LedgerError::NotFound(IdNumber::mask_text(id))),
    }
}

/// Refuses to create or change a file outside the actor's scope (403 `outside_scope`).
pub(crate) fn check_scope(actor: &Actor, r: &ChildRecord) -> Result<(), LedgerError> {
    if within_scope(actor, r) {
        Ok(())
    } else {
        Err(LedgerError::OutsideScope {
            scope: actor.scope.to_string(),
        })
    }
}

/// 孤儿 and 事实无人抚养 in `categories` are the hukou bureau's recognitions: another bureau may
/// neither add nor remove them.
pub(crate) fn check_recognitions(
    roles: crate::domain::Roles,
    old: &std::collections::BTreeSet<crate::domain::child::Category>,
    new: &std::collections::BTreeSet<crate::domain::child::Category>,
) -> Result<(), LedgerError> {
    match crate::domain::child::recognition_changed(old, new) {
        Some(c) if !roles.hukou => Err(LedgerError::RecognitionNotOwned(c)),
        _ => Ok(()),
    }
}

/// Changes some fields of a file: a new version whose parents are all current heads.
pub fn update_child(
    conn: &mut DbConn,
    node: &LocalNode,
    id: &IdNumber,
    patch: Map<String, Value>,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<ChildFile, LedgerError> {
    let outcome =
        storage::transaction(conn, |conn| apply_update(conn, node, id, patch, actor, now))?;
    if let Some(v) = outcome {
        node.wake_senders();
        tracing::info!(child = %id.masked(), version = %v.short(), "child file updated");
    }
    read_file(conn, node, id)
}

/// The body of an update, inside the caller's transaction: the new version (if anything
/// changed), its heads, outbox entries, view and audit event.
pub fn apply_update(
    conn: &mut DbConn,
    node: &LocalNode,
    id: &IdNumber,
    patch: Map<String, Value>,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Option<VersionId>, LedgerError> {
    apply_update_as(
        conn,
        node,
        id,
        patch,
        actor,
        now,
        "child.update",
        Map::new(),
    )
}

/// Ends the benefit a child holds (退出) as the hukou bureau: the grant stays in the file with
/// its end month and reason, through the one edit path (a signed version to the child's other
/// bureau), audited as `benefit.end`. Refused when this node is not the child's hukou bureau
/// (`field_not_owned`), the child does not hold the benefit, or the end month is before the
/// grant's start (both `invalid_field`).
pub fn end_benefit(
    conn: &mut DbConn,
    node: &LocalNode,
    id: &IdNumber,
    benefit: Benefit,
    end: BenefitEnd,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<ChildFile, LedgerError> {
    let v = storage::transaction(conn, |conn| {
        apply_end_benefit(conn, node, id, benefit, end, actor, now)
    })?;
    node.wake_senders();
    tracing::info!(child = %id.masked(), version = %v.short(), benefit = %benefit, "benefit ended");
    read_file(conn, node, id)
}

/// The body of [`end_benefit`] inside the caller's transaction (the age-out job ends several
/// in one version through [`end_benefits_in`]).
pub fn apply_end_benefit(
    conn: &mut DbConn,
    node: &LocalNode,
    id: &IdNumber,
    benefit: Benefit,
    end: BenefitEnd,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<VersionId, LedgerError> {
    end_benefits_in(conn, node, id, &[benefit], end, actor, now)
}

/// Ends each of `benefits` with the same end, in one version audited as `benefit.end`.
pub fn end_benefits_in(
    conn: &mut DbConn,
    node: &LocalNode,
    id: &IdNumber,
    benefits: &[Benefit],
    end: BenefitEnd,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<VersionId, LedgerError> {
    let current = current_record(conn, node, id)?;
    check_scope(actor, &current)?;
    let roles = node.roles(&current.hukou_region, &current.residence_region);
    if !roles.is_party() {
        return Err(LedgerError::NotParty {
            hukou: current.hukou_region.to_string(),
            residence: current.residence_region.to_string(),
        });
    }
    if !roles.hukou {
        return Err(LedgerError::FieldNotOwned {
            field: ChildField::Benefits.name().to_owned(),
            authority: crate::domain::Authority::Hukou,
        });
    }
    let mut record = current;
    for b in benefits {
        record.end_benefit(*b, end.clone(), "month")?;
    }
    let mut patch = Map::new();
    patch.insert(
        ChildField::Benefits.name().to_owned(),
        serde_json::to_value(&record.benefits).map_err(|e| LedgerError::Internal(e.to_string()))?,
    );
    let mut details = Map::new();
    details.insert("benefits".into(), serde_json::json!(benefits));
    details.insert("month".into(), serde_json::json!(end.month));
    details.insert("reason".into(), serde_json::json!(end.reason));
    apply_update_as(conn, node, id, patch, actor, now, "benefit.end", details)?
        .ok_or_else(|| LedgerError::Internal("ending a benefit changed nothing".into()))
}

/// The current (merged) record of a file.
pub fn current_record(
    conn: &mut DbConn,
    node: &LocalNode,
    id: &IdNumber,
) -> Result<ChildRecord, LedgerError> {
    repo::child_created_at(conn, id.as_str())?.ok_or_else(|| LedgerError::NotFound(id.masked()))?;
    let (_, view) = super::view::merged(conn, node, id.as_str())?;
    Ok(ChildRecord::from_fields_structural(&view.fields)?)
}

/// The hukou bureau's move of a child to `residence_region` at the request of the bureau
/// serving it (a handover, [`crate::domain::child::is_handover`]), audited `child.handover`
/// with the asker's purpose; inside the caller's transaction.
pub fn apply_handover(
    conn: &mut DbConn,
    node: &LocalNode,
    id: &IdNumber,
    residence_region: &crate::domain::RegionCode,
    purpose: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<VersionId, LedgerError> {
    let mut patch = Map::new();
    patch.insert(
        ChildField::ResidenceRegion.name().to_owned(),
        Value::String(residence_region.to_string()),
    );
    let mut details = Map::new();
    details.insert("purpose".into(), Value::String(purpose.to_owned()));
    details.insert("to".into(), Value::String(actor.id.clone()));
    edit(
        conn,
        node,
        id,
        patch,
        actor,
        now,
        ("child.handover", details),
        true,
    )?
    .ok_or_else(|| LedgerError::Internal("the handover changed nothing".into()))
}

/// [`apply_update`] audited as `action`, with `extra` added to the event's details.
#[allow(clippy::too_many_arguments)]
pub fn apply_update_as(
    conn: &mut DbConn,
    node: &LocalNode,
    id: &IdNumber,
    patch: Map<String, Value>,
    actor: &Actor,
    now: DateTime<Utc>,
    action: &'static str,
    extra: Map<String, Value>,
) -> Result<Option<VersionId>, LedgerError> {
    edit(conn, node, id, patch, actor, now, (action, extra), false)
}

/// The one edit path: `handover` lets the hukou bureau write a handover and nothing else of
/// the residence side's.
#[allow(clippy::too_many_arguments)]
fn edit(
    conn: &mut DbConn,
    node: &LocalNode,
    id: &IdNumber,
    patch: Map<String, Value>,
    actor: &Actor,
    now: DateTime<Utc>,
    (action, extra): (&'static str, Map<String, Value>),
    handover: bool,
) -> Result<Option<VersionId>, LedgerError> {
    let mut patch = parse_fields(patch)?;
    rules(node, now).read_input(&mut patch)?;
    {
        repo::child_created_at(conn, id.as_str())?
            .ok_or_else(|| LedgerError::NotFound(id.masked()))?;
        repo::lock_children(conn, &[id.as_str()])?;
        let (versions, view) = super::view::merged(conn, node, id.as_str())?;
        let current = ChildRecord::from_fields_structural(&view.fields)?;
        check_scope(actor, &current)?;
        let mut fields = current.to_fields();
        for (f, v) in &patch {
            fields.insert(*f, v.clone());
        }
        let mut updated = ChildRecord::from_fields_structural(&fields)?;
        let mut changed = ChildRecord::changed_fields(&current.to_fields(), &updated.to_fields());
        if changed.is_empty() {
            return Ok(None);
        }
        // The residence side confirming or changing the child's facts refreshes the file for
        // the six-month rule (unless the edit names the date itself).
        let residence_facts = changed.iter().any(|f| {
            f.authority() == crate::domain::Authority::Residence
                && !matches!(f, ChildField::LastVisitOn | ChildField::InfoUpdatedOn)
        });
        if residence_facts
            && !patch.contains_key(&ChildField::InfoUpdatedOn)
            && node.serves(&current.residence_region)
        {
            let today = china_today(now);
            if updated.info_updated_on != Some(today) {
                updated.info_updated_on = Some(today);
                changed.push(ChildField::InfoUpdatedOn);
            }
        }
        // Only what the edit changes is checked against this node's rules: a field it leaves
        // alone never makes it fail (and the palette only read what the patch typed).
        updated.check_changed(&rules(node, now), &changed)?;
        if changed.contains(&ChildField::IdNumber) {
            return Err(LedgerError::ImmutableId);
        }
        let under_review = super::merge::fields_under_review(&view);
        if let Some(f) = changed.iter().find(|f| under_review.contains(f)) {
            return Err(LedgerError::UnderReview(f.name().to_owned()));
        }
        // Authority is judged by what this node is to the child before the edit.
        let roles = node.roles(&current.hukou_region, &current.residence_region);
        if !roles.is_party() {
            // The child moved away (or was registered elsewhere): this copy is no longer served
            // here, and its bureaus edit it.
            return Err(LedgerError::NotParty {
                hukou: current.hukou_region.to_string(),
                residence: current.residence_region.to_string(),
            });
        }
        check_recognitions(roles, &current.categories, &updated.categories)?;
        let handing_over = handover && crate::domain::child::is_handover(roles, &changed);
        if let Some(f) = changed
            .iter()
            .find(|f| !roles.may_change(**f) && !handing_over)
        {
            return Err(LedgerError::FieldNotOwned {
                field: f.name().to_owned(),
                authority: f.authority(),
            });
        }
        super::store::raise_clock(conn, node, &view.heads)?;
        let version = new_version(node, &updated, view.heads.clone())?;
        let changed_names: Vec<&str> = changed.iter().map(|f| f.name()).collect();
        let mut details = extra;
        details.insert("version".into(), serde_json::json!(version.id));
        details.insert("fields".into(), serde_json::json!(changed_names));
        let event = Event::new(actor.clone(), action, Outcome::Ok)
            .object("child", id.as_str())
            .details(Value::Object(details));
        store::on_heads(conn, node, &versions, &view, &version, &updated, event, now)?;
        Ok(Some(version.id))
    }
}

/// Reads a file and records the read in the audit log.
pub fn read_child(
    conn: &mut DbConn,
    node: &LocalNode,
    id: &IdNumber,
    actor: &Actor,
    purpose: Option<&str>,
    now: DateTime<Utc>,
) -> Result<ChildFile, LedgerError> {
    storage::transaction(conn, |conn| {
        let file = read_file(conn, node, id)?;
        // Outside the account's scope a file is not there for it.
        if !within_scope(actor, &file.record) {
            return Err(LedgerError::NotFound(id.masked()));
        }
        audit::append(
            conn,
            node.clock.now(),
            now,
            &Event::new(actor.clone(), "child.read", Outcome::Ok)
                .object("child", id.as_str())
                .purpose(purpose),
        )?;
        Ok(file)
    })
}

/// Lists files matching a filter and records which ones were returned.
pub fn list_children(
    conn: &mut DbConn,
    node: &LocalNode,
    filter: &ChildFilter,
    actor: &Actor,
    purpose: Option<&str>,
    now: DateTime<Utc>,
) -> Result<ChildPage, LedgerError> {
    let filter = &ChildFilter {
        scope: actor.scope.clone(),
        ..filter.clone()
    };
    storage::transaction(conn, |conn| {
        let scanned = repo::list_children(conn, filter)?;
        // The next page starts after the last row scanned, whether or not it is listed.
        let next_after = (scanned.len() as i64 == filter.limit)
            .then(|| scanned.last().map(|r| r.id_number.to_string()))
            .flatten();
        // A file this node no longer serves (the child moved to another bureau's region) is kept
        // read-only as of the move and is not this node's to list: a page may then hold fewer
        // than `limit` files, and `next_after` still continues the scan.
        let rows: Vec<_> = scanned
            .into_iter()
            .filter(|r| node.roles(&r.hukou_region, &r.residence_region).is_party())
            // The stale list (`stale_before`) leaves adults out: their files are kept, not
            // refreshed.
            .filter(|r| {
                filter.stale_before.is_none()
                    || !crate::domain::benefit::is_adult(r.id_number.birth_date(), china_today(now))
            })
            .collect();
        let ids: Vec<&str> = rows.iter().map(|r| r.id_number.as_str()).collect();
        audit::append(
            conn,
            node.clock.now(),
            now,
            &Event::new(actor.clone(), "child.list", Outcome::Ok)
                .purpose(purpose)
                .details(serde_json::json!({"returned": ids, "filter": filter})),
        )?;
        Ok(ChildPage {
            items: rows.iter().map(|r| summary(node, r)).collect(),
            next_after,
        })
    })
}

/// Outcome of a bulk import.
#[derive(Debug, Clone, Serialize)]
pub struct ImportSummary {
    pub imported: usize,
}

/// Why an import was refused as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("rows {0:?} name children this node serves in neither region")]
    NotParty(Vec<usize>),
    #[error("rows {0:?} name 孤儿 or 事实无人抚养, which only the child's hukou bureau recognises (认定)")]
    NotRecognising(Vec<usize>),
    #[error("rows {0:?} name children outside the regions this account covers")]
    OutsideScope(Vec<usize>),
    #[error("rows {0:?} repeat an ID number already in the file or in the database")]
    Duplicates(Vec<usize>),
    /// A streamed import's source found rows to refuse (it reports them itself): nothing of
    /// the file is stored.
    #[error("{0} rows are invalid; nothing was imported")]
    RowsRefused(usize),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl From<StorageError> for ImportError {
    fn from(e: StorageError) -> Self {
        ImportError::Ledger(LedgerError::Storage(e))
    }
}

/// Stores validated records as new files, all or nothing. `rows` pairs each record with its row
/// number in the source, for error reports. `progress` is called with the count done so far.
pub fn import_children(
    conn: &mut DbConn,
    node: &LocalNode,
    rows: &[(usize, ChildRecord)],
    actor: &Actor,
    now: DateTime<Utc>,
    progress: &mut dyn FnMut(usize),
) -> Result<ImportSummary, ImportError> {
    check_import(conn, node, rows, actor)?;
    storage::transaction(conn, |conn| {
        write_import(conn, node, rows, actor, now, 0, progress)
    })?;
    node.wake_senders();
    refresh_statistics(conn, IMPORT_TABLES, rows.len());
    Ok(ImportSummary {
        imported: rows.len(),
    })
}

/// The tables an import of new files grows.
const IMPORT_TABLES: &[&str] = &[
    "children",
    "versions",
    "heads",
    "child_benefits",
    "outbox",
    "recon_dirty",
    "audit_events",
    "audit_nodes",
];

/// Fewest added rows after which a fold-in refreshes the planner's statistics. An `ANALYZE` of
/// the eight tables costs the database 100–300 ms whatever the import's size; at 1,000 rows it
/// ran after every import of a day's ledger while the tables were young (ten times in a
/// 20,000-file `bench sync`, 2.7 s of the server's 6.5 s), and a plan over a few thousand rows is
/// fast whatever the statistics say. From 10,000 rows (an import of several seconds) it is a few
/// per cent of the import.
const ANALYZE_MIN_ROWS: usize = 10_000;

/// After a commit that added `added` rows to `tables` (an import, a received batch), refreshes
/// PostgreSQL's statistics of those tables when the planner's belief is stale: when `added` is
/// at least a tenth of what the planner believes the first table holds, and at least
/// [`ANALYZE_MIN_ROWS`]. A tenth is autovacuum's own trigger (`autovacuum_analyze_scale_factor`):
/// PostgreSQL would analyze here too, but only on the daemon's next round, up to a minute later
/// (and while one long transaction loads a million rows, never in between) — meanwhile the
/// reconciliation planned a million-row table as if it were empty (548 ms for a query of a few
/// ms). Relative, not absolute: 10,000 rows into ten million change no plan and are not worth a
/// pass. The floor: below ten thousand rows any plan is fast, and small imports, the daily case,
/// stay free. It is cheap when it runs: `ANALYZE` samples at most 30,000 rows a table, whatever
/// its size. Runs outside the fold-in's transaction, which has committed: a failure is logged,
/// not returned (the rows are stored; autovacuum catches up). Returns whether it ran `ANALYZE`.
pub(crate) fn refresh_statistics(conn: &mut DbConn, tables: &[&str], added: usize) -> bool {
    let Some(first) = tables.first() else {
        return false;
    };
    if added < ANALYZE_MIN_ROWS {
        return false;
    }
    let believed = match storage::planner_rows(conn, first) {
        Ok(Some(n)) => n,
        // SQLite: its planner has no statistics to go stale (none is kept without ANALYZE).
        Ok(None) => return false,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the planner's statistics");
            return false;
        }
    };
    if (added as f64) < believed / 10.0 {
        return false;
    }
    let start = std::time::Instant::now();
    match storage::analyze_tables(conn, tables) {
        Ok(()) => {
            tracing::info!(
                added,
                believed,
                ms = start.elapsed().as_millis() as u64,
                "refreshed the planner's statistics after a large fold-in"
            );
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "ANALYZE after a large fold-in failed");
            false
        }
    }
}

/// Rows received batches stored since this process last refreshed the planner's statistics
/// after them (`since`): a million files reconciled from a peer arrive as many batches, each far
/// below the threshold of [`refresh_statistics`], which their sum crosses; and the sum at which
/// to look again (`next_look`: the planner's belief is read again only when the sum doubled
/// since the last look, not after every batch of a large node). Per process, not per node (a
/// process serves one node; in the tests, nodes sharing a process at worst analyze early).
static RECEIVED: std::sync::Mutex<Received> = std::sync::Mutex::new(Received {
    since: 0,
    next_look: RECEIVED_ANALYZE_MIN_ROWS,
});

/// Fewest rows received batches add before [`note_received`] looks at the planner's belief at
/// all. Higher than an import's floor: below it autovacuum's own analyze (50 rows and a tenth,
/// within a minute) is soon enough for a node that receives all day, and each `ANALYZE` of the
/// eight tables costs the database CPU on the node's busiest path (with a floor of 1,000 rows,
/// a 2,000-case `bench cases` run analyzed three times, 218 ms of the server's time).
const RECEIVED_ANALYZE_MIN_ROWS: usize = 50_000;

/// The rows received batches added since the last statistics refresh, and the sum at which
/// [`note_received`] next looks at the planner's belief.
///
/// Invariant: `next_look >= RECEIVED_ANALYZE_MIN_ROWS`; a sum is claimed by one caller at a
/// time (taken to zero) and only ever added back, so it never wraps.
#[derive(Debug)]
struct Received {
    since: usize,
    next_look: usize,
}

impl Received {
    /// Adds `stored` rows; the whole sum, claimed, when it has reached the next look.
    fn add(&mut self, stored: usize) -> Option<usize> {
        self.since = self.since.saturating_add(stored);
        (self.since >= self.next_look).then(|| std::mem::take(&mut self.since))
    }

    /// After a claim of `claimed` rows: a refresh starts the count afresh; a look that found
    /// the tables too large to need one gives the rows back and looks again at twice as many.
    fn settle(&mut self, claimed: usize, analyzed: bool) {
        if analyzed {
            self.next_look = RECEIVED_ANALYZE_MIN_ROWS;
        } else {
            self.since = self.since.saturating_add(claimed);
            self.next_look = claimed.saturating_mul(2).max(RECEIVED_ANALYZE_MIN_ROWS);
        }
    }
}

/// After a received batch committed `stored` new versions: [`refresh_statistics`] once the
/// batches since the last refresh add up to enough. One caller at a time claims the sum (so
/// concurrent batches never analyze twice for the same rows); the `ANALYZE` runs outside the
/// lock, and a sum not enough yet is given back.
pub(crate) fn note_received(conn: &mut DbConn, stored: usize) {
    if stored == 0 {
        return;
    }
    let claimed = {
        let Ok(mut r) = RECEIVED.lock() else { return };
        match r.add(stored) {
            Some(claimed) => claimed,
            None => return,
        }
    };
    let analyzed = refresh_statistics(conn, IMPORT_TABLES, claimed);
    if let Ok(mut r) = RECEIVED.lock() {
        r.settle(claimed, analyzed);
    }
}

/// [`import_children`] of a file read a chunk at a time, so that a million rows are never all
/// in memory: every chunk `chunks` yields is checked (against the files already stored,
/// earlier chunks included) and written inside one transaction, and the first refused chunk
/// — or the first error `chunks` yields — rolls the whole import back. A refusal names the rows
/// of its own chunk only.
pub fn import_children_chunked(
    conn: &mut DbConn,
    node: &LocalNode,
    chunks: &mut dyn Iterator<Item = Result<Vec<(usize, ChildRecord)>, ImportError>>,
    actor: &Actor,
    now: DateTime<Utc>,
    progress: &mut dyn FnMut(usize),
) -> Result<ImportSummary, ImportError> {
    import_children_streamed(
        conn,
        node,
        &mut |_| chunks.next().transpose(),
        actor,
        now,
        progress,
    )
}

/// The next chunk of a streamed import, given the import's connection inside its transaction
/// (so the source can check its rows against the files stored so far, earlier chunks
/// included); `None` after the last.
pub type NextChunk<'a> =
    dyn FnMut(&mut DbConn) -> Result<Option<Vec<(usize, ChildRecord)>>, ImportError> + 'a;

/// [`import_children_chunked`] with a source that uses the transaction's connection: every
/// chunk `next` returns is checked and written in one transaction, and the first error — the
/// source's ([`ImportError::RowsRefused`] when it found rows to refuse) or a chunk's refusal —
/// rolls the whole import back. After the commit, a large import refreshes the planner's
/// statistics ([`refresh_statistics`]).
pub fn import_children_streamed(
    conn: &mut DbConn,
    node: &LocalNode,
    next: &mut NextChunk<'_>,
    actor: &Actor,
    now: DateTime<Utc>,
    progress: &mut dyn FnMut(usize),
) -> Result<ImportSummary, ImportError> {
    let imported = storage::transaction(conn, |conn| {
        let mut done = 0;
        while let Some(rows) = next(conn)? {
            if rows.is_empty() {
                continue;
            }
            check_import(conn, node, &rows, actor)?;
            write_import(conn, node, &rows, actor, now, done, progress)?;
            done += rows.len();
        }
        Ok::<_, ImportError>(done)
    })?;
    node.wake_senders();
    refresh_statistics(conn, IMPORT_TABLES, imported);
    Ok(ImportSummary { imported })
}

/// The checks of an import that refuse it as a whole: regions served, recognitions, the
/// account's scope, ID numbers repeated in `rows` or already on file.
fn check_import(
    conn: &mut DbConn,
    node: &LocalNode,
    rows: &[(usize, ChildRecord)],
    actor: &Actor,
) -> Result<(), ImportError> {
    let not_party: Vec<usize> = rows
        .iter()
        .filter(|(_, r)| !node.roles(&r.hukou_region, &r.residence_region).is_party())
        .map(|(n, _)| *n)
        .collect();
    if !not_party.is_empty() {
        return Err(ImportError::NotParty(not_party));
    }
    let not_recognising: Vec<usize> = rows
        .iter()
        .filter(|(_, r)| {
            let roles = node.roles(&r.hukou_region, &r.residence_region);
            check_recognitions(roles, &Default::default(), &r.categories).is_err()
        })
        .map(|(n, _)| *n)
        .collect();
    if !not_recognising.is_empty() {
        return Err(ImportError::NotRecognising(not_recognising));
    }
    let outside: Vec<usize> = rows
        .iter()
        .filter(|(_, r)| !within_scope(actor, r))
        .map(|(n, _)| *n)
        .collect();
    if !outside.is_empty() {
        return Err(ImportError::OutsideScope(outside));
    }
    let mut seen = HashSet::new();
    let mut dupes: Vec<usize> = rows
        .iter()
        .filter(|(_, r)| !seen.insert(r.id_number.as_str()))
        .map(|(n, _)| *n)
        .collect();
    let ids: Vec<String> = rows.iter().map(|(_, r)| r.id_number.to_string()).collect();
    let existing = repo::existing_children(conn, &ids).map_err(LedgerError::from)?;
    dupes.extend(
        rows.iter()
            .filter(|(_, r)| existing.contains(r.id_number.as_str()))
            .map(|(n, _)| *n),
    );
    if !dupes.is_empty() {
        dupes.sort_unstable();
        return Err(ImportError::Duplicates(dupes));
    }
    Ok(())
}

/// Writes checked `rows` as new files inside the caller's transaction; `progress` is called
/// with `done_before` plus the count written so far.
fn write_import(
    conn: &mut DbConn,
    node: &LocalNode,
    rows: &[(usize, ChildRecord)],
    actor: &Actor,
    now: DateTime<Utc>,
    done_before: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<(), LedgerError> {
    let at = now.naive_utc();
    const BATCH: usize = 2000;
    /// One batch with all its CPU work (canonical bytes, hashes, signatures, rows) done.
    struct Prepared {
        versions: Vec<repo::VersionRow>,
        children: Vec<(repo::ChildRow, Vec<&'static str>)>,
        events: Vec<Event>,
        /// Per version, the parties to queue it for (none without a directory).
        parties: Vec<BTreeSet<NodeId>>,
    }
    let prepare = |chunk: &[(usize, ChildRecord)]| -> Result<Prepared, LedgerError> {
        let mut p = Prepared {
            versions: Vec::with_capacity(chunk.len()),
            children: Vec::with_capacity(chunk.len()),
            events: Vec::with_capacity(chunk.len()),
            parties: Vec::with_capacity(chunk.len()),
        };
        for (row_no, record) in chunk {
            let v = new_version(node, record, vec![])?;
            p.events.push(
                Event::new(actor.clone(), "child.import", Outcome::Ok)
                    .object("child", record.id_number.as_str())
                    .details(serde_json::json!({"version": v.id, "row": row_no})),
            );
            p.parties.push(if node.directory.is_some() {
                node.parties(&record.hukou_region, &record.residence_region)
            } else {
                BTreeSet::new()
            });
            p.versions.push(v.to_row(at));
            p.children.push((
                creation_row(record, at, &node.visits),
                crate::sync::view::held_benefits(record),
            ));
        }
        Ok(p)
    };
    // Signing and serialising run on worker threads — batch k on worker k mod W — while this
    // thread writes the batches in order: the database writer is single-threaded, and signing
    // costs about as much CPU as writing, so on a two-core machine two workers and the writer
    // share both cores (a worker ahead of the writer blocks on its channel of two batches).
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    std::thread::scope(|scope| {
        let mut queues = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Prepared, LedgerError>>(2);
            queues.push(rx);
            let prepare = &prepare;
            scope.spawn(move || {
                for chunk in rows.chunks(BATCH).skip(w).step_by(workers) {
                    let p = prepare(chunk);
                    let failed = p.is_err();
                    // The writer stopped (it failed): nothing more to do.
                    if tx.send(p).is_err() || failed {
                        return;
                    }
                }
            });
        }
        let mut done = done_before;
        for k in 0..rows.len().div_ceil(BATCH) {
            let p = queues[k % workers].recv().map_err(|_| {
                LedgerError::Version(VersionError::Corrupt(
                    "a preparing thread stopped early".into(),
                ))
            })??;
            let count = p.versions.len();
            let mut batch = Batch::new(node, now);
            for (row, parties) in p.versions.into_iter().zip(p.parties) {
                batch.add_creation_row(row, parties);
            }
            for (row, benefits) in p.children {
                batch.new_file_row(row, benefits);
            }
            for event in p.events {
                batch.event(event);
            }
            batch.finish(conn)?;
            done += count;
            progress(done);
        }
        Ok::<_, LedgerError>(())
    })
}

/// Every file's current record, in ID order, a page at a time (export). The caller audits.
pub fn export_page(
    conn: &mut DbConn,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<ChildRecord>, LedgerError> {
    Ok(repo::page_children(conn, after, limit)?
        .into_iter()
        .map(|v| v.record)
        .collect())
}

fn new_version(
    node: &LocalNode,
    record: &ChildRecord,
    parents: Vec<VersionId>,
) -> Result<SignedVersion, LedgerError> {
    signed_version(node, record, parents, false)
}

/// A version of `record` by this node, signed; `resolution` marks a reviewer's resolution.
pub(crate) fn signed_version(
    node: &LocalNode,
    record: &ChildRecord,
    parents: Vec<VersionId>,
    resolution: bool,
) -> Result<SignedVersion, LedgerError> {
    let body = serde_json::to_value(record).map_err(|e| VersionError::Corrupt(e.to_string()))?;
    let mut version = Version::new(
        DocKind::Child,
        record.id_number.to_string(),
        parents,
        node.id.clone(),
        node.clock.now(),
        body,
    );
    version.resolution = resolution;
    Ok(node.sign_version(version)?)
}

/// The merged view of `parents` from the versions they descend from (all in `known`; `None`
/// when one is missing, which the caller then treats as a creation).
fn parents_view(known: &HashMap<VersionId, MergeInput>, parents: &[VersionId]) -> Option<Fields> {
    let mut seen = HashSet::new();
    let mut todo: Vec<VersionId> = parents.to_vec();
    let mut ancestry = Vec::new();
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        let input = known.get(&id)?;
        todo.extend(input.parents.iter().copied());
        ancestry.push(input.clone());
    }
    merge::merged_view(&ancestry).ok().map(|v| v.fields)
}

fn summary(node: &LocalNode, row: &ChildListing) -> ChildSummary {
    ChildSummary {
        id_number: row.id_number.to_string(),
        name: row.name.clone(),
        hukou_region: row.hukou_region.to_string(),
        residence_region: row.residence_region.to_string(),
        categories: row.categories.clone(),
        risk_level: row.risk_level,
        risk_label: row.risk_level.map(|l| node.palette.label(l).to_owned()),
        last_visit_on: row.last_visit_on,
        updated_at: row.updated_at,
    }
}

/// Loads a file with its history (no audit: callers decide).
pub(crate) fn read_file(
    conn: &mut DbConn,
    node: &LocalNode,
    id: &IdNumber,
) -> Result<ChildFile, LedgerError> {
    let view =
        repo::get_child(conn, id.as_str())?.ok_or_else(|| LedgerError::NotFound(id.masked()))?;
    let versions = repo::versions_of(conn, "child", id.as_str())?;
    let heads = repo::heads_of(conn, "child", id.as_str())?
        .iter()
        .map(|h| h.parse())
        .collect::<Result<Vec<VersionId>, _>>()?;
    let mut bodies = HashMap::new();
    let mut inputs: HashMap<VersionId, MergeInput> = HashMap::new();
    let mut history = Vec::with_capacity(versions.len());
    for row in &versions {
        let v = SignedVersion::from_stored(row)?;
        let fields = serde_json::from_value::<ChildRecord>(v.version.body.clone())
            .map(|r| r.to_fields())
            .map_err(|e| LedgerError::Internal(format!("version {}: {e}", v.id.short())))?;
        let input = super::view::merge_input(node, &v)?;
        // What a version changed is measured against what its author saw: its one parent, or
        // for a merge or a resolution the merged view of its parents (so a resolution of one
        // field does not list the fields the merge had already taken from the other side).
        let seen = match v.version.parents.as_slice() {
            [] => None,
            [one] => bodies.get(one).cloned(),
            several => parents_view(&inputs, several),
        };
        inputs.insert(v.id, input);
        let changed = match seen {
            Some(parent) => ChildRecord::changed_fields(&parent, &fields)
                .iter()
                .map(|f| f.name().to_owned())
                .collect(),
            None => fields
                .iter()
                .filter(|(f, v)| **v != crate::domain::child::empty_value(**f))
                .map(|(f, _)| f.name().to_owned())
                .collect(),
        };
        history.push(VersionSummary {
            id: v.id,
            parents: v.version.parents.clone(),
            author_node: v.version.author_node.to_string(),
            hlc: v.version.hlc.to_string(),
            stored_at: row.stored_at,
            changed,
            resolution: v.version.resolution,
        });
        bodies.insert(v.id, fields);
    }
    let roles = node.roles(&view.record.hukou_region, &view.record.residence_region);
    let served_here = roles.is_party();
    let now_served_by = if served_here {
        Vec::new()
    } else {
        node.parties(&view.record.hukou_region, &view.record.residence_region)
            .into_iter()
            .collect()
    };
    Ok(ChildFile {
        served_here,
        now_served_by,
        recognised_categories: view
            .record
            .categories
            .iter()
            .copied()
            .filter(|c| c.is_recognition())
            .collect(),
        sex: view.record.sex(),
        birth_date: view.record.birth_date(),
        hukou_region_name: view.record.hukou_region.full_name(),
        residence_region_name: view.record.residence_region.full_name(),
        risk_label: view
            .record
            .risk_level
            .map(|l| node.palette.label(l).to_owned()),
        record: view.record,
        heads,
        created_at: view.created_at,
        updated_at: view.updated_at,
        history,
    })
}

/// The largest HLC stamp stored in versions (start-up keeps the clock above it).
pub fn latest_hlc(conn: &mut DbConn) -> Result<Option<i64>, StorageError> {
    repo::max_hlc(conn)
}

/// Which of these ID numbers already have a file.
pub fn existing_ids(conn: &mut DbConn, ids: Vec<String>) -> Result<HashSet<String>, LedgerError> {
    Ok(repo::existing_children(conn, &ids)?)
}

/// Number of files.
pub fn count(conn: &mut DbConn) -> Result<i64, LedgerError> {
    Ok(repo::count_children(conn)?)
}

/// A ledger file's rows checked for an import: the valid ones, and every row error — the
/// record's own validation and the checks that need the database (an ID number repeated in
/// the file or already on file, a row this node serves in neither region) — sorted by row.
pub struct CheckedLedger {
    pub good: Vec<(usize, ChildRecord)>,
    pub errors: Vec<crate::ledger_file::csv::RowError>,
    /// Rows read (valid and not).
    pub rows: usize,
}

/// Checks every row of a ledger file for an import (`hukou-sync import` and the ledger upload
/// page): nothing is stored.
pub fn check_ledger(
    conn: &mut DbConn,
    node: &LocalNode,
    input: crate::ledger_file::input::LedgerInput,
    now: DateTime<Utc>,
) -> Result<CheckedLedger, LedgerError> {
    let (validated, workbook) = input.validate_all(&rules(node, now));
    let place = |row: usize, field: &str| workbook.as_ref().map(|w| w.place_of(row, field));
    check_rows(conn, node, validated, None, &place)
}

/// One chunk of a ledger file read a chunk at a time, checked as [`check_ledger`] checks a
/// whole file, inside the streamed import's transaction ([`import_children_streamed`]):
/// `since` is the audit log's size when the import began ([`audit_size`]), so that an ID number
/// an earlier chunk of the same file stored is named as a repeat of that row (`repeats row 7`),
/// as in a file checked whole, and not as a file already on record. A repeat within a chunk
/// is found in memory; one across chunks, in the database.
pub fn check_chunk(
    conn: &mut DbConn,
    node: &LocalNode,
    validated: crate::ledger_file::input::Validated,
    since: i64,
) -> Result<CheckedLedger, LedgerError> {
    check_rows(conn, node, validated, Some(since), &|_, _| None)
}

/// The audit log's size: where a streamed import's own events begin ([`check_chunk`]).
pub fn audit_size(conn: &mut DbConn) -> Result<i64, LedgerError> {
    Ok(crate::storage::audit::size(conn)?)
}

fn check_rows(
    conn: &mut DbConn,
    node: &LocalNode,
    validated: crate::ledger_file::input::Validated,
    since: Option<i64>,
    place: &dyn Fn(usize, &str) -> Option<String>,
) -> Result<CheckedLedger, LedgerError> {
    use crate::ledger_file::csv::RowError;
    let mut good = Vec::new();
    let mut errors = Vec::new();
    for (line, record) in validated {
        match record {
            Ok(r) => good.push((line, r)),
            Err(e) => errors.push(e),
        }
    }
    let rows = good.len() + errors.len();
    let pre = precheck_rows(conn, node, &good, since)?;
    if !pre.is_empty() {
        for (row, field, reason) in pre {
            let cell = place(row, &field);
            errors.push(RowError {
                row,
                field,
                reason,
                cell,
            });
        }
        let bad: HashSet<usize> = errors.iter().map(|e| e.row).collect();
        good.retain(|(l, _)| !bad.contains(l));
    }
    errors.sort_by_key(|e| e.row);
    Ok(CheckedLedger { good, errors, rows })
}

/// Row-level checks that need the database: duplicates and regions this node does not serve
/// (row, field, reason); a database error is an error, not "no ID number exists yet". With
/// `since`, an ID number on record that a `child.import` event from `since` on stored is a
/// repeat of that event's row.
fn precheck_rows(
    conn: &mut DbConn,
    node: &LocalNode,
    rows: &[(usize, ChildRecord)],
    since: Option<i64>,
) -> Result<Vec<(usize, String, String)>, LedgerError> {
    let mut problems = Vec::new();
    let mut seen = HashMap::new();
    let existing = existing_ids(
        conn,
        rows.iter().map(|(_, r)| r.id_number.to_string()).collect(),
    )?;
    let mut earlier: HashMap<String, usize> = HashMap::new();
    if let (Some(since), false) = (since, existing.is_empty()) {
        let ids: Vec<String> = existing.iter().cloned().collect();
        for (id, details) in crate::storage::audit::imports_since(conn, since, &ids)? {
            let row = serde_json::from_str::<Value>(&details)
                .ok()
                .and_then(|d| d.get("row").and_then(Value::as_u64));
            if let Some(row) = row {
                earlier.insert(id, row as usize);
            }
        }
    }
    for (line, r) in rows {
        if !node.roles(&r.hukou_region, &r.residence_region).is_party() {
            problems.push((
                *line,
                "residence_region".into(),
                "this node serves neither the hukou nor the residence region".into(),
            ));
        } else if let Some(first) = seen.get(r.id_number.as_str()) {
            // Named by its first occurrence, however many repeats follow.
            problems.push((*line, "id_number".into(), format!("repeats row {first}")));
        } else {
            seen.insert(r.id_number.to_string(), *line);
            if let Some(first) = earlier.get(r.id_number.as_str()) {
                problems.push((*line, "id_number".into(), format!("repeats row {first}")));
            } else if existing.contains(r.id_number.as_str()) {
                problems.push((
                    *line,
                    "id_number".into(),
                    "a file for this ID number already exists".into(),
                ));
            }
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::{Received, RECEIVED_ANALYZE_MIN_ROWS as MIN};

    #[test]
    fn received_rows_are_claimed_once_and_given_back_without_wrapping() {
        let mut r = Received {
            since: 0,
            next_look: MIN,
        };
        // Below the floor nothing is claimed; the batch that crosses it claims the whole sum.
        assert_eq!(r.add(MIN - 1), None);
        assert_eq!(r.add(1), Some(MIN));
        // A second caller meanwhile (the first is analyzing) starts from zero: no double claim.
        assert_eq!(r.add(500), None);
        assert_eq!(r.since, 500);
        // The look found the tables too large: the rows come back, the next look is at twice.
        r.settle(MIN, false);
        assert_eq!((r.since, r.next_look), (MIN + 500, 2 * MIN));
        assert_eq!(r.add(MIN - 501), None);
        assert_eq!(r.add(1), Some(2 * MIN));
        // Two callers settling out of order never take the sum below zero.
        r.settle(2 * MIN, true);
        r.settle(0, true);
        assert_eq!((r.since, r.next_look), (0, MIN));
        assert_eq!(r.add(usize::MAX), Some(usize::MAX));
        r.settle(usize::MAX, false);
        assert_eq!(r.next_look, usize::MAX);
    }
}
