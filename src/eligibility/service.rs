//! Eligibility cases on this node: create (requester), transition (either party), read, list
//! with deadlines, and what happens after a case version arrives (the hukou node receives a new
//! request automatically: that is the signed receipt of the request). Each operation loads,
//! decides with the pure cores, then persists the version, the heads, the view, the outbox entry
//! and the audit event in one transaction.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use super::calendar::{deadline_status, DeadlineStatus, WorkCalendar};
use crate::audit::{self, Actor, Event, Outcome};
use crate::crypto::hlc::Hlc;
use crate::domain::benefit::Excluded;
use crate::domain::case::state::{CaseState, Party, Transition};
use crate::domain::case::{
    check_step, merge_heads, CaseBody, Grounds, Head, Officers, Step, StepError,
};
use crate::domain::child::{Benefit, BenefitEnd, BenefitGrant, ChildRecord, EndReason, Text};
use crate::domain::{IdNumber, Month, NodeId, RegionCode};
use crate::storage::cases::{self as repo, CaseFilter, CaseRow};
use crate::storage::records as records_repo;
use crate::storage::{self, DbConn, StorageError};
use crate::sync::ledger::{self, LedgerError};
use crate::sync::version::{DocKind, SignedVersion, Version, VersionId};
use crate::sync::LocalNode;

/// Deadlines in working days, per benefit and deciding jurisdiction, on a calendar.
#[derive(Debug, Clone)]
pub struct Deadlines {
    pub calendar: WorkCalendar,
    per_benefit: BTreeMap<String, u32>,
    /// Longest prefix wins.
    jurisdictions: BTreeMap<String, BTreeMap<String, u32>>,
    pub due_soon_days: u32,
}

impl Deadlines {
    /// Deadlines on `calendar`: `per_benefit` working days per benefit code, overridden per
    /// deciding-region prefix by `jurisdictions` (longest prefix wins); `due_soon_days` or fewer
    /// left is "due soon". Built from the settings by `config`.
    pub fn new(
        calendar: WorkCalendar,
        per_benefit: BTreeMap<String, u32>,
        jurisdictions: BTreeMap<String, BTreeMap<String, u32>>,
        due_soon_days: u32,
    ) -> Self {
        Self {
            calendar,
            per_benefit,
            jurisdictions,
            due_soon_days,
        }
    }

    /// Working days to decide `benefit` in `region`.
    pub fn days(&self, benefit: Benefit, region: &RegionCode) -> u32 {
        self.jurisdictions
            .iter()
            .filter(|(p, _)| region.as_str().starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
            .and_then(|(_, m)| m.get(benefit.code()).copied())
            .or_else(|| self.per_benefit.get(benefit.code()).copied())
            .unwrap_or(30)
    }

    /// The day a case's deadline is counted from: its submission date in China.
    pub fn start_of(body: &CaseBody) -> NaiveDate {
        body.submitted_at()
            .map_or_else(|| ledger::china_today(Utc::now()), ledger::china_today)
    }

    pub fn due_on(&self, body: &CaseBody) -> NaiveDate {
        self.calendar.add_working_days(
            Self::start_of(body),
            self.days(body.benefit, &body.deciding_region),
        )
    }

    /// Whether a deadline counted from `start` (the submission date) to `due` rests on a year
    /// without a published calendar (its holidays computed by law, or weekends only).
    pub fn provisional(&self, start: NaiveDate, due: NaiveDate) -> bool {
        self.calendar.rests_on_unpublished(start, due)
    }

    /// A stable digest of everything a due date depends on (the days off and make-up workdays,
    /// the published years, the working days per benefit and jurisdiction): a change between two
    /// starts means open cases' due dates are recomputed ([`refresh_due_dates`]).
    pub fn fingerprint(&self) -> i64 {
        let mut text = String::new();
        for d in self.calendar.holidays() {
            text.push_str(&format!("h{d};"));
        }
        for d in self.calendar.workdays() {
            text.push_str(&format!("w{d};"));
        }
        for y in self.calendar.published_years() {
            text.push_str(&format!("p{y};"));
        }
        for (b, n) in &self.per_benefit {
            text.push_str(&format!("b{b}={n};"));
        }
        for (prefix, m) in &self.jurisdictions {
            for (b, n) in m {
                text.push_str(&format!("j{prefix}:{b}={n};"));
            }
        }
        // FNV-1a: stable across builds and platforms (unlike the std hasher).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        (h >> 1) as i64
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("no case {0}")]
    NotFound(String),
    #[error("no file for the child here")]
    ChildNotFound,
    #[error("this node does not serve the child's residence region {0}: only the residence bureau may submit")]
    NotResidence(String),
    #[error("no node serves the child's hukou region {0}")]
    NoDecider(String),
    #[error("{0} does not serve the child's hukou region, so it cannot decide")]
    DeciderNotParty(String),
    // Transparent: a chained print (`{:#}`) would otherwise say the reason twice.
    #[error(transparent)]
    Step(#[from] StepError),
    /// Approving the case would have the child hold two benefits that exclude each other
    /// (`[eligibility] exclusive`, `precedence`); nothing is stored.
    #[error(transparent)]
    BenefitExcluded(#[from] Excluded),
    /// A submission or an answer names a file not stored at this node (upload it first:
    /// `POST /api/v1/evidence`); nothing is stored.
    #[error("no evidence file {sha256} is stored at this node: upload it first (POST /api/v1/evidence, or `hukou-sync case evidence add FILE`)")]
    EvidenceMissing { field: String, sha256: String },
    /// An approval or denial while files the case names are not present and verified here.
    #[error("{}", not_verified_reason(missing, mismatching))]
    EvidenceNotVerified {
        missing: Vec<String>,
        mismatching: Vec<String>,
    },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Why a decision waits for evidence, in words a reviewer can act on.
fn not_verified_reason(missing: &[String], mismatching: &[String]) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!(
            "evidence file(s) {} have not arrived from the requesting bureau yet",
            missing.join(", ")
        ));
    }
    if !mismatching.is_empty() {
        parts.push(format!(
            "evidence file(s) {} arrived but do not match the SHA-256 the case names (kept out)",
            mismatching.join(", ")
        ));
    }
    parts.push(
        "a decision needs every named file present and verified here: wait for the files to \
         arrive (they are fetched again on a schedule and on reconciliation) or request \
         information (request_info)"
            .into(),
    );
    parts.join("; ")
}

impl From<StorageError> for CaseError {
    fn from(e: StorageError) -> Self {
        CaseError::Ledger(LedgerError::Storage(e))
    }
}
impl From<audit::AuditError> for CaseError {
    fn from(e: audit::AuditError) -> Self {
        CaseError::Ledger(LedgerError::Audit(e))
    }
}

/// A request to open a case.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCase {
    /// The child's ID number; the child's file must be on this node.
    pub child_id: String,
    pub benefit: Benefit,
    pub grounds: Grounds,
    pub officers: Officers,
    /// Normally omitted: the node serving the child's current hukou region decides.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub decider: Option<NodeId>,
}

/// A case as a reader sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CaseView {
    pub case: CaseBody,
    #[schema(value_type = Vec<String>)]
    pub heads: Vec<VersionId>,
    pub due_on: NaiveDate,
    /// The due date is counted across a year without a published holiday calendar (暂定): its
    /// holidays are the ones the law fixes, without the State Council's bridging and make-up
    /// workdays; it is recomputed when the year's calendar is configured.
    pub due_provisional: bool,
    #[schema(value_type = Option<Object>)]
    pub deadline: Option<DeadlineStatus>,
    /// Actions this node may take now.
    pub allowed_actions: Vec<String>,
    /// Every document the case names (grounds, then answers) with where its file stands here:
    /// a decision needs all of them `present`.
    pub evidence: Vec<super::evidence::EvidenceView>,
}

/// One row of a list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CaseSummary {
    pub case_id: String,
    pub child_id: String,
    pub benefit: String,
    pub requester: String,
    pub decider: String,
    pub state: String,
    pub submitted_at: DateTime<Utc>,
    pub due_on: NaiveDate,
    /// The due date rests on a year without a published holiday calendar (暂定).
    pub due_provisional: bool,
    #[schema(value_type = Option<Object>)]
    pub deadline: Option<DeadlineStatus>,
    /// Several heads: concurrent transitions merged by precedence.
    pub concurrent: bool,
}

fn version_of(
    node: &LocalNode,
    body: &CaseBody,
    parents: Vec<VersionId>,
) -> Result<SignedVersion, LedgerError> {
    let value = serde_json::to_value(body).map_err(|e| LedgerError::Internal(e.to_string()))?;
    Ok(node.sign_version(Version::new(
        DocKind::Case,
        body.case_id.to_string(),
        parents,
        node.id.clone(),
        node.clock.now(),
        value,
    ))?)
}

/// Loads a case's versions and merges its heads.
pub fn load(conn: &mut DbConn, case_id: &str) -> Result<(CaseBody, Vec<VersionId>), CaseError> {
    load_stamped(conn, case_id).map(|l| (l.body, l.heads))
}

/// A case as merged from its heads, with the latest stamp among them.
struct Loaded {
    body: CaseBody,
    heads: Vec<VersionId>,
    /// The latest HLC of the heads (none without heads): a version made on them is stamped
    /// after it.
    stamp: Option<Hlc>,
}

fn load_stamped(conn: &mut DbConn, case_id: &str) -> Result<Loaded, CaseError> {
    let heads = records_repo::head_versions(conn, "case", case_id)?;
    merge_loaded(case_id, &heads)
}

/// A case as merged from its stored `heads`.
fn merge_loaded(case_id: &str, heads: &[records_repo::StoredVersion]) -> Result<Loaded, CaseError> {
    if heads.is_empty() {
        return Err(CaseError::NotFound(case_id.to_owned()));
    }
    let mut list = Vec::new();
    let mut ids = Vec::new();
    for row in heads {
        let v = SignedVersion::from_stored(row).map_err(LedgerError::from)?;
        let body: CaseBody = serde_json::from_value(v.version.body.clone())
            .map_err(|e| LedgerError::Internal(e.to_string()))?;
        ids.push(v.id);
        list.push(Head {
            body,
            hlc: v.version.hlc.to_i64(),
            author: v.version.author_node.clone(),
        });
    }
    let merged = merge_heads(&list).ok_or_else(|| CaseError::NotFound(case_id.to_owned()))?;
    let stamp = list
        .iter()
        .map(|h| h.hlc)
        .max()
        .map(Hlc::from_i64)
        .transpose()
        .map_err(|e| LedgerError::Internal(format!("a stored stamp: {e}")))?;
    Ok(Loaded {
        body: merged,
        heads: ids,
        stamp,
    })
}

/// Rebuilds the view row of a case from its versions; returns the case as merged.
fn refresh_row(
    conn: &mut DbConn,
    deadlines: &Deadlines,
    case_id: &str,
    at: NaiveDateTime,
) -> Result<Loaded, CaseError> {
    let loaded = load_stamped(conn, case_id)?;
    write_row(conn, deadlines, case_id, &loaded, at)?;
    Ok(loaded)
}

/// Writes the view row of a case as `loaded` merged it (with the evidence it names).
fn write_row(
    conn: &mut DbConn,
    deadlines: &Deadlines,
    case_id: &str,
    loaded: &Loaded,
    at: NaiveDateTime,
) -> Result<(), CaseError> {
    write_rows(conn, deadlines, &[(case_id, loaded)], at)
}

/// Writes the view rows of cases as each was merged (with the evidence each names): one
/// statement for all the rows on PostgreSQL. Each case appears once.
fn write_rows(
    conn: &mut DbConn,
    deadlines: &Deadlines,
    cases: &[(&str, &Loaded)],
    at: NaiveDateTime,
) -> Result<(), CaseError> {
    let mut rows = Vec::with_capacity(cases.len());
    for (case_id, loaded) in cases {
        let (body, heads) = (&loaded.body, &loaded.heads);
        rows.push(CaseRow {
            case_id: (*case_id).to_owned(),
            child_id: body.child_id.to_string(),
            benefit: body.benefit.code().to_owned(),
            requester: body.requester.to_string(),
            decider: body.decider.to_string(),
            state: body.state.as_str().to_owned(),
            submitted_at: body.submitted_at().unwrap_or_else(Utc::now).naive_utc(),
            due_on: deadlines.due_on(body),
            head_count: heads.len() as i64,
            body: serde_json::to_string(&body)
                .map_err(|e| LedgerError::Internal(format!("serialising case {case_id}: {e}")))?,
            updated_at: at,
        });
    }
    repo::upsert_many(conn, &rows)?;
    for (case_id, loaded) in cases {
        let named = super::evidence::named_hashes(&loaded.body);
        crate::storage::evidence::name_for_case(conn, case_id, &named)?;
    }
    Ok(())
}

/// Stores a new case version through the one write path (version, heads, outbox for the other
/// party, audit event), then refreshes the case's view row; returns the case merged from its
/// heads after the store.
fn store(
    conn: &mut DbConn,
    node: &LocalNode,
    deadlines: &Deadlines,
    body: &CaseBody,
    v: &SignedVersion,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Loaded, CaseError> {
    let case_id = body.case_id.to_string();
    let event = event_of(body, v, actor)?;
    // The view row is refreshed before the audit event is appended: the append, last, holds
    // the log's lock for as little of the transaction as it can.
    let mut batch = crate::sync::store::Batch::new(node, now);
    batch.add(v, &parties_of(body));
    batch.flush(conn)?;
    let merged = if v.version.parents.is_empty() {
        // A new case (its id made here): the version is its only head.
        let loaded = Loaded {
            body: body.clone(),
            heads: vec![v.id],
            stamp: Some(v.version.hlc),
        };
        write_row(conn, deadlines, &case_id, &loaded, now.naive_utc())?;
        loaded
    } else {
        refresh_row(conn, deadlines, &case_id, now.naive_utc())?
    };
    batch.event(event);
    batch.finish(conn)?;
    Ok(merged)
}

/// The two parties of a case: its version goes to the one that is not this node.
fn parties_of(body: &CaseBody) -> BTreeSet<NodeId> {
    [body.requester.clone(), body.decider.clone()].into()
}

/// The audit event of storing case version `v` (of `body`): its action names the transition the
/// version makes, the last step of its history.
fn event_of(body: &CaseBody, v: &SignedVersion, actor: &Actor) -> Result<Event, CaseError> {
    let action = body
        .history
        .last()
        .map(|s| s.transition.kind().audit_action())
        .ok_or_else(|| LedgerError::Internal("a case version without a step".into()))?;
    Ok(Event::new(actor.clone(), action, Outcome::Ok)
        .object("case", &body.case_id.to_string())
        .details(serde_json::json!({"version": v.id, "child": body.child_id, "benefit": body.benefit, "state": body.state})))
}

/// Opens a case at the residence bureau.
pub fn create(
    conn: &mut DbConn,
    node: &LocalNode,
    deadlines: &Deadlines,
    new: NewCase,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<CaseView, CaseError> {
    let child_id = IdNumber::parse(&new.child_id).map_err(|e| {
        LedgerError::Invalid(crate::domain::FieldError::new("child_id", e.to_string()))
    })?;
    let case_id = uuid::Uuid::now_v7();
    let created = storage::transaction(conn, |conn| {
        ledger::check_scope_of(conn, actor, child_id.as_str(), true).map_err(|e| match e {
            LedgerError::NotFound(_) => CaseError::ChildNotFound,
            e => e.into(),
        })?;
        let child = records_repo::get_child(conn, child_id.as_str())?
            .ok_or(CaseError::ChildNotFound)?
            .record;
        if !node.serves(&child.residence_region) {
            return Err(CaseError::NotResidence(child.residence_region.to_string()));
        }
        let decider = node
            .node_for(&child.hukou_region)
            .ok_or_else(|| CaseError::NoDecider(child.hukou_region.to_string()))?;
        if let Some(d) = &new.decider {
            if d != &decider {
                return Err(CaseError::DeciderNotParty(d.to_string()));
            }
        }
        super::evidence::check_stored(conn, &new.grounds.evidence, "grounds.evidence")?;
        let officer = Some(new.officers.requester.as_str().to_owned());
        let body = CaseBody {
            case_id,
            child_id: child_id.clone(),
            benefit: new.benefit,
            requester: node.id.clone(),
            decider,
            requesting_region: child.residence_region.clone(),
            deciding_region: child.hukou_region.clone(),
            grounds: new.grounds,
            officers: new.officers,
            state: CaseState::Submitted,
            history: vec![],
        }
        .submit(node.id.clone(), now, officer)?;
        let v = version_of(node, &body, vec![])?;
        let stored = store(conn, node, deadlines, &body, &v, actor, now)?;
        // One node serving both sides receives at once, like a remote hukou node would.
        if body.decider != node.id {
            Ok(Some(stored))
        } else {
            step(
                conn,
                node,
                deadlines,
                &body.case_id.to_string(),
                Transition::Receive,
                None,
                Some(Party::Decider),
                actor,
                now,
                Some(stored),
            )?;
            Ok(None)
        }
    })?;
    node.wake_senders();
    match created {
        // The case as the transaction left it (no second read).
        Some(l) => view_of(conn, node, deadlines, l.body, l.heads),
        None => view(conn, node, deadlines, &case_id.to_string()),
    }
}

/// Makes one transition as this node.
#[allow(clippy::too_many_arguments)]
fn step(
    conn: &mut DbConn,
    node: &LocalNode,
    deadlines: &Deadlines,
    case_id: &str,
    transition: Transition,
    officer: Option<String>,
    as_party: Option<Party>,
    actor: &Actor,
    now: DateTime<Utc>,
    loaded: Option<Loaded>,
) -> Result<CaseBody, CaseError> {
    let Loaded {
        body: current,
        heads,
        stamp,
    } = match loaded {
        Some(loaded) => loaded,
        None => load_stamped(conn, case_id)?,
    };
    let next = next_body(node, &current, &transition, officer, as_party, now)?;
    match &transition {
        // An answer names only files stored here (they travel to the decider from here).
        Transition::ProvideInfo { evidence, .. } => {
            super::evidence::check_stored(conn, evidence, "transition.evidence")?;
        }
        // A decision is made on the files, not on their hashes.
        Transition::Approve { .. } | Transition::Deny { .. } => {
            let (missing, mismatching) = super::evidence::unverified(conn, &current)?;
            if !missing.is_empty() || !mismatching.is_empty() {
                return Err(CaseError::EvidenceNotVerified {
                    missing,
                    mismatching,
                });
            }
        }
        _ => {}
    }
    // An approval adds the benefit to the child's file, as a hukou-authored version: checked
    // against the benefits the child holds before anything is stored.
    let grant = match (&transition, next.state) {
        (
            Transition::Approve {
                effective_month,
                review_on,
                ..
            },
            CaseState::Approved,
        ) => match records_repo::get_child(conn, next.child_id.as_str())? {
            Some(row) => {
                let ends = node
                    .benefits
                    .check_grant(&row.record.held_benefits(), next.benefit)?;
                Some((row.record, *effective_month, *review_on, ends))
            }
            None => None,
        },
        _ => None,
    };
    let v = version_on(node, &next, heads, stamp)?;
    store(conn, node, deadlines, &next, &v, actor, now)?;
    if let Some((child, month, review_on, ends)) = grant {
        grant_benefit(
            conn,
            node,
            &next,
            child,
            (month, review_on),
            &ends,
            actor,
            now,
        )?;
    }
    Ok(next)
}

/// The case after `transition` made by this node on `current` (checked: this node is the party
/// the transition needs, and the step is legal).
fn next_body(
    node: &LocalNode,
    current: &CaseBody,
    transition: &Transition,
    officer: Option<String>,
    as_party: Option<Party>,
    now: DateTime<Utc>,
) -> Result<CaseBody, CaseError> {
    let wanted = as_party.or(Some(crate::domain::case::state::party_of(transition)));
    if current.party_of(&node.id, wanted).is_none() && current.party_of(&node.id, None).is_none() {
        return Err(CaseError::Step(StepError::NotParty(node.id.clone())));
    }
    let next = current.next(Step {
        transition: transition.clone(),
        by: node.id.clone(),
        at: now,
        officer,
    })?;
    check_step(Some(current), &next, &node.id)?;
    Ok(next)
}

/// The signed version of `next`, made on `heads` whose latest stamp is `stamp`: stamped after
/// them, though another process of the node may have stamped them ahead of this one's clock.
fn version_on(
    node: &LocalNode,
    next: &CaseBody,
    heads: Vec<VersionId>,
    stamp: Option<Hlc>,
) -> Result<SignedVersion, CaseError> {
    if let Some(stamp) = stamp {
        node.clock.raise(stamp);
    }
    Ok(version_of(node, next, heads)?)
}

/// Writes an approved benefit into the child's file: a new grant from `month` with the
/// approval's review date (a benefit held already keeps its grant), and the benefits it takes precedence over ended in the same month
/// (never before their start) with reason `changed`.
#[allow(clippy::too_many_arguments)]
fn grant_benefit(
    conn: &mut DbConn,
    node: &LocalNode,
    case: &CaseBody,
    mut child: ChildRecord,
    (month, review_on): (Month, Option<NaiveDate>),
    ends: &[Benefit],
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(), CaseError> {
    let note = Text::parse(&format!(
        "replaced by {} (case {})",
        case.benefit.label_zh(),
        case.case_id
    ))
    .ok();
    for b in ends {
        let since = child
            .benefits
            .iter()
            .filter(|g| g.benefit == *b && g.is_active())
            .find_map(|g| g.since);
        let end = BenefitEnd {
            month: since.map_or(month, |s| s.max(month)),
            reason: EndReason::Changed,
            note: note.clone(),
        };
        child
            .end_benefit(*b, end, "benefit")
            .map_err(LedgerError::from)?;
    }
    // An approved orphan allowance or unsupported-child subsidy is the recognition (认定).
    let recognised = case.benefit.recognises();
    if let Some(c) = recognised {
        child.categories.insert(c);
    }
    if !child.holds(case.benefit) {
        child.benefits.push(BenefitGrant {
            benefit: case.benefit,
            since: Some(month),
            review_on,
            ended: None,
        });
    }
    let mut patch = serde_json::Map::new();
    patch.insert(
        "benefits".into(),
        serde_json::to_value(&child.benefits).map_err(|e| LedgerError::Internal(e.to_string()))?,
    );
    if recognised.is_some() {
        patch.insert(
            "categories".into(),
            serde_json::to_value(&child.categories)
                .map_err(|e| LedgerError::Internal(e.to_string()))?,
        );
    }
    let (action, mut extra) = ("child.update", serde_json::Map::new());
    extra.insert("case".into(), serde_json::json!(case.case_id));
    extra.insert("granted".into(), serde_json::json!(case.benefit));
    let action = if ends.is_empty() {
        action
    } else {
        extra.insert("benefits".into(), serde_json::json!(ends));
        extra.insert("month".into(), serde_json::json!(month));
        extra.insert("reason".into(), serde_json::json!(EndReason::Changed));
        "benefit.end"
    };
    ledger::apply_update_as(conn, node, &case.child_id, patch, actor, now, action, extra)?;
    Ok(())
}

/// Makes a transition on behalf of a person or system at this node.
#[allow(clippy::too_many_arguments)]
pub fn transition(
    conn: &mut DbConn,
    node: &LocalNode,
    deadlines: &Deadlines,
    case_id: &str,
    t: Transition,
    officer: Option<String>,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<CaseView, CaseError> {
    storage::transaction(conn, |conn| {
        check_case_scope(conn, actor, case_id, true)?;
        step(
            conn, node, deadlines, case_id, t, officer, None, actor, now, None,
        )
    })?;
    node.wake_senders();
    view(conn, node, deadlines, case_id)
}

/// After versions of these cases arrived: refresh their views, and receive new requests this
/// node decides.
///
/// One transaction for the cases of a batch, written as a batch: every case's heads read in one
/// query; the receipts made (`received` versions) written together; the view rows in one
/// statement; the audit events appended last, in one hold of the log's lock. (Made one case at
/// a time, the lock was taken by the first case and held over every later case's statements.)
pub fn after_ingest(
    conn: &mut DbConn,
    node: &LocalNode,
    deadlines: &Deadlines,
    case_ids: &[String],
    now: DateTime<Utc>,
) -> Result<(), CaseError> {
    let mut seen = std::collections::HashSet::with_capacity(case_ids.len());
    let ids: Vec<String> = case_ids
        .iter()
        .filter(|id| seen.insert(id.as_str()))
        .cloned()
        .collect();
    let mut received = false;
    let mut wanted = false;
    storage::transaction(conn, |conn| {
        let mut heads = records_repo::head_versions_of(conn, "case", &ids)?;
        let actor = Actor::job("auto-receive");
        let mut batch = crate::sync::store::Batch::new(node, now);
        let mut merged: Vec<(&str, Loaded)> = Vec::with_capacity(ids.len());
        let mut stepped: Vec<String> = Vec::new();
        for id in &ids {
            let loaded = merge_loaded(id, &heads.remove(id.as_str()).unwrap_or_default())?;
            let body = &loaded.body;
            if body.decider == node.id
                && body.requester != node.id
                && !super::evidence::named(body).is_empty()
            {
                wanted = true;
            }
            if body.state != CaseState::Submitted || body.decider != node.id {
                merged.push((id, loaded));
                continue;
            }
            // Received at once: the step starts from the case as just merged.
            let next = next_body(
                node,
                body,
                &Transition::Receive,
                None,
                Some(Party::Decider),
                now,
            )?;
            let v = version_on(node, &next, loaded.heads, loaded.stamp)?;
            batch.add(&v, &parties_of(&next));
            batch.event(event_of(&next, &v, &actor)?);
            stepped.push(id.clone());
            received = true;
        }
        // The received cases' rows from their heads as stored now: another process of the node
        // may have added a head beside the one made here.
        batch.flush(conn)?;
        let mut after = records_repo::head_versions_of(conn, "case", &stepped)?;
        for id in &stepped {
            merged.push((
                id,
                merge_loaded(id, &after.remove(id.as_str()).unwrap_or_default())?,
            ));
        }
        let rows: Vec<(&str, &Loaded)> = merged.iter().map(|(id, l)| (*id, l)).collect();
        write_rows(conn, deadlines, &rows, now.naive_utc())?;
        batch.finish(conn)?;
        Ok::<_, CaseError>(())
    })?;
    if received {
        node.wake_senders();
    }
    if wanted {
        node.want_evidence();
    }
    Ok(())
}

/// Eligibility's reaction to received case versions, for the receive service
/// (`sync::receive`): [`after_ingest`].
pub struct Reactions {
    /// The deadlines new cases are received with.
    pub deadlines: std::sync::Arc<Deadlines>,
}

impl crate::sync::receive::CaseReactions for Reactions {
    fn after_ingest(
        &self,
        conn: &mut DbConn,
        node: &LocalNode,
        case_ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Ok(after_ingest(conn, node, &self.deadlines, case_ids, now)?)
    }
}

fn status(
    deadlines: &Deadlines,
    body: &CaseBody,
    due: NaiveDate,
    now: DateTime<Utc>,
) -> Option<DeadlineStatus> {
    (!body.state.is_terminal()).then(|| {
        deadline_status(
            &deadlines.calendar,
            due,
            ledger::china_today(now),
            deadlines.due_soon_days,
        )
    })
}

/// The case with its deadline and what this node may do next (no audit: callers decide).
pub fn view(
    conn: &mut DbConn,
    node: &LocalNode,
    deadlines: &Deadlines,
    case_id: &str,
) -> Result<CaseView, CaseError> {
    let (case, heads) = load(conn, case_id)?;
    view_of(conn, node, deadlines, case, heads)
}

/// [`view`] of a case already merged from its heads.
fn view_of(
    conn: &mut DbConn,
    node: &LocalNode,
    deadlines: &Deadlines,
    case: CaseBody,
    heads: Vec<VersionId>,
) -> Result<CaseView, CaseError> {
    let due_on = deadlines.due_on(&case);
    let due_provisional = deadlines.provisional(Deadlines::start_of(&case), due_on);
    let mut allowed = Vec::new();
    for party in [Party::Requester, Party::Decider] {
        if case.party_of(&node.id, Some(party)).is_some() {
            allowed.extend(
                crate::domain::case::state::allowed_actions(Some(case.state), party)
                    .iter()
                    .map(|k| k.as_str().to_owned()),
            );
        }
    }
    let evidence = super::evidence::statuses(conn, &case)?;
    Ok(CaseView {
        evidence,
        deadline: status(deadlines, &case, due_on, Utc::now()),
        allowed_actions: allowed,
        case,
        heads,
        due_on,
        due_provisional,
    })
}

/// Refuses a case whose child is outside the actor's scope: as absent for a read (404), 403
/// `outside_scope` for an action. A case whose child's file this node does not hold is seen
/// only by accounts of the whole node.
fn check_case_scope(
    conn: &mut DbConn,
    actor: &Actor,
    case_id: &str,
    write: bool,
) -> Result<(), CaseError> {
    if actor.scope.is_whole_node() {
        return Ok(());
    }
    let case = repo::get(conn, case_id)?.ok_or_else(|| CaseError::NotFound(case_id.to_owned()))?;
    ledger::check_scope_of(conn, actor, case.child_id.as_str(), write).map_err(|e| match e {
        LedgerError::NotFound(_) => CaseError::NotFound(case_id.to_owned()),
        e => e.into(),
    })
}

/// Reads a case (it names a child and its grounds) and audits the read.
pub fn read(
    conn: &mut DbConn,
    node: &LocalNode,
    deadlines: &Deadlines,
    case_id: &str,
    actor: &Actor,
    purpose: Option<&str>,
    now: DateTime<Utc>,
) -> Result<CaseView, CaseError> {
    storage::transaction(conn, |conn| {
        check_case_scope(conn, actor, case_id, false)?;
        let v = view(conn, node, deadlines, case_id)?;
        audit::append(
            conn,
            node.clock.now(),
            now,
            &Event::new(actor.clone(), "case.read", Outcome::Ok)
                .object("case", case_id)
                .purpose(purpose),
        )?;
        Ok(v)
    })
}

/// Which cases to list.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CaseQuery {
    /// `incoming` (this node decides) or `outgoing` (this node asked); both when `None`.
    pub incoming: Option<bool>,
    pub state: Option<CaseState>,
    pub benefit: Option<Benefit>,
    pub overdue_only: bool,
    /// Keyset paging: the `next_after` of the previous page.
    pub after: Option<String>,
    pub limit: i64,
    /// Only cases of children within this scope (the caller's).
    #[serde(skip)]
    pub scope: crate::domain::Scope,
}

/// Lists cases for a person or a local system and audits the read (`case.list`, with the cases
/// returned): a case says which child asked for which benefit.
pub fn list_for(
    conn: &mut DbConn,
    node: &LocalNode,
    deadlines: &Deadlines,
    q: &CaseQuery,
    actor: &Actor,
    purpose: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<CaseSummary>, CaseError> {
    let q = &CaseQuery {
        scope: actor.scope.clone(),
        ..q.clone()
    };
    storage::transaction(conn, |conn| {
        let cases = list(conn, node, deadlines, q, now)?;
        let returned: Vec<&str> = cases.iter().map(|c| c.case_id.as_str()).collect();
        audit::append(
            conn,
            node.clock.now(),
            now,
            &Event::new(actor.clone(), "case.list", Outcome::Ok)
                .purpose(purpose)
                .details(serde_json::json!({ "returned": returned, "query": q })),
        )?;
        Ok(cases)
    })
}

/// Lists cases without auditing: for the node's own jobs (deadline metrics, the sender's
/// overdue scan). Reads on behalf of a person go through [`list_for`].
pub fn list(
    conn: &mut DbConn,
    node: &LocalNode,
    deadlines: &Deadlines,
    q: &CaseQuery,
    now: DateTime<Utc>,
) -> Result<Vec<CaseSummary>, CaseError> {
    let me = &node.id;
    let filter = CaseFilter {
        requester: (q.incoming == Some(false)).then(|| me.clone()),
        decider: (q.incoming == Some(true)).then(|| me.clone()),
        state: q.state,
        benefit: q.benefit,
        due_before: q.overdue_only.then(|| ledger::china_today(now)),
        party: Some(me.clone()),
        after: q.after.clone(),
        limit: q.limit,
        scope: q.scope.clone(),
    };
    let rows = repo::list(conn, &filter)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let open = !r.state.is_terminal();
            CaseSummary {
                deadline: open.then(|| {
                    deadline_status(
                        &deadlines.calendar,
                        r.due_on,
                        ledger::china_today(now),
                        deadlines.due_soon_days,
                    )
                }),
                concurrent: r.head_count > 1,
                case_id: r.case_id.to_string(),
                child_id: r.child_id.to_string(),
                benefit: r.benefit.code().to_owned(),
                requester: r.requester.to_string(),
                decider: r.decider.to_string(),
                state: r.state.as_str().to_owned(),
                due_provisional: deadlines
                    .provisional(ledger::china_today(r.submitted_at), r.due_on),
                submitted_at: r.submitted_at,
                due_on: r.due_on,
            }
        })
        .collect())
}

/// Recomputes the stored due date of every open case when what due dates depend on changed
/// since the last run ([`Deadlines::fingerprint`], kept in `recon_meta` like the visit
/// schedule's): e.g. an administrator configured the published calendar of a year that was
/// computed. Decided and withdrawn cases keep theirs. Returns the number of open cases whose
/// due date moved, `None` when nothing changed.
pub fn refresh_due_dates(
    conn: &mut DbConn,
    deadlines: &Deadlines,
) -> Result<Option<usize>, CaseError> {
    const KEY: &str = "case_deadlines";
    let fingerprint = deadlines.fingerprint();
    if storage::reconcile::meta(conn, KEY)? == Some(fingerprint) {
        return Ok(None);
    }
    let moved = storage::transaction(conn, |conn| -> Result<usize, CaseError> {
        let mut moved = 0;
        for (case_id, body) in repo::open_bodies(conn)? {
            let body: CaseBody = serde_json::from_str(&body).map_err(|e| {
                StorageError::corrupt("cases", format!("case {case_id}: body: {e}"))
            })?;
            if repo::set_due(conn, &case_id, deadlines.due_on(&body))? {
                moved += 1;
            }
        }
        storage::reconcile::set_meta(conn, KEY, fingerprint)?;
        Ok(moved)
    })?;
    Ok(Some(moved))
}

#[cfg(test)]
mod tests {
    use super::CaseError;
    use crate::domain::case::state::TransitionError;
    use crate::domain::case::StepError;

    /// A refusal printed with its cause chain (as the CLI prints errors) says its reason once.
    #[test]
    fn a_chained_refusal_says_its_reason_once() {
        let e = anyhow::Error::from(CaseError::Step(StepError::Transition(
            TransitionError::MissingReason,
        )));
        assert_eq!(format!("{e:#}"), "a denial needs a reason text");
        let e = anyhow::Error::from(crate::sync::LedgerError::Invalid(
            crate::domain::FieldError::new("name", "must not be empty"),
        ));
        let text = format!("{e:#}");
        assert_eq!(text.matches("must not be empty").count(), 1, "{text}");
    }
}
