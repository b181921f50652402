//! `bench stats`: the statistics over a province's files — FILES view rows spread over every
//! county of Henan (41) in the region table, 20 townships each, 2,000 responsible workers, five
//! category sets, four risk levels, a tenth holding 低保 and one in thirty 特困 — and CASES
//! eligibility cases, written directly (the figures read only the view and the cases' rows).
//! Timed: `stats::compute` (the service the API, the page and the console call, audit included)
//! for the whole node, for one county's scope and for one street's, QUERIES times each (p50,
//! p99), beside the bare limit measured in the same run: one `count(*)` pass over the view.
//! Then the files list (`ledger::list_children`, a page of 100) for each filter shape, beside the
//! bare first page of the primary key. With `--explain DIR` (PostgreSQL), each of these runs
//! once more with its statements recorded, and DIR/<name>.txt gets each statement's SQL and
//! its `EXPLAIN (ANALYZE, BUFFERS)` plan (docs/plans-postgres.md is written from them).

use std::path::Path;
use std::time::Instant;

use chrono::{Days, Utc};
use serde_json::json;

use crate::audit::Actor;
use crate::domain::{IdNumber, RegionCode, Scope};
use crate::stats::{self, Inputs};
use crate::storage::cases::CaseRow;
use crate::storage::records::{ChildFilter, ChildRow};
use crate::storage::{self};
use crate::sync::ledger::{self, china_today};

use super::{backend_name, bench_db, round, settings_for};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(0.0)
}

/// p50 and p99 of `runs` timings of `f`, in milliseconds.
fn timed(runs: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<(f64, f64)> {
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    Ok((round(percentile(&ms, 0.5)), round(percentile(&ms, 0.99))))
}

pub(super) fn bench_stats(
    files: usize,
    cases: usize,
    queries: usize,
    postgres: Option<&str>,
    explain: Option<&Path>,
) -> anyhow::Result<serde_json::Value> {
    let db = bench_db(postgres, "stats")?;
    let settings = settings_for(&db);
    let (store, node) = crate::startup::open_node_blocking(&settings)?;
    let mut conn = store.conn()?;
    let now = Utc::now();
    let today = china_today(now);
    let at = now.naive_utc();
    let counties: Vec<RegionCode> = crate::domain::region::all_codes()
        .filter(|c| c.as_str().starts_with("41") && !c.as_str().ends_with("00"))
        .collect();
    anyhow::ensure!(!counties.is_empty(), "the region table has no county of 41");
    let category_sets = [
        "|flowing|",
        "|left_behind|",
        "|flowing|left_behind|",
        "|in_difficulty|",
        "|orphan|",
    ];
    let pb = crate::cli::progress_bar(files as u64, "filling the view", false);
    let base = chrono::NaiveDate::from_ymd_opt(2010, 1, 1).unwrap_or_default();
    let mut chunk = Vec::with_capacity(10_000);
    let mut held: Vec<(String, &'static str)> = Vec::new();
    let mut ids: Vec<String> = Vec::with_capacity(cases);
    let load = Instant::now();
    for i in 0..files {
        let county = &counties[i % counties.len()];
        let birth = base + Days::new((i / 1000 % 3000) as u64);
        let id = IdNumber::generate(county, birth, (i % 1000) as u16).to_string();
        let due = today + Days::new((i * 7919 % 400) as u64) - Days::new(200);
        if i % 10 == 0 {
            held.push((id.clone(), "dibao"));
        }
        if i % 30 == 0 {
            held.push((id.clone(), "tekun"));
        }
        if ids.len() < cases && i % 7 == 0 {
            ids.push(id.clone());
        }
        chunk.push(ChildRow {
            id_number: id,
            name: "测试".into(),
            hukou_region: county.to_string(),
            residence_region: county.to_string(),
            categories: category_sets[i % category_sets.len()].into(),
            risk_level: Some(((i % 4) + 1).to_string()),
            last_visit_on: due.checked_sub_days(Days::new(183)),
            refreshed_on: due.checked_sub_days(Days::new(183)),
            residence_township: Some(format!("{county}{:03}", 1 + (i / counties.len()) % 20)),
            hukou_township: None,
            visit_due_on: Some(due),
            responsible_worker: Some(format!("工作人员{}", i % 2000)),
            record: String::new(),
            head_count: 1,
            created_at: at,
            updated_at: at,
        });
        if chunk.len() == 10_000 || i + 1 == files {
            storage::transaction(&mut conn, |c| {
                storage::records::insert_children(c, &chunk)?;
                let pairs: Vec<(&str, &str)> =
                    held.iter().map(|(id, b)| (id.as_str(), *b)).collect();
                storage::records::insert_benefits(c, &pairs)
            })?;
            chunk.clear();
            held.clear();
            pb.set_position(i as u64 + 1);
        }
    }
    pb.finish_and_clear();
    let states = [
        "submitted",
        "received",
        "approved",
        "denied",
        "info_requested",
    ];
    storage::transaction(&mut conn, |c| -> Result<(), storage::StorageError> {
        for (k, id) in ids.iter().enumerate() {
            let submitted = at - chrono::Duration::days((k % 60) as i64);
            storage::cases::upsert(
                c,
                &CaseRow {
                    case_id: uuid::Uuid::now_v7().to_string(),
                    child_id: id.clone(),
                    benefit: "dibao".into(),
                    requester: node.id.to_string(),
                    decider: node.id.to_string(),
                    state: states[k % states.len()].into(),
                    submitted_at: submitted,
                    due_on: submitted.date() + Days::new(20),
                    head_count: 1,
                    body: "{}".into(),
                    updated_at: submitted + chrono::Duration::days((k % 25) as i64),
                },
            )?;
        }
        Ok(())
    })?;
    storage::analyze(&mut conn)?;
    let load_s = load.elapsed().as_secs_f64();

    let stale_days = 183;
    let working = |a: chrono::NaiveDate, b: chrono::NaiveDate| (b - a).num_days();
    let scoped = |scope: Scope| Actor {
        scope,
        ..Actor::console()
    };
    let county = counties[0].to_string();
    let street = format!("{county}001");
    let mut out = serde_json::Map::new();
    out.insert("backend".into(), json!(backend_name(postgres)));
    out.insert("files".into(), json!(files));
    out.insert("counties".into(), json!(counties.len()));
    out.insert("cases".into(), json!(ids.len()));
    out.insert("load_seconds".into(), json!(round(load_s)));
    let mut files_seen = 0;
    for (name, actor) in [
        ("whole_node", Actor::console()),
        ("one_county", scoped(Scope::parse(&county)?)),
        ("one_street", scoped(Scope::parse(&street)?)),
    ] {
        let (p50, p99) = timed(queries, || {
            let input = Inputs::at(Utc::now(), stale_days, &working);
            let s = stats::compute(&mut conn, &node, &input, &actor, Utc::now())?;
            files_seen = s.files;
            Ok(())
        })?;
        if let Some(dir) = explain {
            let input = Inputs::at(Utc::now(), stale_days, &working);
            let (_, statements) = storage::plans::record(&mut conn, |c| {
                stats::compute(c, &node, &input, &actor, Utc::now())
            })?;
            write_plans(&mut conn, dir, &format!("stats_{name}"), &statements)?;
        }
        out.insert(format!("stats_{name}_p50_ms"), json!(p50));
        out.insert(format!("stats_{name}_p99_ms"), json!(p99));
        out.insert(format!("stats_{name}_files"), json!(files_seen));
    }
    let (p50, p99) = timed(queries, || {
        std::hint::black_box(storage::records::count_children(&mut conn)?);
        Ok(())
    })?;
    out.insert("bare_count_pass_p50_ms".into(), json!(p50));
    out.insert("bare_count_pass_p99_ms".into(), json!(p99));

    // The files list (issue 25 #10): a page of 100 through `ledger::list_children` (the
    // service of `GET /api/v1/children` and the files page, its audit event included) for each
    // filter shape, beside the bare first page of the primary key in the same run.
    let middle = {
        let mut all = storage::records::list_children(
            &mut conn,
            &ChildFilter {
                limit: 1,
                after: Some(format!("{}5", &county[..2])),
                ..Default::default()
            },
        )?;
        all.pop().map(|c| c.id_number.to_string())
    };
    let page = |f: ChildFilter| ChildFilter { limit: 100, ..f };
    let shapes: Vec<(&str, ChildFilter)> = vec![
        ("first_page", page(ChildFilter::default())),
        (
            "deep_page",
            page(ChildFilter {
                after: middle,
                ..Default::default()
            }),
        ),
        (
            "county",
            page(ChildFilter {
                region_prefix: Some(county.clone()),
                ..Default::default()
            }),
        ),
        (
            "township",
            page(ChildFilter {
                township: Some(street.clone()),
                ..Default::default()
            }),
        ),
        (
            "category",
            page(ChildFilter {
                category: Some("orphan".into()),
                ..Default::default()
            }),
        ),
        (
            "risk",
            page(ChildFilter {
                risk_level: Some(crate::domain::RiskLevel::new(1)?),
                ..Default::default()
            }),
        ),
        (
            "benefit",
            page(ChildFilter {
                benefit: Some("tekun".into()),
                ..Default::default()
            }),
        ),
        (
            "worker",
            page(ChildFilter {
                worker: Some("工作人员123".into()),
                ..Default::default()
            }),
        ),
        (
            "stale",
            page(ChildFilter {
                stale_before: Some((now - chrono::Duration::days(183)).naive_utc()),
                ..Default::default()
            }),
        ),
        (
            "visits_due",
            page(ChildFilter {
                visit_due_by: Some(today),
                ..Default::default()
            }),
        ),
    ];
    // The service takes the scope from the reader's account, never from the filter: a
    // county's account listing its files is one more shape.
    let console = Actor::console();
    let county_account = scoped(Scope::parse(&county)?);
    let shapes: Vec<(&str, ChildFilter, &Actor)> = shapes
        .into_iter()
        .map(|(name, filter)| (name, filter, &console))
        .chain([(
            "county_scope",
            page(ChildFilter::default()),
            &county_account,
        )])
        .collect();
    for (name, filter, reader) in shapes {
        let mut items = 0;
        let (p50, p99) = timed(queries.max(50), || {
            let p = ledger::list_children(&mut conn, &node, &filter, reader, None, Utc::now())?;
            items = p.items.len();
            Ok(())
        })?;
        out.insert(format!("list_{name}_p50_ms"), json!(p50));
        out.insert(format!("list_{name}_p99_ms"), json!(p99));
        out.insert(format!("list_{name}_items"), json!(items));
        if let Some(dir) = explain {
            let (_, statements) = storage::plans::record(&mut conn, |c| {
                ledger::list_children(c, &node, &filter, reader, None, Utc::now())
            })?;
            write_plans(&mut conn, dir, &format!("list_{name}"), &statements)?;
        }
    }
    let (p50, p99) = timed(queries.max(50), || {
        std::hint::black_box(storage::records::list_children(
            &mut conn,
            &ChildFilter {
                limit: 100,
                ..Default::default()
            },
        )?);
        Ok(())
    })?;
    out.insert("bare_first_page_p50_ms".into(), json!(p50));
    out.insert("bare_first_page_p99_ms".into(), json!(p99));
    Ok(serde_json::Value::Object(out))
}

/// DIR/NAME.txt: each recorded statement that reads the files, its SQL with its binds written
/// in, and its plan from `EXPLAIN (ANALYZE, BUFFERS)`. The audit event's statements (every
/// read is audited) are left out: they are the same for every page and touch no file.
pub(super) fn write_plans(
    conn: &mut storage::DbConn,
    dir: &Path,
    name: &str,
    statements: &[storage::plans::Statement],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut text = String::new();
    for st in statements {
        if st.sql.contains("audit") || st.sql.contains("pg_advisory") {
            continue;
        }
        let Some(plan) = storage::plans::explain(conn, st)? else {
            continue;
        };
        let sql = storage::plans::with_literals(&st.sql, &storage::plans::literals(&st.binds));
        text.push_str(&format!("-- {name}\n{sql};\n\n{plan}\n\n"));
    }
    std::fs::write(dir.join(format!("{name}.txt")), text)?;
    Ok(())
}
