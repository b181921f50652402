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
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for id in ids {
        let permit = sem.clone().acquire_owned().await?;
        let (http, base, pb, store) = (http.clone(), zz_base.clone(), pb.clone(), zz_store.clone());
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
            // Watch the requester's view table, not the audited API: 100 pollers reading through
            // the API would each append an audit event and measure the audit lock, not the exchange.
            loop {
                let id2 = case_id.clone();
                let row = store.run(move |c| storage::cases::get(c, &id2)).await?;
                if row.is_some_and(|r| r.state == crate::domain::case::state::CaseState::Received) {
                    break;
                }
                anyhow::ensure!(
                    t.elapsed() < std::time::Duration::from_secs(120),
                    "no receipt for {case_id}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            pb.inc(1);
            anyhow::Ok(t.elapsed().as_secs_f64() * 1000.0)
        }));
    }
    let mut lat = Vec::with_capacity(count);
    for t in tasks {
        lat.push(t.await??);
    }
    let total = start.elapsed();
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
        "request_to_receipt_p50_ms": round(pct(0.50)),
        "request_to_receipt_p99_ms": round(pct(0.99)),
    }))
}
