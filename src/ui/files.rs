//! Children's files on the pages: the list with filters and keyset paging (`/ui/children`, the
//! same filter as `GET /api/v1/children`, read through `api::children::child_filter`), a new
//! file (`/ui/children/new`) and the edit form on a file's page (`POST /ui/children/{id}`).
//!
//! A form's values are read by the field's type exactly as `child update --set` reads them
//! (`ledger_file::typed`), then go to the ledger service the API calls (`ledger::parse_record`
//! and `create_child`, `ledger::update_child`): its validation names the field at fault, shown
//! beside that input, and nothing is stored. Every list and page read is audited by the
//! service.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::forms::{
    next_page, posted_by, set, text_filter, FormView, InputView, Kind, OptionView, Posted,
};
use super::render::{self, *};
use super::{actor, see_other, user, UiError};
use crate::accounts::{Permission, Principal};
use crate::api::children::{child_filter, ListQuery};
use crate::api::error::ApiError;
use crate::api::AppState;
use crate::domain::child::{Category, ChildField};
use crate::domain::IdNumber;
use crate::ledger_file::typed;
use crate::sync::ledger::{self, ChildFile};

/// The purpose recorded with the pages' reads.
const PURPOSE: &str = "admin page";

/// Files shown per page.
const PAGE_SIZE: u32 = 50;

/// The files list's filters as the form sends them: every value optional, an empty one unset.
#[derive(Deserialize, Default)]
pub struct FilesQuery {
    id: Option<String>,
    region: Option<String>,
    township: Option<String>,
    category: Option<String>,
    risk_level: Option<String>,
    stale_days: Option<String>,
    worker: Option<String>,
    visits_due_days: Option<String>,
    benefit: Option<String>,
    after: Option<String>,
}

impl FilesQuery {
    /// The query string of the same filters from `after`.
    fn next(&self, after: &str) -> String {
        next_page(
            &[
                ("region", &self.region),
                ("township", &self.township),
                ("category", &self.category),
                ("risk_level", &self.risk_level),
                ("stale_days", &self.stale_days),
                ("worker", &self.worker),
                ("visits_due_days", &self.visits_due_days),
                ("benefit", &self.benefit),
            ],
            after,
        )
    }
}

fn select_filter(
    name: &str,
    label: &str,
    value: &Option<String>,
    choices: Vec<(String, String)>,
) -> InputView {
    let chosen = set(value).unwrap_or_default();
    let mut options = vec![OptionView {
        value: String::new(),
        label: "全部 (all)".to_owned(),
        selected: chosen.is_empty(),
    }];
    options.extend(choices.into_iter().map(|(v, l)| OptionView {
        selected: v == chosen,
        value: v,
        label: l,
    }));
    InputView {
        name: name.to_owned(),
        label: label.to_owned(),
        kind: Kind::Select.as_str(),
        value: String::new(),
        hint: String::new(),
        options,
        error: None,
    }
}

/// A list of category codes by their labels.
fn categories_zh(codes: &[String]) -> String {
    codes
        .iter()
        .map(|c| {
            Category::ALL
                .iter()
                .find(|k| k.code() == c)
                .map_or(c.as_str(), |k| k.label_zh())
        })
        .collect::<Vec<_>>()
        .join("、")
}

/// A region code with its name (`440305 南山区`).
pub(super) fn region_shown(code: &str) -> String {
    crate::domain::RegionCode::parse(code)
        .map(|r| format!("{} {}", r.full_name(), code))
        .unwrap_or_else(|_| code.to_owned())
}

/// `GET /ui/children`: the files list (or, with `id`, straight to that file).
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<FilesQuery>,
) -> Result<HttpResponse, UiError> {
    let q = q.into_inner();
    if let Some(id) = set(&q.id) {
        let id = IdNumber::parse(&id)
            .map_err(|e| UiError::BadRequest(format!("not a valid ID number: {e}")))?;
        return Ok(see_other(&format!("/ui/children/{id}")));
    }
    let p = user(&state, &req, Permission::ReadChildren).await?;
    let palette = &state.node.palette;
    let mut filters = vec![
        text_filter("region", "地区代码 (Region prefix)", &q.region),
        text_filter("township", "乡镇（街道）代码 (Township)", &q.township),
        select_filter(
            "category",
            "类别 (Category)",
            &q.category,
            Category::ALL
                .iter()
                .map(|c| (c.code().to_owned(), c.label_zh().to_owned()))
                .collect(),
        ),
        select_filter(
            "risk_level",
            "风险等级 (Risk)",
            &q.risk_level,
            crate::domain::RiskLevel::ALL
                .iter()
                .map(|l| (palette.label(*l).to_owned(), palette.shown(*l)))
                .collect(),
        ),
        select_filter(
            "stale_days",
            "未走访 (Not visited for)",
            &q.stale_days,
            [
                ("183", "六个月以上 (over 6 months)"),
                ("90", "三个月以上 (over 3 months)"),
                ("30", "一个月以上 (over a month)"),
            ]
            .iter()
            .map(|(v, l)| ((*v).to_owned(), (*l).to_owned()))
            .collect(),
        ),
        select_filter(
            "visits_due_days",
            "待走访 (Visit due)",
            &q.visits_due_days,
            [
                ("0", "已到期或逾期 (due or overdue)"),
                ("7", "7 天内 (within 7 days)"),
                ("30", "30 天内 (within 30 days)"),
            ]
            .iter()
            .map(|(v, l)| ((*v).to_owned(), (*l).to_owned()))
            .collect(),
        ),
        select_filter(
            "benefit",
            "享受待遇 (Benefit held)",
            &q.benefit,
            crate::domain::child::Benefit::ALL
                .iter()
                .map(|b| (b.code().to_owned(), b.label_zh().to_owned()))
                .collect(),
        ),
        text_filter("worker", "包保人 (Responsible worker)", &q.worker),
    ];
    let page = |filters, rows, next, error: Option<String>| FilesPage {
        nav: Nav::new(
            &state.node.id.to_string(),
            Some(&p),
            "儿童档案 (Files)",
            "children",
        ),
        filters,
        rows,
        next,
        error,
        can_create: p.allows(Permission::EditChildren),
    };
    let mut days = |name: &str, value: &Option<String>| match set(value).map(|s| s.parse::<u32>()) {
        None => Ok(None),
        Some(Ok(d)) => Ok(Some(d)),
        Some(Err(_)) => {
            let msg = "天数应为整数 (a whole number of days)".to_owned();
            if let Some(f) = filters.iter_mut().find(|f| f.name == name) {
                f.error = Some(msg.clone());
            }
            Err(msg)
        }
    };
    let parsed = days("stale_days", &q.stale_days)
        .and_then(|s| days("visits_due_days", &q.visits_due_days).map(|v| (s, v)));
    let (stale_days, visits_due_days) = match parsed {
        Ok(d) => d,
        Err(msg) => {
            return Ok(render::html(
                StatusCode::BAD_REQUEST,
                &page(filters, Vec::new(), None, Some(msg)),
            ))
        }
    };
    let at = Utc::now();
    let query = ListQuery {
        region: set(&q.region),
        township: set(&q.township),
        category: set(&q.category),
        risk_level: set(&q.risk_level),
        stale_days,
        worker: set(&q.worker),
        visits_due_days,
        benefit: set(&q.benefit),
        after: set(&q.after),
        limit: Some(PAGE_SIZE),
        ..ListQuery::default()
    };
    let filter = match child_filter(&state.node, query, at) {
        Ok(f) => f,
        Err(e) => {
            let field = e.field_name().map(str::to_owned);
            if let Some(f) = filters
                .iter_mut()
                .find(|f| Some(f.name.as_str()) == field.as_deref())
            {
                f.error = Some(e.reason().to_owned());
            }
            return Ok(render::html(
                StatusCode::BAD_REQUEST,
                &page(filters, Vec::new(), None, Some(e.reason().to_owned())),
            ));
        }
    };
    let stale_before = filter.stale_before;
    let (node, a) = (state.node.clone(), actor(&p));
    let list = state
        .store
        .run(move |c| ledger::list_children(c, &node, &filter, &a, Some(PURPOSE), at))
        .await?;
    let six_months_ago = (at - chrono::Duration::days(183)).date_naive();
    let rows = list
        .items
        .into_iter()
        .map(|s| {
            let stale = s.last_visit_on.map_or(true, |d| d < six_months_ago);
            FileRowView {
                id_masked: IdNumber::mask_text(&s.id_number),
                hukou: region_shown(&s.hukou_region),
                residence: region_shown(&s.residence_region),
                categories: categories_zh(&s.categories),
                risk: s.risk_level.map_or_else(String::new, |l| palette.shown(l)),
                last_visit: date_zh_opt(s.last_visit_on),
                updated_at: when(s.updated_at),
                class: if stale && stale_before.is_some() {
                    "overdue"
                } else {
                    ""
                },
                id_number: s.id_number,
                name: s.name,
            }
        })
        .collect();
    let next = list.next_after.as_deref().map(|a| q.next(a));
    Ok(render::html(
        StatusCode::OK,
        &page(filters, rows, next, None),
    ))
}

// ---------------------------------------------------------------------------------------------
// A new file

/// The fields a new file's form asks for, in the ledger's order (the rest are set later on the
/// file's page).
const NEW_FIELDS: &[ChildField] = &[
    ChildField::IdNumber,
    ChildField::Name,
    ChildField::HukouRegion,
    ChildField::HukouTownship,
    ChildField::HukouAddress,
    ChildField::ResidenceRegion,
    ChildField::ResidenceTownship,
    ChildField::ResidenceAddress,
    ChildField::Categories,
    ChildField::FatherSituation,
    ChildField::MotherSituation,
    ChildField::LegalGuardian,
    ChildField::ActualCaregiver,
    ChildField::ResponsibleWorker,
    ChildField::RiskLevel,
    ChildField::LastVisitOn,
    ChildField::Notes,
];

/// How to type a field's value on one line.
fn hint(field: ChildField, palette: &crate::domain::RiskPalette) -> String {
    use ChildField as F;
    match field {
        F::Categories => format!(
            "以“;”分隔 (separated by ;): {}",
            Category::ALL
                .iter()
                .map(|c| c.label_zh())
                .collect::<Vec<_>>()
                .join("、")
        ),
        F::RiskLevel => format!(
            "{} ",
            crate::domain::RiskLevel::ALL
                .iter()
                .map(|l| palette.label(*l))
                .collect::<Vec<_>>()
                .join(" / ")
        ),
        F::LegalGuardian | F::ActualCaregiver => "姓名;关系;电话 (name;relation;phone)".into(),
        F::ResponsibleWorker => "姓名;身份;电话;乡镇 (name;role;phone;township)".into(),
        F::Guardianship => "方式;起始日期;文号;决定日期 (kind;since;reference;decided_on)".into(),
        F::Disability => "类别;等级 (kind;grade)".into(),
        F::LastVisitOn | F::LeftHukouOn | F::InfoUpdatedOn => "2026-09-01".into(),
        F::HukouRegion | F::ResidenceRegion => "6 位区县代码 (6-digit county code)".into(),
        F::HukouTownship | F::ResidenceTownship => {
            "9 位乡镇代码或名称 (9-digit code or name)".into()
        }
        _ => String::new(),
    }
}

/// A field's current value as its input shows it: vocabularies and the risk level by their
/// labels, which the reading accepts back.
fn input_value(field: ChildField, value: &Value, palette: &crate::domain::RiskPalette) -> String {
    if field == ChildField::RiskLevel {
        if let Some(level) = value
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .and_then(|n| crate::domain::RiskLevel::new(n).ok())
        {
            return palette.label(level).to_owned();
        }
    }
    if field == ChildField::Categories {
        if let Value::Array(items) = value {
            let codes: Vec<String> = items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            return categories_zh(&codes).replace('、', ";");
        }
    }
    typed::one_line(field, value)
}

fn new_file_form(state: &AppState, posted: Option<&Posted>) -> FormView {
    let mut form = FormView::new(
        "new-file",
        "新建档案 (New file)",
        "/ui/children/new",
        "建档 (Create the file)",
    );
    for f in NEW_FIELDS {
        let value = posted.map(|p| p.get(f.name())).unwrap_or_default();
        form = form.input(
            f.name(),
            &format!("{} ({})", f.label_zh(), f.name()),
            Kind::Text,
            &value,
            &hint(*f, &state.node.palette),
        );
    }
    form
}

fn form_page(state: &AppState, p: &Principal, heading: &str, form: FormView) -> FormPage {
    FormPage {
        nav: Nav::new(&state.node.id.to_string(), Some(p), heading, "children"),
        heading: heading.to_owned(),
        intro: "性别与出生日期由身份证号得出；其余字段建档后在档案页填写 (Sex and birth date come from the ID number; other fields are filled in on the file's page.)".to_owned(),
        forms: vec![form],
    }
}

/// `GET /ui/children/new`.
pub async fn new_form(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, UiError> {
    let p = user(&state, &req, Permission::EditChildren).await?;
    let form = new_file_form(&state, None);
    Ok(render::html(
        StatusCode::OK,
        &form_page(&state, &p, "新建档案 (New file)", form),
    ))
}

/// Reads each posted field by its type; the first unreadable one is named.
fn typed_fields<'a>(
    posted: &Posted,
    fields: impl IntoIterator<Item = &'a ChildField>,
    keep: impl Fn(ChildField, &str) -> bool,
) -> Result<Map<String, Value>, crate::domain::FieldError> {
    let mut body = Map::new();
    for f in fields {
        let text = posted.get(f.name());
        if !keep(*f, &text) {
            continue;
        }
        body.insert(f.name().to_owned(), typed::read_value(f.name(), &text)?);
    }
    Ok(body)
}

/// `POST /ui/children/new`: the same creation as `POST /api/v1/children` (the hukou bureau is
/// asked first when another node serves the hukou region).
pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, UiError> {
    let (p, posted) = posted_by(&state, &req, Permission::EditChildren, form.into_inner()).await?;
    let again = |field: Option<&str>, msg: String| {
        let mut form = new_file_form(&state, Some(&posted));
        form.fail(field, msg);
        render::html(
            StatusCode::UNPROCESSABLE_ENTITY,
            &form_page(&state, &p, "新建档案 (New file)", form),
        )
    };
    let body = match typed_fields(&posted, NEW_FIELDS, |_, text| !text.is_empty()) {
        Ok(b) => b,
        Err(e) => return Ok(again(Some(&e.field), e.reason)),
    };
    let at = Utc::now();
    let a = actor(&p);
    let record = match ledger::parse_record(&state.node, body, at) {
        Ok(r) => r,
        Err(e) => {
            let e = ApiError::from(e);
            return Ok(again(e.field_name(), e.reason().to_owned()));
        }
    };
    if let Err(e) = crate::api::children::ask_hukou_bureau_first(&state, &record, &a).await {
        return Ok(again(e.field_name(), e.reason().to_owned()));
    }
    let id = record.id_number.clone();
    let node = state.node.clone();
    match state
        .store
        .run(move |c| ledger::create_child(c, &node, record, &a, at))
        .await
    {
        Ok(_) => Ok(see_other(&format!("/ui/children/{id}?saved=created"))),
        Err(e) => {
            let e = ApiError::from(e);
            if e.status_code().is_server_error() {
                return Err(UiError::Problem(e));
            }
            Ok(again(e.field_name(), e.reason().to_owned()))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Editing a file

/// Fields a page never edits as text: the ID number (immutable) and benefits (granted through
/// cases, ended with their own form).
fn editable(field: ChildField) -> bool {
    !matches!(field, ChildField::IdNumber | ChildField::Benefits)
}

/// The edit form of the fields this node owns for the child (with what was posted, when the
/// form comes back).
pub(super) fn edit_form(state: &AppState, file: &ChildFile, posted: Option<&Posted>) -> FormView {
    let roles = state
        .node
        .roles(&file.record.hukou_region, &file.record.residence_region);
    let id = file.record.id_number.as_str();
    let mut form = FormView::new(
        "edit-file",
        "修改档案 (Edit the fields this bureau keeps)",
        &format!("/ui/children/{id}"),
        "保存 (Save)",
    );
    for (f, v) in file.record.to_fields() {
        if !editable(f) || !roles.may_change(f) {
            continue;
        }
        let current = input_value(f, &v, &state.node.palette);
        let shown = posted.map_or_else(|| current.clone(), |p| p.get(f.name()));
        let was = posted.map_or_else(|| current.clone(), |p| p.get(&format!("was.{}", f.name())));
        form = form.hidden(&format!("was.{}", f.name()), &was).input(
            f.name(),
            &format!("{} ({})", f.label_zh(), f.name()),
            Kind::Text,
            &shown,
            &hint(f, &state.node.palette),
        );
    }
    form
}

/// `POST /ui/children/{id}`: saves the changed fields through `ledger::update_child` (the
/// service of `PATCH /api/v1/children/{id}`); only fields whose text changed are sent.
pub async fn update(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, UiError> {
    let (p, posted) = posted_by(&state, &req, Permission::EditChildren, form.into_inner()).await?;
    let id = IdNumber::parse(path.trim())
        .map_err(|e| UiError::BadRequest(format!("not a valid ID number: {e}")))?;
    let changed = |f: ChildField, text: &str| {
        editable(f) && posted.has(f.name()) && posted.get(&format!("was.{}", f.name())) != text
    };
    let patch = match typed_fields(&posted, ChildField::ALL, changed) {
        Ok(b) => b,
        Err(e) => {
            return super::pages::child_page(
                &state,
                &p,
                id,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(super::pages::Again::new(
                    "edit-file",
                    &posted,
                    Some(e.field),
                    e.reason,
                )),
            )
            .await
        }
    };
    if patch.is_empty() {
        return Ok(see_other(&format!("/ui/children/{id}?saved=unchanged")));
    }
    let (node, a, id2) = (state.node.clone(), actor(&p), id.clone());
    match state
        .store
        .run(move |c| ledger::update_child(c, &node, &id2, patch, &a, Utc::now()))
        .await
    {
        Ok(_) => Ok(see_other(&format!("/ui/children/{id}?saved=edit"))),
        Err(e) => {
            let e = ApiError::from(e);
            if e.status_code().is_server_error() || e.status_code() == StatusCode::NOT_FOUND {
                return Err(UiError::Problem(e));
            }
            let status = e.status_code();
            super::pages::child_page(
                &state,
                &p,
                id,
                status,
                Some(super::pages::Again::new(
                    "edit-file",
                    &posted,
                    e.field_name().map(str::to_owned),
                    e.reason().to_owned(),
                )),
            )
            .await
        }
    }
}
