//! The ledger on the pages (issue 23 #3): upload a ledger file (`.csv`, `.xlsx`, `.xls`, `.ods`)
//! and see what it did — the rows imported, each refused row with its cell and reason, the
//! columns ignored — and download the files as CSV or `.xlsx`.
//!
//! The upload is the import of `hukou-sync import`: the file is read by
//! `ledger_file::input::LedgerInput`, every row checked by `ledger::check_ledger` (the record's
//! validation, repeated and existing ID numbers, rows this node does not serve), and stored by
//! `ledger::import_children`, all or nothing (unless the user asks to skip invalid rows, as
//! `--skip-invalid` does). The download is the export's: the files this node serves within the
//! reader's region scope, in the
//! ledger's columns (`ledger_file::csv::export_row`, `ledger_file::xlsx`), at most
//! [`MAX_EXPORT`] of them (the command line exports any number), audited as `child.export`
//! with its purpose.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::Utc;
use serde::Deserialize;

use super::forms::{FormView, Kind, Posted};
use super::render::{self, Nav};
use super::{actor, check_csrf, user, UiError};
use crate::accounts::{Permission, Principal};
use crate::api::AppState;
use crate::audit::{Event, Outcome};
use crate::ledger_file::csv::{self as ledger_csv, Encoding};
use crate::ledger_file::input::LedgerInput;
use crate::sync::ledger::{self, ImportError};

/// The most files one download holds.
pub const MAX_EXPORT: i64 = 50_000;

pub struct RowErrorView {
    pub place: String,
    pub field: String,
    pub reason: String,
}

/// What an upload did.
pub struct ImportView {
    pub sheet: String,
    pub rows: usize,
    pub imported: usize,
    pub rejected: usize,
    pub ignored: String,
    pub errors: Vec<RowErrorView>,
    /// Nothing was stored (the file had invalid rows).
    pub refused: bool,
}

#[derive(Template)]
#[template(path = "ledger.html")]
pub struct LedgerPage {
    pub nav: Nav,
    pub forms: Vec<FormView>,
    pub result: Option<ImportView>,
    pub export_error: Option<String>,
    pub purpose: String,
}

fn upload_form() -> FormView {
    FormView::new(
        "upload",
        "上传台账 (Upload a ledger: .csv, .xlsx, .xls, .ods)",
        "/ui/ledger",
        "导入 (Import)",
    )
    .input("file", "台账文件 (Ledger file)", Kind::File, "", "")
    .choice(
        "skip_invalid",
        "有错误行时 (With invalid rows)",
        Kind::Checks,
        [(
            "1",
            "导入其余各行 (import the other rows; by default nothing is imported)".to_owned(),
        )],
        &[],
        false,
    )
    .choice(
        "strict",
        "多余的列 (Extra columns)",
        Kind::Checks,
        [(
            "1",
            "拒绝 (refuse the file; by default they are ignored and listed)".to_owned(),
        )],
        &[],
        false,
    )
    .multipart()
}

fn page(
    state: &AppState,
    p: &Principal,
    upload: Option<FormView>,
    result: Option<ImportView>,
    export_error: Option<String>,
    purpose: String,
) -> LedgerPage {
    let mut forms = Vec::new();
    if p.allows(Permission::EditChildren) {
        forms.push(upload.unwrap_or_else(upload_form));
    }
    LedgerPage {
        nav: Nav::new(
            &state.node.id.to_string(),
            Some(p),
            "台账导入导出 (Ledger)",
            "children",
        ),
        forms,
        result,
        export_error,
        purpose,
    }
}

/// `GET /ui/ledger`.
pub async fn show(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, UiError> {
    let p = user(&state, &req, Permission::ReadChildren).await?;
    Ok(render::html(
        StatusCode::OK,
        &page(&state, &p, None, None, None, String::new()),
    ))
}

fn field_label(field: &str) -> String {
    match crate::domain::child::ChildField::from_name(field) {
        Some(f) => format!("{} ({field})", f.label_zh()),
        None => field.to_owned(),
    }
}

/// `POST /ui/ledger` (multipart): the import.
pub async fn upload(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, UiError> {
    let p = user(&state, &req, Permission::EditChildren).await?;
    let limit = usize::try_from(crate::ledger_file::sheet::MAX_FILE_BYTES)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024);
    let form = super::upload::read(&req, payload, limit).await?;
    let posted: &Posted = &form.fields;
    check_csrf(&p, posted.csrf().as_deref())?;
    let refuse_form = |msg: String| {
        let mut f = upload_form();
        f.fail(Some("file"), msg);
        render::html(
            StatusCode::UNPROCESSABLE_ENTITY,
            &page(&state, &p, Some(f), None, None, String::new()),
        )
    };
    let Some(file) = form.file("file") else {
        return Ok(refuse_form(
            "请选择一个台账文件 (choose a ledger file)".to_owned(),
        ));
    };
    let strict = posted.opt("strict").is_some();
    let skip_invalid = posted.opt("skip_invalid").is_some();
    let input = match LedgerInput::read_bytes(file.bytes.clone(), false, Encoding::Auto, strict) {
        Ok(i) => i,
        Err(e) => return Ok(refuse_form(e.to_string())),
    };
    let sheet = input.sheet().unwrap_or_default();
    let ignored = crate::ledger_file::header::describe(input.header().ignored());
    let (node, a) = (state.node.clone(), actor(&p));
    let outcome = state
        .store
        .run(move |c| -> Result<_, ImportError> {
            let now = Utc::now();
            let checked = ledger::check_ledger(c, &node, input, now)?;
            let refused = !checked.errors.is_empty() && !skip_invalid;
            let imported = if refused || checked.good.is_empty() {
                0
            } else {
                ledger::import_children(c, &node, &checked.good, &a, now, &mut |_| {})?.imported
            };
            Ok((checked.rows, checked.errors, imported, refused))
        })
        .await;
    let (rows, errors, imported, refused) = match outcome {
        Ok(o) => o,
        Err(ImportError::Ledger(e)) => return Err(e.into()),
        Err(other) => return Ok(refuse_form(other.to_string())),
    };
    let view = ImportView {
        sheet,
        rows,
        imported,
        rejected: errors.len(),
        ignored,
        refused,
        errors: errors
            .iter()
            .take(500)
            .map(|e| RowErrorView {
                place: e
                    .cell
                    .clone()
                    .unwrap_or_else(|| format!("第 {} 行 (row)", e.row)),
                field: field_label(&e.field),
                reason: e.reason.clone(),
            })
            .collect(),
    };
    let status = if refused {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(render::html(
        status,
        &page(&state, &p, None, Some(view), None, String::new()),
    ))
}

#[derive(Deserialize)]
pub struct ExportQuery {
    format: Option<String>,
    purpose: Option<String>,
}

/// `GET /ui/ledger/export?format=csv|xlsx&purpose=…`: the download.
pub async fn export(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<ExportQuery>,
) -> Result<HttpResponse, UiError> {
    let p = user(&state, &req, Permission::ReadChildren).await?;
    let q = q.into_inner();
    let purpose = q.purpose.as_deref().map(str::trim).unwrap_or("").to_owned();
    let refuse = |status: StatusCode, msg: String| {
        render::html(
            status,
            &page(&state, &p, None, None, Some(msg), purpose.clone()),
        )
    };
    if let Err(reason) = crate::domain::text::check(&purpose, false) {
        return Ok(refuse(
            StatusCode::BAD_REQUEST,
            format!("请填写导出用途 (say why the files leave the system): {reason}"),
        ));
    }
    let xlsx = match q.format.as_deref().unwrap_or("csv") {
        "csv" => false,
        "xlsx" => true,
        other => {
            return Ok(refuse(
                StatusCode::BAD_REQUEST,
                format!("unknown format {other:?}: csv or xlsx"),
            ))
        }
    };
    let (node, a, why) = (state.node.clone(), actor(&p), purpose.clone());
    let result = state
        .store
        .run(move |c| -> Result<Option<Vec<u8>>, UiError> {
            if ledger::count(c)? > MAX_EXPORT {
                return Ok(None);
            }
            let mut records = Vec::new();
            let (mut after, mut former) = (None::<String>, 0usize);
            loop {
                let page = ledger::export_page(c, after.as_deref(), 1000)?;
                let Some(last) = page.last() else { break };
                after = Some(last.id_number.to_string());
                for r in page {
                    // Outside the reader's region scope a file is not there for it.
                    if !a.scope.admits_record(&r) {
                        continue;
                    }
                    if node.roles(&r.hukou_region, &r.residence_region).is_party() {
                        records.push(r);
                    } else {
                        former += 1;
                    }
                }
            }
            let body = if xlsx {
                let mut book = crate::ledger_file::xlsx::LedgerWorkbook::new(&node.palette)
                    .map_err(|e| UiError::Internal(e.to_string()))?;
                for r in &records {
                    book.push(r, &node.palette)
                        .map_err(|e| UiError::Internal(e.to_string()))?;
                }
                book.into_bytes()
                    .map_err(|e| UiError::Internal(e.to_string()))?
            } else {
                let mut w = csv::Writer::from_writer("\u{feff}".as_bytes().to_vec());
                let write = |e: csv::Error| UiError::Internal(e.to_string());
                w.write_record(ledger_csv::headers()).map_err(write)?;
                for r in &records {
                    w.write_record(ledger_csv::export_row(r, &node.palette))
                        .map_err(write)?;
                }
                w.into_inner()
                    .map_err(|e| UiError::Internal(e.to_string()))?
            };
            let mut ids = Vec::new();
            for r in &records {
                ids.extend_from_slice(r.id_number.as_str().as_bytes());
            }
            crate::storage::transaction(c, |c| {
                crate::audit::append(
                    c,
                    node.clock.now(),
                    Utc::now(),
                    &Event::new(a, "child.export", Outcome::Ok)
                        .purpose(Some(why.as_str()))
                        .details(serde_json::json!({
                            "count": records.len(),
                            "ids_sha256": crate::crypto::hash::Digest::of(&ids).to_string(),
                            "former_left_out": former,
                            "format": if xlsx { "xlsx" } else { "csv" },
                        })),
                )
            })?;
            Ok(Some(body))
        })
        .await?;
    let Some(body) = result else {
        return Ok(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "超过 {MAX_EXPORT} 份档案，请用命令行导出 (More than {MAX_EXPORT} files: use hukou-sync export.)"
            ),
        ));
    };
    let (media, name) = if xlsx {
        (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "ledger.xlsx",
        )
    } else {
        ("text/csv; charset=utf-8", "ledger.csv")
    };
    Ok(HttpResponse::Ok()
        .content_type(media)
        .insert_header(("Cache-Control", "no-store"))
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{name}\""),
        ))
        .body(body))
}
