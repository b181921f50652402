//! Excel ledgers through the `hukou-sync` binary (issue 23 #3, #4): real `.xlsx` files built at
//! test time with `rust_xlsxwriter` — a title row, 序号 and columns the ledger does not use —
//! imported, exported back as `.xlsx` and read again with `calamine`; refusals that store
//! nothing; `--strict`; the template; `child update --set` reading values by the field's type.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use calamine::{Data, Reader, Xlsx};
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
use serde_json::Value;

use crate::helpers::{id_number, spawn_app, TestApp};

fn bin(app: &TestApp, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hukou-sync"))
        .arg("--config")
        .arg(app.config_file())
        .args(args)
        .env_remove("HUKOU_SYNC_CONFIG")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", stderr(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The headers of the ledger a bureau keeps: a 序号 column, the ledger's columns (some in a
/// spreadsheet's own spelling) and a 联系人 column the ledger does not have.
const HEADERS: [&str; 12] = [
    "序号",
    "身份证号",
    "姓名",
    "户籍地区划代码",
    "居住地区划代码",
    "乡镇（街道）",
    "儿童类别",
    "风险等级",
    "最近走访日期",
    "监护人姓名",
    "监护人关系",
    "联系人",
];

/// One child's row: (ID number, name, hukou, residence, township, categories, risk, visit).
fn child(seq: u16) -> [String; 8] {
    [
        id_number("510104", (2015, 3, 3), seq),
        format!("王小{seq}"),
        "510104".into(),
        "410105".into(),
        // 乡镇（街道） by code, or by name as ledgers often hold it (the same township).
        if seq == 1 {
            "花园路街道"
        } else {
            "410105002"
        }
        .into(),
        "流动、留守".into(),
        "黄".into(),
        String::new(),
    ]
}

/// A ledger workbook: sheet 台账, a merged title row, the header on row 2, then `rows`; the
/// region codes are numbers and the visit date an Excel date, as people type them; blank
/// pre-numbered rows follow.
fn workbook(rows: &[[String; 8]]) -> Vec<u8> {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("台账").unwrap();
    ws.merge_range(
        0,
        0,
        0,
        11,
        "金水区困境儿童台账（2026年11月）",
        &Format::new(),
    )
    .unwrap();
    for (c, h) in HEADERS.iter().enumerate() {
        ws.write_string(1, c as u16, *h).unwrap();
    }
    let date = Format::new().set_num_format("yyyy/m/d");
    for (i, r) in rows.iter().enumerate() {
        let row = 2 + i as u32;
        ws.write_number(row, 0, (i + 1) as f64).unwrap();
        ws.write_string(row, 1, &r[0]).unwrap();
        ws.write_string(row, 2, &r[1]).unwrap();
        for (c, v) in [(3u16, &r[2]), (4, &r[3]), (5, &r[4])] {
            match v.parse::<f64>() {
                Ok(n) => ws.write_number(row, c, n).unwrap(),
                Err(_) => ws.write_string(row, c, v).unwrap(),
            };
        }
        ws.write_string(row, 6, &r[5]).unwrap();
        ws.write_string(row, 7, &r[6]).unwrap();
        if r[7].is_empty() {
            ws.write_datetime_with_format(
                row,
                8,
                ExcelDateTime::from_ymd(2026, 9, 1).unwrap(),
                &date,
            )
            .unwrap();
        } else {
            ws.write_string(row, 8, &r[7]).unwrap();
        }
        ws.write_string(row, 9, "王建国").unwrap();
        ws.write_string(row, 10, "祖父").unwrap();
        ws.write_string(row, 11, "张主任 13800000000").unwrap();
    }
    for i in 0..5 {
        let row = 2 + (rows.len() + i) as u32;
        ws.write_number(row, 0, (rows.len() + i + 1) as f64)
            .unwrap();
    }
    wb.save_to_buffer().unwrap()
}

fn write(app: &TestApp, name: &str, bytes: &[u8]) -> PathBuf {
    let path = app.dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The ledger sheet of a workbook as text rows (dates as `YYYY-MM-DD`), and which cells were dates.
fn read_back(p: &Path) -> (Vec<Vec<String>>, Vec<(usize, usize)>) {
    let mut book: Xlsx<_> = calamine::open_workbook(p).unwrap();
    let range = book.worksheet_range("台账").unwrap();
    let mut dates = Vec::new();
    let rows = range
        .rows()
        .enumerate()
        .map(|(r, row)| {
            row.iter()
                .enumerate()
                .map(|(c, v)| match v {
                    Data::DateTime(d) => {
                        dates.push((r, c));
                        d.as_datetime().unwrap().date().to_string()
                    }
                    Data::String(s) => s.clone(),
                    Data::Empty => String::new(),
                    other => panic!("{other:?} at {r},{c}: only text and dates are written"),
                })
                .collect()
        })
        .collect();
    (rows, dates)
}

#[tokio::test]
async fn an_excel_ledger_with_serial_numbers_and_extra_columns_imports_and_exports_back() {
    let app = spawn_app().await;
    let rows: Vec<[String; 8]> = (1..=4).map(child).collect();
    let file = write(&app, "台账.xlsx", &workbook(&rows));
    let out = bin(&app, &["import", path(&file), "--json"]);
    let summary: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(summary["sheet"], "台账");
    assert_eq!(summary["rows"], 4, "{summary}");
    assert_eq!(summary["imported"], 4);
    assert_eq!(
        summary["ignored_columns"],
        serde_json::json!([{"column": "A", "header": "序号"}, {"column": "L", "header": "联系人"}])
    );
    assert_eq!(app.count("children"), 4);
    // Without --json the ignored columns are one line on standard error.
    let rows2: Vec<[String; 8]> = (5..=5).map(child).collect();
    let file2 = write(&app, "台账2.xlsx", &workbook(&rows2));
    let out = bin(&app, &["import", path(&file2)]);
    ok(&out);
    assert!(
        stderr(&out).contains("ignored 2 column(s) the ledger does not use: 序号 (A), 联系人 (L)"),
        "{}",
        stderr(&out)
    );
    let shown = ok(&bin(&app, &["child", "show", &rows[0][0], "--json"]));
    let shown: Value = serde_json::from_str(&shown).unwrap();
    let r = &shown["record"];
    assert_eq!(r["hukou_region"], "510104");
    assert_eq!(r["residence_township"], "410105002");
    assert_eq!(
        r["categories"],
        serde_json::json!(["flowing", "left_behind"])
    );
    assert_eq!(r["last_visit_on"], "2026-09-01");
    assert_eq!(r["legal_guardian"]["relation"], "祖父");

    // Text that looks like a formula stays text in the workbook.
    ok(&bin(
        &app,
        &[
            "child",
            "update",
            &rows[1][0],
            "--set",
            r#"notes==HYPERLINK("http://x","y")"#,
        ],
    ));

    // Export as a workbook, audited like the CSV export.
    let events = app.count("audit_events");
    let exported = app.dir.path().join("导出.xlsx");
    let out = bin(
        &app,
        &[
            "export",
            "--format",
            "xlsx",
            "--out",
            path(&exported),
            "--purpose",
            "年度核对",
        ],
    );
    ok(&out);
    assert_eq!(app.count("audit_events"), events + 1);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&exported).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let (sheet, dates) = read_back(&exported);
    let header = &sheet[0];
    assert_eq!(&header[..3], ["身份证号", "姓名", "性别"]);
    let col = |h: &str| header.iter().position(|x| x == h).unwrap();
    assert_eq!(sheet.len(), 6);
    let first = sheet.iter().find(|r| r[0] == rows[0][0]).unwrap();
    assert_eq!(first[col("儿童类别")], "流动、留守");
    assert_eq!(first[col("风险等级")], "黄");
    assert_eq!(first[col("最近走访日期")], "2026-09-01");
    assert_eq!(first[col("户籍地区划代码")], "510104");
    assert!(dates.contains(&(1, col("最近走访日期"))), "{dates:?}");
    assert!(dates.contains(&(1, col("出生日期"))));
    let second = sheet.iter().find(|r| r[0] == rows[1][0]).unwrap();
    assert_eq!(second[col("备注")], r#"=HYPERLINK("http://x","y")"#);
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&exported).unwrap()).unwrap();
    let mut xml = String::new();
    std::io::Read::read_to_string(
        &mut zip.by_name("xl/worksheets/sheet1.xml").unwrap(),
        &mut xml,
    )
    .unwrap();
    assert!(!xml.contains("<f>"), "no cell is a formula");
    // The same files come back from the workbook, unchanged, at another node.
    let other = spawn_app().await;
    let copied = write(&other, "导出.xlsx", &std::fs::read(&exported).unwrap());
    let summary: Value = serde_json::from_str(&ok(&bin(
        &other,
        &["import", path(&copied), "--json", "--strict"],
    )))
    .unwrap();
    assert_eq!(summary["imported"], 5, "{summary}");
    assert_eq!(summary["ignored_columns"], serde_json::json!([]));
    let jsonl = |a: &TestApp| {
        ok(&bin(
            a,
            &["export", "--format", "jsonl", "--purpose", "核对"],
        ))
    };
    assert_eq!(jsonl(&app), jsonl(&other));
    other.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn a_bad_cell_is_named_by_sheet_row_and_column_and_nothing_is_stored() {
    let app = spawn_app().await;
    let mut rows: Vec<[String; 8]> = (1..=6).map(child).collect();
    // Row 7 of the sheet (title, header, then data from row 3): an unknown hukou region.
    rows[4][2] = "999999".into();
    rows[5][7] = "2026-02-30".into();
    let file = write(&app, "台账.xlsx", &workbook(&rows));
    let events = app.count("audit_events");
    let out = bin(&app, &["import", path(&file), "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["imported"], 0);
    assert_eq!(summary["errors"][0]["cell"], "台账!D7");
    assert_eq!(summary["errors"][0]["row"], 7);
    assert_eq!(summary["errors"][0]["field"], "hukou_region");
    assert_eq!(summary["errors"][1]["cell"], "台账!I8");
    assert_eq!(summary["errors"][1]["field"], "last_visit_on");
    assert_eq!(app.count("children"), 0);
    assert_eq!(app.count("audit_events"), events);
    // The human report names the cell first.
    let out = bin(&app, &["import", path(&file)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("台账!D7: hukou_region: "),
        "{}",
        stderr(&out)
    );
    // The error report names the cell too.
    let report = app.dir.path().join("errors.csv");
    let out = bin(
        &app,
        &[
            "import",
            path(&file),
            "--skip-invalid",
            "--report",
            path(&report),
        ],
    );
    ok(&out);
    assert_eq!(app.count("children"), 4);
    let report = std::fs::read_to_string(report).unwrap();
    assert!(
        report.starts_with("row,cell,field,reason\n7,台账!D7,hukou_region,"),
        "{report}"
    );
    app.stop().await;
}

#[tokio::test]
async fn what_is_not_a_spreadsheet_and_strict_extra_columns_are_refused() {
    let app = spawn_app().await;
    let fake = write(&app, "台账.xlsx", "身份证号,姓名\n".as_bytes());
    let out = bin(&app, &["import", path(&fake)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a spreadsheet"),
        "{}",
        stderr(&out)
    );
    let zip = write(&app, "台账.ods", b"PK\x03\x04 this is no archive");
    let out = bin(&app, &["import", path(&zip)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot be read"), "{}", stderr(&out));

    // --strict refuses the columns the ledger does not use, in a workbook and in CSV alike.
    let file = write(&app, "台账.xlsx", &workbook(&[child(1)]));
    let out = bin(&app, &["import", path(&file), "--strict"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "--strict: the file has columns the ledger does not use: 序号 (A), 联系人 (L)"
        ),
        "{}",
        stderr(&out)
    );
    let csv = format!(
        "序号,身份证号,姓名,户籍地区划代码,居住地区划代码\n1,{},王小明,510104,410105\n",
        id_number("510104", (2015, 3, 3), 1)
    );
    let csv = write(&app, "台账.csv", csv.as_bytes());
    let out = bin(&app, &["import", path(&csv), "--strict"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("序号 (1)"), "{}", stderr(&out));
    assert_eq!(app.count("children"), 0);
    // Without --strict the CSV's 序号 is ignored and reported, no longer refused.
    let summary: Value =
        serde_json::from_str(&ok(&bin(&app, &["import", path(&csv), "--json"]))).unwrap();
    assert_eq!(summary["ignored_columns"][0]["header"], "序号");
    assert_eq!(app.count("children"), 1);
    app.stop().await;
}

#[tokio::test]
async fn the_template_is_an_empty_ledger_with_drop_down_lists() {
    let app = spawn_app().await;
    // A node naming its risk levels 甲乙丙丁.
    let config = app.dir.path().join("palette.toml");
    let mut toml = std::fs::read_to_string(app.config_file()).unwrap();
    toml.push_str("\n[records]\nrisk_palette = [\"甲\", \"乙\", \"丙\", \"丁\"]\n");
    std::fs::write(&config, toml).unwrap();
    let template = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_hukou-sync"))
            .arg("--config")
            .arg(&config)
            .arg("template")
            .args(extra)
            .output()
            .unwrap()
    };
    let out_path = app.dir.path().join("台账模板.xlsx");
    let out = ok(&template(&["--out", path(&out_path)]));
    assert!(out.contains("台账模板.xlsx"), "{out}");
    // Never over an existing file without --force.
    let again = template(&["--out", path(&out_path)]);
    assert!(!again.status.success());
    let (sheet, _) = read_back(&out_path);
    assert_eq!(sheet.len(), 1);
    assert_eq!(sheet[0][0], "身份证号");
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&out_path).unwrap()).unwrap();
    let mut xml = String::new();
    std::io::Read::read_to_string(
        &mut zip.by_name("xl/worksheets/sheet1.xml").unwrap(),
        &mut xml,
    )
    .unwrap();
    assert!(xml.contains(r#"state="frozen""#));
    // This node's risk labels, and the vocabularies' labels.
    assert!(xml.contains("甲,乙,丙,丁"), "{xml}");
    assert!(xml.contains("与父母共同生活"));
    // The template itself imports as an empty ledger.
    let summary: Value = serde_json::from_str(&ok(&bin(
        &app,
        &["import", path(&out_path), "--json", "--strict"],
    )))
    .unwrap();
    assert_eq!(summary["rows"], 0);
    app.stop().await;
}

#[tokio::test]
async fn set_reads_each_value_by_the_fields_type() {
    let app = spawn_app().await;
    let id = id_number("510104", (2015, 3, 3), 7);
    app.create_child(&serde_json::json!({
        "id_number": id, "name": "王小明", "hukou_region": "510104",
        "residence_region": "410105", "categories": ["flowing"],
    }))
    .await;
    ok(&bin(
        &app,
        &[
            "child",
            "update",
            &id,
            "--set",
            "residence_region=440305",
            "--set",
            "categories=流动;留守",
            "--set",
            "last_visit_on=2026/9/1",
            "--set",
            "legal_guardian=王建国;祖父;13800000000",
            "--set",
            "living_status=与祖辈生活",
        ],
    ));
    let shown: Value =
        serde_json::from_str(&ok(&bin(&app, &["child", "show", &id, "--json"]))).unwrap();
    let r = &shown["record"];
    assert_eq!(r["residence_region"], "440305");
    assert_eq!(
        r["categories"],
        serde_json::json!(["flowing", "left_behind"])
    );
    assert_eq!(r["last_visit_on"], "2026-09-01");
    assert_eq!(r["legal_guardian"]["phone"], "13800000000");
    assert_eq!(r["living_status"], "with_grandparents");
    // JSON stays available for structured values.
    ok(&bin(
        &app,
        &[
            "child",
            "update",
            &id,
            "--set",
            r#"categories=["in_difficulty"]"#,
        ],
    ));
    // A bad value names the field and changes nothing.
    let versions = app.count("versions");
    let out = bin(
        &app,
        &["child", "update", &id, "--set", "last_visit_on=2026-02-30"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--set last_visit_on: "),
        "{}",
        stderr(&out)
    );
    let out = bin(
        &app,
        &["child", "update", &id, "--set", "legal_guardian=王建国"],
    );
    assert!(
        stderr(&out).contains("--set legal_guardian: expected name;relation;[phone]"),
        "{}",
        stderr(&out)
    );
    assert_eq!(app.count("versions"), versions);
    app.stop().await;
}
