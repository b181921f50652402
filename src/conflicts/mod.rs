//! The review queue and the resolution of conflicts (DESIGN §4). `sync` finds conflicts (they are
//! a property of a file's version DAG) and keeps them beside each file's view; this module lists
//! them for reviewers and turns a reviewer's decision into a **resolution version**: signed by
//! this node, marked `resolution`, with all current heads as parents, replicated and audited like
//! any edit. Only the conflict's owner (the hukou side for hukou and shared fields) resolves it;
//! the other side shows "awaiting review at node X" until the resolution arrives.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::audit::{self, Actor, AuditError, Event, Outcome};
use crate::domain::child::{ChildField, ChildRecord, FieldError};
use crate::domain::IdNumber;
use crate::storage::conflicts::{self as repo, Conflict, QueueEntry};
use crate::storage::records as records_repo;
use crate::storage::{self, DbConn, StorageError};
use crate::sync::ledger::{self, LedgerError};
use crate::sync::version::VersionId;
use crate::sync::LocalNode;

/// Errors of queue reads and resolutions; the API maps each to one problem code.
#[derive(Debug, thiserror::Error)]
pub enum ConflictError {
    #[error("no child with ID number {0}")]
    NotFound(String),
    #[error("this file has no open conflict")]
    NothingOpen,
    #[error("the open conflicts of this file are reviewed at node {owner}, not here")]
    NotOwner { owner: String },
    #[error("the resolution's heads are not the file's heads; review its current state")]
    Stale {
        /// The file's current heads the resolution did not name (short ids).
        missing: Vec<String>,
        /// Heads the resolution named that are not (or no longer) the file's (short ids).
        unknown: Vec<String>,
        /// The file's current conflicts, to show again.
        current: Box<FileConflicts>,
    },
    #[error("{0} has no open conflict reviewed here")]
    NotInConflict(String),
    #[error("choose a value for {0}")]
    MissingChoice(String),
    #[error("unknown field {0:?}")]
    UnknownField(String),
    #[error("{0:?} is not one of this file's heads")]
    BadHead(String),
    // Transparent: a chained print (`{:#}`) would otherwise say the reason twice.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub use crate::domain::conflict::Candidate;

/// One open conflict on one field.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OpenConflict {
    pub field: String,
    /// The version whose parents dispute the field, or `None` for the current heads.
    pub merge_point: Option<String>,
    /// The node whose reviewers resolve it.
    pub owner: String,
    /// The common ancestor's value, shown while the conflict is open.
    #[schema(value_type = Object)]
    pub base: Value,
    pub candidates: Vec<Candidate>,
    pub opened_at: DateTime<Utc>,
}

/// A file's open conflicts, with what a reviewer needs to decide and to resolve.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FileConflicts {
    pub id_number: String,
    pub name: String,
    pub hukou_region: String,
    pub residence_region: String,
    /// Send these back with the resolution: it applies only if the file has not changed.
    pub heads: Vec<String>,
    pub conflicts: Vec<OpenConflict>,
    /// Whether this node may resolve them (it owns at least one).
    pub reviewable_here: bool,
    /// For conflicts owned elsewhere: "awaiting review at node X".
    pub awaiting: Vec<String>,
}

/// One row of the review queue.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct QueueItem {
    pub id_number: String,
    pub name: String,
    pub hukou_region: String,
    pub residence_region: String,
    pub field: String,
    pub owner: String,
    pub candidates: usize,
    pub opened_at: DateTime<Utc>,
}

/// A page of the queue; pass `next_after` back as `after`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueuePage {
    pub items: Vec<QueueItem>,
    pub next_after: Option<String>,
}

/// A reviewer's decision: for each disputed field, the value to keep.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolution {
    /// The heads the reviewer saw (from [`FileConflicts::heads`]).
    pub heads: Vec<String>,
    /// Field name → chosen value (one of the candidates, the base, or a new value).
    #[schema(value_type = Object)]
    pub values: BTreeMap<String, Value>,
}

fn open_conflict(c: Conflict) -> OpenConflict {
    OpenConflict {
        field: c.field.name().to_owned(),
        merge_point: c.merge_point.map(|m| m.to_string()),
        owner: c.owner.to_string(),
        base: c.base,
        candidates: c.candidates,
        opened_at: c.opened_at,
    }
}

/// Keyset cursor of the queue: `opened_at` in microseconds, document and field.
fn cursor(item: &QueueEntry) -> String {
    format!(
        "{}~{}~{}",
        item.conflict.opened_at.timestamp_micros(),
        item.conflict.doc_id,
        item.conflict.field.name()
    )
}

fn parse_cursor(s: &str) -> Option<(DateTime<Utc>, String, String)> {
    let mut parts = s.splitn(3, '~');
    let micros: i64 = parts.next()?.parse().ok()?;
    let at = DateTime::from_timestamp_micros(micros)?;
    Some((at, parts.next()?.to_owned(), parts.next()?.to_owned()))
}

/// The queue: open conflicts reviewed at `owner` (this node by default; `None` = every owner),
/// oldest first. A malformed cursor starts from the beginning rather than failing a page view.
pub fn queue(
    conn: &mut DbConn,
    owner: Option<&str>,
    after: Option<&str>,
    limit: i64,
    scope: &crate::domain::Scope,
) -> Result<QueuePage, ConflictError> {
    let limit = limit.clamp(1, 500);
    let rows = repo::queue(conn, owner, after.and_then(parse_cursor), limit + 1, scope)?;
    let more = rows.len() as i64 > limit;
    let rows = &rows[..rows.len().min(limit as usize)];
    let items = rows
        .iter()
        .map(|r| QueueItem {
            id_number: r.conflict.doc_id.to_string(),
            // A conflict of a file with no view row shows empty names (it has none to show).
            name: r.name.clone().unwrap_or_default(),
            hukou_region: r
                .hukou_region
                .as_ref()
                .map_or_else(String::new, |c| c.to_string()),
            residence_region: r
                .residence_region
                .as_ref()
                .map_or_else(String::new, |c| c.to_string()),
            field: r.conflict.field.name().to_owned(),
            owner: r.conflict.owner.to_string(),
            candidates: r.conflict.candidates.len(),
            opened_at: r.conflict.opened_at,
        })
        .collect();
    Ok(QueuePage {
        items,
        next_after: if more { rows.last().map(cursor) } else { None },
    })
}

/// Number of open conflicts reviewed at each node, of children within `scope`.
pub fn counts(
    conn: &mut DbConn,
    scope: &crate::domain::Scope,
) -> Result<Vec<(String, i64)>, ConflictError> {
    Ok(repo::count_by_owner(conn, scope)?
        .into_iter()
        .map(|(owner, n)| (owner.to_string(), n))
        .collect())
}

/// A file's open conflicts (no audit: callers record the read).
pub fn of_file(
    conn: &mut DbConn,
    node: &LocalNode,
    id: &IdNumber,
) -> Result<FileConflicts, ConflictError> {
    let child = records_repo::get_child(conn, id.as_str())?
        .ok_or_else(|| ConflictError::NotFound(id.masked()))?;
    let heads = records_repo::heads_of(conn, "child", id.as_str())?;
    let conflicts: Vec<OpenConflict> = repo::of_doc(conn, id)?
        .into_iter()
        .map(open_conflict)
        .collect();
    let me = node.id.to_string();
    let awaiting: BTreeSet<String> = conflicts
        .iter()
        .filter(|c| c.owner != me)
        .map(|c| c.owner.clone())
        .collect();
    Ok(FileConflicts {
        reviewable_here: conflicts.iter().any(|c| c.owner == me),
        awaiting: awaiting.into_iter().collect(),
        id_number: child.id_number.to_string(),
        name: child.name,
        hukou_region: child.hukou_region.to_string(),
        residence_region: child.residence_region.to_string(),
        heads,
        conflicts,
    })
}

/// Reads a file's conflicts and records the read (a reviewer sees the child's data).
pub fn read(
    conn: &mut DbConn,
    node: &LocalNode,
    id: &IdNumber,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<FileConflicts, ConflictError> {
    storage::transaction(conn, |conn| {
        ledger::check_scope_of(conn, actor, id.as_str(), false).map_err(|e| match e {
            LedgerError::NotFound(_) => ConflictError::NotFound(id.masked()),
            e => e.into(),
        })?;
        let file = of_file(conn, node, id)?;
        audit::append(
            conn,
            node.clock.now(),
            now,
            &Event::new(actor.clone(), "conflict.read", Outcome::Ok).object("child", id.as_str()),
        )?;
        Ok(file)
    })
}

/// Applies a reviewer's decision: one resolution version closing every open conflict of the file
/// that this node owns. Refused, with nothing stored, when the file changed since the reviewer
/// saw it, when this node owns none of its conflicts, when a disputed field has no choice or a
/// choice names a field not in dispute here, or when the result fails validation.
pub fn resolve(
    conn: &mut DbConn,
    node: &LocalNode,
    id: &IdNumber,
    resolution: Resolution,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<FileConflicts, ConflictError> {
    let mut expected: Vec<VersionId> = resolution
        .heads
        .iter()
        .map(|h| h.parse().map_err(|_| ConflictError::BadHead(h.clone())))
        .collect::<Result<_, _>>()?;
    expected.sort();
    expected.dedup();
    let mut choices = BTreeMap::new();
    for (name, value) in resolution.values {
        let field = ChildField::from_name(&name).ok_or(ConflictError::UnknownField(name))?;
        choices.insert(field, value);
    }
    // A value entered by a reviewer is read as any edit's is (a risk label → its level).
    ledger::rules(node, now).read_input(&mut choices)?;
    let version = storage::transaction(conn, |conn| {
        records_repo::child_created_at(conn, id.as_str())?
            .ok_or_else(|| ConflictError::NotFound(id.masked()))?;
        ledger::check_scope_of(conn, actor, id.as_str(), true)?;
        records_repo::lock_children(conn, &[id.as_str()])?;
        let (versions, view) = crate::sync::view::merged(conn, node, id.as_str())?;
        if view.heads != expected {
            return Err(ConflictError::Stale {
                missing: view
                    .heads
                    .iter()
                    .filter(|h| !expected.contains(h))
                    .map(|h| h.short())
                    .collect(),
                unknown: expected
                    .iter()
                    .filter(|h| !view.heads.contains(h))
                    .map(|h| h.short())
                    .collect(),
                current: Box::new(of_file(conn, node, id)?),
            });
        }
        if view.conflicts.is_empty() {
            return Err(ConflictError::NothingOpen);
        }
        let current = ChildRecord::from_fields_structural(&view.fields)?;
        let owned: BTreeSet<ChildField> = view
            .conflicts
            .iter()
            .filter(|c| crate::sync::view::review_owner(node, &current, c.field) == node.id)
            .map(|c| c.field)
            .collect();
        if owned.is_empty() {
            let owner = view
                .conflicts
                .first()
                .map(|c| crate::sync::view::review_owner(node, &current, c.field).to_string())
                .unwrap_or_default();
            return Err(ConflictError::NotOwner { owner });
        }
        if let Some(f) = choices.keys().find(|f| !owned.contains(f)) {
            return Err(ConflictError::NotInConflict(f.name().to_owned()));
        }
        if let Some(f) = owned.iter().find(|f| !choices.contains_key(f)) {
            return Err(ConflictError::MissingChoice(f.name().to_owned()));
        }
        let mut fields = view.fields.clone();
        for (f, v) in &choices {
            fields.insert(*f, v.clone());
        }
        let record = ChildRecord::from_fields_structural(&fields)?;
        let decided: Vec<ChildField> = choices.keys().copied().collect();
        record.check_changed(&ledger::rules(node, now), &decided)?;
        crate::sync::store::raise_clock(conn, node, &view.heads)?;
        let version = ledger::signed_version(node, &record, view.heads.clone(), true)?;
        let parents: Vec<String> = view.heads.iter().map(ToString::to_string).collect();
        let decided: BTreeMap<&str, &Value> = choices.iter().map(|(f, v)| (f.name(), v)).collect();
        let event = Event::new(actor.clone(), "conflict.resolve", Outcome::Ok)
            .object("child", id.as_str())
            .details(serde_json::json!({
                "version": version.id,
                "replaces_heads": parents,
                "fields": decided.keys().collect::<Vec<_>>(),
            }));
        crate::sync::store::on_heads(conn, node, &versions, &view, &version, &record, event, now)?;
        Ok(version.id)
    })?;
    node.wake_senders();
    tracing::info!(child = %id.masked(), version = %version.short(), "conflicts resolved");
    of_file(conn, node, id)
}
