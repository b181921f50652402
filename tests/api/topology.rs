//! A national topology (issue 25 #4 and #8): 33 real nodes over mutual TLS — one per
//! province-level division (GB/T 2260 prefixes 11 … 65) and two city nodes (郑州 4101 under
//! 河南 41, 成都 5101 under 四川 51), the directory routing each region to its longest prefix.
//! 660 children flow between them (some living or registered under the city nodes); some move
//! to a third province and back; some are edited concurrently on both sides, a third of those
//! on a shared field (a real conflict) and the others on fields each side owns (a clean merge).
//! Then every file reads the same at both its parties (record and heads), scheduled
//! reconciliation between every pair of nodes sharing children reports no difference, each
//! review queue holds exactly its node's conflicts, and a new directory serial published to one
//! node reaches all 33 through the fetch job.
//!
//! It runs in the SQLite pass (33 node databases of a few hundred files each: what it tests is
//! the network, not the backend); in the PostgreSQL pass it says so and passes, because 33
//! nodes on one shared server took 16 minutes of CI's 20 on this machine. `bench topology
//! --postgres` measures the same network at 100,000 children on PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use hukou_sync::crypto::hlc::Hlc;
use hukou_sync::crypto::keys::SigningKey;
use hukou_sync::devnet::pki::resign_directory;
use hukou_sync::directory::replace_with_bytes;
use hukou_sync::domain::NodeId;
use hukou_sync::storage::reconcile as recon_repo;
use hukou_sync::sync::version::{DocKind, Version};
use serde_json::{json, Value};

use hukou_sync::accounts::Role;

use crate::helpers::{
    create_token, eventually, file, id_number, peer_client, push, receipt, spawn_network_with,
    TestApp,
};

/// Province-level nodes: `(prefix, a county of the province outside the city nodes)`.
const PROVINCES: [(&str, &str); 31] = [
    ("11", "110105"),
    ("12", "120103"),
    ("13", "130105"),
    ("14", "140107"),
    ("15", "150104"),
    ("21", "210104"),
    ("22", "220104"),
    ("23", "230104"),
    ("31", "310105"),
    ("32", "320105"),
    ("33", "330104"),
    ("34", "340104"),
    ("35", "350104"),
    ("36", "360104"),
    ("37", "370104"),
    ("41", "410204"),
    ("42", "420104"),
    ("43", "430104"),
    ("44", "440105"),
    ("45", "450105"),
    ("46", "460107"),
    ("50", "500103"),
    ("51", "510304"),
    ("52", "520111"),
    ("53", "530111"),
    ("54", "540104"),
    ("61", "610104"),
    ("62", "620104"),
    ("63", "630104"),
    ("64", "640106"),
    ("65", "650104"),
];

/// Children per node as residence bureau.
const PER_NODE: usize = 20;
/// Every `EVERY`-th child (offsets below) is edited concurrently or moved.
const EVERY: usize = 20;
const CONFLICT: usize = 1;
const MERGE: usize = 2;
const MOVE: usize = 3;
const PLAIN_EDIT: usize = 4;

/// `(node id, prefix, a county it serves)`: 31 province nodes and the two city nodes.
fn plan() -> Vec<(String, String, &'static str)> {
    let mut nodes: Vec<(String, String, &'static str)> = PROVINCES
        .iter()
        .map(|(p, county)| (format!("{p}0000"), (*p).to_owned(), *county))
        .collect();
    nodes.push(("410100".into(), "4101".into(), "410105"));
    nodes.push(("510100".into(), "5101".into(), "510104"));
    nodes
}

/// Child `i`: `(residence node index, hukou node index)`; each node lives with three hukou nodes.
fn parties(i: usize, n: usize) -> (usize, usize) {
    let r = i % n;
    (r, (r + 1 + (i / n) % 3) % n)
}

/// The node a child moves to and back from: neither of its parties.
fn third(r: usize, h: usize, n: usize) -> usize {
    (1..n)
        .map(|k| (r + 5 * k) % n)
        .find(|t| *t != r && *t != h)
        .unwrap()
}

fn own_file(shared: &Path, id: &str) -> PathBuf {
    shared.with_file_name(format!("directory-{id}.json"))
}

/// Every child file's heads at a node, sorted.
fn all_heads(app: &TestApp) -> BTreeMap<String, Vec<String>> {
    let mut conn = app.store.conn().unwrap();
    let docs = recon_repo::all_doc_ids(&mut conn, "child").unwrap();
    recon_repo::heads_of_docs(&mut conn, "child", &docs)
        .unwrap()
        .into_iter()
        .map(|(doc, mut heads)| {
            heads.sort();
            (doc, heads)
        })
        .collect()
}

fn outboxes_empty(nodes: &[TestApp]) -> bool {
    nodes.iter().all(|n| n.count("outbox") == 0)
}

async fn patch(app: &TestApp, id: &str, body: Value) {
    let r = app
        .patch_json(&format!("/api/v1/children/{id}"), &body)
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// The file at `app` once it holds `n` versions and `check` holds of its record.
async fn wait_file(app: &TestApp, id: &str, n: usize, check: impl Fn(&Value) -> bool) -> Value {
    eventually(
        60,
        &format!("{n} versions of {id} at {}", app.settings.node.id),
        || async {
            file(app, id).await.is_some_and(|f| {
                f["history"].as_array().map_or(0, Vec::len) == n && check(&f["record"])
            })
        },
    )
    .await;
    file(app, id).await.unwrap()
}

#[tokio::test]
async fn a_national_topology_converges_reconciles_and_takes_a_new_directory() {
    if std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty()) {
        eprintln!(
            "skipped on PostgreSQL: the 33-node topology runs in the SQLite pass \
             (bench topology --postgres measures it on PostgreSQL)"
        );
        return;
    }
    let plan = plan();
    let n = plan.len();
    assert!(n >= 32);
    let total = n * PER_NODE;
    let index: BTreeMap<String, usize> = plan
        .iter()
        .enumerate()
        .map(|(k, (id, _, _))| (id.clone(), k))
        .collect();
    // Scheduled reconciliation: each pair sharing children, run by its lower id every 2 s.
    let pairs: BTreeSet<(usize, usize)> = (0..total)
        .map(|i| parties(i, n))
        .map(|(r, h)| (r.min(h), r.max(h)))
        .collect();
    let schedule: BTreeMap<usize, Vec<usize>> =
        pairs.iter().fold(BTreeMap::new(), |mut m, (a, b)| {
            let (a, b) = if plan[*a].0 < plan[*b].0 {
                (*a, *b)
            } else {
                (*b, *a)
            };
            m.entry(a).or_insert_with(Vec::new).push(b);
            m
        });
    let specs: Vec<(&str, &str)> = plan
        .iter()
        .map(|(id, p, _)| (id.as_str(), p.as_str()))
        .collect();
    let started = Instant::now();
    let net = spawn_network_with(&specs, |id, s| {
        s.database.pool_size = 2;
        let me = index[id];
        s.reconcile.schedule = schedule
            .get(&me)
            .into_iter()
            .flatten()
            .map(|peer| hukou_sync::config::ReconcileSchedule {
                peer: NodeId::parse(&plan[*peer].0).unwrap(),
                cron: "*/2 * * * * *".into(),
            })
            .collect();
        let d = s.directory.as_mut().unwrap();
        let own = own_file(&d.path, id);
        std::fs::copy(&d.path, &own).unwrap();
        d.path = own;
        d.fetch_interval_secs = 2;
        d.reload_interval_secs = 1;
    })
    .await;
    // Clients that drop a pooled connection after 1 s idle, before the server's 5 s keep-alive
    // closes it under a request (the test waits between bursts).
    let mut net = net;
    for node in &mut net.nodes {
        let token = create_token(&node.store, &node.node, "topology", Role::Administrator);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        node.http = reqwest::Client::builder()
            .default_headers(headers)
            .pool_idle_timeout(std::time::Duration::from_secs(1))
            .build()
            .unwrap();
    }
    let nodes = &net.nodes;
    eprintln!("{n} nodes started in {:?}", started.elapsed());

    // 1. Every child created at its residence bureau, all bureaus at once.
    let children: Vec<(String, usize, usize)> = (0..total)
        .map(|i| {
            let (r, h) = parties(i, n);
            let birth = (
                2012 + (i % 5) as i32,
                1 + (i / 5 % 12) as u32,
                1 + (i / 60 % 28) as u32,
            );
            (id_number(plan[h].2, birth, (i % 1000) as u16), r, h)
        })
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (k, node) in nodes.iter().enumerate() {
        let bodies: Vec<Value> = children
            .iter()
            .filter(|(_, r, _)| *r == k)
            .map(|(id, r, h)| {
                json!({
                    "id_number": id,
                    "name": "张小明",
                    "hukou_region": plan[*h].2,
                    "residence_region": plan[*r].2,
                    "categories": ["flowing"],
                    "father_situation": "working_away",
                    "risk_level": 3,
                    "last_visit_on": "2026-10-01",
                })
            })
            .collect();
        let (http, url) = (node.http.clone(), node.url("/api/v1/children"));
        tasks.spawn(async move {
            for body in bodies {
                let r = http.post(&url).json(&body).send().await.unwrap();
                assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let mut held = vec![0i64; n];
    for (_, r, h) in &children {
        held[*r] += 1;
        held[*h] += 1;
    }
    eventually(120, "every creation at both parties", || async {
        nodes
            .iter()
            .enumerate()
            .all(|(k, node)| node.count("versions") == held[k])
    })
    .await;
    eprintln!(
        "{total} children created and delivered in {:?}",
        started.elapsed()
    );

    // 2. Edits. Concurrent ones: the hukou bureau edits through its API while the residence
    // bureau's version, made from the same parent, is pushed to both (as its sender and the
    // hukou node's forwarding would): on health_status (shared) a real conflict; on benefits
    // (hukou's) against risk_level (residence's) a clean merge.
    let edits_from = Instant::now();
    let mut expected_conflicts = vec![0usize; n];
    let mut versions_of: BTreeMap<String, usize> = BTreeMap::new();
    for (i, (id, r, h)) in children.iter().enumerate() {
        let (res, huk) = (&nodes[*r], &nodes[*h]);
        match i % EVERY {
            CONFLICT | MERGE => {
                let created = file(res, id).await.unwrap();
                let parent = created["history"][0]["id"].as_str().unwrap().to_owned();
                let mut body = created["record"].clone();
                if i % EVERY == CONFLICT {
                    patch(huk, id, json!({"health_status": "healthy"})).await;
                    body["health_status"] = json!("chronic_illness");
                    expected_conflicts[*h] += 1;
                } else {
                    patch(
                        huk,
                        id,
                        json!({"benefits": [{"benefit": "dibao", "since": "2026-11"}]}),
                    )
                    .await;
                    body["risk_level"] = json!(1);
                }
                let key = SigningKey::load(&net.pki.nodes[*r].signing_key).unwrap();
                let concurrent = Version::new(
                    DocKind::Child,
                    id.clone(),
                    vec![parent.parse().unwrap()],
                    NodeId::parse(&plan[*r].0).unwrap(),
                    Hlc::new(Utc::now().timestamp_millis(), 0).unwrap(),
                    body,
                )
                .sign(&key, hukou_sync::crypto::hash::HashAlg::Sha256)
                .unwrap();
                for (from, to, app) in [(*r, *h, huk), (*h, *r, res)] {
                    let client = peer_client(&net.pki, &plan[from].0, &plan[to].0);
                    let rc =
                        receipt(push(&client, app, &plan[from].0, vec![concurrent.clone()]).await)
                            .await;
                    assert_eq!(rc.receipt.accepted, vec![concurrent.id], "{rc:?}");
                }
                versions_of.insert(id.clone(), 3);
            }
            PLAIN_EDIT => {
                patch(
                    res,
                    id,
                    json!({"risk_level": "橙", "notes": "走访：一切正常"}),
                )
                .await;
                versions_of.insert(id.clone(), 2);
            }
            _ => {
                versions_of.insert(id.clone(), 1);
            }
        }
    }
    assert_eq!(nodes.len(), net.pki.nodes.len());
    // 3. Moves across provinces and back: the family moves to a third province (which becomes
    // a party and receives the whole file), then back.
    let moving: Vec<(String, usize, usize, usize)> = children
        .iter()
        .enumerate()
        .filter(|(i, _)| i % EVERY == MOVE)
        .map(|(_, (id, r, h))| (id.clone(), *r, *h, third(*r, *h, n)))
        .collect();
    for (id, r, _, t) in &moving {
        patch(&nodes[*r], id, json!({"residence_region": plan[*t].2})).await;
    }
    for (id, r, _, t) in &moving {
        let county = plan[*t].2;
        wait_file(&nodes[*t], id, 2, |rec| rec["residence_region"] == county).await;
        patch(&nodes[*t], id, json!({"residence_region": plan[*r].2})).await;
        versions_of.insert(id.clone(), 3);
    }
    let last_edit = Instant::now();
    eprintln!("edits and moves made in {:?}", edits_from.elapsed());

    // 4. Every view converges: queues drained and every file has the same heads at both its
    // parties (read from the databases, all 660 at once); then the files read through the API
    // — record and heads — are identical at both parties, with every version.
    eventually(
        120,
        "every outbox drained and every file's heads equal",
        || async {
            if !outboxes_empty(nodes) {
                return false;
            }
            let heads: Vec<_> = nodes.iter().map(all_heads).collect();
            children.iter().all(|(id, r, h)| {
                heads[*r].contains_key(id) && heads[*r].get(id) == heads[*h].get(id)
            })
        },
    )
    .await;
    let converged = last_edit.elapsed();
    for (i, (id, r, h)) in children.iter().enumerate() {
        if i % EVERY > PLAIN_EDIT && i % 5 != 0 {
            continue; // the untouched files: one in four read through the API too
        }
        let want = versions_of[id];
        let county = plan[*r].2;
        let at_res = wait_file(&nodes[*r], id, want, |rec| {
            rec["residence_region"] == county
        })
        .await;
        let at_huk = wait_file(&nodes[*h], id, want, |rec| {
            rec["residence_region"] == county
        })
        .await;
        assert_eq!(at_res["record"], at_huk["record"], "{id}");
        assert_eq!(at_res["heads"], at_huk["heads"], "{id}");
    }
    assert!(outboxes_empty(nodes));
    let converged_at = Utc::now();
    eprintln!("converged {converged:?} after the last edit");
    for (id, _, _, t) in &moving {
        // The third province keeps its copy as of the move back, and serves it no more.
        let kept = file(&nodes[*t], id).await.unwrap();
        assert_eq!(kept["served_here"], false, "{id}");
    }
    for node in nodes {
        assert_eq!(node.count("outbox_rejected"), 0);
        assert_eq!(
            node.count("audit_events WHERE action = 'version.reject'"),
            0
        );
    }

    // 5. Scheduled reconciliation: for every pair sharing children, a run started after
    // convergence finished ok with no difference.
    for (a, peers) in &schedule {
        for b in peers {
            let path = format!("/api/v1/reconcile/runs?peer={}&limit=20", plan[*b].0);
            let app = &nodes[*a];
            eventually(
                60,
                &format!("a run {} → {}", plan[*a].0, plan[*b].0),
                || async {
                    let page: Value = app.get(&path).await.json().await.unwrap();
                    page["items"].as_array().unwrap().iter().any(|run| {
                        run["status"] != "running"
                            && run["started_by"] == "schedule"
                            && run["started_at"]
                                .as_str()
                                .unwrap()
                                .parse::<DateTime<Utc>>()
                                .unwrap()
                                > converged_at
                    })
                },
            )
            .await;
            let page: Value = app.get(&path).await.json().await.unwrap();
            for run in page["items"].as_array().unwrap().iter().filter(|run| {
                run["status"] != "running"
                    && run["started_at"]
                        .as_str()
                        .unwrap()
                        .parse::<DateTime<Utc>>()
                        .unwrap()
                        > converged_at
            }) {
                assert_eq!(run["status"], "ok", "{run}");
                assert_eq!(run["differences"], 0, "{run}");
            }
        }
    }
    eprintln!("{} pairs reconciled to zero differences", pairs.len());

    // 6. Each review queue holds exactly its node's real conflicts (the hukou side reviews).
    let expected: usize = expected_conflicts.iter().sum();
    assert_eq!(
        expected,
        (0..total).filter(|i| i % EVERY == CONFLICT).count()
    );
    for (k, node) in nodes.iter().enumerate() {
        let q: Value = node
            .get("/api/v1/conflicts?limit=500")
            .await
            .json()
            .await
            .unwrap();
        let items = q["items"].as_array().unwrap();
        assert_eq!(items.len(), expected_conflicts[k], "{}: {q}", plan[k].0);
        for c in items {
            assert_eq!(c["field"], "health_status", "{c}");
            assert_eq!(c["owner"], plan[k].0.as_str(), "{c}");
        }
    }

    // 7. A new directory serial (a revoked certificate) published to one node reaches all.
    let shared = net.pki.directory.clone();
    resign_directory(&net.pki, |doc| {
        doc.revoked_certificates.push("ab".repeat(32));
    })
    .unwrap();
    let spread = Instant::now();
    replace_with_bytes(
        &own_file(&shared, &plan[0].0),
        &std::fs::read(&shared).unwrap(),
    )
    .unwrap();
    eventually(90, "serial 2 at every node", || async {
        nodes
            .iter()
            .all(|node| node.node.directory.as_ref().unwrap().current().serial() == 2)
    })
    .await;
    eprintln!("serial 2 reached {n} nodes in {:?}", spread.elapsed());
    eprintln!("whole test {:?}", started.elapsed());
    for node in net.nodes {
        node.stop().await;
    }
}
