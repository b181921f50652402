//! `hukou-sync stats`: the statistics of `stats` at the console (the same figures as
//! `GET /api/v1/stats` and the statistics page), audited as the console's read.

use std::process::ExitCode;

use crate::audit::Actor;
use crate::config::Settings;
use crate::stats::{self, Count, Inputs};

pub fn run(settings: &Settings, json: bool) -> anyhow::Result<ExitCode> {
    let (store, node) = crate::startup::open_node_blocking(settings)?;
    let deadlines = crate::startup::deadlines(settings)?;
    let mut conn = store.conn()?;
    let now = chrono::Utc::now();
    let working = |a, b| deadlines.calendar.working_days_between(a, b);
    let input = Inputs::at(now, settings.records.stale_after_days, &working);
    let s = stats::compute(&mut conn, &node, &input, &Actor::console(), now)?;
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
