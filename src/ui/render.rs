//! The pages' view models (askama templates in `templates/`) and how values are shown: every
//! template field is text already formatted for people (a risk level by this node's label, `红 (1)`),
//! so templates stay free of logic.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use askama::Template;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::accounts::Principal;
use crate::domain::child::ChildField;
use crate::domain::Authority;

/// What the header of every page shows.
pub struct Nav {
    pub title: String,
    pub node: String,
    pub user: Option<String>,
    pub role: String,
    pub csrf: String,
    pub section: &'static str,
    /// The account's region scope as people read it (`全节点 (whole node)` when unlimited).
    pub scope: String,
}

impl Nav {
    pub fn new(node: &str, p: Option<&Principal>, title: &str, section: &'static str) -> Self {
        Self {
            title: title.to_owned(),
            node: node.to_owned(),
            user: p.map(|p| p.name.trim_start_matches("user:").to_owned()),
            role: p.map_or(String::new(), |p| {
                format!("{} ({})", p.role.label_zh(), p.role)
            }),
            csrf: p.and_then(|p| p.csrf.clone()).unwrap_or_default(),
            section,
            scope: p.map_or(String::new(), |p| scope_label(&p.scope)),
        }
    }
}

/// Who made a report, as a list shows it: the kind of reporter, then the name if given.
pub fn reporter_text(r: &crate::domain::report::Reporter) -> String {
    match &r.name {
        Some(n) => format!("{} {}", r.kind.label_zh(), n.as_str()),
        None => r.kind.label_zh().to_owned(),
    }
}

/// Whether the police were called, as a list shows it (blank when not).
pub fn police_text(called: bool) -> &'static str {
    if called {
        "已报警 (yes)"
    } else {
        ""
    }
}

/// Where a report was referred: the target, the name if given, and (`with_outcome`) its outcome.
pub fn referral_text(f: &crate::domain::report::Referral, with_outcome: bool) -> String {
    let mut out = f.target.label_zh().to_owned();
    if let Some(n) = &f.name {
        out.push(' ');
        out.push_str(n.as_str());
    }
    if let Some(o) = f.outcome.as_ref().filter(|_| with_outcome) {
        out.push('：');
        out.push_str(o.as_str());
    }
    out
}

/// A scope as people read it: each prefix with its name where the tables know it.
pub fn scope_label(scope: &crate::domain::Scope) -> String {
    if scope.is_whole_node() {
        return "全节点 (whole node)".to_owned();
    }
    scope
        .prefixes()
        .iter()
        .map(|p| {
            let code = p.as_str();
            let name = if p.is_township() {
                crate::domain::division::TownshipCode::parse(code)
                    .ok()
                    .map(|t| t.name().to_owned())
            } else {
                crate::domain::RegionCode::parse(&format!("{code:0<6}"))
                    .ok()
                    .map(|r| r.full_name())
            };
            match name {
                Some(n) => format!("{code} {n}"),
                None => code.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("、")
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub title: &'static str,
    pub message: String,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub nav: Nav,
    pub csrf: String,
    pub next: String,
    pub error: Option<String>,
}

pub struct QueueRowView {
    pub id_number: String,
    pub id_masked: String,
    pub name: String,
    pub field: String,
    pub field_label: &'static str,
    pub candidates: usize,
    pub regions: String,
    pub opened_at: String,
}

#[derive(Template)]
#[template(path = "queue.html")]
pub struct QueuePage {
    pub nav: Nav,
    pub rows: Vec<QueueRowView>,
    pub next: Option<String>,
    pub owned_total: i64,
    pub elsewhere_total: i64,
}

pub struct CandidateView {
    pub author: String,
    pub at: String,
    pub value: String,
}

pub struct FieldConflictView {
    pub field: String,
    pub label: &'static str,
    pub base: String,
    pub owner: String,
    /// This node reviews it: the form offers choices.
    pub mine: bool,
    pub candidates: Vec<CandidateView>,
}

#[derive(Template)]
#[template(path = "conflict.html")]
pub struct ConflictPage {
    pub nav: Nav,
    pub id_number: String,
    pub id_masked: String,
    pub name: String,
    /// Comma-separated heads the reviewer saw.
    pub heads: String,
    pub fields: Vec<FieldConflictView>,
    pub awaiting: Vec<String>,
    pub can_resolve: bool,
    pub notice: Option<String>,
    pub error: Option<String>,
}

pub struct FieldView {
    pub field: &'static str,
    pub label: &'static str,
    pub value: String,
    pub authority: &'static str,
}

pub struct HistoryView {
    pub id: String,
    pub author: String,
    pub at: String,
    pub changed: String,
    pub parents: String,
    pub resolution: bool,
}

#[derive(Template)]
#[template(path = "child.html")]
pub struct ChildPage {
    pub nav: Nav,
    pub id_number: String,
    pub id_masked: String,
    pub name: String,
    pub sex: String,
    pub birth_date: String,
    pub hukou_name: String,
    pub residence_name: String,
    pub updated_at: String,
    pub fields: Vec<FieldView>,
    pub history: Vec<HistoryView>,
    pub visits: Vec<VisitRowView>,
    pub reports: Vec<ReportRowView>,
    pub awaiting: Vec<String>,
    pub conflicts_here: usize,
    /// The forms this user may use here (edit, record a visit, open a case, end a benefit).
    pub forms: Vec<super::forms::FormView>,
    pub notice: Option<String>,
}

/// One visit on a child's page, values by their Chinese labels.
pub struct VisitRowView {
    pub on: String,
    pub kind: &'static str,
    pub visitor: String,
    pub seen: String,
    pub assessment: String,
    pub follow_up: String,
    pub next: String,
    pub node: String,
}

/// One report on a child's page.
pub struct ReportRowView {
    pub on: String,
    pub urgency: &'static str,
    pub urgent: bool,
    pub reporter: String,
    pub seen: String,
    pub police: &'static str,
    pub referral: String,
    pub node: String,
}

pub struct CaseRowView {
    pub case_id: String,
    pub child_id: String,
    pub child_masked: String,
    pub benefit: String,
    pub state: String,
    pub other: String,
    pub submitted_at: String,
    pub due_on: String,
    /// The due date rests on a year without a published holiday calendar: shown 暂定.
    pub due_provisional: bool,
    pub deadline: String,
    /// `overdue`, `due-soon` or empty.
    pub class: &'static str,
}

pub struct CaseSection {
    pub id: &'static str,
    pub title: &'static str,
    pub rows: Vec<CaseRowView>,
}

#[derive(Template)]
#[template(path = "cases.html")]
pub struct CasesPage {
    pub nav: Nav,
    pub sections: Vec<CaseSection>,
}

/// One document of a case on its page.
pub struct EvidenceRowView {
    pub doc_type: String,
    pub issuer: String,
    pub number: String,
    pub sha256: String,
    /// Chinese label, English in brackets.
    pub status: &'static str,
    pub present: bool,
    /// The file's type and size, when present.
    pub kind: String,
    /// `overdue` (mismatch), `due-soon` (missing) or empty.
    pub class: &'static str,
}

pub struct StepView {
    pub at: String,
    pub action: &'static str,
    pub by: String,
    pub officer: String,
}

#[derive(Template)]
#[template(path = "case.html")]
pub struct CasePage {
    pub nav: Nav,
    pub case_id: String,
    pub child_id: String,
    pub child_masked: String,
    pub benefit: String,
    pub state: String,
    pub requester: String,
    pub decider: String,
    pub due_on: String,
    pub summary: String,
    pub evidence: Vec<EvidenceRowView>,
    /// Some document is not present and verified here.
    pub blocked: bool,
    pub history: Vec<StepView>,
    /// The approved effective month, in Chinese form, once approved.
    pub effective: String,
    /// The actions this node may take now, one form each.
    pub forms: Vec<super::forms::FormView>,
    /// A refused action with no form here.
    pub error: Option<String>,
    pub notice: Option<String>,
}

pub struct PeerView {
    pub peer: String,
    pub endpoint: String,
    pub outbox: u64,
    pub lag: String,
    pub delivered: u64,
    pub rejected: u64,
    pub last_success: String,
    pub last_error: String,
    pub failing: bool,
    /// Sizes cosigned each way, `—` for never.
    pub cosigned: String,
    pub witnessed: String,
    /// Open evidence against the peer's log.
    pub inconsistent: u64,
}

#[derive(Template)]
#[template(path = "peers.html")]
pub struct PeersPage {
    pub nav: Nav,
    pub rows: Vec<PeerView>,
}

pub struct AuditRowView {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub outcome: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub nav: Nav,
    pub head: String,
    pub rows: Vec<AuditRowView>,
    pub older: Option<i64>,
}

#[derive(Template)]
#[template(path = "audit_event.html")]
pub struct AuditEventPage {
    pub nav: Nav,
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub purpose: String,
    pub outcome: String,
    pub details: String,
    pub leaf_hash: String,
    pub tree_size: u64,
    pub root: String,
    pub signed_at: String,
    pub public_key: String,
    pub path: Vec<String>,
}

pub struct RunRowView {
    pub id: String,
    pub started_at: String,
    pub peer: String,
    pub started_by: String,
    pub status: String,
    pub failed: bool,
    pub compared: String,
    pub to_peer: String,
    pub from_peer: String,
    pub conflicts: String,
    pub bytes: String,
    pub duration: String,
}

#[derive(Template)]
#[template(path = "reconcile.html")]
pub struct ReconcilePage {
    pub nav: Nav,
    pub peers: Vec<String>,
    pub can_start: bool,
    pub rows: Vec<RunRowView>,
    /// One run's report, rendered as text.
    pub report: Option<String>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

/// Renders a template as an HTML response.
pub fn html(status: StatusCode, t: &impl Template) -> HttpResponse {
    match t.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header(("Cache-Control", "no-store"))
            .insert_header(("X-Frame-Options", "DENY"))
            .insert_header((
                "Content-Security-Policy",
                "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'",
            ))
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("internal error; it has been logged")
        }
    }
}

/// A field's value for people: text as is, lists joined, nothing as "（空）".
pub fn show(v: &Value) -> String {
    match v {
        Value::Null => "（空 empty）".to_owned(),
        Value::String(s) if s.is_empty() => "（空 empty）".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "（空 empty）".to_owned(),
        Value::Array(items) => items.iter().map(show).collect::<Vec<_>>().join("、"),
        other => other.to_string(),
    }
}

/// A field's value for people, a risk level by this node's label with its level (`红 (1)`).
pub fn show_field(field: &str, v: &Value, palette: &crate::domain::RiskPalette) -> String {
    if field == ChildField::RiskLevel.name() {
        if let Some(shown) = palette.shown_value(v) {
            return shown;
        }
    }
    match v {
        Value::String(code) => {
            if let Some(label) = vocabulary_label(field, code) {
                return label.to_owned();
            }
            let date_field = matches!(
                ChildField::from_name(field),
                Some(ChildField::LastVisitOn | ChildField::LeftHukouOn | ChildField::InfoUpdatedOn)
            );
            if let (true, Ok(d)) = (
                date_field,
                chrono::NaiveDate::parse_from_str(code, "%Y-%m-%d"),
            ) {
                return date_zh(d);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let labels: Option<Vec<&str>> = items
                .iter()
                .map(|i| i.as_str().and_then(|c| vocabulary_label(field, c)))
                .collect();
            if let Some(labels) = labels {
                return labels.join("、");
            }
        }
        _ => {}
    }
    show(v)
}

/// The Chinese label of a vocabulary code in a field (`health_status` `chronic_illness` →
/// 慢性病), or `None` when the field has no vocabulary or the code is not in it.
pub fn vocabulary_label(field: &str, code: &str) -> Option<&'static str> {
    use crate::domain::child::{
        Category, EducationStatus, HealthStatus, KeyCareReason, LivingStatus, ParentSituation,
        PsychologicalState,
    };
    macro_rules! find {
        ($vocab:ty) => {
            <$vocab>::ALL
                .iter()
                .find(|k| k.code() == code)
                .map(|k| k.label_zh())
        };
    }
    match ChildField::from_name(field)? {
        ChildField::Categories => find!(Category),
        ChildField::FatherSituation | ChildField::MotherSituation => find!(ParentSituation),
        ChildField::LivingStatus => find!(LivingStatus),
        ChildField::EducationStatus => find!(EducationStatus),
        ChildField::HealthStatus => find!(HealthStatus),
        ChildField::KeyCare => find!(KeyCareReason),
        ChildField::PsychologicalState => find!(PsychologicalState),
        _ => None,
    }
}

/// A day in Chinese form: `2026年9月1日`.
pub fn date_zh(d: chrono::NaiveDate) -> String {
    use chrono::Datelike;
    format!("{}年{}月{}日", d.year(), d.month(), d.day())
}

pub fn date_zh_opt(d: Option<chrono::NaiveDate>) -> String {
    d.map_or_else(|| "—".to_owned(), date_zh)
}

/// A month in Chinese form: `2026年11月`.
pub fn month_zh(m: crate::domain::Month) -> String {
    format!("{}年{}月", m.year(), m.month())
}

/// Wall time in China (UTC+8), to the second.
pub fn when(t: DateTime<Utc>) -> String {
    crate::domain::shown_time::shown(t)
}

pub fn when_opt(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "—".to_owned(), when)
}

/// The Chinese label of a field (the ledger's column names).
pub fn label(field: ChildField) -> &'static str {
    field.label_zh()
}

pub fn label_of(name: &str) -> &'static str {
    ChildField::from_name(name).map_or("", label)
}

pub fn authority_label(a: Authority) -> &'static str {
    match a {
        Authority::Hukou => "户籍地 (hukou)",
        Authority::Residence => "居住地 (residence)",
        Authority::Shared => "共享 (shared)",
    }
}

/// Percent-encodes a query value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_shown_for_people() {
        assert_eq!(show(&Value::Null), "（空 empty）");
        assert_eq!(show(&serde_json::json!(["留守", "流动"])), "留守、流动");
        assert_eq!(show(&serde_json::json!("良好")), "良好");
        let palette =
            crate::domain::RiskPalette::new(["红", "黄", "蓝", "绿"].map(String::from).to_vec())
                .unwrap();
        assert_eq!(
            show_field("risk_level", &serde_json::json!(3), &palette),
            "蓝 (3)"
        );
        assert_eq!(show_field("notes", &serde_json::json!(3), &palette), "3");
        assert_eq!(
            show_field(
                "health_status",
                &serde_json::json!("chronic_illness"),
                &palette
            ),
            "慢性病"
        );
        assert_eq!(
            show_field(
                "categories",
                &serde_json::json!(["flowing", "left_behind"]),
                &palette
            ),
            "流动、留守"
        );
        assert_eq!(
            date_zh(chrono::NaiveDate::from_ymd_opt(2026, 9, 1).unwrap()),
            "2026年9月1日"
        );
        assert_eq!(month_zh("2026-11".parse().unwrap()), "2026年11月");
        assert_eq!(
            url_encode("/ui/conflicts?after=1~a"),
            "/ui/conflicts%3Fafter%3D1~a"
        );
    }

    #[test]
    fn pages_escape_what_they_show() {
        let page = ErrorPage {
            title: "t",
            message: "<script>alert(1)</script>".into(),
        };
        let html = page.render().unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
            "{html}"
        );
    }
}

/// One horizontal bar of a statistics chart, laid out by the page handler.
pub struct BarView {
    pub label: String,
    pub count: i64,
    pub y: i64,
    pub width: i64,
}

/// A chart of bars.
pub struct ChartView {
    pub id: &'static str,
    pub title: &'static str,
    pub height: i64,
    pub bars: Vec<BarView>,
}

/// One month of the trend.
pub struct MonthView {
    pub label: String,
    pub count: i64,
    pub x: i64,
    pub y: i64,
    pub height: i64,
}

#[derive(Template)]
#[template(path = "stats.html")]
pub struct StatsPage {
    pub nav: Nav,
    pub s: crate::stats::Stats,
    pub generated_at: String,
    pub mean_days: String,
    pub charts: Vec<ChartView>,
    pub months: Vec<MonthView>,
    /// (state label, asked here, decided here).
    pub case_rows: Vec<(String, i64, i64)>,
    /// The month shown (`YYYY-MM`), empty for now.
    pub month: String,
    /// The month shown in Chinese (`2026年11月`), or 当前 (now).
    pub month_label: String,
}

/// One file in the files list: the ID number masked, values by their labels.
pub struct FileRowView {
    pub id_number: String,
    pub id_masked: String,
    pub name: String,
    pub hukou: String,
    pub residence: String,
    pub categories: String,
    pub risk: String,
    pub last_visit: String,
    pub updated_at: String,
    /// `overdue` when stale, else empty.
    pub class: &'static str,
}

#[derive(Template)]
#[template(path = "files.html")]
pub struct FilesPage {
    pub nav: Nav,
    pub filters: Vec<super::forms::InputView>,
    pub rows: Vec<FileRowView>,
    /// The query string of the next page, when there is one.
    pub next: Option<String>,
    pub error: Option<String>,
    pub can_create: bool,
}

#[derive(Template)]
#[template(path = "form_page.html")]
pub struct FormPage {
    pub nav: Nav,
    pub heading: String,
    pub intro: String,
    pub forms: Vec<super::forms::FormView>,
}

pub struct DueRowView {
    pub id_number: String,
    pub id_masked: String,
    pub name: String,
    pub residence: String,
    pub township: String,
    pub worker: String,
    pub categories: String,
    pub risk: String,
    pub last_visit: String,
    pub due_on: String,
    pub overdue: String,
    pub class: &'static str,
}

#[derive(Template)]
#[template(path = "due.html")]
pub struct DuePage {
    pub nav: Nav,
    pub filters: Vec<super::forms::InputView>,
    pub due_by: String,
    pub rows: Vec<DueRowView>,
    pub next: Option<String>,
    pub error: Option<String>,
}
