//! The page handlers: each checks the session and role, calls one service, and renders one
//! template. Forms post back to the page they came from (Post/Redirect/Get on success).

use std::collections::BTreeMap;

use actix_web::cookie::Cookie;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Deserialize;
use serde_json::Value;

use super::render::{self, *};
use super::{actor, check_csrf, see_other, user, CookiePolicy, UiError, LOGIN_CSRF_COOKIE};
use crate::accounts::{self, AccountError, Permission, SESSION_COOKIE};
use crate::api::AppState;
use crate::audit::{self, Event, Outcome};
use crate::conflicts::{self, ConflictError, FileConflicts, Resolution};
use crate::domain::child::ChildField;
use crate::domain::IdNumber;
use crate::eligibility::calendar::DeadlineStatus;
use crate::eligibility::service::{self as cases_service, CaseQuery};
use crate::storage;
use crate::storage::audit::EventFilter;
use crate::sync::ledger;

fn node_id(state: &web::Data<AppState>) -> String {
    state.node.id.to_string()
}

fn parse_id(raw: &str) -> Result<IdNumber, UiError> {
    IdNumber::parse(raw.trim())
        .map_err(|e| UiError::BadRequest(format!("not a valid ID number: {e}")))
}

/// Only local pages are followed after login (no open redirect); the default is the landing
/// page, which depends on the role.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui/") && !n.starts_with("//") => n.to_owned(),
        _ => "/ui/".to_owned(),
    }
}

/// Where a role starts: the audit log for a role that may not read children's data (an
/// auditor), the conflict queue otherwise.
fn landing_of(role: accounts::Role) -> &'static str {
    if role.allows(Permission::ReadChildren) {
        "/ui/conflicts"
    } else {
        "/ui/audit"
    }
}

/// `/`, `/ui`, `/ui/`: the logged-in user's landing page, or the login page.
pub async fn landing(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, UiError> {
    let principal = match req.cookie(SESSION_COOKIE) {
        Some(c) => state.session_of(c.value()).await?,
        None => None,
    };
    Ok(match principal {
        Some(p) => see_other(landing_of(p.role)),
        None => see_other("/ui/login"),
    })
}

fn set_cookie(resp: &mut HttpResponse, cookie: &Cookie<'_>) -> Result<(), UiError> {
    resp.add_cookie(cookie)
        .map_err(|e| UiError::Internal(e.to_string()))
}

/// A cookie that tells the browser to forget `name`.
fn removal(name: &'static str, path: &'static str) -> Cookie<'static> {
    let mut gone = Cookie::build(name, "").path(path).finish();
    gone.make_removal();
    gone
}

// ---------------------------------------------------------------------------------------------
// Login

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

fn login_page(
    state: &web::Data<AppState>,
    cookies: &CookiePolicy,
    status: StatusCode,
    next: String,
    error: Option<String>,
) -> Result<HttpResponse, UiError> {
    let csrf = accounts::random_secret()?;
    let page = LoginPage {
        nav: Nav::new(&node_id(state), None, "登录 (Log in)", "login"),
        csrf: csrf.clone(),
        next,
        error,
    };
    let mut resp = render::html(status, &page);
    set_cookie(
        &mut resp,
        &cookies.cookie(LOGIN_CSRF_COOKIE, csrf, "/ui/login"),
    )?;
    Ok(resp)
}

pub async fn login_form(
    state: web::Data<AppState>,
    cookies: web::Data<CookiePolicy>,
    q: web::Query<LoginQuery>,
) -> Result<HttpResponse, UiError> {
    login_page(
        &state,
        &cookies,
        StatusCode::OK,
        safe_next(q.next.as_deref()),
        None,
    )
}

/// Every field optional: a form missing one gets the login page with an error, not a parse
/// error.
#[derive(Deserialize)]
pub struct LoginForm {
    csrf: Option<String>,
    next: Option<String>,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

pub async fn login(
    state: web::Data<AppState>,
    cookies: web::Data<CookiePolicy>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, UiError> {
    let form = form.into_inner();
    let next = safe_next(form.next.as_deref());
    let expected = req.cookie(LOGIN_CSRF_COOKIE).map(|c| c.value().to_owned());
    let sent = form.csrf.unwrap_or_default();
    let csrf_ok = !sent.is_empty()
        && expected.is_some_and(|e| accounts::constant_time_eq(e.as_bytes(), sent.as_bytes()));
    if !csrf_ok {
        return login_page(
            &state,
            &cookies,
            StatusCode::FORBIDDEN,
            next,
            Some("表单已过期，请重新登录 (The form's security token is missing or wrong; try again.)".into()),
        );
    }
    let ip = req.peer_addr().map(|a| a.ip());
    if let Some(ip) = ip {
        if let Err(wait) = state.login_limiter.check(ip, std::time::Instant::now()) {
            let minutes = wait.as_secs().div_ceil(60).max(1);
            let mut resp = login_page(
                &state,
                &cookies,
                StatusCode::TOO_MANY_REQUESTS,
                next,
                Some(format!(
                    "登录失败次数过多，请 {minutes} 分钟后再试 (Too many failed logins from this address; try again in {minutes} minutes.)"
                )),
            )?;
            if let Ok(v) =
                actix_web::http::header::HeaderValue::from_str(&wait.as_secs().max(1).to_string())
            {
                resp.headers_mut()
                    .insert(actix_web::http::header::RETRY_AFTER, v);
            }
            return Ok(resp);
        }
    }
    let node = state.node.clone();
    let policy = state.settings.admin.account_policy();
    let client = ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let (username, password) = (form.username, form.password);
    let result = state
        .store
        .run(move |c| {
            accounts::login(
                c,
                node.clock.now(),
                &username,
                &password,
                &client,
                policy,
                Utc::now(),
            )
        })
        .await;
    match result {
        Ok(session) => {
            // The default landing, or a page the role may not open by default, becomes the
            // role's own landing page.
            let next = if next == "/ui/"
                || (next == "/ui/conflicts" && !session.role.allows(Permission::ReadChildren))
            {
                landing_of(session.role).to_owned()
            } else {
                next
            };
            let mut resp = see_other(&next);
            let mut cookie = cookies.cookie(SESSION_COOKIE, session.cookie, "/");
            cookie.set_max_age(actix_web::cookie::time::Duration::seconds(
                (session.expires_at - Utc::now()).num_seconds().max(0),
            ));
            set_cookie(&mut resp, &cookie)?;
            set_cookie(&mut resp, &removal(LOGIN_CSRF_COOKIE, "/ui/login"))?;
            Ok(resp)
        }
        // A locked or disabled account answers exactly as a wrong password does.
        Err(
            AccountError::BadCredentials | AccountError::Disabled | AccountError::Locked { .. },
        ) => {
            if let Some(ip) = ip {
                state.login_limiter.failed(ip, std::time::Instant::now());
            }
            login_page(
                &state,
                &cookies,
                StatusCode::UNAUTHORIZED,
                next,
                Some("用户名或密码错误 (Wrong user name or password.)".to_owned()),
            )
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, UiError> {
    let p = user(&state, &req, Permission::ViewOperations).await;
    // Any role may log out; `ViewOperations` is granted to every role.
    let p = p?;
    check_csrf(&p, form.csrf.as_deref())?;
    if let Some(c) = req.cookie(SESSION_COOKIE) {
        let value = c.value().to_owned();
        let node = state.node.clone();
        let a = actor(&p);
        state
            .store
            .run(move |c| accounts::logout(c, node.clock.now(), &value, &a, Utc::now()))
            .await?;
    }
    let mut resp = see_other("/ui/login");
    set_cookie(&mut resp, &removal(SESSION_COOKIE, "/"))?;
    Ok(resp)
}

// ---------------------------------------------------------------------------------------------
// Conflicts

#[derive(Deserialize)]
pub struct QueueQuery {
    after: Option<String>,
}

pub async fn queue(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<QueueQuery>,
) -> Result<HttpResponse, UiError> {
    let p = user(&state, &req, Permission::ReadChildren).await?;
    let node = state.node.clone();
    let a = actor(&p);
    let after = q.into_inner().after;
    let (page, counts) = state
        .store
        .run(move |c| -> Result<_, ConflictError> {
            storage::transaction(c, |c| {
                let me = node.id.to_string();
                let page = conflicts::queue(c, Some(&me), after.as_deref(), 100, &a.scope)?;
                let counts = conflicts::counts(c, &a.scope)?;
                let shown: Vec<&str> = page.items.iter().map(|i| i.id_number.as_str()).collect();
                audit::append(
                    c,
                    node.clock.now(),
                    Utc::now(),
                    &Event::new(a, "conflict.queue.read", Outcome::Ok)
                        .details(serde_json::json!({ "returned": shown })),
                )?;
                Ok((page, counts))
            })
        })
        .await
        .map_err(conflict_error)?;
    let me = node_id(&state);
    let owned_total = counts
        .iter()
        .filter(|(o, _)| *o == me)
        .map(|(_, n)| n)
        .sum();
    let elsewhere_total = counts
        .iter()
        .filter(|(o, _)| *o != me)
        .map(|(_, n)| n)
        .sum();
    let rows = page
        .items
        .into_iter()
        .map(|i| QueueRowView {
            id_masked: IdNumber::mask_text(&i.id_number),
            field_label: label_of(&i.field),
            regions: format!("{} / {}", i.hukou_region, i.residence_region),
            opened_at: when(i.opened_at),
            id_number: i.id_number,
            name: i.name,
            field: i.field,
            candidates: i.candidates,
        })
        .collect();
    Ok(render::html(
        StatusCode::OK,
        &QueuePage {
            nav: Nav::new(&me, Some(&p), "冲突队列 (Conflicts)", "conflicts"),
            rows,
            next: page.next_after.map(|n| url_encode(&n)),
            owned_total,
            elsewhere_total,
        },
    ))
}

fn conflict_error(e: ConflictError) -> UiError {
    match e {
        ConflictError::NotFound(_) => UiError::NotFound("no child with this ID number".into()),
        ConflictError::Ledger(l @ crate::sync::LedgerError::OutsideScope { .. }) => {
            UiError::Problem(l.into())
        }
        other => UiError::Internal(other.to_string()),
    }
}

/// The conflict page's model from a file's conflicts, fields grouped.
fn conflict_page(
    state: &web::Data<AppState>,
    p: &accounts::Principal,
    file: &FileConflicts,
    notice: Option<String>,
    error: Option<String>,
) -> ConflictPage {
    let me = node_id(state);
    let mut fields: Vec<FieldConflictView> = Vec::new();
    for c in &file.conflicts {
        let candidates = c.candidates.iter().map(|cand| CandidateView {
            author: format!(
                "节点 (node) {}",
                cand.author.clone().unwrap_or_else(|| "?".into())
            ),
            at: when_opt(cand.at),
            value: show_field(&c.field, &cand.value, &state.node.palette),
        });
        match fields.iter_mut().find(|f| f.field == c.field) {
            Some(f) => f.candidates.extend(candidates),
            None => fields.push(FieldConflictView {
                field: c.field.clone(),
                label: label_of(&c.field),
                base: show_field(&c.field, &c.base, &state.node.palette),
                owner: c.owner.clone(),
                mine: c.owner == me,
                candidates: candidates.collect(),
            }),
        }
    }
    ConflictPage {
        nav: Nav::new(&me, Some(p), "冲突审核 (Conflict)", "conflicts"),
        id_masked: IdNumber::mask_text(&file.id_number),
        id_number: file.id_number.clone(),
        name: file.name.clone(),
        heads: file.heads.join(","),
        can_resolve: file.reviewable_here && p.allows(Permission::ResolveConflicts),
        fields,
        awaiting: file.awaiting.clone(),
        notice,
        error,
    }
}

#[derive(Deserialize)]
pub struct ConflictQuery {
    resolved: Option<String>,
}

pub async fn conflict(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<ConflictQuery>,
) -> Result<HttpResponse, UiError> {
    let p = user(&state, &req, Permission::ReadChildren).await?;
    let id = parse_id(&path)?;
    let node = state.node.clone();
    let a = actor(&p);
    let file = state
        .store
        .run(move |c| conflicts::read(c, &node, &id, &a, Utc::now()))
        .await
        .map_err(conflict_error)?;
    let notice = q.resolved.as_ref().map(|_| {
        "已裁决并签名，正在同步到对方节点 (Resolved: a signed resolution version is on its way to the other bureau.)".to_owned()
    });
    Ok(render::html(
        StatusCode::OK,
        &conflict_page(&state, &p, &file, notice, None),
    ))
}

/// Turns the form's choices into values: `c<i>` picks the i-th shown candidate of the field,
/// `base` the common ancestor's value, `custom` the text box (JSON if it parses, else text).
fn choices(
    file: &FileConflicts,
    form: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Value>, String> {
    let mut out = BTreeMap::new();
    for (key, choice) in form {
        let Some(field) = key.strip_prefix("choice.") else {
            continue;
        };
        let conflicts: Vec<_> = file.conflicts.iter().filter(|c| c.field == field).collect();
        let Some(first) = conflicts.first() else {
            return Err(format!("{field} has no open conflict"));
        };
        let value = if choice == "base" {
            first.base.clone()
        } else if choice == "custom" {
            let text = form
                .get(&format!("custom.{field}"))
                .map(|s| s.trim())
                .unwrap_or("");
            if text.is_empty() {
                return Err(format!("{}: 请填写新值 (enter a value)", label_of(field)));
            }
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
        } else {
            let i: usize = choice
                .strip_prefix('c')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("{field}: unknown choice {choice:?}"))?;
            conflicts
                .iter()
                .flat_map(|c| c.candidates.iter())
                .nth(i)
                .map(|c| c.value.clone())
                .ok_or_else(|| format!("{field}: unknown choice {choice:?}"))?
        };
        out.insert(field.to_owned(), value);
    }
    Ok(out)
}

pub async fn resolve(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, UiError> {
    let p = user(&state, &req, Permission::ReadChildren).await?;
    let form: BTreeMap<String, String> = form.into_inner().into_iter().collect();
    check_csrf(&p, form.get("csrf").map(String::as_str))?;
    let id = parse_id(&path)?;
    let node = state.node.clone();
    let a = actor(&p);
    if !p.allows(Permission::ResolveConflicts) {
        state
            .record(
                Event::new(a, "conflict.resolve", Outcome::Denied)
                    .object("child", id.as_str())
                    .details(serde_json::json!({"reason": "role"})),
            )
            .await;
        return Err(UiError::Forbidden(format!(
            "{} ({}) 不能裁决冲突 (may not resolve conflicts); a reviewer must",
            p.role.label_zh(),
            p.role
        )));
    }
    let heads: Vec<String> = form
        .get("heads")
        .map(|h| {
            h.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let (node2, id2, a2) = (node.clone(), id.clone(), actor(&p));
    let shown = state
        .store
        .run(move |c| {
            // Outside the reader's scope the file is not there for them, whatever they post.
            crate::sync::ledger::check_scope_of(c, &a2, id2.as_str(), false)
                .map_err(|_| ConflictError::NotFound(id2.masked()))?;
            conflicts::of_file(c, &node2, &id2)
        })
        .await
        .map_err(conflict_error)?;
    let values = match choices(&shown, &form) {
        Ok(v) => v,
        Err(msg) => {
            return Ok(render::html(
                StatusCode::UNPROCESSABLE_ENTITY,
                &conflict_page(&state, &p, &shown, None, Some(msg)),
            ))
        }
    };
    let (node3, id3) = (node.clone(), id.clone());
    let outcome = state
        .store
        .run(move |c| {
            conflicts::resolve(
                c,
                &node3,
                &id3,
                Resolution { heads, values },
                &a,
                Utc::now(),
            )
        })
        .await;
    match outcome {
        Ok(_) => Ok(see_other(&format!("/ui/conflicts/{id}?resolved=1"))),
        Err(ConflictError::Stale { current, .. }) => Ok(render::html(
            StatusCode::CONFLICT,
            &conflict_page(
                &state,
                &p,
                &current,
                None,
                Some("档案在您查看后已变更，以下为最新状态，请重新裁决 (The file changed since you opened it; this is its current state — review and resolve again.)".into()),
            ),
        )),
        Err(e @ (ConflictError::NotOwner { .. } | ConflictError::NothingOpen)) => Ok(render::html(
            StatusCode::FORBIDDEN,
            &conflict_page(&state, &p, &shown, None, Some(e.to_string())),
        )),
        Err(
            e @ (ConflictError::MissingChoice(_)
            | ConflictError::NotInConflict(_)
            | ConflictError::UnknownField(_)
            | ConflictError::BadHead(_)
            | ConflictError::Invalid(_)),
        ) => {
            let msg = match &e {
                ConflictError::MissingChoice(f) => {
                    format!("{}: 请选择一个值 (choose a value)", label_of(f))
                }
                ConflictError::Invalid(fe) => {
                    format!("{}: {} (the value fails validation)", label_of(&fe.field), fe.reason)
                }
                other => other.to_string(),
            };
            Ok(render::html(
                StatusCode::UNPROCESSABLE_ENTITY,
                &conflict_page(&state, &p, &shown, None, Some(msg)),
            ))
        }
        Err(other) => Err(conflict_error(other)),
    }
}

// ---------------------------------------------------------------------------------------------
// Children

#[derive(Deserialize)]
pub struct ChildQuery {
    saved: Option<String>,
}

/// A form that comes back: which, what was posted, and the error (beside `field` when the form
/// has that input).
pub struct Again<'a> {
    pub form: &'static str,
    pub posted: &'a super::forms::Posted,
    pub field: Option<String>,
    pub message: String,
}

impl<'a> Again<'a> {
    pub fn new(
        form: &'static str,
        posted: &'a super::forms::Posted,
        field: Option<String>,
        message: String,
    ) -> Self {
        Self {
            form,
            posted,
            field,
            message,
        }
    }
}

/// A case step for people: `认定 (approve)`.
fn transition_label(kind: crate::domain::case::state::TransitionKind) -> &'static str {
    use crate::domain::case::state::TransitionKind as K;
    match kind {
        K::Submit => "提交 (submit)",
        K::Receive => "受理 (receive)",
        K::RequestInfo => "要求补充材料 (request information)",
        K::ProvideInfo => "补充材料 (provide information)",
        K::Approve => "认定 (approve)",
        K::Deny => "不予认定 (deny)",
        K::Withdraw => "撤回 (withdraw)",
    }
}

/// What was posted to `form`, when that form comes back.
fn posted_for<'a>(again: &Option<Again<'a>>, form: &str) -> Option<&'a super::forms::Posted> {
    again.as_ref().filter(|g| g.form == form).map(|g| g.posted)
}

/// What a saved form's redirect says on the file's page.
fn saved_notice(what: &str) -> Option<String> {
    Some(
        match what {
            "created" => "档案已建立 (The file was created.)",
            "edit" => "已保存并签名，正在同步 (Saved: a signed version is on its way to the other bureau.)",
            "unchanged" => "没有改动 (Nothing changed.)",
            "visit" => "走访已记录 (The visit was recorded.)",
            "benefit" => "待遇已终止 (The benefit was ended.)",
            "report" => "报告已记录 (The report was recorded.)",
            _ => return None,
        }
        .to_owned(),
    )
}

pub async fn child(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<ChildQuery>,
) -> Result<HttpResponse, UiError> {
    let p = user(&state, &req, Permission::ReadChildren).await?;
    let id = parse_id(&path)?;
    let notice = q.saved.as_deref().and_then(saved_notice);
    child_page_with(&state, &p, id, StatusCode::OK, None, notice).await
}

/// A file's page (audited as a read), with a form that came back when `again` says so.
pub async fn child_page(
    state: &web::Data<AppState>,
    p: &accounts::Principal,
    id: IdNumber,
    status: StatusCode,
    again: Option<Again<'_>>,
) -> Result<HttpResponse, UiError> {
    child_page_with(state, p, id, status, again, None).await
}

async fn child_page_with(
    state: &web::Data<AppState>,
    p: &accounts::Principal,
    id: IdNumber,
    status: StatusCode,
    again: Option<Again<'_>>,
    notice: Option<String>,
) -> Result<HttpResponse, UiError> {
    let node = state.node.clone();
    let a = actor(p);
    let (file, open, visits, reports) = state
        .store
        .run(move |c| -> Result<_, UiError> {
            let now = Utc::now();
            let file = ledger::read_child(c, &node, &id, &a, Some("admin page"), now)?;
            let open = conflicts::of_file(c, &node, &id).map_err(conflict_error)?;
            let visits = crate::visits::list(c, &node, &id, None, 50, &a, Some("admin page"), now)?;
            let reports = crate::visits::reports::list(
                c,
                &node,
                Some(&id),
                false,
                None,
                50,
                &a,
                Some("admin page"),
                now,
            )?;
            Ok((file, open, visits, reports))
        })
        .await?;
    let palette = &state.node.palette;
    let visits = visits
        .items
        .iter()
        .map(|v| {
            let b = &v.visit;
            VisitRowView {
                on: date_zh(b.visited_on),
                kind: b.kind.label_zh(),
                visitor: format!(
                    "{} ({})",
                    b.visitor.name.as_str(),
                    b.visitor.role.label_zh()
                ),
                seen: b
                    .seen
                    .iter()
                    .map(|s| s.label_zh())
                    .collect::<Vec<_>>()
                    .join("、"),
                assessment: b.assessment.as_ref().map_or_else(String::new, |a| {
                    let areas = a
                        .indicators
                        .iter()
                        .map(|(area, i)| format!("{} {}", area.label_zh(), palette.label(i.grade)))
                        .collect::<Vec<_>>()
                        .join("、");
                    format!(
                        "{} ({areas}; {})",
                        palette.label(a.level),
                        a.assessor.as_str()
                    )
                }),
                follow_up: b
                    .follow_up
                    .iter()
                    .map(|f| f.as_str())
                    .collect::<Vec<_>>()
                    .join("；"),
                next: b.next_due_on.map(date_zh).unwrap_or_default(),
                node: b.recorded_by.to_string(),
            }
        })
        .collect();
    let reports = reports
        .items
        .iter()
        .map(|r| {
            let b = &r.report;
            ReportRowView {
                on: date_zh(b.reported_on),
                urgency: b.urgency.label_zh(),
                urgent: b.is_urgent(),
                reporter: reporter_text(&b.reporter),
                seen: b.seen.as_str().to_owned(),
                police: police_text(b.police_called),
                referral: b
                    .referral
                    .as_ref()
                    .map_or_else(String::new, |f| referral_text(f, true)),
                node: b.recorded_by.to_string(),
            }
        })
        .collect();
    let fields = file
        .record
        .to_fields()
        .into_iter()
        .map(|(f, v)| FieldView {
            field: f.name(),
            label: label(f),
            value: if f == ChildField::Categories {
                show_categories(&file.record.categories)
            } else {
                show_field(f.name(), &v, &state.node.palette)
            },
            authority: authority_label(f.authority()),
        })
        .collect();
    let history = file
        .history
        .iter()
        .rev()
        .map(|v| HistoryView {
            id: v.id.short(),
            author: v.author_node.clone(),
            at: when(v.stored_at),
            changed: v
                .changed
                .iter()
                .map(|c| {
                    ChildField::from_name(c).map_or_else(|| c.clone(), |f| label(f).to_owned())
                })
                .collect::<Vec<_>>()
                .join("、"),
            parents: v
                .parents
                .iter()
                .map(|p| p.short())
                .collect::<Vec<_>>()
                .join(", "),
            resolution: v.resolution,
        })
        .collect();
    let me = node_id(state);
    let conflicts_here = open.conflicts.iter().filter(|c| c.owner == me).count();
    let posted_to = |form: &str| posted_for(&again, form);
    let mut forms = Vec::new();
    if p.allows(Permission::EditChildren) && file.served_here {
        forms.push(super::files::edit_form(
            state,
            &file,
            posted_to("edit-file"),
        ));
        forms.extend(super::casework::child_forms(state, &file, &posted_to));
        forms.push(super::reports::report_form(
            file.record.id_number.as_str(),
            posted_to("report"),
        ));
    }
    if let Some(g) = &again {
        if let Some(f) = forms.iter_mut().find(|f| f.id == g.form) {
            f.fail(g.field.as_deref(), g.message.clone());
        }
    }
    Ok(render::html(
        status,
        &ChildPage {
            nav: Nav::new(&me, Some(p), "儿童档案 (Child's file)", "children"),
            forms,
            notice,
            id_masked: file.record.id_number.masked(),
            id_number: file.record.id_number.to_string(),
            name: file.record.name.as_str().to_owned(),
            sex: match file.sex {
                crate::domain::Sex::Male => "男 (male)".to_owned(),
                crate::domain::Sex::Female => "女 (female)".to_owned(),
            },
            birth_date: date_zh(file.birth_date),
            hukou_name: file.hukou_region_name.clone(),
            residence_name: file.residence_region_name.clone(),
            updated_at: when(file.updated_at),
            fields,
            history,
            visits,
            reports,
            awaiting: open.awaiting,
            conflicts_here,
        },
    ))
}

// ---------------------------------------------------------------------------------------------
// Cases, peers, audit

pub async fn cases(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, UiError> {
    let p = user(&state, &req, Permission::ReadChildren).await?;
    let node = state.node.clone();
    let deadlines = state.deadlines.clone();
    let me = node_id(&state);
    let now = Utc::now();
    let a = actor(&p);
    let q = CaseQuery {
        incoming: None,
        limit: 1000,
        ..CaseQuery::default()
    };
    // One read, audited once: this node decides the incoming cases and asked the outgoing ones.
    let all = state
        .store
        .run(move |c| cases_service::list_for(c, &node, &deadlines, &q, &a, None, now))
        .await?;
    let incoming = all.iter().filter(|c| c.decider == me).cloned().collect();
    let outgoing = all.into_iter().filter(|c| c.requester == me).collect();
    let rows = |list: Vec<cases_service::CaseSummary>, incoming: bool| -> Vec<CaseRowView> {
        list.into_iter()
            .map(|c| {
                let (deadline, class) = match c.deadline {
                    Some(DeadlineStatus::Overdue { days_over }) => {
                        (format!("逾期 {days_over} 个工作日 (overdue)"), "overdue")
                    }
                    Some(DeadlineStatus::DueSoon { days_left }) => {
                        (format!("剩 {days_left} 个工作日 (due soon)"), "due-soon")
                    }
                    Some(DeadlineStatus::OnTime { days_left }) => {
                        (format!("剩 {days_left} 个工作日"), "")
                    }
                    None => ("已办结 (closed)".to_owned(), ""),
                };
                CaseRowView {
                    child_masked: IdNumber::mask_text(&c.child_id),
                    other: if incoming { c.requester } else { c.decider },
                    submitted_at: when(c.submitted_at),
                    due_on: date_zh(c.due_on),
                    due_provisional: c.due_provisional,
                    case_id: c.case_id,
                    child_id: c.child_id,
                    benefit: crate::domain::child::Benefit::ALL
                        .iter()
                        .find(|b| b.code() == c.benefit)
                        .map_or(c.benefit.clone(), |b| {
                            format!("{} ({})", b.label_zh(), c.benefit)
                        }),
                    state: crate::domain::case::state::CaseState::ALL
                        .iter()
                        .find(|s| s.as_str() == c.state)
                        .map_or(c.state.clone(), |s| {
                            format!("{} ({})", s.label_zh(), c.state)
                        }),
                    deadline,
                    class,
                }
            })
            .collect()
    };
    Ok(render::html(
        StatusCode::OK,
        &CasesPage {
            nav: Nav::new(&me, Some(&p), "资格核查 (Cases)", "cases"),
            sections: vec![
                CaseSection {
                    id: "incoming",
                    title: "待本节点核定 (Incoming: this node decides)",
                    rows: rows(incoming, true),
                },
                CaseSection {
                    id: "outgoing",
                    title: "本节点发起 (Outgoing: this node asked)",
                    rows: rows(outgoing, false),
                },
            ],
        },
    ))
}

/// One case: its request, its documents with where each file stands here (a download link when
/// present), and its history. The read is audited (`case.read`), a download again on its own.
pub async fn case(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<ChildQuery>,
) -> Result<HttpResponse, UiError> {
    let p = user(&state, &req, Permission::ReadChildren).await?;
    let case_id = uuid::Uuid::parse_str(path.trim())
        .map_err(|_| UiError::BadRequest("a case id is a UUID".into()))?
        .to_string();
    let notice = q.saved.as_ref().map(|s| {
        if s == "opened" {
            "案件已提交，正在发送给户籍地 (The case was submitted and is on its way to the hukou bureau.)".to_owned()
        } else {
            "已办理并签名，正在同步 (Done: a signed version is on its way to the other bureau.)".to_owned()
        }
    });
    case_page_with(&state, &p, case_id, StatusCode::OK, None, notice).await
}

/// A case's page (audited as a read), with an action form that came back when `again` says so.
pub async fn case_page(
    state: &web::Data<AppState>,
    p: &accounts::Principal,
    case_id: String,
    status: StatusCode,
    again: Option<Again<'_>>,
) -> Result<HttpResponse, UiError> {
    case_page_with(state, p, case_id, status, again, None).await
}

async fn case_page_with(
    state: &web::Data<AppState>,
    p: &accounts::Principal,
    case_id: String,
    status: StatusCode,
    again: Option<Again<'_>>,
    notice: Option<String>,
) -> Result<HttpResponse, UiError> {
    use crate::domain::evidence_file::EvidenceStatus;
    let (node, deadlines, a) = (state.node.clone(), state.deadlines.clone(), actor(p));
    let v = state
        .store
        .run(move |c| {
            cases_service::read(
                c,
                &node,
                &deadlines,
                &case_id,
                &a,
                Some("admin page"),
                Utc::now(),
            )
        })
        .await?;
    let c = &v.case;
    let evidence: Vec<EvidenceRowView> = v
        .evidence
        .iter()
        .map(|e| EvidenceRowView {
            doc_type: e.doc_type.clone(),
            issuer: e.issuer.clone(),
            number: e.number.clone(),
            sha256: e.sha256.to_string(),
            status: e.status.label(),
            present: e.status == EvidenceStatus::Present,
            kind: match (e.media_type, e.size) {
                (Some(m), Some(n)) => format!("{}, {n} bytes", m.as_str()),
                _ => String::new(),
            },
            class: match e.status {
                EvidenceStatus::Present => "",
                EvidenceStatus::Missing => "due-soon",
                EvidenceStatus::Mismatch => "overdue",
            },
        })
        .collect();
    let posted_to = |form: &str| posted_for(&again, form);
    let mut forms = if p.allows(Permission::EditChildren) {
        super::casework::case_forms(&c.case_id.to_string(), &v.allowed_actions, &posted_to)
    } else {
        Vec::new()
    };
    // A refusal for a form this user does not have here (another party's action) is shown
    // above the case.
    let mut error = None;
    if let Some(g) = &again {
        match forms.iter_mut().find(|f| f.id == g.form) {
            Some(f) => f.fail(g.field.as_deref(), g.message.clone()),
            None => error = Some(g.message.clone()),
        }
    }
    Ok(render::html(
        status,
        &CasePage {
            nav: Nav::new(&node_id(state), Some(p), "资格核查案件 (Case)", "cases"),
            forms,
            error,
            notice,
            case_id: c.case_id.to_string(),
            child_id: c.child_id.to_string(),
            child_masked: c.child_id.masked(),
            benefit: format!("{} ({})", c.benefit.label_zh(), c.benefit.code()),
            state: format!("{} ({})", c.state.label_zh(), c.state.as_str()),
            effective: c
                .history
                .iter()
                .find_map(|s| match &s.transition {
                    crate::domain::case::state::Transition::Approve {
                        effective_month, ..
                    } => Some(month_zh(*effective_month)),
                    _ => None,
                })
                .unwrap_or_default(),
            requester: c.requester.to_string(),
            decider: c.decider.to_string(),
            due_on: date_zh(v.due_on),
            summary: c.grounds.summary.as_str().to_owned(),
            blocked: evidence.iter().any(|e| !e.present),
            evidence,
            history: c
                .history
                .iter()
                .map(|s| StepView {
                    at: when(s.at),
                    action: transition_label(s.transition.kind()),
                    by: s.by.to_string(),
                    officer: s.officer.clone().unwrap_or_default(),
                })
                .collect(),
        },
    ))
}

pub async fn peers(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, UiError> {
    let p = user(&state, &req, Permission::ViewOperations).await?;
    let node = state.node.clone();
    let list = state
        .store
        .run(move |c| crate::sync::sender::peer_statuses(c, &node))
        .await?;
    let rows = list
        .into_iter()
        .map(|s| PeerView {
            failing: s.consecutive_failures > 0 || s.witness_inconsistent > 0,
            cosigned: s
                .cosigned_size
                .map_or_else(|| "—".into(), |n| n.to_string()),
            witnessed: s
                .witnessed_size
                .map_or_else(|| "—".into(), |n| n.to_string()),
            inconsistent: s.witness_inconsistent,
            endpoint: s.endpoint.unwrap_or_default(),
            outbox: s.outbox_depth,
            lag: s
                .lag_seconds
                .map_or_else(|| "—".into(), |l| format!("{l} s")),
            delivered: s.delivered,
            rejected: s.rejected,
            last_success: when_opt(s.last_success_at),
            last_error: s
                .last_error
                .map(|e| format!("{} ({})", e, when_opt(s.last_error_at)))
                .unwrap_or_else(|| "—".into()),
            peer: s.peer,
        })
        .collect();
    Ok(render::html(
        StatusCode::OK,
        &PeersPage {
            nav: Nav::new(&node_id(&state), Some(&p), "节点状态 (Peers)", "peers"),
            rows,
        },
    ))
}

#[derive(Deserialize)]
pub struct AuditQuery {
    before: Option<i64>,
}

pub async fn audit_log(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, UiError> {
    let p = user(&state, &req, Permission::ReadAudit).await?;
    let node = state.node.clone();
    let a = actor(&p);
    let before = q.before;
    let (mut entries, head) = state
        .store
        .run(move |c| -> Result<_, audit::AuditError> {
            let size = audit::log::size(c)?;
            let end = before.unwrap_or(size).clamp(0, size);
            let filter = EventFilter {
                after_seq: Some(end - 101),
                limit: (end - (end - 100).max(0)).max(1),
                ..EventFilter::default()
            };
            let entries = audit::log::read_events(c, &filter, &a, node.clock.now(), Utc::now())?;
            Ok((entries, audit::log::latest_tree_head(c)?))
        })
        .await?;
    entries.reverse();
    let older = entries.last().map(|e| e.event.seq).filter(|s| *s > 0);
    let rows = entries
        .into_iter()
        .map(|e| AuditRowView {
            seq: e.event.seq,
            at: when(e.event.at),
            actor: e.event.actor.id,
            action: e.event.action,
            object: match (e.event.object_kind, e.event.object_id) {
                (Some(k), Some(id)) if k == "child" => format!("{k}:{}", IdNumber::mask_text(&id)),
                (Some(k), Some(id)) => format!("{k}:{id}"),
                _ => String::new(),
            },
            outcome: e.event.outcome.as_str().to_owned(),
        })
        .collect();
    Ok(render::html(
        StatusCode::OK,
        &AuditPage {
            nav: Nav::new(&node_id(&state), Some(&p), "审计日志 (Audit log)", "audit"),
            head: head.map_or_else(
                || "—".into(),
                |h| format!("size {} · root {} · {}", h.size, h.root, when(h.timestamp)),
            ),
            rows,
            older,
        },
    ))
}

pub async fn audit_event(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<i64>,
) -> Result<HttpResponse, UiError> {
    let p = user(&state, &req, Permission::ReadAudit).await?;
    let node = state.node.clone();
    let a = actor(&p);
    let seq = path.into_inner();
    // A role without the right to read children sees ID numbers masked.
    let mask = |text: String| {
        if p.allows(Permission::ReadChildren) {
            text
        } else {
            IdNumber::mask_within(&text)
        }
    };
    let (entry, head) = state
        .store
        .run(move |c| audit::log::read_event(c, seq, &a, node.clock.now(), Utc::now()))
        .await?;
    let e = entry.event;
    let proof = entry.inclusion;
    Ok(render::html(
        StatusCode::OK,
        &AuditEventPage {
            nav: Nav::new(
                &node_id(&state),
                Some(&p),
                "审计事件 (Audit event)",
                "audit",
            ),
            seq: e.seq,
            at: when(e.at),
            actor: format!("{} ({:?} via {:?})", e.actor.id, e.actor.kind, e.actor.via),
            action: e.action,
            object: mask(match (e.object_kind, e.object_id) {
                (Some(k), Some(id)) => format!("{k}:{id}"),
                _ => String::new(),
            }),
            purpose: mask(e.purpose.unwrap_or_default()),
            outcome: e.outcome.as_str().to_owned(),
            details: mask(entry.details.to_string()),
            leaf_hash: entry.leaf_hash,
            tree_size: proof.as_ref().map_or(head.size, |p| p.tree_size),
            root: head.root,
            signed_at: when(head.timestamp),
            public_key: head.public_key.to_string(),
            path: proof.map(|p| p.path).unwrap_or_default(),
        },
    ))
}

// ---------------------------------------------------------------------------------------------
// Reconciliation

fn run_row(r: crate::reconcile::history::Run) -> RunRowView {
    use crate::reconcile::{Report, RunStatus};
    let report = r.report.as_ref();
    let num = |f: &dyn Fn(&Report) -> String| report.map_or_else(|| "—".to_owned(), f);
    RunRowView {
        started_at: when(r.started_at),
        started_by: format!(
            "{}{}",
            r.started_by,
            if r.dry_run { " (dry run)" } else { "" }
        ),
        failed: matches!(r.status, RunStatus::Failed | RunStatus::Interrupted),
        compared: num(&|x| format!("{} / {}", x.documents_compared, x.documents_equal)),
        to_peer: num(&|x| {
            format!(
                "{} 版本 ({} 档案)",
                x.versions_to_peer, x.documents_repaired_to_peer
            )
        }),
        from_peer: num(&|x| {
            format!(
                "{} 版本 ({} 档案){}",
                x.versions_from_peer,
                x.documents_repaired_from_peer,
                if x.versions_pending_from_peer > 0 {
                    format!(", {} pending", x.versions_pending_from_peer)
                } else {
                    String::new()
                }
            )
        }),
        conflicts: num(&|x| x.conflicts_found.to_string()),
        bytes: num(&|x| format!("{} / {}", x.bytes_received, x.bytes_sent)),
        duration: num(&|x| format!("{} ms", x.duration_ms)),
        status: r.status.as_str().to_owned(),
        peer: r.peer.to_string(),
        id: r.id.to_string(),
    }
}

async fn reconcile_page(
    state: &web::Data<AppState>,
    p: &accounts::Principal,
    report_of: Option<String>,
    notice: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    let runs = state
        .store
        .run(|c| crate::reconcile::history::list(c, None, None, 50))
        .await?;
    let report = match &report_of {
        Some(id) => {
            let id = id.clone();
            let row = state
                .store
                .run(move |c| crate::reconcile::history::find(c, &id))
                .await?
                .ok_or_else(|| UiError::NotFound("no such reconciliation run".into()))?;
            // No report yet: the run is still running, or was interrupted before writing one.
            Some(row.report.as_ref().map_or_else(
                || format!("{} ({})", row.status.as_str(), row.peer),
                |r| r.render(),
            ))
        }
        None => None,
    };
    let me = state.node.id.clone();
    let peers = state.node.directory.as_ref().map_or_else(Vec::new, |d| {
        d.current()
            .nodes()
            .filter(|n| n.id != me)
            .map(|n| n.id.to_string())
            .collect()
    });
    Ok(render::html(
        status,
        &ReconcilePage {
            nav: Nav::new(
                &node_id(state),
                Some(p),
                "对账 (Reconciliation)",
                "reconcile",
            ),
            peers,
            can_start: p.allows(Permission::Operate),
            rows: runs.into_iter().map(run_row).collect(),
            report,
            notice,
            error,
        },
    ))
}

pub async fn reconcile(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, UiError> {
    let p = user(&state, &req, Permission::ViewOperations).await?;
    reconcile_page(&state, &p, None, None, None, StatusCode::OK).await
}

pub async fn reconcile_run(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let p = user(&state, &req, Permission::ViewOperations).await?;
    reconcile_page(
        &state,
        &p,
        Some(path.into_inner()),
        None,
        None,
        StatusCode::OK,
    )
    .await
}

#[derive(Deserialize)]
pub struct StartForm {
    csrf: Option<String>,
    peer: String,
    dry_run: Option<String>,
}

pub async fn start_reconcile(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<StartForm>,
) -> Result<HttpResponse, UiError> {
    let p = user(&state, &req, Permission::Operate).await?;
    check_csrf(&p, form.csrf.as_deref())?;
    let Some(rec) = req
        .app_data::<web::Data<crate::reconcile::Reconciler>>()
        .cloned()
    else {
        return Err(UiError::BadRequest(
            "this node exchanges with no peer, so there is nothing to reconcile".into(),
        ));
    };
    let opts = crate::reconcile::RunOptions {
        dry_run: form.dry_run.is_some(),
        started_by: crate::reconcile::StartedBy::Ui,
        actor: actor(&p),
    };
    match rec.start(&form.peer, opts).await {
        Ok(handle) => {
            let id = handle.run_id().to_owned();
            tokio::spawn(async move {
                if let Err(e) = handle.execute(std::sync::Arc::new(|_| {})).await {
                    tracing::warn!(error = %e, "could not store a reconciliation report");
                }
            });
            Ok(see_other(&format!("/ui/reconcile/{id}")))
        }
        Err(e) => {
            reconcile_page(
                &state,
                &p,
                None,
                None,
                Some(e.to_string()),
                StatusCode::CONFLICT,
            )
            .await
        }
    }
}

/// A file's categories: the hukou bureau's recognitions (认定) apart from the observations.
fn show_categories(
    categories: &std::collections::BTreeSet<crate::domain::child::Category>,
) -> String {
    let (recognised, observed): (Vec<_>, Vec<_>) =
        categories.iter().partition(|c| c.is_recognition());
    let labels = |cs: &[&crate::domain::child::Category]| {
        cs.iter()
            .map(|c| c.label_zh())
            .collect::<Vec<_>>()
            .join("、")
    };
    let mut parts = Vec::new();
    if !recognised.is_empty() {
        parts.push(format!(
            "户籍地认定 (recognised by the hukou bureau): {}",
            labels(&recognised)
        ));
    }
    if !observed.is_empty() {
        parts.push(labels(&observed));
    }
    if parts.is_empty() {
        "—".to_owned()
    } else {
        parts.join(" · ")
    }
}

/// The most bars a chart shows (the API lists all).
const CHART_BARS: usize = 20;

#[derive(Deserialize)]
pub struct MonthQuery {
    month: Option<String>,
}

/// The month a statistics page or report asks for: `None` (now) when absent or empty.
fn month_of(q: &MonthQuery) -> Result<Option<crate::domain::Month>, UiError> {
    match q.month.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(m) => m.parse().map(Some).map_err(|_| {
            UiError::BadRequest("月份应为 YYYY-MM (the month is YYYY-MM, e.g. 2026-11)".into())
        }),
    }
}

/// `GET /ui/stats/report.xlsx?month=YYYY-MM`: the month's report (月报) as a workbook, one
/// sheet per table, for the reader's scope (the current month without `month`).
pub async fn stats_report(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<MonthQuery>,
) -> Result<HttpResponse, UiError> {
    let p = user(&state, &req, Permission::ReadChildren).await?;
    let month = match month_of(&q)? {
        Some(m) => m,
        None => crate::domain::Month::of(crate::sync::ledger::china_today(Utc::now()))
            .ok_or_else(|| UiError::Internal("today names no month".into()))?,
    };
    let s = crate::api::stats::figures(&state, actor(&p), Some(month))
        .await
        .map_err(UiError::Problem)?;
    let bytes = crate::stats::workbook::monthly(&s, month, &node_id(&state))
        .map_err(|e| UiError::Internal(e.to_string()))?;
    let name = format!("月报-{month}.xlsx");
    Ok(HttpResponse::Ok()
        .content_type("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"report-{month}.xlsx\"; filename*=UTF-8''{}",
                render::url_encode(&name)
            ),
        ))
        .body(bytes))
}

/// `GET /ui/stats`: the statistics page (the same figures as `GET /api/v1/stats`, charts drawn
/// as server-rendered SVG); `?month=YYYY-MM` shows a month's.
pub async fn stats(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<MonthQuery>,
) -> Result<HttpResponse, UiError> {
    use super::render::{BarView, ChartView, MonthView, StatsPage};
    let p = user(&state, &req, Permission::ReadChildren).await?;
    let month = month_of(&q)?;
    let s = crate::api::stats::figures(&state, actor(&p), month)
        .await
        .map_err(UiError::Problem)?;
    let chart = |id: &'static str, title: &'static str, items: &[crate::stats::Count]| {
        let shown = &items[..items.len().min(CHART_BARS)];
        let most = shown.iter().map(|c| c.count).max().unwrap_or(0).max(1);
        ChartView {
            id,
            title,
            height: 22 * shown.len() as i64 + 4,
            bars: shown
                .iter()
                .enumerate()
                .map(|(i, c)| BarView {
                    label: c.label.chars().take(24).collect(),
                    count: c.count,
                    y: 22 * i as i64,
                    width: (400 * c.count / most).max(1),
                })
                .collect(),
        }
    };
    let charts = vec![
        chart(
            "by-region",
            "按居住地区县 (By residence county)",
            &s.by_region,
        ),
        chart(
            "by-township",
            "按乡镇（街道） (By township)",
            &s.by_township,
        ),
        chart("by-category", "按儿童类别 (By category)", &s.by_category),
        chart("by-benefit", "按享受待遇 (By benefit held)", &s.by_benefit),
        chart("by-risk", "按风险等级 (By risk level)", &s.by_risk),
        chart(
            "by-worker",
            "按包保人 (By responsible worker)",
            &s.by_worker,
        ),
    ];
    let most = s
        .visits_per_month
        .iter()
        .map(|m| m.count)
        .max()
        .unwrap_or(0)
        .max(1);
    let months = s
        .visits_per_month
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let height = 160 * m.count / most;
            MonthView {
                label: m.label.clone(),
                count: m.count,
                x: 8 + 58 * i as i64,
                y: 178 - height,
                height,
            }
        })
        .collect();
    let mut case_rows: Vec<(String, i64, i64)> = Vec::new();
    for (c, outgoing) in s
        .cases
        .outgoing
        .iter()
        .map(|c| (c, true))
        .chain(s.cases.incoming.iter().map(|c| (c, false)))
    {
        let row = match case_rows.iter_mut().find(|r| r.0 == c.label) {
            Some(r) => r,
            None => {
                case_rows.push((c.label.clone(), 0, 0));
                let last = case_rows.len() - 1;
                &mut case_rows[last]
            }
        };
        if outgoing {
            row.1 += c.count;
        } else {
            row.2 += c.count;
        }
    }
    let me = node_id(&state);
    Ok(render::html(
        StatusCode::OK,
        &StatsPage {
            nav: Nav::new(&me, Some(&p), "统计 (Statistics)", "stats"),
            generated_at: when(s.generated_at),
            mean_days: s
                .cases
                .mean_working_days_to_decision
                .map_or_else(|| "—".into(), |d| format!("{d:.1}")),
            charts,
            months,
            case_rows,
            month: month.map_or_else(String::new, |m| m.to_string()),
            month_label: month.map_or_else(
                || "当前 (now)".to_owned(),
                |m| format!("{}年{}月", m.year(), m.month()),
            ),
            s,
        },
    ))
}
