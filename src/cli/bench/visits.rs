//! `bench visits`: a visit recorded at the residence node until its signed version is stored at
//! the hukou node (p50/p99), beside a single edit of a file measured the same way in the same run;
//! and the due list over N files (p50/p99 per query shape) beside the bare index scan of the same
//! page.

use std::time::Instant;

use chrono::{Days, Utc};
use serde_json::json;

use crate::audit::Actor;
use crate::domain::{IdNumber, RegionCode};
use crate::storage::records::ChildRow;
use crate::storage::visits::DueFilter;
use crate::storage::{self, Store};
use crate::sync::ledger::{self, china_today};
use crate::visits::{self, VisitInput};

use super::{backend_name, bench_db, bench_pair, round, sample_records, settings_for};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(0.0)
}

/// Waits until version `vid` is stored at `store`, looking again whenever `arrived` signals.
async fn await_version(
    store: &Store,
    arrived: &mut tokio::sync::watch::Receiver<u64>,
    vid: String,
    t: Instant,
) -> anyhow::Result<()> {
    loop {
        let v = vid.clone();
        if store
            .run(move |c| storage::records::get_version(c, &v))
            .await?
            .is_some()
        {
            return Ok(());
        }
        anyhow::ensure!(
            t.elapsed() < std::time::Duration::from_secs(30),
            "the version did not arrive"
        );
        let _ = tokio::time::timeout(std::time::Duration::from_millis(20), arrived.changed()).await;
    }
}

pub(super) async fn bench_visits(
    files: usize,
    visits: usize,
    due_files: usize,
    queries: usize,
    postgres: Option<String>,
) -> anyhow::Result<serde_json::Value> {
    let backend = backend_name(postgres.as_deref());
    let pair = bench_pair(postgres.as_deref()).await?;
    let (zz_store, zz_node, _, _) = pair.nodes[0].clone();
    let (cd_store, cd_node, _, _) = pair.nodes[1].clone();
    let now = Utc::now();
    let rows = sample_records(files.max(1), 29, &zz_node.palette, now)?;
    {
        let (s, n, r) = (zz_store.clone(), zz_node.clone(), rows.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut c = s.conn()?;
            ledger::import_children(&mut c, &n, &r, &Actor::console(), now, &mut |_| {})?;
            Ok(())
        })
        .await??;
    }
    let start = Instant::now();
    while cd_store.run(storage::records::count_versions).await? < rows.len() as i64 {
        anyhow::ensure!(
            start.elapsed() < std::time::Duration::from_secs(300),
            "the files did not reach the hukou node"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // Visits and edits alternately, each until its version is stored at the hukou node.
    let mut arrived = cd_node.outbox_changed.subscribe();
    let today = china_today(now);
    let (mut visit_ms, mut edit_ms) = (Vec::new(), Vec::new());
    for i in 0..visits {
        let id = rows[i % rows.len()].1.id_number.clone();
        let input: VisitInput = serde_json::from_value(json!({
            "visited_on": today, "visitor": {"name": "王秀兰", "role": "children_director"},
            "kind": "home", "seen": ["child", "caregiver"],
            "findings": {"living": format!("第 {i} 次走访")},
            "assessment": {"indicators": {"guardianship": {"grade": 1 + (i % 4) as u8}}, "assessor": "王秀兰"},
        }))?;
        let (s, n, id2) = (zz_store.clone(), zz_node.clone(), id.clone());
        arrived.borrow_and_update();
        let t = Instant::now();
        let view = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let mut c = s.conn()?;
            Ok(visits::record(
                &mut c,
                &n,
                &id2,
                input,
                &Actor::console(),
                Utc::now(),
            )?)
        })
        .await??;
        await_version(&cd_store, &mut arrived, view.version.to_string(), t).await?;
        visit_ms.push(t.elapsed().as_secs_f64() * 1000.0);

        let (s, n) = (zz_store.clone(), zz_node.clone());
        arrived.borrow_and_update();
        let t = Instant::now();
        let file = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let mut c = s.conn()?;
            let patch = json!({"notes": format!("edit {i}")});
            Ok(ledger::update_child(
                &mut c,
                &n,
                &id,
                patch.as_object().cloned().unwrap_or_default(),
                &Actor::console(),
                Utc::now(),
            )?)
        })
        .await??;
        let vid = file
            .history
            .last()
            .map(|v| v.id.to_string())
            .unwrap_or_default();
        await_version(&cd_store, &mut arrived, vid, t).await?;
        edit_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    for (_, _, stop, _) in &pair.nodes {
        stop.stop(true).await;
    }
    visit_ms.sort_by(f64::total_cmp);
    edit_ms.sort_by(f64::total_cmp);

    // The due list over `due_files` files: view rows written directly (the list reads only the
    // view), due dates spread over 400 days around today, 50 townships, 500 workers.
    let db = bench_db(postgres.as_deref(), "due")?;
    let settings = settings_for(&db);
    let (store, node) = crate::startup::open_node_blocking(&settings)?;
    let pb = crate::cli::progress_bar(due_files as u64, "filling the view", false);
    let region = RegionCode::parse("410105")?;
    let at = now.naive_utc();
    let mut conn = store.conn()?;
    let base = chrono::NaiveDate::from_ymd_opt(2010, 1, 1).unwrap_or_default();
    let mut chunk = Vec::with_capacity(10_000);
    for i in 0..due_files {
        let birth = base + Days::new((i / 1000) as u64);
        let id = IdNumber::generate(&region, birth, (i % 1000) as u16);
        let due = today + Days::new((i * 7919 % 400) as u64) - Days::new(200);
        chunk.push(ChildRow {
            id_number: id.to_string(),
            name: "测试".into(),
            hukou_region: "510104".into(),
            residence_region: "410105".into(),
            categories: "|flowing|".into(),
            risk_level: None,
            last_visit_on: due.checked_sub_days(Days::new(183)),
            refreshed_on: due.checked_sub_days(Days::new(183)),
            residence_township: Some(format!("410105{:03}", 1 + i % 50)),
            hukou_township: None,
            visit_due_on: Some(due),
            responsible_worker: Some(format!("工作人员{}", i % 500)),
            record: String::new(),
            head_count: 1,
            created_at: at,
            updated_at: at,
        });
        if chunk.len() == 10_000 || i + 1 == due_files {
            storage::transaction(&mut conn, |c| storage::records::insert_children(c, &chunk))?;
            chunk.clear();
            pb.set_position(i as u64 + 1);
        }
    }
    pb.finish_and_clear();
    storage::analyze(&mut conn)?;
    let shapes: [(&str, DueFilter); 5] = [
        (
            "due_within_7_days",
            DueFilter {
                scope: Default::default(),
                due_by: today + Days::new(7),
                limit: 100,
                ..Default::default()
            },
        ),
        (
            "overdue",
            DueFilter {
                scope: Default::default(),
                due_by: today - Days::new(1),
                limit: 100,
                ..Default::default()
            },
        ),
        (
            "township",
            DueFilter {
                scope: Default::default(),
                due_by: today + Days::new(7),
                township: Some("410105017".into()),
                limit: 100,
                ..Default::default()
            },
        ),
        (
            "worker",
            DueFilter {
                scope: Default::default(),
                due_by: today + Days::new(7),
                worker: Some("工作人员123".into()),
                limit: 100,
                ..Default::default()
            },
        ),
        (
            "deep_page",
            DueFilter {
                scope: Default::default(),
                due_by: today + Days::new(7),
                after: Some((today - Days::new(3), String::new())),
                limit: 100,
                ..Default::default()
            },
        ),
    ];
    let mut out = serde_json::Map::new();
    out.insert("backend".into(), json!(backend));
    out.insert("visits".into(), json!(visits));
    out.insert(
        "visit_latency_p50_ms".into(),
        json!(round(percentile(&visit_ms, 0.5))),
    );
    out.insert(
        "visit_latency_p99_ms".into(),
        json!(round(percentile(&visit_ms, 0.99))),
    );
    out.insert(
        "edit_latency_p50_ms".into(),
        json!(round(percentile(&edit_ms, 0.5))),
    );
    out.insert(
        "edit_latency_p99_ms".into(),
        json!(round(percentile(&edit_ms, 0.99))),
    );
    out.insert("due_list_files".into(), json!(due_files));
    for (name, filter) in shapes {
        let mut ms = Vec::with_capacity(queries);
        let mut items = 0;
        for _ in 0..queries {
            let t = Instant::now();
            let page = visits::due(
                &mut conn,
                &node,
                filter.clone(),
                today,
                &crate::domain::Scope::whole_node(),
            )?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            items = page.items.len();
        }
        ms.sort_by(f64::total_cmp);
        out.insert(
            format!("due_{name}_p50_ms"),
            json!(round(percentile(&ms, 0.5))),
        );
        out.insert(
            format!("due_{name}_p99_ms"),
            json!(round(percentile(&ms, 0.99))),
        );
        out.insert(format!("due_{name}_items"), json!(items));
    }
    // Bare: the same first page straight from the index, no filter, no wrapper.
    let mut ms = Vec::with_capacity(queries);
    for _ in 0..queries {
        let t = Instant::now();
        let rows = storage::visits::due(
            &mut conn,
            &DueFilter {
                scope: Default::default(),
                due_by: today + Days::new(7),
                limit: 100,
                ..Default::default()
            },
        )?;
        std::hint::black_box(rows);
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    out.insert(
        "bare_index_page_p50_ms".into(),
        json!(round(percentile(&ms, 0.5))),
    );
    out.insert(
        "bare_index_page_p99_ms".into(),
        json!(round(percentile(&ms, 0.99))),
    );
    Ok(serde_json::Value::Object(out))
}
