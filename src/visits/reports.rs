//! Reports and referrals (强制报告与转介) as a service: record a report about a child this node
//! serves, amend it (only the node that took it — to record what a referral came to), read one,
//! and list them, urgent first. A report is a document of its own exchanged to the child's
//! bureaus (`sync::visit::ChildDoc`, stored through `super::store_doc`). An urgent report makes the child's risk red at the
//! residence bureau until a visit assesses the child again (`super::update_file`).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{VisitError, MAX_PAGE};
use crate::audit::{Actor, Event, Outcome};
use crate::domain::child::Text;
use crate::domain::report::{Referral, ReportBody, Reporter, Urgency};
use crate::domain::IdNumber;
use crate::storage::records as records_repo;
use crate::storage::reports::{self as repo, ReportFilter, ReportRow};
use crate::storage::{self, DbConn, StorageError};
use crate::sync::ledger::{self, china_today, LedgerError};
use crate::sync::version::VersionId;
use crate::sync::LocalNode;

/// A report as a caseworker writes it (`POST /api/v1/children/{id}/reports`, `report add`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportInput {
    pub reported_on: NaiveDate,
    pub reporter: Reporter,
    #[schema(value_type = String, max_length = 2000)]
    pub seen: Text<2000, true>,
    pub urgency: Urgency,
    #[serde(default)]
    pub police_called: bool,
    #[serde(default)]
    pub referral: Option<Referral>,
}

/// A report as a reader sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReportView {
    pub report: ReportBody,
    #[schema(value_type = String)]
    pub version: VersionId,
    pub recorded_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Whether recording it updated the child's file here (an urgent report makes the risk
    /// red): only at the child's residence bureau.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_updated: Option<bool>,
}

/// A page of reports, urgent first, then newest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReportPage {
    pub items: Vec<ReportView>,
    pub next_after: Option<String>,
}

fn view_of(row: ReportRow) -> Result<ReportView, VisitError> {
    let bad = |what: &str| {
        VisitError::Ledger(LedgerError::Storage(StorageError::corrupt(
            "reports",
            format!("report {}: {what}", row.report_id),
        )))
    };
    Ok(ReportView {
        report: serde_json::from_str(&row.body).map_err(|_| bad("body"))?,
        version: row.head.parse().map_err(|_| bad("head"))?,
        recorded_at: row.recorded_at.and_utc(),
        updated_at: row.updated_at.and_utc(),
        file_updated: None,
    })
}

fn body_of(
    input: ReportInput,
    node: &LocalNode,
    report_id: uuid::Uuid,
    child: &IdNumber,
    today: NaiveDate,
) -> Result<ReportBody, LedgerError> {
    let body = ReportBody {
        report_id,
        child_id: child.clone(),
        recorded_by: node.id.clone(),
        reported_on: input.reported_on,
        reporter: input.reporter,
        seen: input.seen,
        urgency: input.urgency,
        police_called: input.police_called,
        referral: input.referral,
    };
    body.check(today)?;
    Ok(body)
}

/// Stores a report version made here (see [`super::store_doc`]); whether the file followed.
fn store(
    conn: &mut DbConn,
    node: &LocalNode,
    body: &ReportBody,
    parents: Vec<VersionId>,
    action: &'static str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<bool, VisitError> {
    let details = serde_json::json!({
        "urgency": body.urgency.code(),
        "police_called": body.police_called,
    });
    let (_, updated) = super::store_doc(conn, node, body, parents, action, details, actor, now)?;
    Ok(updated)
}

/// Records a report about a child whose file this node holds and serves.
pub fn record(
    conn: &mut DbConn,
    node: &LocalNode,
    child: &IdNumber,
    input: ReportInput,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<ReportView, VisitError> {
    let body = body_of(input, node, uuid::Uuid::now_v7(), child, china_today(now))?;
    let updated = storage::transaction(conn, |conn| {
        store(conn, node, &body, Vec::new(), "report.create", actor, now)
    })?;
    node.wake_senders();
    tracing::info!(child = %child.masked(), urgent = body.is_urgent(), "report recorded");
    let row = repo::get(conn, &body.report_id.to_string())?
        .ok_or_else(|| VisitError::NotFound(body.report_id.to_string()))?;
    let mut view = view_of(row)?;
    view.file_updated = Some(updated);
    Ok(view)
}

/// Amends a report this node took (the whole report again; its id and child stay).
pub fn amend(
    conn: &mut DbConn,
    node: &LocalNode,
    report_id: &uuid::Uuid,
    input: ReportInput,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<ReportView, VisitError> {
    let id = report_id.to_string();
    let updated = storage::transaction(conn, |conn| {
        let row = repo::get(conn, &id)?.ok_or_else(|| VisitError::NotFound(id.clone()))?;
        let before = view_of(row)?;
        if before.report.recorded_by != node.id {
            return Err(VisitError::NotAuthor(id.clone(), before.report.recorded_by));
        }
        let body = body_of(
            input,
            node,
            *report_id,
            &before.report.child_id,
            china_today(now),
        )?;
        if body == before.report {
            return Ok(false);
        }
        store(
            conn,
            node,
            &body,
            vec![before.version],
            "report.amend",
            actor,
            now,
        )
    })?;
    node.wake_senders();
    let row = repo::get(conn, &id)?.ok_or_else(|| VisitError::NotFound(id.clone()))?;
    let mut view = view_of(row)?;
    view.file_updated = Some(updated);
    Ok(view)
}

/// Reads one report; the read is audited.
pub fn read(
    conn: &mut DbConn,
    node: &LocalNode,
    report_id: &uuid::Uuid,
    actor: &Actor,
    purpose: Option<&str>,
    now: DateTime<Utc>,
) -> Result<ReportView, VisitError> {
    let id = report_id.to_string();
    storage::transaction(conn, |conn| {
        let row = repo::get(conn, &id)?.ok_or_else(|| VisitError::NotFound(id.clone()))?;
        if ledger::check_scope_of(conn, actor, &row.child_id, false).is_err() {
            return Err(VisitError::NotFound(id.clone()));
        }
        let view = view_of(row)?;
        let e = Event::new(actor.clone(), "report.read", Outcome::Ok)
            .object("report", &id)
            .purpose(purpose);
        crate::audit::append(conn, node.clock.now(), now, &e)?;
        Ok(view)
    })
}

/// Parses a page cursor of [`list`]: `1/uuid` or `0/uuid`.
pub fn parse_cursor(s: &str) -> Option<(i64, String)> {
    let (u, id) = s.split_once('/')?;
    let u = match u {
        "0" => 0,
        "1" => 1,
        _ => return None,
    };
    Some((u, uuid::Uuid::parse_str(id).ok()?.to_string()))
}

/// Reports held here — of one child, or all — urgent first, then newest first; the read is
/// audited.
#[allow(clippy::too_many_arguments)]
pub fn list(
    conn: &mut DbConn,
    node: &LocalNode,
    child: Option<&IdNumber>,
    urgent_only: bool,
    after: Option<(i64, String)>,
    limit: i64,
    actor: &Actor,
    purpose: Option<&str>,
    now: DateTime<Utc>,
) -> Result<ReportPage, VisitError> {
    let limit = limit.clamp(1, MAX_PAGE);
    storage::transaction(conn, |conn| {
        if let Some(c) = child {
            records_repo::child_created_at(conn, c.as_str())?.ok_or(VisitError::ChildNotFound)?;
            if ledger::check_scope_of(conn, actor, c.as_str(), false).is_err() {
                return Err(VisitError::ChildNotFound);
            }
        }
        let rows = repo::list(
            conn,
            &ReportFilter {
                child_id: child.map(|c| c.to_string()),
                urgent_only,
                after,
                limit: limit + 1,
                scope: actor.scope.clone(),
            },
        )?;
        let more = rows.len() as i64 > limit;
        let items = rows
            .into_iter()
            .take(limit as usize)
            .map(view_of)
            .collect::<Result<Vec<_>, _>>()?;
        let next_after = more
            .then(|| {
                items
                    .last()
                    .map(|r| format!("{}/{}", i64::from(r.report.is_urgent()), r.report.report_id))
            })
            .flatten();
        let mut e = Event::new(actor.clone(), "report.list", Outcome::Ok)
            .purpose(purpose)
            .details(serde_json::json!({"reports": items.len()}));
        if let Some(c) = child {
            e = e.object("child", c.as_str());
        }
        crate::audit::append(conn, node.clock.now(), now, &e)?;
        Ok(ReportPage { items, next_after })
    })
}
