//! Documents about a child that accumulate — visits and reports (DESIGN §3) — in the exchange:
//! what makes a peer's version acceptable, who it is queued for, and its view row, for any kind
//! that implements [`ChildDoc`]. Such a document is written by one node — the one that recorded
//! it (`recorded_by`) — and amended only by that node, each amendment on top of the last: its
//! versions form a line, never a conflict. Its parties are the child's: the bureaus serving the
//! child's hukou and residence regions.

use std::collections::{BTreeSet, HashMap};

use chrono::{Days, NaiveDateTime};

use super::error::LedgerError;
use super::node::LocalNode;
use super::receipt::RejectCode;
use super::version::{SignedVersion, VersionId};
use crate::domain::report::ReportBody;
use crate::domain::visit::VisitBody;
use crate::domain::{DocKind, FieldError, IdNumber, NodeId, RegionCode};
use crate::storage::records as repo;
use crate::storage::reports::{self as reports_repo, ReportRow};
use crate::storage::visits::{self as visits_repo, VisitRow};
use crate::storage::{DbConn, StorageError};

/// A refusal: its code and reason.
pub type Refusal = (RejectCode, String);

/// A kind of document about one child, recorded by one node.
pub trait ChildDoc: serde::de::DeserializeOwned {
    const KIND: DocKind;
    fn doc_id(&self) -> String;
    fn child_id(&self) -> &IdNumber;
    fn recorded_by(&self) -> &NodeId;
    /// The kind's own rules, with `latest` the last day it may be dated.
    fn check_at(&self, latest: chrono::NaiveDate) -> Result<(), FieldError>;
    /// The version the view row of `doc_id` shows, if it has one.
    fn shown_head(conn: &mut DbConn, doc_id: &str) -> Result<Option<String>, StorageError>;
    /// Writes the view row at version `v`.
    fn write_row(
        conn: &mut DbConn,
        v: &SignedVersion,
        body: &Self,
        at: NaiveDateTime,
    ) -> Result<(), StorageError>;
}

impl ChildDoc for VisitBody {
    const KIND: DocKind = DocKind::Visit;
    fn doc_id(&self) -> String {
        self.visit_id.to_string()
    }
    fn child_id(&self) -> &IdNumber {
        &self.child_id
    }
    fn recorded_by(&self) -> &NodeId {
        &self.recorded_by
    }
    fn check_at(&self, latest: chrono::NaiveDate) -> Result<(), FieldError> {
        self.check(latest)
    }
    fn shown_head(conn: &mut DbConn, doc_id: &str) -> Result<Option<String>, StorageError> {
        Ok(visits_repo::get(conn, doc_id)?.map(|r| r.head))
    }
    fn write_row(
        conn: &mut DbConn,
        v: &SignedVersion,
        body: &Self,
        at: NaiveDateTime,
    ) -> Result<(), StorageError> {
        visits_repo::upsert(conn, &row_of(v, body, at))
    }
}

impl ChildDoc for ReportBody {
    const KIND: DocKind = DocKind::Report;
    fn doc_id(&self) -> String {
        self.report_id.to_string()
    }
    fn child_id(&self) -> &IdNumber {
        &self.child_id
    }
    fn recorded_by(&self) -> &NodeId {
        &self.recorded_by
    }
    fn check_at(&self, latest: chrono::NaiveDate) -> Result<(), FieldError> {
        self.check(latest)
    }
    fn shown_head(conn: &mut DbConn, doc_id: &str) -> Result<Option<String>, StorageError> {
        Ok(reports_repo::get(conn, doc_id)?.map(|r| r.head))
    }
    fn write_row(
        conn: &mut DbConn,
        v: &SignedVersion,
        body: &Self,
        at: NaiveDateTime,
    ) -> Result<(), StorageError> {
        reports_repo::upsert(
            conn,
            &ReportRow {
                report_id: body.report_id.to_string(),
                child_id: body.child_id.to_string(),
                recorded_by: body.recorded_by.to_string(),
                reported_on: body.reported_on,
                reporter_kind: body.reporter.kind.code().to_owned(),
                urgent: i64::from(body.is_urgent()),
                police_called: i64::from(body.police_called),
                referral_target: body.referral.as_ref().map(|r| r.target.code().to_owned()),
                head: v.id.to_string(),
                body: crate::crypto::jcs::compact(&v.version.body),
                recorded_at: at,
                updated_at: at,
            },
        )
    }
}

/// The body of a version of a child document.
pub fn body_of<T: ChildDoc>(v: &SignedVersion) -> Result<T, String> {
    serde_json::from_value(v.version.body.clone())
        .map_err(|e| format!("not a {}: {e}", T::KIND.as_str()))
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

/// All checks of a peer's version of a child document but its signature (checked with the
/// batch): the body is valid for its kind, about a child held here (or arriving in the same
/// batch: `batch_regions`, the regions of the batch's records per child) and dated no later than the day after its stamp; its id is the document's; the author is
/// the node that recorded it; the author, the sender and this node are parties of the child; an
/// amendment is on top of a version of the same document by the same node and changes neither
/// the child nor the id. On success the body and the child's parties.
pub fn check<T: ChildDoc>(
    conn: &mut DbConn,
    node: &LocalNode,
    sender: &NodeId,
    v: &SignedVersion,
    batch_regions: &HashMap<String, Vec<(RegionCode, RegionCode)>>,
) -> Result<(T, BTreeSet<NodeId>), Refusal> {
    let invalid = |e: String| (RejectCode::InvalidRecord, e);
    let body: T = body_of(v).map_err(invalid)?;
    if body.doc_id() != v.version.doc_id {
        return Err(invalid(format!(
            "doc_id is not the {} id",
            T::KIND.as_str()
        )));
    }
    let author = &v.version.author_node;
    if body.recorded_by() != author {
        return Err((
            RejectCode::AuthorNotParty,
            format!(
                "{author} did not record this {} ({} did)",
                T::KIND.as_str(),
                body.recorded_by()
            ),
        ));
    }
    // A peer's clock is trusted to within the skew bound: the visit may be dated up to the day
    // after its stamp's day in China.
    let stamped = super::ledger::china_today(v.version.hlc.wall_time())
        .checked_add_days(Days::new(1))
        .ok_or_else(|| invalid("the stamp is out of range".into()))?;
    body.check_at(stamped)
        .map_err(|e| invalid(format!("{}: {}", e.field, e.reason)))?;
    let child = body.child_id().as_str();
    let in_batch = batch_regions.get(child).map_or(&[][..], Vec::as_slice);
    let parties = parties_of_child(conn, node, child, in_batch)
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
        let before: T = body_of(&pv).map_err(invalid)?;
        if pv.version.doc_id != v.version.doc_id
            || pv.version.kind != T::KIND
            || pv.version.author_node != *author
            || before.child_id() != body.child_id()
        {
            return Err(invalid(format!(
                "an amendment is made by the {0}'s own node on the same {0} and child",
                T::KIND.as_str()
            )));
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
        body: crate::crypto::jcs::compact(&v.version.body),
        recorded_at: at,
        updated_at: at,
    }
}

/// Writes a document's view row for `v`, unless the row shows a later version already: `v`
/// replaces it when it is made on top of the version shown, or when neither descends from the
/// other and `v` is stamped later (two amendments made at once at the same node).
pub fn put_row<T: ChildDoc>(
    conn: &mut DbConn,
    v: &SignedVersion,
    body: &T,
    at: NaiveDateTime,
    accepted_here: &HashMap<VersionId, i64>,
) -> Result<(), LedgerError> {
    if let Some(head) = T::shown_head(conn, &body.doc_id())? {
        let shown = head.parse::<VersionId>()?;
        if !v.version.parents.contains(&shown) {
            let shown_hlc = match accepted_here.get(&shown) {
                Some(h) => *h,
                None => repo::get_version(conn, &head)?
                    .map(|r| r.hlc.to_i64())
                    .unwrap_or(i64::MIN),
            };
            if (shown_hlc, shown) >= (v.version.hlc.to_i64(), v.id) {
                return Ok(());
            }
        }
    }
    T::write_row(conn, v, body, at)?;
    Ok(())
}
