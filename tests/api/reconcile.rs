//! Reconciliation between two real nodes over mutual TLS (residence 410100, hukou 510100): a
//! restored backup repaired in one run, equal nodes exchanging only roots, a run stopped midway
//! and rerun, the run lock, the summary's incremental maintenance against a full recomputation,
//! the admin API, metrics, stale files, and every bad input of the new routes and commands.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use chrono::Utc;
use hukou_sync::audit::Actor;
use hukou_sync::domain::child::ChildRecord;
use hukou_sync::domain::{IdNumber, RecordRules};
use hukou_sync::ledger_file::csv::LedgerReader;
use hukou_sync::reconcile::run::{Progress, Stage};
use hukou_sync::reconcile::{summary, ReconcileError, Reconciler, Report, RunOptions, StartedBy};
use hukou_sync::storage::reconcile as recon_repo;
use hukou_sync::storage::records;
use hukou_sync::sync::ledger;
use serde_json::{json, Value};

use crate::helpers::{
    eventually, problem, residence_client, restart, spawn_pair, spawn_pair_with, Pair, TestApp,
    CHENGDU, ZHENGZHOU,
};

fn reconciler(app: &TestApp) -> Reconciler {
    hukou_sync::startup::reconciler(&app.settings, app.store.clone(), app.node.clone())
        .unwrap()
        .unwrap()
}

fn opts(dry_run: bool) -> RunOptions {
    RunOptions {
        dry_run,
        started_by: StartedBy::Cli,
        actor: Actor::console(),
    }
}

pub(crate) async fn run(app: &TestApp, peer: &str, dry_run: bool) -> Report {
    reconciler(app)
        .run(peer, opts(dry_run), Arc::new(|_| {}))
        .await
        .unwrap()
}

/// `n` generated children (hukou in Chengdu, living in Zhengzhou), imported at the residence
/// node through the ledger's bulk import; the first `edited` get a second version. Returns
/// once the hukou node holds every version.
async fn load(pair: &Pair, n: usize, edited: usize, seed: u64) -> Vec<String> {
    let app = &pair.residence;
    let (store, node) = (app.store.clone(), app.node.clone());
    let ids = tokio::task::spawn_blocking(move || {
        let mut csv = Vec::new();
        hukou_sync::ledger_file::sample::write_ledger(&mut csv, n, seed, "5101", "4101").unwrap();
        let now = Utc::now();
        let rules = RecordRules {
            today: ledger::china_today(now),
            palette: &node.palette,
        };
        let rows: Vec<(usize, ChildRecord)> = LedgerReader::new(String::from_utf8(csv).unwrap())
            .unwrap()
            .map(|(line, f)| {
                // Facts confirmed today: only the files a test ages are stale.
                let mut r = ChildRecord::from_fields(f.unwrap(), &rules).unwrap();
                r.info_updated_on = Some(rules.today);
                (line, r)
            })
            .collect();
        let mut conn = store.conn().unwrap();
        ledger::import_children(&mut conn, &node, &rows, &Actor::console(), now, &mut |_| {})
            .unwrap();
        for (_, r) in rows.iter().take(edited) {
            let patch = json!({"notes": "走访：一切正常"});
            ledger::update_child(
                &mut conn,
                &node,
                &r.id_number,
                patch.as_object().unwrap().clone(),
                &Actor::console(),
                Utc::now(),
            )
            .unwrap();
        }
        rows.iter()
            .map(|(_, r)| r.id_number.to_string())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let total = (n + edited) as i64;
    eventually(180, "every version pushed to the hukou node", || async {
        pair.hukou.count("versions") == total && pair.residence.count("outbox") == 0
    })
    .await;
    ids
}

/// Loses the latest version of `count` randomly chosen files, as a restored backup would: the
/// previous version is the head again, a file that had only one version is gone; the summary
/// is told (a restored backup's summary matches its data). Returns the lost version ids.
pub(crate) fn lose_versions(app: &TestApp, count: usize, seed: u64) -> Vec<String> {
    let mut conn = app.store.conn().unwrap();
    let docs = recon_repo::all_doc_ids(&mut conn, "child").unwrap();
    let heads = recon_repo::heads_of_docs(&mut conn, "child", &docs).unwrap();
    let mut rng = hukou_sync::ledger_file::sample::SampleRng::new(seed);
    let mut chosen = std::collections::BTreeSet::new();
    while chosen.len() < count {
        chosen.insert(docs[rng.below(docs.len())].clone());
    }
    let mut sql = String::new();
    let mut lost = Vec::new();
    for doc in chosen {
        let head = heads[&doc][0].clone();
        let row = records::get_version(&mut conn, &head).unwrap().unwrap();
        let parents: Vec<String> = row.parents.iter().map(ToString::to_string).collect();
        sql.push_str(&format!(
            "DELETE FROM heads WHERE version_id = '{head}';\
             DELETE FROM version_parents WHERE version_id = '{head}';\
             DELETE FROM versions WHERE id = '{head}';"
        ));
        match parents.first() {
            Some(p) => sql.push_str(&format!(
                "INSERT INTO heads (kind, doc_id, version_id) VALUES ('child', '{doc}', '{p}');"
            )),
            None => sql.push_str(&format!("DELETE FROM children WHERE id_number = '{doc}';")),
        }
        sql.push_str(&format!(
            "INSERT INTO recon_dirty (kind, doc_id, gen) VALUES ('child', '{doc}', 1) \
             ON CONFLICT (kind, doc_id) DO NOTHING;"
        ));
        lost.push(head);
    }
    drop(conn);
    app.exec(&format!("BEGIN; {sql} COMMIT;"));
    lost
}

/// Every document's heads.
fn all_heads(app: &TestApp) -> BTreeMap<String, Vec<String>> {
    let mut conn = app.store.conn().unwrap();
    let docs = recon_repo::all_doc_ids(&mut conn, "child").unwrap();
    recon_repo::heads_of_docs(&mut conn, "child", &docs)
        .unwrap()
        .into_iter()
        .collect()
}

/// The incrementally maintained summary equals a full recomputation.
fn assert_summary_exact(app: &TestApp, peer: &str) {
    let mut conn = app.store.conn().unwrap();
    summary::catch_up(&mut conn, &app.node, &mut |_| {}).unwrap();
    let expected = summary::recompute(&mut conn, &app.node, peer).unwrap();
    let mut got = Vec::new();
    let mut after: Option<(String, String)> = None;
    loop {
        let page = recon_repo::summary_page(
            &mut conn,
            peer,
            after.as_ref().map(|(k, d)| (k.as_str(), d.as_str())),
            1000,
        )
        .unwrap();
        let Some(last) = page.last() else { break };
        after = Some((last.kind.clone(), last.doc_id.clone()));
        got.extend(page);
    }
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "the summary differs from a recomputation");
    // The buckets too: a tree from the recomputed leaves has the stored tree's root.
    let mut accs: BTreeMap<usize, (hukou_sync::crypto::hash::Digest, u64)> = BTreeMap::new();
    for r in &expected {
        let e = accs
            .entry(r.bucket as usize)
            .or_insert((hukou_sync::crypto::hash::Digest([0; 32]), 0));
        e.0 = hukou_sync::reconcile::tree::xor(&e.0, &r.leaf.parse().unwrap());
        e.1 += 1;
    }
    let rebuilt = hukou_sync::reconcile::tree::Tree::from_buckets(
        hukou_sync::crypto::hash::HashAlg::Sha256,
        accs.into_iter().map(|(b, (a, n))| (b, a, n)),
    );
    let (stored, docs) =
        summary::tree_for(&mut conn, hukou_sync::crypto::hash::HashAlg::Sha256, peer).unwrap();
    assert_eq!(stored.root(), rebuilt.root());
    assert_eq!(docs as usize, expected.len());
}

#[tokio::test]
async fn a_restored_backup_is_repaired_in_one_run_and_the_next_finds_nothing() {
    let pair = spawn_pair().await;
    let n = 10_000;
    let edited = 500;
    load(&pair, n, edited, 71).await;
    let versions = (n + edited) as i64;
    // The hukou node restores a backup that lacks 1% of its versions; nothing else changes.
    let lost = lose_versions(&pair.hukou, (n + edited) / 100, 5);
    assert_eq!(pair.hukou.count("versions"), versions - lost.len() as i64);

    // The restored node reconciles with its peer: it asks for what it lacks, and the peer's
    // push brings it (verified and receipted like any push).
    let report = run(&pair.hukou, ZHENGZHOU, false).await;
    assert_eq!(
        report.status,
        hukou_sync::reconcile::RunStatus::Ok,
        "{report:?}"
    );
    assert_eq!(report.documents_differing, lost.len() as u64);
    assert_eq!(report.versions_from_peer, lost.len() as u64);
    assert_eq!(report.versions_received_from_peer, lost.len() as u64);
    assert_eq!(report.versions_pending_from_peer, 0);
    assert_eq!(report.versions_to_peer, 0);
    assert_eq!(report.documents_compared, n as u64);
    assert_eq!(report.documents_equal, (n - lost.len()) as u64);
    assert_eq!(report.conflicts_found, 0);
    // Bytes grow with the differences, not with the 10,000 files.
    assert!(report.bytes_received < 400_000, "{}", report.bytes_received);
    assert_eq!(pair.hukou.count("versions"), versions);
    assert_eq!(all_heads(&pair.hukou), all_heads(&pair.residence));
    // The repaired files' views are the peer's.
    {
        let mut a = pair.hukou.store.conn().unwrap();
        let mut b = pair.residence.store.conn().unwrap();
        for id in recon_repo::all_doc_ids(&mut b, "child").unwrap() {
            let x = records::get_child(&mut a, &id).unwrap().unwrap();
            let y = records::get_child(&mut b, &id).unwrap().unwrap();
            assert_eq!((x.record, x.head_count), (y.record, y.head_count));
        }
    }
    // Receipts for the repairs were issued and stored like any push.
    let events: Value = pair
        .hukou
        .get("/api/v1/audit/events?action=reconcile.run")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(events["items"].as_array().unwrap().len(), 1);
    let served: Value = pair
        .residence
        .get("/api/v1/audit/events?action=reconcile.serve")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(served["items"].as_array().unwrap().len(), 1);

    let again = run(&pair.hukou, ZHENGZHOU, false).await;
    assert_eq!(again.documents_differing, 0, "{again:?}");
    assert_eq!(again.round_trips, 1);
    let other_side = run(&pair.residence, CHENGDU, false).await;
    assert_eq!(other_side.documents_differing, 0);
    assert_summary_exact(&pair.hukou, ZHENGZHOU);
    assert_summary_exact(&pair.residence, CHENGDU);
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

#[tokio::test]
async fn equal_nodes_exchange_only_their_roots() {
    let pair = spawn_pair().await;
    load(&pair, 300, 30, 72).await;
    let report = run(&pair.residence, CHENGDU, false).await;
    assert_eq!(report.status, hukou_sync::reconcile::RunStatus::Ok);
    assert_eq!(report.local_root, report.peer_root);
    assert_eq!(report.documents_compared, 300);
    assert_eq!(report.documents_equal, 300);
    assert_eq!(report.documents_differing, 0);
    assert_eq!(report.versions_to_peer + report.versions_from_peer, 0);
    assert_eq!(report.round_trips, 1);
    // `{}` out, `{"root": <64 hex>, "docs": 300}` back.
    assert_eq!(report.bytes_sent, 2);
    assert!(report.bytes_received < 100, "{}", report.bytes_received);

    // Metrics show the last run per peer.
    let metrics = pair.residence.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("hukou_sync_reconcile_last_run_ok{peer=\"510100\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("hukou_sync_reconcile_last_run_differences{peer=\"510100\"} 0"));
    assert!(metrics.contains("hukou_sync_reconcile_last_run_age_seconds{peer=\"510100\"}"));
    assert!(metrics.contains("hukou_sync_stale_children 0"));
    assert!(metrics.contains("hukou_sync_outbox_depth"));

    // The admin API starts a run in the background and serves its report.
    let r = pair
        .residence
        .http
        .post(pair.residence.url("/api/v1/reconcile/510100?dry_run=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let started: Value = r.json().await.unwrap();
    assert_eq!(started["status"], "running");
    assert_eq!(started["dry_run"], true);
    eventually(30, "the API run finishes", || async {
        let v: Value = pair.residence.get(&location).await.json().await.unwrap();
        v["status"] == "ok"
    })
    .await;
    let v: Value = pair.residence.get(&location).await.json().await.unwrap();
    assert_eq!(v["report"]["documents_compared"], 300);
    assert_eq!(v["report"]["started_by"], "api");
    let page: Value = pair
        .residence
        .get("/api/v1/reconcile/runs?limit=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"][0]["id"], v["id"]);
    assert!(page["next_after"].is_string());
    let older: Value = pair
        .residence
        .get(&format!(
            "/api/v1/reconcile/runs?after={}",
            page["next_after"].as_str().unwrap()
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(older["items"].as_array().unwrap().len(), 1);
    assert_eq!(older["items"][0]["started_by"], "cli");
    problem(
        pair.residence.get("/api/v1/reconcile/runs/nope").await,
        404,
        "not_found",
    )
    .await;
    problem(
        pair.residence.get("/api/v1/reconcile/runs?limit=0").await,
        400,
        "invalid_query",
    )
    .await;
    problem(
        pair.residence
            .http
            .post(pair.residence.url("/api/v1/reconcile/999999"))
            .send()
            .await
            .unwrap(),
        404,
        "unknown_peer",
    )
    .await;
    problem(
        pair.residence
            .http
            .post(pair.residence.url("/api/v1/reconcile/410100"))
            .send()
            .await
            .unwrap(),
        422,
        "self_peer",
    )
    .await;
    // Starting a run is an operator's act; a caseworker may read the reports but not start one,
    // and nobody unauthenticated may do either.
    let caseworker = crate::helpers::client_with_token(&crate::helpers::create_token(
        &pair.residence.store,
        &pair.residence.node,
        "desk-1",
        hukou_sync::accounts::Role::Caseworker,
    ));
    problem(
        caseworker
            .post(pair.residence.url("/api/v1/reconcile/510100"))
            .send()
            .await
            .unwrap(),
        403,
        "forbidden",
    )
    .await;
    let r = caseworker
        .get(pair.residence.url("/api/v1/reconcile/runs"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    problem(
        reqwest::Client::new()
            .get(pair.residence.url("/api/v1/reconcile/runs"))
            .send()
            .await
            .unwrap(),
        401,
        "unauthenticated",
    )
    .await;
    let spec: Value = pair
        .residence
        .get("/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    assert!(spec["paths"]["/api/v1/reconcile/{peer}"].is_object());
    assert!(spec["paths"]["/api/v1/stale"].is_object());
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

#[tokio::test]
async fn a_run_stopped_midway_leaves_nothing_half_done_and_the_next_run_converges() {
    let pair = spawn_pair().await;
    load(&pair, 400, 40, 73).await;
    let lost = lose_versions(&pair.hukou, 25, 9);
    // The residence node runs (it pushes what the hukou node lacks) and is stopped as soon as
    // it starts repairing.
    let rec = reconciler(&pair.residence);
    let handle = rec.start(CHENGDU, opts(false)).await.unwrap();
    let first_id = handle.run_id().to_owned();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(handle.execute(Arc::new(move |p: Progress| {
        if p.stage == Stage::Repair {
            let _ = tx.send(());
        }
    })));
    rx.recv().await.unwrap();
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    // The stopped run's lock goes with it; the next run is not refused and completes the work.
    eventually(10, "the lock is released", || async {
        pair.residence.count("recon_locks") == 0
    })
    .await;
    let report = run(&pair.residence, CHENGDU, false).await;
    assert_eq!(
        report.status,
        hukou_sync::reconcile::RunStatus::Ok,
        "{report:?}"
    );
    assert!(report.documents_differing <= lost.len() as u64);
    eventually(30, "the hukou node holds every version again", || async {
        pair.hukou.count("versions") == 440
    })
    .await;
    assert_eq!(all_heads(&pair.hukou), all_heads(&pair.residence));
    let last = run(&pair.residence, CHENGDU, false).await;
    assert_eq!(last.documents_differing, 0);
    // The stopped run is recorded as interrupted.
    let v: Value = pair
        .residence
        .get(&format!("/api/v1/reconcile/runs/{first_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "interrupted");
    assert_summary_exact(&pair.hukou, ZHENGZHOU);
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

#[tokio::test]
async fn one_run_per_peer_at_a_time_and_a_dead_runs_lock_is_taken_over() {
    let pair = spawn_pair().await;
    load(&pair, 50, 0, 74).await;
    let rec = reconciler(&pair.residence);
    let held = rec.start(CHENGDU, opts(false)).await.unwrap();
    // A second run, in process, over the API, and from the CLI (another process): refused.
    let err = rec.start(CHENGDU, opts(true)).await.unwrap_err();
    assert!(
        matches!(err, ReconcileError::AlreadyRunning { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("already running"), "{err}");
    let r = pair
        .residence
        .http
        .post(pair.residence.url("/api/v1/reconcile/510100"))
        .send()
        .await
        .unwrap();
    let body = problem(r, 409, "already_running").await;
    assert!(body["reason"].as_str().unwrap().contains(held.run_id()));
    let out = cli(&pair.residence, &["reconcile", "--peer", CHENGDU]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already running"), "{stderr}");
    let report = held.execute(Arc::new(|_| {})).await.unwrap();
    assert_eq!(report.documents_differing, 0);
    assert_eq!(pair.residence.count("recon_locks"), 0);

    // A killed process leaves its lock; once its lease expired it is taken over.
    pair.residence.exec(
        "INSERT INTO recon_locks (peer, run_id, started_at, expires_at) \
         VALUES ('510100', 'dead', '2026-01-01 00:00:00', '2026-01-01 00:01:00')",
    );
    let report = run(&pair.residence, CHENGDU, true).await;
    assert_eq!(report.status, hukou_sync::reconcile::RunStatus::Ok);
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

#[tokio::test]
async fn the_summary_is_maintained_incrementally_through_every_path() {
    let pair = spawn_pair().await;
    let ids = load(&pair, 200, 20, 75).await;
    assert_summary_exact(&pair.residence, CHENGDU);
    assert_summary_exact(&pair.hukou, ZHENGZHOU);
    // Local edits, edits ingested from the peer, a file that moves away, lost versions, and a
    // file neither party shares, in rounds, each checked against a full recomputation.
    let mut rng = hukou_sync::ledger_file::sample::SampleRng::new(3);
    for round in 0..3u64 {
        let risk = ["红", "橙", "黄"][round as usize];
        for _ in 0..15 {
            let id = ids[rng.below(ids.len())].clone();
            let r = pair
                .residence
                .patch_json(
                    &format!("/api/v1/children/{id}"),
                    &json!({"risk_level": risk}),
                )
                .await;
            // A file this node lost earlier is gone here.
            assert!(r.status() == 200 || r.status() == 404, "{}", r.status());
        }
        let since = format!("2026-0{}", round + 1);
        for _ in 0..10 {
            let id = ids[rng.below(ids.len())].clone();
            let r = pair
                .hukou
                .patch_json(
                    &format!("/api/v1/children/{id}"),
                    &json!({"benefits": [{"benefit": "dibao", "since": since}]}),
                )
                .await;
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        }
        eventually(30, "both outboxes drained", || async {
            pair.residence.count("outbox") == 0 && pair.hukou.count("outbox") == 0
        })
        .await;
        assert_summary_exact(&pair.residence, CHENGDU);
        assert_summary_exact(&pair.hukou, ZHENGZHOU);
        lose_versions(&pair.residence, 5, round + 11);
        assert_summary_exact(&pair.residence, CHENGDU);
    }
    // A child who lives in Chengdu too is shared with nobody: in no summary.
    let local = hukou_sync::domain::IdNumber::generate(
        &hukou_sync::domain::RegionCode::parse("510104").unwrap(),
        chrono::NaiveDate::from_ymd_opt(2016, 1, 1).unwrap(),
        9,
    );
    let r = pair
        .hukou
        .post_json(
            "/api/v1/children",
            &json!({"id_number": local.to_string(), "name": "李四", "hukou_region": "510104",
                    "residence_region": "510105", "categories": ["left_behind"]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    assert_summary_exact(&pair.hukou, ZHENGZHOU);
    // A new directory (here the same routing, re-signed with a higher serial) makes the next
    // catch-up re-examine every document; the summary stays exact.
    hukou_sync::devnet::pki::resign_directory(&pair.pki, |_| {}).unwrap();
    pair.hukou
        .node
        .directory
        .clone()
        .unwrap()
        .reload_from(&pair.pki.directory, &pair.pki.authority_public, Utc::now())
        .unwrap();
    {
        let mut conn = pair.hukou.store.conn().unwrap();
        let n = summary::catch_up(&mut conn, &pair.hukou.node, &mut |_| {}).unwrap();
        assert_eq!(n as i64, pair.hukou.count("children"));
    }
    assert_summary_exact(&pair.hukou, ZHENGZHOU);
    let mut conn = pair.hukou.store.conn().unwrap();
    assert!(
        recon_repo::shared_docs(&mut conn, ZHENGZHOU, "child", &[local.to_string()])
            .unwrap()
            .is_empty()
    );
    drop(conn);
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

fn peer_url(app: &TestApp, route: &str) -> String {
    format!(
        "https://127.0.0.1:{}/peer/v1/reconcile/{route}",
        app.settings.peer.as_ref().unwrap().listen.port()
    )
}

#[tokio::test]
async fn bad_input_on_the_peer_routes_gets_precise_problems_and_reveals_nothing() {
    let pair = spawn_pair().await;
    load(&pair, 20, 0, 76).await;
    let hukou = &pair.hukou;
    let client = residence_client(&pair.pki);
    let post = |route: &'static str, body: Vec<u8>| {
        let client = client.clone();
        let url = peer_url(hukou, route);
        async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let ok: Value = post("root", b"{}".to_vec()).await.json().await.unwrap();
    assert_eq!(ok["docs"], 20);
    problem(post("root", b"{,}".to_vec()).await, 400, "malformed_json").await;
    problem(
        post("nodes", b"{\"level\": 1,".to_vec()).await,
        400,
        "malformed_json",
    )
    .await;
    // The body never names the asking node: the certificate does. A field that tries is refused.
    let body = problem(
        post("root", br#"{"peer": "510100"}"#.to_vec()).await,
        422,
        "invalid_body",
    )
    .await;
    assert!(!body.to_string().contains(ZHENGZHOU), "{body}");
    problem(
        post("nodes", br#"{"level": "zero", "indices": [0]}"#.to_vec()).await,
        422,
        "invalid_body",
    )
    .await;
    problem(
        post("nodes", br#"{"level": 4, "indices": [0]}"#.to_vec()).await,
        422,
        "invalid_level",
    )
    .await;
    let b = problem(
        post("nodes", br#"{"level": 1, "indices": [16]}"#.to_vec()).await,
        422,
        "invalid_index",
    )
    .await;
    assert_eq!(b["field"], "indices");
    let indices = vec![0; 5000];
    let many = serde_json::to_vec(&json!({"level": 3, "indices": indices})).unwrap();
    problem(post("nodes", many).await, 422, "too_many_items").await;
    problem(
        post("buckets", br#"{"buckets": [65536]}"#.to_vec()).await,
        422,
        "invalid_bucket",
    )
    .await;
    problem(
        post(
            "versions",
            br#"{"docs": [{"kind": "vote", "doc_id": "x"}]}"#.to_vec(),
        )
        .await,
        422,
        "invalid_kind",
    )
    .await;
    problem(
        post("want", br#"{"versions": ["not-a-digest"]}"#.to_vec()).await,
        422,
        "invalid_body",
    )
    .await;
    let buckets = vec![1; 600_000];
    let big = serde_json::to_vec(&json!({"buckets": buckets})).unwrap();
    problem(post("buckets", big).await, 413, "body_too_large").await;

    // A file the asker is not party to (a child living in Chengdu) is never listed or sent.
    let local = IdNumber::generate(
        &hukou_sync::domain::RegionCode::parse("510104").unwrap(),
        chrono::NaiveDate::from_ymd_opt(2016, 1, 1).unwrap(),
        7,
    );
    let created = hukou
        .create_child(&json!({"id_number": local.to_string(), "name": "李四",
            "hukou_region": "510104", "residence_region": "510105", "categories": ["left_behind"]}))
        .await;
    let version = created["history"][0]["id"].as_str().unwrap().to_owned();
    let v: Value = post(
        "versions",
        serde_json::to_vec(&json!({"docs": [{"kind": "child", "doc_id": local.to_string()}]}))
            .unwrap(),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["docs"][0]["versions"], json!([]));
    let w: Value = post(
        "want",
        serde_json::to_vec(&json!({"versions": [version]})).unwrap(),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(w, json!({"queued": 0, "unavailable": 1}));
    assert_eq!(hukou.count("outbox"), 0);
    let ok: Value = post("root", b"{}".to_vec()).await.json().await.unwrap();
    assert_eq!(ok["docs"], 20);
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

/// Runs the binary with a node's own configuration (peer TLS and directory included).
fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    cli_with(&app.settings, app.dir.path(), args)
}

fn cli_with(
    settings: &hukou_sync::config::Settings,
    dir: &std::path::Path,
    args: &[&str],
) -> std::process::Output {
    let config = dir.join("peer-node.toml");
    let mut s = settings.clone();
    s.log.filter = "error".into();
    // The TOML serialiser is not built in; the test writes the few sections by hand.
    let peer = s.peer.as_ref().unwrap();
    let dir = s.directory.as_ref().unwrap();
    let toml = format!(
        "[node]\nid = \"{}\"\nserves = [{}]\nsigning_key = \"{}\"\n\n[database]\nurl = \"{}\"\npool_size = 2\n\n\
         [log]\nfilter = \"error\"\n\n[peer]\nlisten = \"{}\"\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n\n\
         [directory]\npath = \"{}\"\nauthority_key = \"{}\"\n\n[reconcile]\npull_wait_secs = 5\n",
        s.node.id,
        s.node.serves.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", "),
        s.node.signing_key.display(),
        s.database.url,
        peer.listen,
        peer.ca.display(),
        peer.cert.display(),
        peer.key.display(),
        dir.path.display(),
        dir.authority_key,
    );
    std::fs::write(&config, toml).unwrap();
    Command::new(env!("CARGO_BIN_EXE_hukou-sync"))
        .arg("--config")
        .arg(&config)
        .args(args)
        .env_remove("HUKOU_SYNC_CONFIG")
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_cli_reconciles_lists_reports_and_stale_files() {
    let pair = spawn_pair().await;
    let ids = load(&pair, 60, 0, 77).await;
    lose_versions(&pair.hukou, 3, 1);
    let out = cli(
        &pair.residence,
        &["reconcile", "--peer", CHENGDU, "--dry-run", "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["documents_differing"], 3);
    assert_eq!(report["versions_to_peer"], 3);
    assert_eq!(report["dry_run"], true);
    assert_eq!(pair.hukou.count("versions"), 57);
    let out = cli(&pair.residence, &["reconcile", "--peer", CHENGDU]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("sent 3 versions of 3 documents"), "{text}");
    assert_eq!(pair.hukou.count("versions"), 60);
    let out = cli(&pair.residence, &["reconcile", "--list", "--json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["status"], "ok");

    // An unknown peer: a clear error and a non-zero exit.
    let out = cli(&pair.residence, &["reconcile", "--peer", "999999"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown peer \"999999\""), "{stderr}");
    let out = cli(&pair.residence, &["reconcile", "--peer", "not a node"]);
    assert_eq!(out.status.code(), Some(1));

    // Stale files: not updated and not visited for six months.
    pair.residence.exec(&format!(
        "UPDATE children SET refreshed_on = NULL WHERE id_number IN ('{}', '{}')",
        ids[0], ids[1]
    ));
    let out = cli(&pair.residence, &["stale", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stale: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stale["total"], 2);
    assert_eq!(stale["after_days"], 183);
    let out = cli(&pair.residence, &["stale"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("2 files not updated or visited in 183 days"),
        "{text}"
    );
    assert!(
        !text.contains(&ids[0]),
        "full ID numbers in human output: {text}"
    );
    assert!(
        text.contains(&IdNumber::parse(&ids[0]).unwrap().masked()),
        "{text}"
    );
    let api: Value = pair
        .residence
        .get("/api/v1/stale?region=4101")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(api["total"], 2);
    problem(
        pair.residence.get("/api/v1/stale?days=0").await,
        400,
        "invalid_query",
    )
    .await;
    let report = run(&pair.residence, CHENGDU, true).await;
    assert_eq!(report.stale.total, 2);
    let metrics = pair.residence.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("hukou_sync_stale_children 2"), "{metrics}");

    // A bad cron expression in the configuration: a clear configuration error.
    let bad = pair.residence.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[reconcile.schedule]]\npeer = \"510100\"\ncron = \"at 2am\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hukou-sync"))
        .arg("--config")
        .arg(&bad)
        .args(["stale"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("reconcile.schedule[0].cron") && stderr.contains("not a cron expression"),
        "{stderr}"
    );
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

#[tokio::test]
async fn scheduled_runs_follow_the_configured_cron_expression() {
    // Every second, so the test sees it fire without waiting for a night.
    let pair = spawn_pair_with(|id, s| {
        if id == ZHENGZHOU {
            s.reconcile.schedule = vec![hukou_sync::config::ReconcileSchedule {
                peer: hukou_sync::domain::NodeId::parse(CHENGDU).unwrap(),
                cron: "* * * * * *".into(),
            }];
        }
    })
    .await;
    load(&pair, 30, 0, 78).await;
    eventually(20, "a scheduled run finished", || async {
        let page: Value = pair
            .residence
            .get("/api/v1/reconcile/runs?peer=510100")
            .await
            .json()
            .await
            .unwrap();
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["started_by"] == "schedule" && r["status"] == "ok")
    })
    .await;
    let events: Value = pair
        .residence
        .get("/api/v1/audit/events?action=reconcile.run")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        events["items"][0]["event"]["actor"]["id"],
        "job:reconcile:510100"
    );
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

#[tokio::test]
async fn a_cli_run_with_the_server_stopped_reports_what_the_peer_will_still_send() {
    let pair = spawn_pair().await;
    load(&pair, 40, 10, 79).await;
    let lost = lose_versions(&pair.hukou, 4, 2);
    let residence = &pair.residence;
    // The restored hukou node's server is down; its operator reconciles from the console.
    let (settings, db, dir) = pair.hukou.shut_down().await;
    let out = cli_with(
        &settings,
        dir.path(),
        &["reconcile", "--peer", ZHENGZHOU, "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["versions_from_peer"], lost.len());
    assert_eq!(report["versions_pending_from_peer"], lost.len());
    assert_eq!(report["status"], "ok");
    // The peer keeps them queued and delivers them once the node is back.
    let hukou = restart(settings, db, dir).await;
    eventually(30, "the asked versions arrive", || async {
        hukou.count("versions") == 50
    })
    .await;
    assert_eq!(all_heads(&hukou), all_heads(residence));
    pair.residence.stop().await;
    hukou.stop().await;
}

#[tokio::test]
async fn concurrent_edits_that_push_lost_are_exchanged_and_reported_as_conflicts() {
    use diesel::connection::SimpleConnection;
    let pair = spawn_pair().await;
    let ids = load(&pair, 20, 0, 80).await;
    let id = ids[0].clone();
    // The hukou node is down while the residence node records a visit; that push is then lost
    // (an operator cleared the queue) …
    let (settings, db, dir) = pair.hukou.shut_down().await;
    let r = pair
        .residence
        .patch_json(
            &format!("/api/v1/children/{id}"),
            &json!({"risk_level": "红", "notes": "走访：需要跟进"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    pair.residence.exec("DELETE FROM outbox");
    // … and the hukou bureau, from its console, records a benefit, whose push is lost too.
    {
        let (store, node) = hukou_sync::startup::open_node_blocking(&settings).unwrap();
        let id = IdNumber::parse(&id).unwrap();
        tokio::task::spawn_blocking(move || {
            let mut conn = store.conn().unwrap();
            let patch = json!({"benefits": [{"benefit": "dibao", "since": "2026-11"}],
                               "notes": "户籍地：已核实"});
            ledger::update_child(
                &mut conn,
                &node,
                &id,
                patch.as_object().unwrap().clone(),
                &Actor::console(),
                Utc::now(),
            )
            .unwrap();
            conn.batch_execute("DELETE FROM outbox").unwrap();
        })
        .await
        .unwrap();
    }
    let hukou = restart(settings, db, dir).await;
    let report = run(&pair.residence, CHENGDU, false).await;
    assert_eq!(
        report.status,
        hukou_sync::reconcile::RunStatus::Ok,
        "{report:?}"
    );
    assert_eq!(report.documents_differing, 1);
    assert_eq!(report.versions_to_peer, 1);
    assert_eq!(report.versions_received_from_peer, 1);
    assert_eq!(report.conflicts_found, 1);
    // Both changed the shared notes differently: a field conflict for the hukou side's review.
    assert_eq!(report.open_conflicts_found, 1);
    eventually(10, "both edits at the hukou node", || async {
        hukou.count("versions") == 22
    })
    .await;
    assert_eq!(all_heads(&hukou), all_heads(&pair.residence));
    let file: Value = hukou
        .get(&format!("/api/v1/children/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(file["heads"].as_array().unwrap().len(), 2);
    assert_eq!(file["record"]["risk_level"], 1);
    assert_eq!(file["record"]["benefits"][0]["benefit"], "dibao");
    pair.residence.stop().await;
    hukou.stop().await;
}
