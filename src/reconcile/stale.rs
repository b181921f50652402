//! The six-month refresh rule: children whose file was neither updated nor visited within the
//! window (`records.stale_after_days`, 183 by default), grouped by the region this node serves
//! for each child (the residence region where this node is the residence bureau, else the
//! hukou region), so each bureau sees its own work list.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::report::StaleSummary;
use super::ReconcileError;
use crate::domain::IdNumber;
use crate::storage::reconcile as repo;
use crate::storage::DbConn;
use crate::sync::LocalNode;

const PAGE: i64 = 5000;

/// One stale file. No name: the list is a work list for the bureau, and its human rendering
/// masks the ID number.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StaleFile {
    pub id_number: String,
    /// `5101**********0016`.
    pub id_masked: String,
    /// The region this node serves the child for (the group key).
    pub region: String,
    pub hukou_region: String,
    pub residence_region: String,
    pub updated_at: DateTime<Utc>,
    pub last_visit_on: Option<NaiveDate>,
}

/// Stale files and their counts per region.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StaleList {
    pub after_days: u32,
    /// Neither updated nor visited since this moment.
    pub cutoff: DateTime<Utc>,
    pub total: u64,
    pub per_region: BTreeMap<String, u64>,
    /// The files, in ID order (empty when only counts were asked for).
    pub files: Vec<StaleFile>,
}

impl StaleList {
    pub fn summary(&self) -> StaleSummary {
        StaleSummary {
            after_days: self.after_days,
            total: self.total,
            per_region: self.per_region.clone(),
        }
    }
}

/// Lists stale files: all, under a region prefix, or among those shared with a peer; only those
/// within `scope`.
#[allow(clippy::too_many_arguments)]
pub fn list(
    conn: &mut DbConn,
    node: &LocalNode,
    after_days: u32,
    region_prefix: Option<&str>,
    shared_with: Option<&str>,
    now: DateTime<Utc>,
    with_files: bool,
    scope: &crate::domain::Scope,
) -> Result<StaleList, ReconcileError> {
    // Checked: a window reaching before year 1 means every file.
    let cutoff = now
        .checked_sub_signed(chrono::Duration::days(i64::from(after_days)))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let mut out = StaleList {
        after_days,
        cutoff,
        total: 0,
        per_region: BTreeMap::new(),
        files: Vec::new(),
    };
    let mut after: Option<IdNumber> = None;
    loop {
        let rows = repo::stale_children(
            conn,
            cutoff,
            region_prefix,
            shared_with,
            after.as_ref(),
            PAGE,
            scope,
        )?;
        let Some(last) = rows.last() else {
            break;
        };
        after = Some(last.id_number.clone());
        for r in rows {
            // A file this node no longer serves (the child moved to another bureau's region) is
            // not this node's to refresh.
            if !node.roles(&r.hukou_region, &r.residence_region).is_party() {
                continue;
            }
            // Nor is an adult's (18 by the ID number): the file is kept, not refreshed.
            if crate::domain::benefit::is_adult(
                r.id_number.birth_date(),
                crate::sync::ledger::china_today(now),
            ) {
                continue;
            }
            let region = if node.serves(&r.residence_region) {
                r.residence_region.to_string()
            } else {
                r.hukou_region.to_string()
            };
            out.total += 1;
            *out.per_region.entry(region.clone()).or_default() += 1;
            if with_files {
                out.files.push(StaleFile {
                    id_masked: r.id_number.masked(),
                    id_number: r.id_number.to_string(),
                    region,
                    hukou_region: r.hukou_region.to_string(),
                    residence_region: r.residence_region.to_string(),
                    updated_at: r.updated_at,
                    last_visit_on: r.last_visit_on,
                });
            }
        }
    }
    Ok(out)
}

/// The list with its files (ID numbers: a read of children's data), audited as `stale.list`.
#[allow(clippy::too_many_arguments)]
pub fn read_list(
    conn: &mut DbConn,
    node: &LocalNode,
    after_days: u32,
    region_prefix: Option<&str>,
    actor: &crate::audit::Actor,
    purpose: Option<&str>,
    now: DateTime<Utc>,
) -> Result<StaleList, ReconcileError> {
    // Only the files within the reader's account scope.
    let list = self::list(
        conn,
        node,
        after_days,
        region_prefix,
        None,
        now,
        true,
        &actor.scope,
    )?;
    crate::storage::transaction(conn, |c| {
        crate::audit::append(
            c,
            node.clock.now(),
            now,
            &crate::audit::Event::new(actor.clone(), "stale.list", crate::audit::Outcome::Ok)
                .purpose(purpose)
                .details(serde_json::json!({
                    "after_days": after_days, "region": region_prefix, "files": list.total,
                })),
        )
    })?;
    Ok(list)
}
