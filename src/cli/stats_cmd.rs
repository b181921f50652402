//! `hukou-sync stats`: the statistics of `stats` at the console (the same figures as
//! `GET /api/v1/stats` and the statistics page), audited as the console's read.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::audit::Actor;
use crate::config::Settings;
use crate::domain::Month;
use crate::stats::{self, Count, Inputs};

pub fn run(
    settings: &Settings,
    json: bool,
    month: Option<Month>,
    out: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let now = chrono::Utc::now();
    let month = match (month, &out) {
        (None, Some(_)) => Some(
            Month::of(crate::sync::ledger::china_today(now))
                .ok_or_else(|| anyhow::anyhow!("today is outside the years a month can name"))?,
        ),
        (m, _) => m,
    };
    let (store, node) = crate::startup::open_node_blocking(settings)?;
    let deadlines = crate::startup::deadlines(settings)?;
    let mut conn = store.conn()?;
    let working = |a, b| deadlines.calendar.working_days_between(a, b);
    let stale_days = settings.records.stale_after_days;
    let input = match month {
        Some(m) => Inputs::for_month(m, now, stale_days, &working).ok_or_else(|| {
            anyhow::anyhow!("{m} has not begun: a report covers a past or the current month")
        })?,
        None => Inputs::at(now, stale_days, &working),
    };
    let s = stats::compute(&mut conn, &node, &input, &Actor::console(), now)?;
    if let (Some(path), Some(m)) = (&out, month) {
        let bytes = stats::workbook::monthly(&s, m, node.id.as_str())?;
        std::fs::write(path, bytes)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        eprintln!(
            "wrote the report of {m} ({} sheets, {} files counted) to {}",
            stats::workbook::SHEETS.len(),
            s.files,
            path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("files served here: {}", s.files);
    println!(
        "visits overdue: {} · due within 7 days: {} · stale (six-month rule): {}",
        s.visits_overdue, s.visits_due_within_7_days, s.stale
    );
    let c = &s.cases;
    println!(
        "cases decided on time: {} · late: {} · open and overdue: {} · mean working days to decision: {}",
        c.decided_on_time,
        c.decided_late,
        c.open_overdue,
        c.mean_working_days_to_decision
            .map_or_else(|| "—".into(), |d| format!("{d:.1}"))
    );
    let table = |title: &str, rows: &[Count]| {
        println!("\n{title}");
        for r in rows.iter().take(20) {
            println!("  {:<8} {:>8}  {}", r.key, r.count, r.label);
        }
        if rows.len() > 20 {
            println!("  … {} more (--json lists all)", rows.len() - 20);
        }
    };
    table("by residence county (按居住地区县)", &s.by_region);
    table("by township (按乡镇)", &s.by_township);
    table("by category (按类别)", &s.by_category);
    table("by benefit held (按享受待遇)", &s.by_benefit);
    table("by risk level (按风险等级)", &s.by_risk);
    table("by responsible worker (按包保人)", &s.by_worker);
    table("visits per month (每月走访)", &s.visits_per_month);
    table("cases asked here, by state", &c.outgoing);
    table("cases decided here, by state", &c.incoming);
    Ok(ExitCode::SUCCESS)
}
