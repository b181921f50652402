//! `bench cases`: eligibility requests from the residence node to the hukou node under load.

use std::time::Instant;

use chrono::Utc;

use crate::audit::Actor;
use crate::storage;
use crate::sync::ledger;

use super::{backend_name, bench_pair, round, sample_records};

pub(super) async fn bench_cases(
    count: usize,
    concurrency: usize,
    postgres: Option<String>,
) -> anyhow::Result<serde_json::Value> {
    let backend = backend_name(postgres.as_deref());
    let pair = bench_pair(postgres.as_deref()).await?;
    let (zz_store, zz_node, _, zz_base) = pair.nodes[0].clone();
    let (cd_store, _, _, _) = pair.nodes[1].clone();
    // The children, present on both nodes first.
    let now = Utc::now();
    let rows = sample_records(count, 13, &zz_node.palette, now)?;
    let ids: Vec<String> = rows.iter().map(|(_, r)| r.id_number.to_string()).collect();
    let (s2, n2) = (zz_store.clone(), zz_node.clone());
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut c = s2.conn()?;
        ledger::import_children(&mut c, &n2, &rows, &Actor::console(), now, &mut |_| {})?;
        Ok(())
    })
    .await??;
    let start = Instant::now();
    while (cd_store.run(storage::records::count_versions).await? as usize) < count {
        anyhow::ensure!(
            start.elapsed() < std::time::Duration::from_secs(600),
            "children did not arrive"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let http = crate::devnet::admin_client(zz_store.clone(), zz_node.clone()).await?;
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency));
    let pb = crate::cli::progress_bar(count as u64, "cases", false);
    // One watcher tells each request when its case reached `received` at the requester: it looks
    // when the requester stored a batch (it wakes its senders then) or every 20 ms, with one
    // query for every case in flight. (A poll per request would load the database it measures.)
    let waiting: Waiting = Default::default();
    let watcher = tokio::spawn(watch_received(
        zz_store.clone(),
        zz_node.outbox_changed.subscribe(),
        waiting.clone(),
    ));
    let cpu_node = super::cpu_seconds(std::process::id());
    let cpu_db = super::postgres_cpu_seconds();
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for id in ids {
        let permit = sem.clone().acquire_owned().await?;
        let (http, base, pb, waiting) =
            (http.clone(), zz_base.clone(), pb.clone(), waiting.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let t = Instant::now();
            let body = serde_json::json!({
                "child_id": id, "benefit": "dibao",
                "grounds": {"summary": "父母外出务工，家庭收入低于当地低保标准", "evidence": []},
                "officers": {"requester": "BENCH-1"},
            });
            let created: serde_json::Value = http
                .post(format!("{base}/api/v1/cases"))
                .json(&body)
                .send()
                .await?
                .json()
                .await?;
            let case_id = created["case"]["case_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let (tx, rx) = tokio::sync::oneshot::channel();
            waiting
                .lock()
                .map_err(|_| anyhow::anyhow!("the watcher's list is poisoned"))?
                .insert(case_id.clone(), tx);
            tokio::time::timeout(std::time::Duration::from_secs(120), rx)
                .await
                .map_err(|_| anyhow::anyhow!("no receipt for {case_id}"))??;
            pb.inc(1);
            anyhow::Ok(t.elapsed().as_secs_f64() * 1000.0)
        }));
    }
    let mut lat = Vec::with_capacity(count);
    for t in tasks {
        lat.push(t.await??);
    }
    let total = start.elapsed();
    let cpu_node = super::cpu_seconds(std::process::id()) - cpu_node;
    let cpu_db = super::postgres_cpu_seconds() - cpu_db;
    watcher.abort();
    pb.finish_and_clear();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0.0)
    };
    for (_, _, stop, _) in &pair.nodes {
        stop.stop(true).await;
    }
    Ok(serde_json::json!({
        "backend": backend,
        "cases": count,
        "in_flight": concurrency,
        "cases_per_s": (count as f64 / total.as_secs_f64()).round(),
        // Where the CPU went: this process (both nodes and the clients) and, on PostgreSQL, the
        // server's processes on this machine — per case, in milliseconds.
        "cpu_ms_per_case_nodes": round(cpu_node * 1e3 / count as f64),
        "cpu_ms_per_case_database": round(cpu_db * 1e3 / count as f64),
        "request_to_receipt_p50_ms": round(pct(0.50)),
        "request_to_receipt_p99_ms": round(pct(0.99)),
    }))
}

/// Requests waiting for their case to be `received` at the requester, by case id.
type Waiting = std::sync::Arc<
    std::sync::Mutex<std::collections::HashMap<String, tokio::sync::oneshot::Sender<()>>>,
>;

/// Tells the waiting requests whose case the requester holds as `received`.
async fn watch_received(
    store: storage::Store,
    mut stored: tokio::sync::watch::Receiver<u64>,
    waiting: Waiting,
) -> anyhow::Result<()> {
    loop {
        let _ = tokio::time::timeout(std::time::Duration::from_millis(20), stored.changed()).await;
        let ids: Vec<String> = waiting
            .lock()
            .map_err(|_| anyhow::anyhow!("the watcher's list is poisoned"))?
            .keys()
            .cloned()
            .collect();
        if ids.is_empty() {
            continue;
        }
        let states = store
            .run(move |c| storage::cases::states_of(c, &ids))
            .await?;
        let mut w = waiting
            .lock()
            .map_err(|_| anyhow::anyhow!("the watcher's list is poisoned"))?;
        for (id, state) in states {
            if state == crate::domain::case::state::CaseState::Received.as_str() {
                if let Some(tx) = w.remove(&id) {
                    let _ = tx.send(());
                }
            }
        }
    }
}
