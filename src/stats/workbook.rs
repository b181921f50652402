//! The monthly report (月报) as an `.xlsx` workbook: one sheet per table of the statistics —
//! 概况 (the headline figures and the cases' timeliness), 按区县, 按乡镇, 按儿童类别, 按享受待遇,
//! 按风险等级, 按包保人, 每月走访 (twelve months to the report's) and 案件 (cases by state, asked
//! here and decided here). Each sheet has a bold frozen header row, column widths that fit,
//! numbers as numbers, and names no child. Written by `hukou-sync stats --month M --out F` and
//! downloaded from the statistics page; both count what the reader's scope covers.

use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

use super::{Count, Stats};
use crate::domain::Month;

/// Why the workbook could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WorkbookError {
    #[error("writing the workbook: {0}")]
    Xlsx(#[from] XlsxError),
}

/// The sheets' names, in order (a test reads them back).
pub const SHEETS: [&str; 9] = [
    "概况",
    "按区县",
    "按乡镇",
    "按儿童类别",
    "按享受待遇",
    "按风险等级",
    "按包保人",
    "每月走访",
    "案件",
];

/// The month's report of `s` (computed with `stats::Inputs::for_month`) for node `node`, as
/// the bytes of an `.xlsx` file.
pub fn monthly(s: &Stats, month: Month, node: &str) -> Result<Vec<u8>, WorkbookError> {
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold();
    let c = &s.cases;
    let month_label = format!("{}年{}月", month.year(), month.month());
    let visits_in_month = s
        .visits_per_month
        .iter()
        .find(|m| m.key == month.to_string())
        .map_or(0, |m| m.count);
    let summary: Vec<(&str, Cell)> = vec![
        ("月份 (month)", Cell::Text(month_label.clone())),
        ("节点 (node)", Cell::Text(node.to_owned())),
        ("范围 (scope)", Cell::Text(s.scope.clone())),
        ("统计日 (counted at)", Cell::Text(s.as_of.to_string())),
        (
            "生成时间 (generated, UTC)",
            Cell::Text(s.generated_at.format("%Y-%m-%d %H:%M:%S").to_string()),
        ),
        ("在管档案 (files served)", Cell::Number(s.files)),
        (
            "本月走访 (visits this month)",
            Cell::Number(visits_in_month),
        ),
        ("走访逾期 (visits overdue)", Cell::Number(s.visits_overdue)),
        (
            "七日内应走访 (visits due within 7 days)",
            Cell::Number(s.visits_due_within_7_days),
        ),
        ("超过六个月未更新 (stale files)", Cell::Number(s.stale)),
        (
            "本月按时办结 (cases decided on time this month)",
            Cell::Number(c.decided_on_time),
        ),
        (
            "本月超期办结 (cases decided late this month)",
            Cell::Number(c.decided_late),
        ),
        (
            "在办超期 (open cases overdue)",
            Cell::Number(c.open_overdue),
        ),
        (
            "平均办理工作日 (mean working days to decision)",
            c.mean_working_days_to_decision
                .map_or(Cell::Text("—".into()), Cell::Float),
        ),
    ];
    let sheet = wb.add_worksheet().set_name(SHEETS[0])?;
    header(sheet, &["项目 (item)", "数值 (value)"], &bold)?;
    for (i, (label, value)) in summary.iter().enumerate() {
        let row = i as u32 + 1;
        sheet.write_string(row, 0, *label)?;
        match value {
            Cell::Text(t) => sheet.write_string(row, 1, t)?,
            Cell::Number(n) => sheet.write_number(row, 1, *n as f64)?,
            Cell::Float(f) => sheet.write_number(row, 1, (f * 10.0).round() / 10.0)?,
        };
    }
    fit(sheet, &[46, 28])?;
    let tables: [(&str, &str, &[Count]); 7] = [
        (SHEETS[1], "区县 (county)", &s.by_region),
        (SHEETS[2], "乡镇（街道） (township)", &s.by_township),
        (SHEETS[3], "儿童类别 (category)", &s.by_category),
        (SHEETS[4], "享受待遇 (benefit)", &s.by_benefit),
        (SHEETS[5], "风险等级 (risk level)", &s.by_risk),
        (SHEETS[6], "包保人 (responsible worker)", &s.by_worker),
        (SHEETS[7], "月份 (month)", &s.visits_per_month),
    ];
    for (name, what, rows) in tables {
        let sheet = wb.add_worksheet().set_name(name)?;
        header(sheet, &["代码 (code)", what, "数量 (count)"], &bold)?;
        for (i, r) in rows.iter().enumerate() {
            let row = i as u32 + 1;
            sheet.write_string(row, 0, &r.key)?;
            sheet.write_string(row, 1, &r.label)?;
            sheet.write_number(row, 2, r.count as f64)?;
        }
        let widest = rows.iter().map(|r| width(&r.label)).max().unwrap_or(0);
        fit(sheet, &[14, widest.max(width(what)), 14])?;
    }
    let sheet = wb.add_worksheet().set_name(SHEETS[8])?;
    header(
        sheet,
        &["方向 (side)", "状态 (state)", "数量 (count)"],
        &bold,
    )?;
    let mut row = 1;
    for (side, counts) in [
        ("本节点申请 (asked here)", &c.outgoing),
        ("本节点审核 (decided here)", &c.incoming),
    ] {
        for r in counts {
            sheet.write_string(row, 0, side)?;
            sheet.write_string(row, 1, &r.label)?;
            sheet.write_number(row, 2, r.count as f64)?;
            row += 1;
        }
    }
    fit(sheet, &[26, 26, 14])?;
    Ok(wb.save_to_buffer()?)
}

enum Cell {
    Text(String),
    Number(i64),
    Float(f64),
}

fn header(sheet: &mut Worksheet, titles: &[&str], bold: &Format) -> Result<(), XlsxError> {
    for (i, t) in titles.iter().enumerate() {
        sheet.write_string_with_format(0, i as u16, *t, bold)?;
    }
    sheet.set_freeze_panes(1, 0)?;
    Ok(())
}

/// Column widths in characters (a CJK character counts two).
fn fit(sheet: &mut Worksheet, widths: &[usize]) -> Result<(), XlsxError> {
    for (i, w) in widths.iter().enumerate() {
        sheet.set_column_width(i as u16, (*w).clamp(8, 60) as f64 + 2.0)?;
    }
    Ok(())
}

fn width(s: &str) -> usize {
    s.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum()
}
