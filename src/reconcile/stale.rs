//! The six-month refresh rule: children whose file was neither updated nor visited within the
//! window (`records.stale_after_days`, 183 by default), grouped by the region this node serves
//! for each child (the residence region where this node is the residence bureau, else the
//! hukou region), so each bureau sees its own work list.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Serialize;

use super::report::StaleSummary;
use super::ReconcileError;
use crate::domain::{IdNumber, RegionCode};
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

/// Lists stale files: all, under a region prefix, or among those shared with a peer.
pub fn list(
    conn: &mut DbConn,
    node: &LocalNode,
    after_days: u32,
    region_prefix: Option<&str>,
    shared_with: Option<&str>,
    now: DateTime<Utc>,
    with_files: bool,
) -> Result<StaleList, ReconcileError> {
    let cutoff = now - chrono::Duration::days(i64::from(after_days));
    let before: NaiveDateTime = cutoff.naive_utc();
    let mut out = StaleList {
        after_days,
        cutoff,
        total: 0,
        per_region: BTreeMap::new(),
        files: Vec::new(),
    };
    let mut after: Option<String> = None;
    loop {
        let rows = repo::stale_children(
            conn,
            before,
            region_prefix,
            shared_with,
            after.as_deref(),
            PAGE,
        )?;
        let Some(last) = rows.last() else {
            break;
        };
        after = Some(last.id_number.clone());
        for r in rows {
            let served_residence = RegionCode::parse(&r.residence_region)
                .map(|rc| node.serves(&rc))
                .unwrap_or(false);
            let region = if served_residence {
                r.residence_region.clone()
            } else {
                r.hukou_region.clone()
            };
            out.total += 1;
            *out.per_region.entry(region.clone()).or_default() += 1;
            if with_files {
                out.files.push(StaleFile {
                    id_masked: IdNumber::mask_text(&r.id_number),
                    id_number: r.id_number,
                    region,
                    hukou_region: r.hukou_region,
                    residence_region: r.residence_region,
                    updated_at: r.updated_at.and_utc(),
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
    let list = self::list(conn, node, after_days, region_prefix, None, now, true)?;
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
