//! Reports and referrals (强制报告与转介) on the pages: record one from a child's file
//! (`POST /ui/children/{id}/reports`, the body of `POST /api/v1/children/{id}/reports` read by
//! the API's parser, stored by `visits::reports::record`), and the list of reports this node
//! holds, urgent ones first if asked (`/ui/reports`, `visits::reports::list`, audited by the
//! service).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use askama::Template;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use super::forms::{input_for, posted_by, FormView, Kind, Posted};
use super::pages::Again;
use super::render::{self, date_zh, police_text, referral_text, reporter_text, url_encode, Nav};
use super::{actor, see_other, user, UiError};
use crate::accounts::Permission;
use crate::api::cases::parse;
use crate::api::error::ApiError;
use crate::api::AppState;
use crate::domain::report::{ReferralTarget, ReporterKind, Urgency};
use crate::domain::IdNumber;
use crate::sync::ledger::china_today;
use crate::visits::reports::{self, ReportInput};

fn value(posted: Option<&Posted>, name: &str, default: &str) -> String {
    posted.map_or_else(|| default.to_owned(), |p| p.get(name))
}

fn chosen(posted: Option<&Posted>, name: &str) -> Vec<String> {
    posted.map(|p| p.all(name)).unwrap_or_default()
}

/// The report form of a file's page.
pub(super) fn report_form(id: &str, posted: Option<&Posted>) -> FormView {
    let labels = |all: &'static [ReporterKind]| {
        all.iter()
            .map(|k| (k.code(), k.label_zh().to_owned()))
            .collect::<Vec<_>>()
    };
    FormView::new(
        "report",
        "记录报告或转介 (Record a report or a referral)",
        &format!("/ui/children/{id}/reports"),
        "记录报告 (Record the report)",
    )
    .input(
        "reported_on",
        "报告日期 (Reported on)",
        Kind::Date,
        &value(posted, "reported_on", &china_today(Utc::now()).to_string()),
        "",
    )
    .choice(
        "reporter_kind",
        "报告人 (Reporter)",
        Kind::Select,
        labels(ReporterKind::ALL),
        &chosen(posted, "reporter_kind"),
        false,
    )
    .input(
        "reporter_name",
        "报告人姓名或单位 (Name)",
        Kind::Text,
        &value(posted, "reporter_name", ""),
        "可空 (optional)",
    )
    .input(
        "seen",
        "发现的情况 (What was seen)",
        Kind::TextArea,
        &value(posted, "seen", ""),
        "",
    )
    .choice(
        "urgency",
        "紧急程度 (Urgency)",
        Kind::Select,
        Urgency::ALL
            .iter()
            .map(|k| (k.code(), k.label_zh().to_owned())),
        &chosen(posted, "urgency"),
        false,
    )
    .choice(
        "police_called",
        "报警 (Police)",
        Kind::Checks,
        [("1", "已报警 (the police were called)".to_owned())],
        &chosen(posted, "police_called"),
        false,
    )
    .choice(
        "referral_target",
        "转介至 (Referred to)",
        Kind::Select,
        ReferralTarget::ALL
            .iter()
            .map(|k| (k.code(), k.label_zh().to_owned())),
        &chosen(posted, "referral_target"),
        true,
    )
    .input(
        "referral_name",
        "接收单位 (Receiving body)",
        Kind::Text,
        &value(posted, "referral_name", ""),
        "可空 (optional)",
    )
}

fn or_null(s: String) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::String(s)
    }
}

const INPUTS: &[(&str, &str)] = &[
    ("reporter.kind", "reporter_kind"),
    ("reporter.name", "reporter_name"),
    ("reporter", "reporter_kind"),
    ("referral.target", "referral_target"),
    ("referral.name", "referral_name"),
    ("referral", "referral_target"),
];

/// `POST /ui/children/{id}/reports`.
pub async fn record(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, UiError> {
    let (p, posted) = posted_by(&state, &req, Permission::EditChildren, form.into_inner()).await?;
    let id = IdNumber::parse(path.trim())
        .map_err(|e| UiError::BadRequest(format!("not a valid ID number: {e}")))?;
    let referral = posted
        .opt("referral_target")
        .map(|target| json!({ "target": target, "name": or_null(posted.get("referral_name")) }));
    let body = json!({
        "reported_on": posted.get("reported_on"),
        "reporter": { "kind": posted.get("reporter_kind"), "name": or_null(posted.get("reporter_name")) },
        "seen": posted.get("seen"),
        "urgency": posted.get("urgency"),
        "police_called": posted.opt("police_called").is_some(),
        "referral": referral,
    });
    let result = match parse::<ReportInput>(body) {
        Ok(input) => {
            let (node, a, child) = (state.node.clone(), actor(&p), id.clone());
            state
                .store
                .run(move |c| reports::record(c, &node, &child, input, &a, Utc::now()))
                .await
                .map_err(ApiError::from)
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Ok(see_other(&format!("/ui/children/{id}?saved=report"))),
        Err(e) if e.status_code().is_server_error() || e.status_code() == StatusCode::NOT_FOUND => {
            Err(UiError::Problem(e))
        }
        Err(e) => {
            super::pages::child_page(
                &state,
                &p,
                id,
                e.status_code(),
                Some(Again::new(
                    "report",
                    &posted,
                    input_for(&e, INPUTS),
                    e.reason().to_owned(),
                )),
            )
            .await
        }
    }
}

pub struct ReportListRow {
    pub id_number: String,
    pub id_masked: String,
    pub on: String,
    pub urgency: &'static str,
    pub urgent: bool,
    pub reporter: String,
    pub seen: String,
    pub police: &'static str,
    pub referral: String,
}

#[derive(Template)]
#[template(path = "reports.html")]
pub struct ReportsPage {
    pub nav: Nav,
    pub urgent_only: bool,
    pub rows: Vec<ReportListRow>,
    pub next: Option<String>,
}

#[derive(Deserialize)]
pub struct ReportsQuery {
    urgent: Option<String>,
    after: Option<String>,
}

/// `GET /ui/reports`: the reports this node holds, latest first.
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<ReportsQuery>,
) -> Result<HttpResponse, UiError> {
    let p = user(&state, &req, Permission::ReadChildren).await?;
    let urgent_only = q.urgent.as_deref() == Some("1");
    let after = match q.after.as_deref().filter(|a| !a.is_empty()) {
        None => None,
        Some(a) => Some(reports::parse_cursor(a).ok_or_else(|| {
            UiError::BadRequest("after is the next_after of the previous page".into())
        })?),
    };
    let (node, a) = (state.node.clone(), actor(&p));
    let page = state
        .store
        .run(move |c| {
            reports::list(
                c,
                &node,
                None,
                urgent_only,
                after,
                100,
                &a,
                Some("admin page"),
                Utc::now(),
            )
        })
        .await?;
    let rows = page
        .items
        .iter()
        .map(|r| {
            let b = &r.report;
            ReportListRow {
                id_number: b.child_id.to_string(),
                id_masked: b.child_id.masked(),
                on: date_zh(b.reported_on),
                urgency: b.urgency.label_zh(),
                urgent: b.is_urgent(),
                reporter: reporter_text(&b.reporter),
                seen: b.seen.as_str().to_owned(),
                police: police_text(b.police_called),
                referral: b
                    .referral
                    .as_ref()
                    .map_or_else(String::new, |f| referral_text(f, false)),
            }
        })
        .collect();
    let next = page.next_after.as_deref().map(|a| {
        format!(
            "{}after={}",
            if urgent_only { "urgent=1&" } else { "" },
            url_encode(a)
        )
    });
    Ok(render::html(
        StatusCode::OK,
        &ReportsPage {
            nav: Nav::new(
                &state.node.id.to_string(),
                Some(&p),
                "报告与转介 (Reports and referrals)",
                "reports",
            ),
            urgent_only,
            rows,
            next,
        },
    ))
}
