//! The daily work on a file's page and around it: record a visit (with a risk assessment), the
//! due and overdue visits, open an eligibility case, end a benefit (hukou side), and the
//! case's action buttons (receive, request information, provide information, approve with the
//! effective month, deny with a reason, withdraw).
//!
//! Each form becomes the JSON body the API takes and is read by the API's own parser
//! (`api::cases::parse`, which names the member at fault), then goes to the service the API
//! calls: `visits::record`, `visits::due`, `eligibility::service::{create, transition}`,
//! `ledger::end_benefit`. A refused form comes back with what was typed and the reason beside
//! its field; nothing is stored.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::forms::{
    input_for, next_page, posted_by, set, text_filter, FormView, InputView, Kind, OptionView,
    Posted,
};
use super::pages::Again;
use super::render::{self, *};
use super::{actor, check_csrf, see_other, user, UiError};
use crate::accounts::Permission;
use crate::api::cases::parse;
use crate::api::error::ApiError;
use crate::api::AppState;
use crate::audit::{Event, Outcome};
use crate::domain::case::state::{DenialReason, Transition, TransitionKind};
use crate::domain::child::{Benefit, BenefitEnd, EndReason, ParentSituation};
use crate::domain::visit::{Area, Seen, VisitKind, VisitorRole};
use crate::domain::IdNumber;
use crate::eligibility::service::{self as cases_service, NewCase};
use crate::sync::ledger::{self, china_today, ChildFile};
use crate::visits::{self, VisitInput};

fn parse_id(raw: &str) -> Result<IdNumber, UiError> {
    IdNumber::parse(raw.trim())
        .map_err(|e| UiError::BadRequest(format!("not a valid ID number: {e}")))
}

/// `(code, label)` choices of a vocabulary.
macro_rules! choices {
    ($vocab:ty) => {
        <$vocab>::ALL
            .iter()
            .map(|k| (k.code(), k.label_zh().to_owned()))
            .collect::<Vec<_>>()
    };
}

fn one(posted: Option<&Posted>, name: &str) -> Vec<String> {
    posted.map(|p| p.all(name)).unwrap_or_default()
}

fn value(posted: Option<&Posted>, name: &str, default: &str) -> String {
    posted.map_or_else(|| default.to_owned(), |p| p.get(name))
}

/// The forms of a file's page besides the edit form: a visit, a case (residence side), ending
/// a benefit (hukou side, when the child holds one).
pub(super) fn child_forms<'a>(
    state: &AppState,
    file: &ChildFile,
    posted_to: &dyn Fn(&str) -> Option<&'a Posted>,
) -> Vec<FormView> {
    let id = file.record.id_number.as_str();
    let roles = state
        .node
        .roles(&file.record.hukou_region, &file.record.residence_region);
    let palette = &state.node.palette;
    let grades: Vec<(String, String)> = crate::domain::RiskLevel::ALL
        .iter()
        .map(|l| (l.get().to_string(), palette.shown(*l)))
        .collect();
    let mut forms = Vec::new();

    let p = posted_to("visit");
    let today = china_today(Utc::now()).to_string();
    let mut visit = FormView::new(
        "visit",
        "记录走访与评估 (Record a visit and assessment)",
        &format!("/ui/children/{id}/visits"),
        "记录走访 (Record the visit)",
    )
    .input(
        "visited_on",
        "走访日期 (Date)",
        Kind::Date,
        &value(p, "visited_on", &today),
        "",
    )
    .choice(
        "kind",
        "方式 (Kind)",
        Kind::Select,
        choices!(VisitKind),
        &one(p, "kind"),
        false,
    )
    .input(
        "visitor_name",
        "走访人 (Visitor)",
        Kind::Text,
        &value(p, "visitor_name", ""),
        "",
    )
    .choice(
        "visitor_role",
        "走访人身份 (Visitor's role)",
        Kind::Select,
        choices!(VisitorRole),
        &one(p, "visitor_role"),
        false,
    )
    .choice(
        "seen",
        "见到 (Seen)",
        Kind::Checks,
        choices!(Seen),
        &one(p, "seen"),
        false,
    );
    for area in Area::ALL {
        visit = visit.choice(
            &format!("grade_{}", area.code()),
            &format!("{} (assessment)", area.label_zh()),
            Kind::Select,
            grades.iter().map(|(v, l)| (v.as_str(), l.clone())),
            &one(p, &format!("grade_{}", area.code())),
            true,
        );
    }
    visit = visit
        .input(
            "assessor",
            "评估人 (Assessor)",
            Kind::Text,
            &value(p, "assessor", ""),
            "有评估时必填 (needed with grades)",
        )
        .input(
            "follow_up",
            "跟进事项 (Follow-up)",
            Kind::TextArea,
            &value(p, "follow_up", ""),
            "每行一项 (one per line)",
        )
        .input(
            "next_due_on",
            "下次走访 (Next visit by)",
            Kind::Date,
            &value(p, "next_due_on", ""),
            "可空：按走访规则推算 (empty: by the schedule)",
        );
    forms.push(visit);

    if roles.residence {
        let p = posted_to("open-case");
        let situations = || {
            ParentSituation::ALL
                .iter()
                .map(|k| (k.code(), k.label_zh().to_owned()))
        };
        forms.push(
            FormView::new(
                "open-case",
                "申请资格核查 (Open an eligibility case with the hukou bureau)",
                &format!("/ui/children/{id}/cases"),
                "提交核查 (Submit the case)",
            )
            .choice(
                "benefit",
                "待遇 (Benefit)",
                Kind::Select,
                choices!(Benefit),
                &one(p, "benefit"),
                false,
            )
            .choice(
                "father_situation",
                "父亲情况 (Father)",
                Kind::Select,
                situations(),
                &one(p, "father_situation"),
                true,
            )
            .choice(
                "mother_situation",
                "母亲情况 (Mother)",
                Kind::Select,
                situations(),
                &one(p, "mother_situation"),
                true,
            )
            .input(
                "summary",
                "申请理由 (Grounds)",
                Kind::TextArea,
                &value(p, "summary", ""),
                "",
            )
            .input(
                "officer",
                "经办人编号 (Officer reference)",
                Kind::Text,
                &value(p, "officer", ""),
                "",
            )
            .input(
                "doc_type",
                "证明材料 (Document type)",
                Kind::Text,
                &value(p, "doc_type", ""),
                "如 死亡证明 (e.g. a death certificate); 可空 (optional)",
            )
            .input(
                "issuer",
                "出具单位 (Issuer)",
                Kind::Text,
                &value(p, "issuer", ""),
                "",
            )
            .input(
                "number",
                "编号 (Number)",
                Kind::Text,
                &value(p, "number", ""),
                "",
            )
            .input("file", "文件 (File: PDF, JPEG or PNG)", Kind::File, "", "")
            .multipart(),
        );
    }

    let held: Vec<Benefit> = file
        .record
        .benefits
        .iter()
        .filter(|b| b.is_active())
        .map(|b| b.benefit)
        .collect();
    if roles.hukou && !held.is_empty() {
        let p = posted_to("end-benefit");
        forms.push(
            FormView::new(
                "end-benefit",
                "终止待遇 (End a benefit: 退出)",
                &format!("/ui/children/{id}/benefits/end"),
                "终止 (End the benefit)",
            )
            .choice(
                "benefit",
                "待遇 (Benefit)",
                Kind::Select,
                held.iter().map(|b| (b.code(), b.label_zh().to_owned())),
                &one(p, "benefit"),
                false,
            )
            .input(
                "month",
                "最后发放月份 (Last month paid)",
                Kind::Month,
                &value(p, "month", ""),
                "如 2026-12",
            )
            .choice(
                "reason",
                "原因 (Reason)",
                Kind::Select,
                choices!(EndReason),
                &one(p, "reason"),
                false,
            )
            .input("note", "说明 (Note)", Kind::Text, &value(p, "note", ""), ""),
        );
    }
    forms
}

/// A value or JSON null when empty.
fn or_null(s: String) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::String(s)
    }
}

/// Sends a refused form back to the file's page.
async fn back_to_file(
    state: &web::Data<AppState>,
    p: &crate::accounts::Principal,
    id: IdNumber,
    form: &'static str,
    posted: &Posted,
    e: ApiError,
    map: &[(&str, &str)],
) -> Result<HttpResponse, UiError> {
    if e.status_code().is_server_error() || e.status_code() == StatusCode::NOT_FOUND {
        return Err(UiError::Problem(e));
    }
    super::pages::child_page(
        state,
        p,
        id,
        e.status_code(),
        Some(Again::new(
            form,
            posted,
            input_for(&e, map),
            e.reason().to_owned(),
        )),
    )
    .await
}

/// The form inputs API member paths name.
const VISIT_INPUTS: &[(&str, &str)] = &[
    ("visitor.name", "visitor_name"),
    ("visitor.role", "visitor_role"),
    ("visitor", "visitor_name"),
    ("assessment.assessor", "assessor"),
    ("assessment.indicators.guardianship", "grade_guardianship"),
    ("assessment.indicators.living", "grade_living"),
    ("assessment.indicators.psychological", "grade_psychological"),
    ("assessment.indicators.safety", "grade_safety"),
    ("assessment", "assessor"),
];

/// The visit form as the API's body.
fn visit_body(f: &Posted) -> Value {
    let mut indicators = Map::new();
    for area in Area::ALL {
        if let Some(g) = f.opt(&format!("grade_{}", area.code())) {
            let grade = g.parse::<u8>().map_or(Value::String(g), |n| json!(n));
            indicators.insert(area.code().to_owned(), json!({ "grade": grade }));
        }
    }
    let mut body = json!({
        "visited_on": f.get("visited_on"),
        "kind": f.get("kind"),
        "visitor": { "name": f.get("visitor_name"), "role": f.get("visitor_role") },
        "seen": f.all("seen"),
        "follow_up": f
            .get("follow_up")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>(),
        "next_due_on": or_null(f.get("next_due_on")),
    });
    if !indicators.is_empty() || f.opt("assessor").is_some() {
        body["assessment"] = json!({ "indicators": indicators, "assessor": f.get("assessor") });
    }
    body
}

/// `POST /ui/children/{id}/visits`: `visits::record`, as `POST /api/v1/children/{id}/visits`.
pub async fn record_visit(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, UiError> {
    let (p, posted) = posted_by(&state, &req, Permission::EditChildren, form.into_inner()).await?;
    let id = parse_id(&path)?;
    let input: VisitInput = match parse(visit_body(&posted)) {
        Ok(i) => i,
        Err(e) => return back_to_file(&state, &p, id, "visit", &posted, e, VISIT_INPUTS).await,
    };
    let (node, a, child) = (state.node.clone(), actor(&p), id.clone());
    match state
        .store
        .run(move |c| visits::record(c, &node, &child, input, &a, Utc::now()))
        .await
    {
        Ok(_) => Ok(see_other(&format!("/ui/children/{id}?saved=visit"))),
        Err(e) => {
            let e = ApiError::from(e);
            back_to_file(&state, &p, id, "visit", &posted, e, VISIT_INPUTS).await
        }
    }
}

const CASE_INPUTS: &[(&str, &str)] = &[
    ("grounds.summary", "summary"),
    ("grounds.father_situation", "father_situation"),
    ("grounds.mother_situation", "mother_situation"),
    ("grounds.evidence", "doc_type"),
    ("officers", "officer"),
    ("child_id", "benefit"),
];

/// `POST /ui/children/{id}/cases` (multipart, with an optional document): the file goes to
/// `eligibility::evidence::upload` (as `POST /api/v1/evidence`) and the case to
/// `eligibility::service::create` (as `POST /api/v1/cases`), naming the file by its SHA-256.
/// The form is read in full first, so a refused form stores nothing; a file is stored before
/// the case, content-addressed, so a case the service refuses may leave its file (audited as an
/// upload) for the next try.
pub async fn open_case(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, UiError> {
    let p = user(&state, &req, Permission::EditChildren).await?;
    let form = super::upload::read(&req, payload, state.evidence.max_bytes + 64 * 1024).await?;
    let posted = &form.fields;
    check_csrf(&p, posted.csrf().as_deref())?;
    let id = parse_id(&path)?;
    let file = form.file("file");
    let mut evidence = Vec::new();
    if file.is_some()
        || ["doc_type", "issuer", "number", "sha256"]
            .iter()
            .any(|n| posted.opt(n).is_some())
    {
        let sha256 = match file {
            Some(f) => crate::crypto::hash::Digest::of(&f.bytes).to_string(),
            None => posted.get("sha256"),
        };
        evidence.push(json!({
            "doc_type": posted.get("doc_type"),
            "issuer": posted.get("issuer"),
            "number": posted.get("number"),
            "sha256": sha256,
        }));
    }
    let body = json!({
        "child_id": id.as_str(),
        "benefit": posted.get("benefit"),
        "grounds": {
            "father_situation": or_null(posted.get("father_situation")),
            "mother_situation": or_null(posted.get("mother_situation")),
            "summary": posted.get("summary"),
            "evidence": evidence,
        },
        "officers": { "requester": posted.get("officer") },
    });
    let new: NewCase = match parse(body) {
        Ok(n) => n,
        Err(e) => return back_to_file(&state, &p, id, "open-case", posted, e, CASE_INPUTS).await,
    };
    if let Some(f) = file {
        let content_type = f.content_type.clone();
        let bytes = f.bytes.clone();
        let (node, vault, a) = (state.node.clone(), state.evidence.clone(), actor(&p));
        let stored = state
            .store
            .run(move |c| {
                crate::eligibility::evidence::upload(
                    c,
                    &node,
                    &vault,
                    &content_type,
                    &bytes,
                    &a,
                    Utc::now(),
                )
            })
            .await;
        if let Err(e) = stored {
            let e = ApiError::from(e);
            if e.status_code().is_server_error() {
                return Err(UiError::Problem(e));
            }
            return super::pages::child_page(
                &state,
                &p,
                id,
                e.status_code(),
                Some(Again::new(
                    "open-case",
                    posted,
                    Some("file".to_owned()),
                    e.reason().to_owned(),
                )),
            )
            .await;
        }
    }
    let (node, deadlines, a) = (state.node.clone(), state.deadlines.clone(), actor(&p));
    match state
        .store
        .run(move |c| cases_service::create(c, &node, &deadlines, new, &a, Utc::now()))
        .await
    {
        Ok(view) => Ok(see_other(&format!(
            "/ui/cases/{}?saved=opened",
            view.case.case_id
        ))),
        Err(e) => {
            let e = ApiError::from(e);
            back_to_file(&state, &p, id, "open-case", posted, e, CASE_INPUTS).await
        }
    }
}

/// `POST /ui/children/{id}/benefits/end`: `ledger::end_benefit`, as
/// `POST /api/v1/children/{id}/benefits/{benefit}/end`.
pub async fn end_benefit(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, UiError> {
    let (p, posted) = posted_by(&state, &req, Permission::EditChildren, form.into_inner()).await?;
    let id = parse_id(&path)?;
    let inputs: &[(&str, &str)] = &[("month", "month"), ("reason", "reason"), ("note", "note")];
    let benefit = match crate::api::children::parse_benefit(&posted.get("benefit")) {
        Ok(b) => b,
        Err(e) => return back_to_file(&state, &p, id, "end-benefit", &posted, e, inputs).await,
    };
    let end: BenefitEnd = match parse(json!({
        "month": posted.get("month"),
        "reason": posted.get("reason"),
        "note": or_null(posted.get("note")),
    })) {
        Ok(e) => e,
        Err(e) => return back_to_file(&state, &p, id, "end-benefit", &posted, e, inputs).await,
    };
    let (node, a, child) = (state.node.clone(), actor(&p), id.clone());
    match state
        .store
        .run(move |c| ledger::end_benefit(c, &node, &child, benefit, end, &a, Utc::now()))
        .await
    {
        Ok(_) => Ok(see_other(&format!("/ui/children/{id}?saved=benefit"))),
        Err(e) => {
            let e = ApiError::from(e);
            back_to_file(&state, &p, id, "end-benefit", &posted, e, inputs).await
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Visits due

#[derive(Deserialize, Default)]
pub struct DueQuery {
    within_days: Option<String>,
    overdue: Option<String>,
    region: Option<String>,
    township: Option<String>,
    worker: Option<String>,
    after: Option<String>,
}

/// `GET /ui/visits/due`: `visits::due`, as `GET /api/v1/visits/due`; which files were shown is
/// audited (`visit.due.read`).
pub async fn due(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<DueQuery>,
) -> Result<HttpResponse, UiError> {
    let p = user(&state, &req, Permission::ReadChildren).await?;
    let q = q.into_inner();
    let overdue = set(&q.overdue).is_some_and(|o| o == "1");
    let mut filters = vec![
        text_filter("within_days", "几天内 (Within days)", &q.within_days),
        InputView {
            name: "overdue".into(),
            label: "范围 (Which)".into(),
            kind: Kind::Select.as_str(),
            value: String::new(),
            hint: String::new(),
            options: vec![
                OptionView {
                    value: String::new(),
                    label: "到期与逾期 (due and overdue)".into(),
                    selected: !overdue,
                },
                OptionView {
                    value: "1".into(),
                    label: "仅逾期 (overdue only)".into(),
                    selected: overdue,
                },
            ],
            error: None,
        },
        text_filter("region", "地区代码 (Region prefix)", &q.region),
        text_filter("township", "乡镇（街道）代码 (Township)", &q.township),
        text_filter("worker", "包保人 (Responsible worker)", &q.worker),
    ];
    let today = china_today(Utc::now());
    let nav = Nav::new(
        &state.node.id.to_string(),
        Some(&p),
        "待走访 (Visits due)",
        "visits",
    );
    let within = match set(&q.within_days).map(|d| d.parse::<u32>()) {
        None => Ok(7),
        Some(Ok(d)) => Ok(d),
        Some(Err(_)) => Err(("within_days", "天数应为整数 (a whole number)".to_owned())),
    };
    let (region, township, worker, after) = (
        set(&q.region),
        set(&q.township),
        set(&q.worker),
        set(&q.after),
    );
    let filter = within.and_then(|within_days| {
        visits::DueQuery {
            within_days,
            overdue,
            region: region.as_deref(),
            township: township.as_deref(),
            worker: worker.as_deref(),
            after: after.as_deref(),
            limit: 100,
        }
        .filter(today)
    });
    let filter = match filter {
        Ok(f) => f,
        Err((field, why)) => {
            if let Some(f) = filters.iter_mut().find(|f| f.name == field) {
                f.error = Some(why.clone());
            }
            return Ok(render::html(
                StatusCode::BAD_REQUEST,
                &DuePage {
                    nav,
                    filters,
                    due_by: String::new(),
                    rows: Vec::new(),
                    next: None,
                    error: Some(why),
                },
            ));
        }
    };
    let node = state.node.clone();
    let scope = p.scope.clone();
    let page = state
        .store
        .run(move |c| visits::due(c, &node, filter, today, &scope))
        .await?;
    let shown: Vec<&str> = page.items.iter().map(|i| i.id_number.as_str()).collect();
    state
        .record(
            Event::new(actor(&p), "visit.due.read", Outcome::Ok)
                .details(json!({ "returned": shown })),
        )
        .await;
    let palette = &state.node.palette;
    let rows = page
        .items
        .iter()
        .map(|d| DueRowView {
            id_number: d.id_number.clone(),
            id_masked: IdNumber::mask_text(&d.id_number),
            name: d.name.clone(),
            residence: super::files::region_shown(&d.residence_region),
            township: d.residence_township.clone().unwrap_or_default(),
            worker: d.responsible_worker.clone().unwrap_or_default(),
            categories: show_field("categories", &json!(d.categories), palette),
            risk: d.risk_level.map_or_else(String::new, |l| {
                palette.shown_value(&json!(l)).unwrap_or_default()
            }),
            last_visit: date_zh_opt(d.last_visit_on),
            due_on: date_zh(d.due_on),
            overdue: if d.overdue_days > 0 {
                format!("{} 天 (days)", d.overdue_days)
            } else {
                String::new()
            },
            class: if d.overdue_days > 0 { "overdue" } else { "" },
        })
        .collect();
    let next = page.next_after.as_deref().map(|a| {
        next_page(
            &[
                ("within_days", &q.within_days),
                ("overdue", &q.overdue),
                ("region", &q.region),
                ("township", &q.township),
                ("worker", &q.worker),
            ],
            a,
        )
    });
    Ok(render::html(
        StatusCode::OK,
        &DuePage {
            nav,
            filters,
            due_by: date_zh(page.due_by),
            rows,
            next,
            error: None,
        },
    ))
}

// ---------------------------------------------------------------------------------------------
// A case's actions

/// The action forms of a case this node may take now (`allowed_actions` of the case view).
pub(super) fn case_forms<'a>(
    case_id: &str,
    allowed: &[String],
    posted_to: &dyn Fn(&str) -> Option<&'a Posted>,
) -> Vec<FormView> {
    let action = format!("/ui/cases/{case_id}");
    let mut forms = Vec::new();
    let base = |kind: TransitionKind, title: &str, submit: &str| {
        FormView::new(kind.as_str(), title, &action, submit).hidden("action", kind.as_str())
    };
    for a in allowed {
        let p = posted_to(a);
        let officer = |f: FormView| {
            f.input(
                "officer",
                "经办人编号 (Officer reference)",
                Kind::Text,
                &value(p, "officer", ""),
                "",
            )
        };
        let form = match a.as_str() {
            "receive" => base(
                TransitionKind::Receive,
                "受理 (Receive the case)",
                "受理 (Receive)",
            ),
            "request_info" => base(
                TransitionKind::RequestInfo,
                "要求补充材料 (Request information)",
                "发送 (Send the question)",
            )
            .input(
                "question",
                "问题 (Question)",
                Kind::TextArea,
                &value(p, "question", ""),
                "",
            ),
            "provide_info" => base(
                TransitionKind::ProvideInfo,
                "补充材料 (Provide information)",
                "发送 (Send the answer)",
            )
            .input(
                "answer",
                "答复 (Answer)",
                Kind::TextArea,
                &value(p, "answer", ""),
                "",
            ),
            "approve" => base(
                TransitionKind::Approve,
                "核定通过 (Approve)",
                "通过 (Approve)",
            )
            .input(
                "effective_month",
                "起始月份 (Effective month)",
                Kind::Month,
                &value(p, "effective_month", ""),
                "如 2026-11",
            )
            .input(
                "review_on",
                "复核日期 (Review on)",
                Kind::Date,
                &value(p, "review_on", ""),
                "可空 (optional)",
            ),
            "deny" => base(TransitionKind::Deny, "不予通过 (Deny)", "不予通过 (Deny)")
                .choice(
                    "reason_code",
                    "原因 (Reason)",
                    Kind::Select,
                    DenialReason::ALL
                        .iter()
                        .map(|r| (r.as_str(), r.label_zh().to_owned())),
                    &one(p, "reason_code"),
                    false,
                )
                .input(
                    "reason_text",
                    "说明 (Explanation)",
                    Kind::TextArea,
                    &value(p, "reason_text", ""),
                    "",
                ),
            "withdraw" => base(
                TransitionKind::Withdraw,
                "撤回申请 (Withdraw)",
                "撤回 (Withdraw)",
            )
            .input(
                "reason",
                "原因 (Reason)",
                Kind::Text,
                &value(p, "reason", ""),
                "可空 (optional)",
            ),
            _ => continue,
        };
        forms.push(officer(form));
    }
    forms
}

/// A case form as the transition the API reads.
fn transition_body(f: &Posted) -> Value {
    let action = f.get("action");
    let mut body = json!({ "action": action });
    let fields: &[&str] = match action.as_str() {
        "request_info" => &["question"],
        "provide_info" => &["answer"],
        "approve" => &["effective_month", "review_on"],
        "deny" => &["reason_code", "reason_text"],
        "withdraw" => &["reason"],
        _ => &[],
    };
    for name in fields {
        let v = f.get(name);
        // Optional members are omitted when empty; required ones go as typed (the parser names
        // them).
        if !v.is_empty() || !matches!(*name, "review_on" | "reason") {
            body[*name] = Value::String(v);
        }
    }
    body
}

/// `POST /ui/cases/{id}`: one transition through `eligibility::service::transition`, as
/// `POST /api/v1/cases/{id}/transitions`.
pub async fn act(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, UiError> {
    let (p, posted) = posted_by(&state, &req, Permission::EditChildren, form.into_inner()).await?;
    let case_id = uuid::Uuid::parse_str(path.trim())
        .map_err(|_| UiError::BadRequest("a case id is a UUID".into()))?
        .to_string();
    let action = posted.get("action");
    let Some(form_id) = TransitionKind::ALL
        .into_iter()
        .map(TransitionKind::as_str)
        .find(|k| *k == action)
    else {
        return Err(UiError::BadRequest(format!("unknown action {action:?}")));
    };
    let again = |e: ApiError| {
        let field = e
            .field_name()
            .map(|f| f.trim_start_matches("transition.").to_owned());
        (e.status_code(), field, e.reason().to_owned())
    };
    let result: Result<Transition, ApiError> = parse::<Transition>(transition_body(&posted))
        .and_then(|t| {
            t.validate()
                .map_err(|e| ApiError::from(cases_service::CaseError::Step(e.into())))?;
            Ok(t)
        });
    let officer = posted.opt("officer");
    if let Some(o) = &officer {
        if let Err(reason) = crate::domain::text::check(o, false) {
            let (status, field, msg) =
                again(ApiError::unprocessable("invalid_field", reason).field("officer"));
            return super::pages::case_page(
                &state,
                &p,
                case_id,
                status,
                Some(Again::new(form_id, &posted, field, msg)),
            )
            .await;
        }
    }
    let t = match result {
        Ok(t) => t,
        Err(e) => {
            let (status, field, msg) = again(e);
            return super::pages::case_page(
                &state,
                &p,
                case_id,
                status,
                Some(Again::new(form_id, &posted, field, msg)),
            )
            .await;
        }
    };
    let (node, deadlines, a, id) = (
        state.node.clone(),
        state.deadlines.clone(),
        actor(&p),
        case_id.clone(),
    );
    match state
        .store
        .run(move |c| {
            cases_service::transition(c, &node, &deadlines, &id, t, officer, &a, Utc::now())
        })
        .await
    {
        Ok(_) => Ok(see_other(&format!("/ui/cases/{case_id}?saved={form_id}"))),
        Err(e) => {
            let e = ApiError::from(e);
            if e.status_code().is_server_error() || e.status_code() == StatusCode::NOT_FOUND {
                return Err(UiError::Problem(e));
            }
            let (status, field, msg) = again(e);
            super::pages::case_page(
                &state,
                &p,
                case_id,
                status,
                Some(Again::new(form_id, &posted, field, msg)),
            )
            .await
        }
    }
}
