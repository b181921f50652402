//! Visits (走访) as a service (issue 21 #1, #2): record a visit of a child served here, amend it
//! (only the node that recorded it), read and list a child's visits (audited as reads of the
//! child's data), and the due list — whose next visit is due by a day, per region, township and
//! responsible worker. A visit is a document of its own, signed and exchanged to the child's
//! bureaus like any version (`sync::visit`). Where this node is the child's residence bureau, a
//! visit also updates the file the residence side keeps, in the same transaction: the last visit
//! day and, from the latest visit that assessed risk, the risk level — so the file shows the last
//! visit and the current risk, and its due date follows.

pub mod reports;

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::{Actor, Event, Outcome};
use crate::domain::child::{PersonName, Text};
use crate::domain::visit::{
    Area, Assessment, Findings, Indicator, Seen, VisitBody, VisitKind, Visitor,
};
use crate::domain::{IdNumber, NodeId, RiskLevel};
use crate::storage::records as records_repo;
use crate::storage::visits::{self as repo, DueFilter, VisitRow};
use crate::storage::{self, DbConn, StorageError};
use crate::sync::ledger::{self, china_today, LedgerError};
use crate::sync::store::Batch;
use crate::sync::version::{SignedVersion, Version, VersionId};
use crate::sync::visit::{self as sync_visit, ChildDoc};
use crate::sync::LocalNode;

/// Rows a list or the due list returns at most per page.
pub const MAX_PAGE: i64 = 500;

/// Errors of the visits service.
#[derive(Debug, thiserror::Error)]
pub enum VisitError {
    #[error("no visit {0}")]
    NotFound(String),
    #[error("no file for the child here")]
    ChildNotFound,
    #[error("visit {0} was recorded by {1}; only that node may amend it")]
    NotAuthor(String, NodeId),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl From<StorageError> for VisitError {
    fn from(e: StorageError) -> Self {
        VisitError::Ledger(LedgerError::Storage(e))
    }
}
impl From<crate::audit::AuditError> for VisitError {
    fn from(e: crate::audit::AuditError) -> Self {
        VisitError::Ledger(LedgerError::Audit(e))
    }
}

/// One graded area as written: the grade is a level 1–4 or this node's label for it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IndicatorInput {
    /// 1 (most severe) to 4, or the local label (e.g. 红).
    pub grade: GradeInput,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 200)]
    pub note: Option<Text<200>>,
}

/// A grade as a number or a local label.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum GradeInput {
    Number(u8),
    Label(String),
}

// Written by hand: an integer 1–4 or a label, which the derive cannot say of an untagged enum.
impl utoipa::PartialSchema for GradeInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(4)),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(16)),
            )
            .description(Some(
                "A risk level on the common scale: 1 (most severe) to 4, or this node's label for it (e.g. 红)",
            ))
            .into()
    }
}
impl utoipa::ToSchema for GradeInput {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("RiskGrade")
    }
}

impl GradeInput {
    fn level(&self, node: &LocalNode, field: &str) -> Result<RiskLevel, LedgerError> {
        let bad = |e: crate::domain::RiskError| {
            LedgerError::Invalid(crate::domain::FieldError::new(field, e.to_string()))
        };
        match self {
            GradeInput::Number(n) => RiskLevel::new(*n).map_err(bad),
            GradeInput::Label(l) => node.palette.level_of(l).map_err(bad),
        }
    }
}

/// An assessment as written; `level` defaults to the most severe indicator.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssessmentInput {
    /// Graded areas: `guardianship`, `living`, `psychological`, `safety` (at least one).
    #[schema(value_type = Object)]
    pub indicators: std::collections::BTreeMap<Area, IndicatorInput>,
    #[schema(value_type = String, max_length = 50)]
    pub assessor: PersonName,
    /// The resulting level (1–4 or the local label); by default the most severe grade.
    #[serde(default)]
    pub level: Option<GradeInput>,
}

/// A visit as a caseworker writes it (`POST /api/v1/children/{id}/visits`, `visit add`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitInput {
    pub visited_on: NaiveDate,
    pub visitor: Visitor,
    pub kind: VisitKind,
    /// Whom the visitor saw (at least one, each once): `child`, `guardian`, `caregiver`,
    /// `teacher`, `village_cadre`, `other`.
    #[schema(min_items = 1)]
    pub seen: Vec<Seen>,
    #[serde(default)]
    pub findings: Findings,
    #[serde(default)]
    pub assessment: Option<AssessmentInput>,
    #[serde(default)]
    #[schema(value_type = Vec<String>, max_items = 10)]
    pub follow_up: Vec<Text<200>>,
    #[serde(default)]
    pub next_due_on: Option<NaiveDate>,
}

impl VisitInput {
    /// The visit body this input makes for `child` at this node, checked against today.
    fn body(
        self,
        node: &LocalNode,
        visit_id: uuid::Uuid,
        child: &IdNumber,
        today: NaiveDate,
    ) -> Result<VisitBody, LedgerError> {
        let assessment = match self.assessment {
            None => None,
            Some(a) => {
                let mut indicators = std::collections::BTreeMap::new();
                for (area, i) in a.indicators {
                    let field = format!("assessment.indicators.{}.grade", area.code());
                    indicators.insert(
                        area,
                        Indicator {
                            grade: i.grade.level(node, &field)?,
                            note: i.note,
                        },
                    );
                }
                let worst = indicators.values().map(|i| i.grade).min();
                let level = match (&a.level, worst) {
                    (Some(l), _) => l.level(node, "assessment.level")?,
                    (None, Some(w)) => w,
                    (None, None) => {
                        return Err(LedgerError::Invalid(crate::domain::FieldError::new(
                            "assessment.indicators",
                            "an assessment grades at least one area (guardianship, living, psychological, safety)",
                        )))
                    }
                };
                Some(Assessment {
                    indicators,
                    assessor: a.assessor,
                    level,
                })
            }
        };
        let seen: BTreeSet<Seen> = self.seen.iter().copied().collect();
        if seen.len() != self.seen.len() {
            return Err(LedgerError::Invalid(crate::domain::FieldError::new(
                "seen",
                "names someone twice",
            )));
        }
        let body = VisitBody {
            visit_id,
            child_id: child.clone(),
            recorded_by: node.id.clone(),
            visited_on: self.visited_on,
            visitor: self.visitor,
            kind: self.kind,
            seen,
            findings: self.findings,
            assessment,
            follow_up: self.follow_up,
            next_due_on: self.next_due_on,
        };
        body.check(today)?;
        Ok(body)
    }
}

/// A visit as a reader sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VisitView {
    pub visit: VisitBody,
    /// The assessment's level by this node's palette (e.g. 红), when the visit assessed risk.
    pub risk_label: Option<String>,
    /// The version shown (the author's latest).
    #[schema(value_type = String)]
    pub version: VersionId,
    pub recorded_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Whether recording it updated the child's file here (last visit, risk): only at the
    /// child's residence bureau, and not while those fields are under review.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_updated: Option<bool>,
}

/// A page of a child's visits, latest first; pass `next_after` as `after` for the next page.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VisitPage {
    pub items: Vec<VisitView>,
    pub next_after: Option<String>,
}

/// One file on the due list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DueVisit {
    pub id_number: String,
    pub name: String,
    pub residence_region: String,
    pub residence_township: Option<String>,
    pub responsible_worker: Option<String>,
    pub categories: Vec<String>,
    /// The file's risk level on the common scale (1 most severe … 4).
    #[schema(minimum = 1, maximum = 4)]
    pub risk_level: Option<u8>,
    /// Its name in this node's palette (e.g. 红).
    pub risk_label: Option<String>,
    pub last_visit_on: Option<NaiveDate>,
    pub due_on: NaiveDate,
    /// Days past due (0: due today or later).
    pub overdue_days: i64,
}

/// A page of the due list, earliest due first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DuePage {
    /// Due on or before this day.
    pub due_by: NaiveDate,
    pub items: Vec<DueVisit>,
    pub next_after: Option<String>,
}

fn view_of(node: &LocalNode, row: VisitRow) -> Result<VisitView, VisitError> {
    let bad = |what: &str| {
        VisitError::Ledger(LedgerError::Storage(StorageError::corrupt(
            "visits",
            format!("visit {}: {what}", row.visit_id),
        )))
    };
    let visit: VisitBody = serde_json::from_str(&row.body).map_err(|_| bad("body"))?;
    let version: VersionId = row.head.parse().map_err(|_| bad("head"))?;
    Ok(VisitView {
        risk_label: visit
            .assessment
            .as_ref()
            .map(|a| node.palette.label(a.level).to_owned()),
        visit,
        version,
        recorded_at: row.recorded_at.and_utc(),
        updated_at: row.updated_at.and_utc(),
        file_updated: None,
    })
}

/// Records a visit of a child whose file this node holds and serves.
pub fn record(
    conn: &mut DbConn,
    node: &LocalNode,
    child: &IdNumber,
    input: VisitInput,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<VisitView, VisitError> {
    let today = china_today(now);
    let body = input.body(node, uuid::Uuid::now_v7(), child, today)?;
    let out = storage::transaction(conn, |conn| {
        record_in(conn, node, &body, "visit.create", actor, now)
    })?;
    node.wake_senders();
    tracing::info!(child = %child.masked(), version = %out.0.id.short(), "visit recorded");
    let row = repo::get(conn, &body.visit_id.to_string())?
        .ok_or_else(|| VisitError::NotFound(body.visit_id.to_string()))?;
    let mut view = view_of(node, row)?;
    view.file_updated = Some(out.1);
    Ok(view)
}

/// Records a checked visit inside the caller's transaction (see [`store_doc`]). Returns the
/// version and whether the file followed.
fn record_in(
    conn: &mut DbConn,
    node: &LocalNode,
    body: &VisitBody,
    action: &'static str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(SignedVersion, bool), VisitError> {
    store_doc(
        conn,
        node,
        body,
        Vec::new(),
        action,
        visit_details(body),
        actor,
        now,
    )
}

/// What a visit's audit event says besides its version and child.
fn visit_details(body: &VisitBody) -> serde_json::Value {
    serde_json::json!({
        "visited_on": body.visited_on,
        "risk_level": body.assessment.as_ref().map(|a| a.level),
    })
}

/// Stores a version of a child document (a visit or a report) made here, inside the caller's
/// transaction: refused unless this node is a party of the child; then the signed version, its
/// heads, the outbox rows for the child's other bureaus, the view row and the audit event
/// (`details` with the version and the masked child added); and at the residence bureau the
/// file brought in line ([`update_file`]). Returns the version and whether the file followed.
#[allow(clippy::too_many_arguments)]
pub(crate) fn store_doc<T: ChildDoc + Serialize>(
    conn: &mut DbConn,
    node: &LocalNode,
    body: &T,
    parents: Vec<VersionId>,
    action: &'static str,
    mut details: serde_json::Value,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(SignedVersion, bool), VisitError> {
    let child = body.child_id();
    ledger::check_scope_of(conn, actor, child.as_str(), true)?;
    let parties = sync_visit::parties_of_child(conn, node, child.as_str(), &[])?
        .ok_or(VisitError::ChildNotFound)?;
    if !parties.contains(&node.id) {
        let c = records_repo::get_child(conn, child.as_str())?.ok_or(VisitError::ChildNotFound)?;
        return Err(VisitError::Ledger(LedgerError::NotParty {
            hukou: c.hukou_region.to_string(),
            residence: c.residence_region.to_string(),
        }));
    }
    let value = serde_json::to_value(body).map_err(|e| LedgerError::Internal(e.to_string()))?;
    crate::sync::store::raise_clock(conn, node, &parents)?;
    let v = node
        .sign_version(Version::new(
            T::KIND,
            body.doc_id(),
            parents,
            node.id.clone(),
            node.clock.now(),
            value,
        ))
        .map_err(LedgerError::from)?;
    let mut batch = Batch::new(node, now);
    batch.add(&v, &parties);
    batch.flush(conn)?;
    sync_visit::put_row(conn, &v, body, batch.at(), &Default::default())?;
    details["version"] = serde_json::json!(v.id);
    details["child"] = serde_json::json!(child.masked());
    batch.event(
        Event::new(actor.clone(), action, Outcome::Ok)
            .object(T::KIND.as_str(), &body.doc_id())
            .details(details),
    );
    batch.finish(conn)?;
    let updated = update_file(conn, node, child, actor, now)?;
    Ok((v, updated))
}

/// Imports a visit ledger: every row is checked first (its line named on error); then all are
/// recorded in one transaction, as visits made by this node's people (`visit.import` events) —
/// all or nothing. Returns how many were recorded.
pub fn import(
    conn: &mut DbConn,
    node: &LocalNode,
    rows: Vec<(usize, IdNumber, VisitInput)>,
    actor: &Actor,
    now: DateTime<Utc>,
    progress: &mut dyn FnMut(usize),
) -> Result<usize, ImportError> {
    let today = china_today(now);
    let mut bodies = Vec::with_capacity(rows.len());
    for (line, child, input) in rows {
        let body = input
            .body(node, uuid::Uuid::now_v7(), &child, today)
            .map_err(|e| ImportError {
                line: Some(line),
                error: e.into(),
            })?;
        bodies.push((line, body));
    }
    let n = bodies.len();
    storage::transaction(conn, |conn| {
        for (i, (line, body)) in bodies.iter().enumerate() {
            record_in(conn, node, body, "visit.import", actor, now).map_err(|error| {
                ImportError {
                    line: Some(*line),
                    error,
                }
            })?;
            progress(i + 1);
        }
        Ok::<(), ImportError>(())
    })?;
    node.wake_senders();
    Ok(n)
}

/// Why a visit ledger was not imported: the line at fault (none for a database failure).
#[derive(Debug, thiserror::Error)]
#[error("{}{error}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct ImportError {
    pub line: Option<usize>,
    pub error: VisitError,
}

impl From<StorageError> for ImportError {
    fn from(e: StorageError) -> Self {
        ImportError {
            line: None,
            error: e.into(),
        }
    }
}

/// Amends a visit this node recorded: a new version on top of the one shown, replacing the
/// whole visit (its id, child and node stay).
pub fn amend(
    conn: &mut DbConn,
    node: &LocalNode,
    visit_id: &uuid::Uuid,
    input: VisitInput,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<VisitView, VisitError> {
    let today = china_today(now);
    let id = visit_id.to_string();
    let updated = storage::transaction(conn, |conn| {
        let row = repo::get(conn, &id)?.ok_or_else(|| VisitError::NotFound(id.clone()))?;
        let before = view_of(node, row)?;
        if before.visit.recorded_by != node.id {
            return Err(VisitError::NotAuthor(id.clone(), before.visit.recorded_by));
        }
        let child = before.visit.child_id.clone();
        let body = input.body(node, *visit_id, &child, today)?;
        if body == before.visit {
            return Ok(false);
        }
        let details = visit_details(&body);
        let (_, updated) = store_doc(
            conn,
            node,
            &body,
            vec![before.version],
            "visit.amend",
            details,
            actor,
            now,
        )?;
        Ok(updated)
    })?;
    node.wake_senders();
    let row = repo::get(conn, &id)?.ok_or_else(|| VisitError::NotFound(id.clone()))?;
    let mut view = view_of(node, row)?;
    view.file_updated = Some(updated);
    Ok(view)
}

/// At the child's residence bureau: the file's last visit day and risk level from its visits
/// and reports stored here (the last visit day only moves forward; the risk is the level of the
/// latest visit that assessed risk — or red, 1, while an urgent report is later than it). Returns whether the file changed or already agreed; `false` when this
/// node is not the residence bureau or a field is under review (the visit stands).
pub(crate) fn update_file(
    conn: &mut DbConn,
    node: &LocalNode,
    child: &IdNumber,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<bool, VisitError> {
    let Some(file) = records_repo::get_child(conn, child.as_str())? else {
        return Ok(false);
    };
    if !node.serves(&file.residence_region) {
        return Ok(false);
    }
    let visits = repo::of_child(conn, child.as_str(), None, MAX_PAGE)?;
    let mut patch = serde_json::Map::new();
    if let Some(latest) = visits.iter().map(|v| v.visited_on).max() {
        if file.record.last_visit_on.map_or(true, |d| d < latest) {
            patch.insert("last_visit_on".into(), serde_json::json!(latest));
        }
    }
    // `of_child` is latest first: the first with a level is the latest assessment. An urgent
    // report after it (or with none) makes the risk red until a visit assesses the child.
    let assessed = visits.iter().find_map(|v| {
        v.risk_level
            .as_deref()
            .and_then(|l| l.parse::<u8>().ok())
            .and_then(|l| RiskLevel::new(l).ok())
            .map(|l| (v.visited_on, l))
    });
    let urgent = crate::storage::reports::latest_urgent(conn, child.as_str())?;
    let level = match (assessed, urgent) {
        (Some((on, _)), Some(reported)) if reported > on => Some(RiskLevel::MOST_SEVERE),
        (None, Some(_)) => Some(RiskLevel::MOST_SEVERE),
        (Some((_, level)), _) => Some(level),
        (None, None) => None,
    };
    if let Some(level) = level {
        patch.insert("risk_level".into(), serde_json::json!(level.get()));
    }
    match ledger::apply_update(conn, node, child, patch, actor, now) {
        Ok(_) => Ok(true),
        Err(LedgerError::UnderReview(field)) => {
            tracing::warn!(child = %child.masked(), field, "visit recorded; the file's field is under review, not updated");
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads one visit; the read is audited (a visit is the child's data).
pub fn read(
    conn: &mut DbConn,
    node: &LocalNode,
    visit_id: &uuid::Uuid,
    actor: &Actor,
    purpose: Option<&str>,
    now: DateTime<Utc>,
) -> Result<VisitView, VisitError> {
    let id = visit_id.to_string();
    storage::transaction(conn, |conn| {
        let row = repo::get(conn, &id)?.ok_or_else(|| VisitError::NotFound(id.clone()))?;
        if ledger::check_scope_of(conn, actor, &row.child_id, false).is_err() {
            return Err(VisitError::NotFound(id.clone()));
        }
        let view = view_of(node, row)?;
        let e = Event::new(actor.clone(), "visit.read", Outcome::Ok)
            .object("visit", &id)
            .purpose(purpose);
        crate::audit::append(conn, node.clock.now(), now, &e)?;
        Ok(view)
    })
}

/// A child's visits, latest first; the read is audited. `after` is a page's `next_after`
/// (`YYYY-MM-DD/visit-id`).
#[allow(clippy::too_many_arguments)]
pub fn list(
    conn: &mut DbConn,
    node: &LocalNode,
    child: &IdNumber,
    after: Option<(NaiveDate, String)>,
    limit: i64,
    actor: &Actor,
    purpose: Option<&str>,
    now: DateTime<Utc>,
) -> Result<VisitPage, VisitError> {
    storage::transaction(conn, |conn| {
        records_repo::child_created_at(conn, child.as_str())?.ok_or(VisitError::ChildNotFound)?;
        if ledger::check_scope_of(conn, actor, child.as_str(), false).is_err() {
            return Err(VisitError::ChildNotFound);
        }
        let rows = repo::of_child(conn, child.as_str(), after, limit.clamp(1, MAX_PAGE) + 1)?;
        let more = rows.len() as i64 > limit.clamp(1, MAX_PAGE);
        let mut items = rows
            .into_iter()
            .take(limit.clamp(1, MAX_PAGE) as usize)
            .map(|r| view_of(node, r))
            .collect::<Result<Vec<_>, _>>()?;
        items.iter_mut().for_each(|v| v.file_updated = None);
        let next_after = more
            .then(|| {
                items
                    .last()
                    .map(|v| format!("{}/{}", v.visit.visited_on, v.visit.visit_id))
            })
            .flatten();
        let e = Event::new(actor.clone(), "visit.list", Outcome::Ok)
            .object("child", child.as_str())
            .purpose(purpose)
            .details(serde_json::json!({"visits": items.len()}));
        crate::audit::append(conn, node.clock.now(), now, &e)?;
        Ok(VisitPage { items, next_after })
    })
}

/// Parses a page cursor of [`list`]: `YYYY-MM-DD/uuid`.
pub fn parse_list_cursor(s: &str) -> Option<(NaiveDate, String)> {
    let (d, id) = s.split_once('/')?;
    let day = d.parse::<NaiveDate>().ok()?;
    let id = uuid::Uuid::parse_str(id).ok()?;
    Some((day, id.to_string()))
}

/// What a due list asks, as typed (the API's query, the CLI's options).
#[derive(Debug, Clone, Default)]
pub struct DueQuery<'a> {
    pub within_days: u32,
    pub overdue: bool,
    pub region: Option<&'a str>,
    pub township: Option<&'a str>,
    pub worker: Option<&'a str>,
    pub after: Option<&'a str>,
    pub limit: i64,
}

impl DueQuery<'_> {
    /// The storage filter for `today`, or the parameter at fault and why.
    pub fn filter(&self, today: NaiveDate) -> Result<DueFilter, (&'static str, String)> {
        let residence_prefix = self
            .region
            .map(|r| match crate::domain::RegionPrefix::parse(r) {
                Ok(p) if !p.as_str().is_empty() => Ok(p.as_str().to_owned()),
                _ => Err(("region", "a region prefix is 2, 4 or 6 digits".to_owned())),
            })
            .transpose()?;
        let township = self
            .township
            .map(|t| {
                crate::domain::division::TownshipCode::parse(t)
                    .map(|t| t.to_string())
                    .map_err(|e| ("township", e.to_string()))
            })
            .transpose()?;
        let worker = self
            .worker
            .map(|w| {
                PersonName::parse(w)
                    .map(|w| w.as_str().to_owned())
                    .map_err(|e| ("worker", e))
            })
            .transpose()?;
        let after = self
            .after
            .map(|a| {
                parse_due_cursor(a).ok_or(("after", "after is YYYY-MM-DD/ID-number".to_owned()))
            })
            .transpose()?;
        let due_by = if self.overdue {
            today.pred_opt().unwrap_or(today)
        } else {
            today + chrono::Days::new(u64::from(self.within_days))
        };
        Ok(DueFilter {
            due_by,
            residence_prefix,
            township,
            worker,
            after,
            limit: self.limit,
            scope: Default::default(),
        })
    }
}

/// Parses a page cursor of [`due`]: `YYYY-MM-DD/ID-number`.
pub fn parse_due_cursor(s: &str) -> Option<(NaiveDate, String)> {
    let (d, id) = s.split_once('/')?;
    let day = d.parse::<NaiveDate>().ok()?;
    let id = IdNumber::parse(id).ok()?;
    Some((day, id.to_string()))
}

/// The due list: files this node serves as the residence bureau whose next visit is due by
/// `filter.due_by`, earliest first.
pub fn due(
    conn: &mut DbConn,
    node: &LocalNode,
    mut filter: DueFilter,
    today: NaiveDate,
    scope: &crate::domain::Scope,
) -> Result<DuePage, VisitError> {
    // Only children within the reader's account scope.
    filter.scope = scope.clone();
    let limit = filter.limit.clamp(1, MAX_PAGE);
    let mut items = Vec::new();
    let mut next_after = None;
    // Files of children who moved away stay in the view (read-only) but are not this node's
    // work: read on until a page is full.
    'pages: loop {
        filter.limit = limit + 1;
        let rows = repo::due(conn, &filter)?;
        let last_page = (rows.len() as i64) <= limit;
        for r in rows {
            filter.after = Some((r.visit_due_on, r.id_number.clone()));
            let served = crate::domain::RegionCode::parse(&r.residence_region)
                .map(|rc| node.serves(&rc))
                .unwrap_or(false);
            // Adults (18 by the ID number) leave the list (issue 22 #1).
            let adult = crate::domain::IdNumber::parse(&r.id_number)
                .is_ok_and(|id| crate::domain::benefit::is_adult(id.birth_date(), today));
            if !served || adult {
                continue;
            }
            if items.len() as i64 == limit {
                next_after = items
                    .last()
                    .map(|d: &DueVisit| format!("{}/{}", d.due_on, d.id_number));
                break 'pages;
            }
            let level = r
                .risk_level
                .as_deref()
                .and_then(|l| l.parse::<u8>().ok())
                .and_then(|l| RiskLevel::new(l).ok());
            items.push(DueVisit {
                overdue_days: (today - r.visit_due_on).num_days().max(0),
                id_number: r.id_number,
                name: r.name,
                residence_region: r.residence_region,
                residence_township: r.residence_township,
                responsible_worker: r.responsible_worker,
                categories: r
                    .categories
                    .split('|')
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect(),
                risk_level: level.map(RiskLevel::get),
                risk_label: level.map(|l| node.palette.label(l).to_owned()),
                last_visit_on: r.last_visit_on,
                due_on: r.visit_due_on,
            });
        }
        if last_page {
            break;
        }
    }
    Ok(DuePage {
        due_by: filter.due_by,
        items,
        next_after,
    })
}

/// Recomputes every file's due date when the schedule changed since the last start (its
/// fingerprint is kept in the database); returns how many files were rewritten.
pub fn refresh_due_dates(
    conn: &mut DbConn,
    node: &LocalNode,
    progress: &mut dyn FnMut(usize),
) -> Result<usize, VisitError> {
    const KEY: &str = "visit_schedule";
    let fingerprint = node.visits.fingerprint();
    if storage::reconcile::meta(conn, KEY)? == Some(fingerprint) {
        return Ok(0);
    }
    let mut after: Option<String> = None;
    let mut n = 0;
    loop {
        let ids = repo::child_ids_after(conn, after.as_deref(), 1000)?;
        let Some(last) = ids.last().cloned() else {
            break;
        };
        storage::transaction(conn, |conn| -> Result<(), VisitError> {
            for id in &ids {
                if let Some(file) = records_repo::get_child(conn, id)? {
                    let due = crate::sync::view::visit_due_on(
                        &file.record,
                        file.created_at.date_naive(),
                        &node.visits,
                    );
                    repo::set_due(conn, id, due)?;
                }
            }
            Ok(())
        })?;
        n += ids.len();
        progress(n);
        after = Some(last);
    }
    storage::reconcile::set_meta(conn, KEY, fingerprint)?;
    Ok(n)
}

/// A page of visits in id order for an export: each visit with whether this node still serves
/// its child (a moved child's visits are kept as of the move). `after` is the last id of the
/// previous page.
pub fn export_page(
    conn: &mut DbConn,
    node: &LocalNode,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<(VisitBody, bool)>, VisitError> {
    let rows = repo::page(conn, after, limit)?;
    let children: Vec<String> = rows.iter().map(|r| r.child_id.clone()).collect();
    let regions = storage::reconcile::child_regions(conn, &children)?;
    rows.into_iter()
        .map(|r| {
            let served = regions.get(&r.child_id).is_some_and(|(h, res)| {
                match (
                    crate::domain::RegionCode::parse(h),
                    crate::domain::RegionCode::parse(res),
                ) {
                    (Ok(h), Ok(res)) => node.roles(&h, &res).is_party(),
                    _ => false,
                }
            });
            let view = view_of(node, r)?;
            Ok((view.visit, served))
        })
        .collect()
}

/// The visits service's reaction to visits received from a peer (`sync::receive`): at the
/// child's residence bureau, the file's last visit and risk follow them as they follow a visit
/// recorded here (a visit the hukou bureau's caseworker made counts like one made here).
pub struct Reactions;

impl crate::sync::receive::FileReactions for Reactions {
    fn after_visits(
        &self,
        conn: &mut DbConn,
        node: &LocalNode,
        child_ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let actor = Actor {
            kind: crate::audit::ActorKind::System,
            id: format!("node:{}", node.id),
            via: crate::audit::Via::Job,
            scope: crate::domain::Scope::whole_node(),
        };
        for id in child_ids {
            let Ok(child) = IdNumber::parse(id) else {
                continue;
            };
            let changed =
                storage::transaction(conn, |c| update_file(c, node, &child, &actor, now))?;
            if changed {
                node.wake_senders();
            }
        }
        Ok(())
    }
}

/// Takes the files of children who are 18 today off the due list (the daily age-out run calls it).
pub fn clear_adults_due(conn: &mut DbConn, now: DateTime<Utc>) -> Result<usize, VisitError> {
    let today = china_today(now);
    let born_by = today
        .checked_sub_months(chrono::Months::new(12 * 18))
        .unwrap_or(NaiveDate::MIN);
    Ok(repo::clear_adults_due(conn, born_by)?)
}
