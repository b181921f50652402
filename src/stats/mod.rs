//! Statistics for superiors (统计): the files this node serves counted by residence region and
//! township, category, risk level and responsible worker; visits due and overdue and visits per
//! month; cases by state and timeliness; stale files. Figures are computed from grouped counts
//! (`storage::stats`), never by reading a row per file, and count only files served here (a file
//! kept read-only after a move is not this node's to count). Reading them is audited
//! (`stats.read`); they name no child.

pub mod workbook;

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::Serialize;

use crate::audit::{self, Actor, AuditError, Event, Outcome};
use crate::domain::child::{Benefit, Category};
use crate::domain::{Month, RegionCode, RiskLevel};
use crate::storage::{self, stats as repo, DbConn, StorageError};
use crate::sync::LocalNode;

/// Why statistics could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// One bar: a key, its Chinese label and its count.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Count {
    /// The code counted (a region or township code, a category, a level, a state, a month).
    pub key: String,
    /// What people read: the region's name, the category's label, the level's label.
    pub label: String,
    pub count: i64,
}

/// Cases, by state and timeliness.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CaseFigures {
    /// Cases this node asked (requester) per state.
    pub outgoing: Vec<Count>,
    /// Cases this node decides per state.
    pub incoming: Vec<Count>,
    /// Decided cases decided by their due day.
    pub decided_on_time: i64,
    /// Decided cases decided after it.
    pub decided_late: i64,
    /// Open cases past their due day.
    pub open_overdue: i64,
    /// The mean of working days from submission to decision (none: nothing decided).
    pub mean_working_days_to_decision: Option<f64>,
}

/// The statistics page and `GET /api/v1/stats`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Stats {
    pub generated_at: DateTime<Utc>,
    /// The day the figures are counted at (China time): today, or a month report's last day.
    pub as_of: NaiveDate,
    /// The account scope the figures are limited to (`*`: the whole node).
    pub scope: String,
    /// Files served here.
    pub files: i64,
    /// Per residence region (county level), most files first.
    pub by_region: Vec<Count>,
    /// Per residence township (乡镇/街道); `none` for files naming none.
    pub by_township: Vec<Count>,
    /// Per category (a file counts once in each of its categories).
    pub by_category: Vec<Count>,
    /// Per benefit held now (低保, 特困, …; a file counts once for each it holds).
    pub by_benefit: Vec<Count>,
    /// Per risk level on the common scale, labelled by this node's palette; `none`: not graded.
    pub by_risk: Vec<Count>,
    /// Per responsible worker (包保人); `none`: nobody named.
    pub by_worker: Vec<Count>,
    /// Visits overdue today.
    pub visits_overdue: i64,
    /// Visits due within the next seven days (not overdue).
    pub visits_due_within_7_days: i64,
    /// Visits recorded per month, the last twelve months (oldest first, `YYYY-MM`).
    pub visits_per_month: Vec<Count>,
    /// Files neither visited nor confirmed within the six-month rule.
    pub stale: i64,
    pub cases: CaseFigures,
}

/// What a figure needs from its caller: today in China, the stale cut-off and a working-day
/// count (the eligibility calendar; `stats` cannot read it itself).
pub struct Inputs<'a> {
    /// The day the figures are counted at (today, or a past month's last day).
    pub today: NaiveDate,
    pub stale_before: NaiveDate,
    pub working_days: &'a dyn Fn(NaiveDate, NaiveDate) -> i64,
    /// Timeliness counts only cases decided on or after this day (a month's report); `None`:
    /// every decided case.
    pub decided_from: Option<NaiveDate>,
}

impl<'a> Inputs<'a> {
    /// The inputs at `now`: today in China, and the cut-off `stale_after_days` before it.
    pub fn at(
        now: DateTime<Utc>,
        stale_after_days: u32,
        working_days: &'a dyn Fn(NaiveDate, NaiveDate) -> i64,
    ) -> Self {
        let today = crate::sync::ledger::china_today(now);
        Inputs {
            today,
            stale_before: today - chrono::Duration::days(i64::from(stale_after_days)),
            working_days,
            decided_from: None,
        }
    }

    /// The inputs of a month's report: counted at the month's last day (today, for the month
    /// under way), timeliness of the cases decided within the month. `None` for a month that
    /// has not begun.
    pub fn for_month(
        month: Month,
        now: DateTime<Utc>,
        stale_after_days: u32,
        working_days: &'a dyn Fn(NaiveDate, NaiveDate) -> i64,
    ) -> Option<Self> {
        let today = crate::sync::ledger::china_today(now);
        let first = month.first_day();
        if first > today {
            return None;
        }
        let last = first
            .checked_add_months(chrono::Months::new(1))
            .and_then(|d| d.pred_opt())
            .unwrap_or(first);
        let at = last.min(today);
        Some(Inputs {
            today: at,
            stale_before: at - chrono::Duration::days(i64::from(stale_after_days)),
            working_days,
            decided_from: Some(first),
        })
    }
}

/// Computes the statistics and audits the read.
pub fn compute(
    conn: &mut DbConn,
    node: &LocalNode,
    input: &Inputs<'_>,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Stats, StatsError> {
    let scope = &actor.scope;
    let served = |region: &str| RegionCode::parse(region).is_ok_and(|r| node.serves(&r));
    // One pass over the pairs of regions: files and counties of the files served here, and the
    // regions of files kept after a move (neither region served), which the other counts leave
    // out.
    let mut files = 0;
    let mut regions: BTreeMap<String, i64> = BTreeMap::new();
    let mut unserved = std::collections::BTreeSet::new();
    for (h, r, n) in repo::pairs(conn, scope)? {
        if served(&h) || served(&r) {
            files += n;
            *regions.entry(r).or_default() += n;
        } else {
            unserved.insert(h);
            unserved.insert(r);
        }
    }
    let counted = repo::Files {
        scope: scope.clone(),
        unserved: unserved.into_iter().collect(),
    };
    let townships: BTreeMap<String, i64> = repo::by_township(conn, &counted)?
        .into_iter()
        .map(|(t, n)| (t.unwrap_or_else(|| "none".into()), n))
        .collect();
    let mut categories: BTreeMap<Category, i64> = BTreeMap::new();
    for (set, n) in repo::by_categories(conn, &counted)? {
        for code in set.split('|').filter(|c| !c.is_empty()) {
            if let Some(c) = Category::ALL.iter().find(|c| c.code() == code) {
                *categories.entry(*c).or_default() += n;
            }
        }
    }
    let mut benefits: BTreeMap<Benefit, i64> = BTreeMap::new();
    for (code, n) in repo::by_benefit(conn, &counted)? {
        if let Some(b) = Benefit::ALL.iter().find(|b| b.code() == code) {
            *benefits.entry(*b).or_default() += n;
        }
    }
    let risk: BTreeMap<String, i64> = repo::by_risk(conn, &counted)?
        .into_iter()
        .map(|(l, n)| (l.unwrap_or_else(|| "none".into()), n))
        .collect();
    let mut workers: BTreeMap<String, i64> = BTreeMap::new();
    for (worker, n) in repo::by_worker(conn, &counted)? {
        *workers
            .entry(worker.map_or_else(|| "none".into(), |w| worker_name(&w)))
            .or_default() += n;
    }
    let soon = input.today + chrono::Duration::days(7);
    let (visits_overdue, due_by_soon, stale) =
        repo::due_and_stale(conn, &counted, input.today, soon, input.stale_before)?;
    let visits_due_within_7_days = due_by_soon - visits_overdue;
    let first_month = months_back(input.today, 11);
    let mut per_month: BTreeMap<String, i64> = (0..12)
        .map(|i| (month_key(months_forward(first_month, i)), 0))
        .collect();
    for (day, n) in repo::visits_per_day(conn, first_month, scope)? {
        if let Some(m) = per_month.get_mut(&month_key(day)) {
            *m += n;
        }
    }
    let cases = case_figures(conn, node, input, scope)?;
    let palette = &node.palette;
    let stats = Stats {
        generated_at: now,
        as_of: input.today,
        scope: scope.to_string(),
        files,
        by_region: sorted(regions.into_iter().map(|(code, n)| {
            let label = RegionCode::parse(&code).map_or_else(|_| code.clone(), |r| r.full_name());
            (code, label, n)
        })),
        by_township: sorted(townships.into_iter().map(|(code, n)| {
            let label = crate::domain::division::TownshipCode::parse(&code).map_or_else(
                |_| "未填写乡镇 (none named)".to_owned(),
                |t| t.name().to_owned(),
            );
            (code, label, n)
        })),
        by_category: sorted(
            categories
                .into_iter()
                .map(|(c, n)| (c.code().to_owned(), c.label_zh().to_owned(), n)),
        ),
        by_benefit: sorted(
            benefits
                .into_iter()
                .map(|(b, n)| (b.code().to_owned(), b.label_zh().to_owned(), n)),
        ),
        by_risk: risk
            .into_iter()
            .map(|(level, n)| {
                let label = level
                    .parse::<u8>()
                    .ok()
                    .and_then(|l| RiskLevel::new(l).ok())
                    .map_or_else(
                        || "未评定 (not graded)".to_owned(),
                        |l| palette.label(l).to_owned(),
                    );
                Count {
                    key: level,
                    label,
                    count: n,
                }
            })
            .collect(),
        by_worker: sorted(workers.into_iter().map(|(w, n)| {
            let label = if w == "none" {
                "未指定 (nobody named)".to_owned()
            } else {
                w.clone()
            };
            (w, label, n)
        })),
        visits_overdue,
        visits_due_within_7_days,
        visits_per_month: per_month
            .into_iter()
            .map(|(m, n)| Count {
                label: m.clone(),
                key: m,
                count: n,
            })
            .collect(),
        stale,
        cases,
    };
    storage::transaction(conn, |c| {
        audit::append(
            c,
            node.clock.now(),
            now,
            &Event::new(actor.clone(), "stats.read", Outcome::Ok)
                .details(serde_json::json!({"files": stats.files})),
        )
    })?;
    Ok(stats)
}

fn case_figures(
    conn: &mut DbConn,
    node: &LocalNode,
    input: &Inputs<'_>,
    scope: &crate::domain::Scope,
) -> Result<CaseFigures, StatsError> {
    let mut outgoing: BTreeMap<String, i64> = BTreeMap::new();
    let mut incoming: BTreeMap<String, i64> = BTreeMap::new();
    for (state, _benefit, requester, decider, n) in repo::cases_by_state(conn, scope)? {
        if requester == node.id.as_str() {
            *outgoing.entry(state.clone()).or_default() += n;
        }
        if decider == node.id.as_str() {
            *incoming.entry(state).or_default() += n;
        }
    }
    let mut on_time = 0;
    let mut late = 0;
    let mut days = 0i64;
    let china = |t: &chrono::NaiveDateTime| crate::sync::ledger::china_today(t.and_utc());
    let decided: Vec<_> = repo::decided_cases(conn, scope)?
        .into_iter()
        .filter(|(_, at, _)| {
            let on = china(at);
            input.decided_from.map_or(true, |from| on >= from) && on <= input.today
        })
        .collect();
    for (submitted, decided_at, due_on) in &decided {
        let decided_on = china(decided_at);
        if decided_on <= *due_on {
            on_time += 1;
        } else {
            late += 1;
        }
        days += (input.working_days)(china(submitted), decided_on);
    }
    let states = |m: BTreeMap<String, i64>| -> Vec<Count> {
        m.into_iter()
            .map(|(s, n)| Count {
                label: state_label(&s).to_owned(),
                key: s,
                count: n,
            })
            .collect()
    };
    Ok(CaseFigures {
        outgoing: states(outgoing),
        incoming: states(incoming),
        decided_on_time: on_time,
        decided_late: late,
        open_overdue: repo::open_cases_overdue(conn, input.today, scope)?,
        mean_working_days_to_decision: (!decided.is_empty())
            .then(|| days as f64 / decided.len() as f64),
    })
}

fn state_label(state: &str) -> &'static str {
    match state {
        "submitted" => "已提交 (submitted)",
        "received" => "已接收 (received)",
        "info_requested" => "待补充材料 (information requested)",
        "info_provided" => "已补充材料 (information provided)",
        "approved" => "已批准 (approved)",
        "denied" => "未批准 (denied)",
        "withdrawn" => "已撤回 (withdrawn)",
        _ => "其他 (other)",
    }
}

/// The worker's name from the view column (JSON of the responsible worker, or a bare name).
fn worker_name(column: &str) -> String {
    serde_json::from_str::<serde_json::Value>(column)
        .ok()
        .and_then(|v| v["name"].as_str().map(str::to_owned))
        .unwrap_or_else(|| column.to_owned())
}

/// Most first, then by key.
fn sorted(items: impl Iterator<Item = (String, String, i64)>) -> Vec<Count> {
    let mut out: Vec<Count> = items
        .map(|(key, label, count)| Count { key, label, count })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    out
}

fn month_key(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

/// The first day of the month `n` months before `d`'s.
fn months_back(d: NaiveDate, n: u32) -> NaiveDate {
    let first = d.with_day(1).unwrap_or(d);
    first
        .checked_sub_months(chrono::Months::new(n))
        .unwrap_or(first)
}

fn months_forward(d: NaiveDate, n: u32) -> NaiveDate {
    d.checked_add_months(chrono::Months::new(n)).unwrap_or(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twelve_months_end_with_this_one() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
        let first = months_back(today, 11);
        assert_eq!(first, NaiveDate::from_ymd_opt(2026, 1, 1).unwrap());
        assert_eq!(month_key(months_forward(first, 11)), "2026-12");
        let jan = NaiveDate::from_ymd_opt(2027, 1, 31).unwrap();
        assert_eq!(
            months_back(jan, 11),
            NaiveDate::from_ymd_opt(2026, 2, 1).unwrap()
        );
    }

    #[test]
    fn a_worker_is_named_from_the_column() {
        assert_eq!(
            worker_name(r#"{"name":"王秀兰","role":"children_director"}"#),
            "王秀兰"
        );
        assert_eq!(worker_name("王秀兰"), "王秀兰");
    }

    #[test]
    fn bars_are_most_first() {
        let v = sorted(
            [("a", 1), ("b", 3), ("c", 3)]
                .into_iter()
                .map(|(k, n)| (k.to_owned(), k.to_owned(), n)),
        );
        let keys: Vec<&str> = v.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["b", "c", "a"]);
    }
}
