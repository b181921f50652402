//! Visit documents in the exchange (DESIGN §3): what makes a peer's visit version acceptable,
//! who a visit is queued for, and its view row. A visit is written by one node — the one whose
//! person made it (`recorded_by`) — and amended only by that node, each amendment on top of the
//! last: its versions form a line, never a conflict. Its parties are the child's: the bureaus
//! serving the child's hukou and residence regions.

use std::collections::{BTreeSet, HashMap};

use chrono::{Days, NaiveDateTime};

use super::error::LedgerError;
use super::node::LocalNode;
use super::receipt::RejectCode;
use super::version::{SignedVersion, VersionId};
use crate::domain::visit::VisitBody;
use crate::domain::{NodeId, RegionCode};
use crate::storage::records as repo;
use crate::storage::visits::{self as visits_repo, VisitRow};
use crate::storage::DbConn;

/// A refusal: its code and reason.
pub type Refusal = (RejectCode, String);

/// The body of a visit version.
pub fn body_of(v: &SignedVersion) -> Result<VisitBody, String> {
    serde_json::from_value(v.version.body.clone()).map_err(|e| format!("not a visit: {e}"))
}

/// The bureaus of the child of a visit: those serving the regions of the child's current view
/// here, and of `extra` (the child's records in the batch being received, for a file that
/// arrives with its visits).
pub fn parties_of_child(
    conn: &mut DbConn,
    node: &LocalNode,
    child_id: &str,
    extra: &[(RegionCode, RegionCode)],
) -> Result<Option<BTreeSet<NodeId>>, LedgerError> {
    let held = repo::get_child(conn, child_id)?;
    if held.is_none() && extra.is_empty() {
        return Ok(None);
    }
    let mut parties = BTreeSet::new();
    if let Some(c) = held {
        parties.extend(node.parties(&c.hukou_region, &c.residence_region));
    }
    for (h, r) in extra {
        parties.extend(node.parties(h, r));
    }
    Ok(Some(parties))
}

/// All checks of a peer's visit version but its signature (checked with the batch): the body is
/// a valid visit about a child held here (or arriving in the same batch) and dated no later than
/// the day after its stamp; its id is the document's; the author is the node that recorded it;
/// the author, the sender and this node are parties of the child; an amendment is on top of a
/// version of the same visit by the same node and changes neither the child nor the visit's id.
/// On success the visit and the child's parties.
pub fn check(
    conn: &mut DbConn,
    node: &LocalNode,
    sender: &NodeId,
    v: &SignedVersion,
    batch_regions: &[(RegionCode, RegionCode)],
) -> Result<(VisitBody, BTreeSet<NodeId>), Refusal> {
    let invalid = |e: String| (RejectCode::InvalidRecord, e);
    let body = body_of(v).map_err(invalid)?;
    if body.visit_id.to_string() != v.version.doc_id {
        return Err(invalid("doc_id is not the visit id".into()));
    }
    let author = &v.version.author_node;
    if &body.recorded_by != author {
        return Err((
            RejectCode::AuthorNotParty,
            format!(
                "{author} did not record this visit ({} did)",
                body.recorded_by
            ),
        ));
    }
    // A peer's clock is trusted to within the skew bound: the visit may be dated up to the day
    // after its stamp's day in China.
    let stamped = super::ledger::china_today(v.version.hlc.wall_time())
        .checked_add_days(Days::new(1))
        .ok_or_else(|| invalid("the stamp is out of range".into()))?;
    body.check(stamped)
        .map_err(|e| invalid(format!("{}: {}", e.field, e.reason)))?;
    let parties = parties_of_child(conn, node, body.child_id.as_str(), batch_regions)
        .map_err(|e| invalid(format!("storage: {e}")))?
        .ok_or_else(|| {
            (
                RejectCode::NotParty,
                "the child's file is not held here".to_owned(),
            )
        })?;
    if !parties.contains(author) {
        return Err((
            RejectCode::AuthorNotParty,
            format!("{author} serves neither region of the child"),
        ));
    }
    if !parties.contains(sender) {
        return Err((
            RejectCode::SenderNotParty,
            format!("{sender} serves neither region of the child"),
        ));
    }
    if !parties.contains(&node.id) {
        return Err((
            RejectCode::NotParty,
            format!("{} serves neither region of the child", node.id),
        ));
    }
    for p in &v.version.parents {
        let row = repo::get_version(conn, &p.to_string())
            .map_err(|e| invalid(format!("storage: {e}")))?;
        let Some(Ok(pv)) = row.map(|r| SignedVersion::from_stored(&r)) else {
            return Err((
                RejectCode::UnknownParents,
                format!("parent {} is not known here", p.short()),
            ));
        };
        let before = body_of(&pv).map_err(invalid)?;
        if pv.version.doc_id != v.version.doc_id
            || pv.version.author_node != *author
            || before.child_id != body.child_id
        {
            return Err(invalid(
                "an amendment is made by the visit's own node on the same visit and child".into(),
            ));
        }
    }
    Ok((body, parties))
}

/// The view row of a visit at version `v`.
pub fn row_of(v: &SignedVersion, body: &VisitBody, at: NaiveDateTime) -> VisitRow {
    VisitRow {
        visit_id: body.visit_id.to_string(),
        child_id: body.child_id.to_string(),
        recorded_by: body.recorded_by.to_string(),
        visited_on: body.visited_on,
        kind: body.kind.code().to_owned(),
        visitor_role: body.visitor.role.code().to_owned(),
        risk_level: body
            .assessment
            .as_ref()
            .map(|a| a.level.as_str().to_owned()),
        next_due_on: body.next_due_on,
        head: v.id.to_string(),
        body: v.version.body.to_string(),
        recorded_at: at,
        updated_at: at,
    }
}

/// Writes a visit's view row for `v`, unless the row shows a later version already: `v` replaces
/// it when it is made on top of the version shown, or when neither descends from the other and
/// `v` is stamped later (two amendments made at once at the same node).
pub fn put_row(
    conn: &mut DbConn,
    v: &SignedVersion,
    body: &VisitBody,
    at: NaiveDateTime,
    accepted_here: &HashMap<VersionId, i64>,
) -> Result<(), LedgerError> {
    if let Some(row) = visits_repo::get(conn, &body.visit_id.to_string())? {
        let shown = row.head.parse::<VersionId>()?;
        if !v.version.parents.contains(&shown) {
            let shown_hlc = match accepted_here.get(&shown) {
                Some(h) => *h,
                None => repo::get_version(conn, &row.head)?
                    .map(|r| r.hlc.to_i64())
                    .unwrap_or(i64::MIN),
            };
            if (shown_hlc, shown) >= (v.version.hlc.to_i64(), v.id) {
                return Ok(());
            }
        }
    }
    visits_repo::upsert(conn, &row_of(v, body, at))?;
    Ok(())
}
