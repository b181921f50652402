//! `bench topology`: a national network in one process — a node per province-level division
//! (the 31 GB/T 2260 prefixes 11 … 65) and two city nodes (4101 under 41, 5101 under 51), the
//! directory routing each region to its longest prefix — over mutual TLS on 127.0.0.1. CHILDREN
//! generated children, each registered in one province and living in another (each residence
//! node pairs with three hukou nodes), are imported at the node the directory routes their
//! residence to; then a share of them is edited on both sides (fields each side owns) and a
//! share moves to a third province and back. Measured: the time until every outbox is empty and
//! every file has the same heads at both its parties, after the import and after the edits and
//! moves; and the bytes per version on the wire (what the senders posted over the versions
//! their receipts settled), beside the bare signature and verification rates of one core.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::audit::Actor;
use crate::domain::child::ChildRecord;
use crate::domain::{IdNumber, NodeId};
use crate::storage::{self, Store};
use crate::sync::{ledger, LocalNode};

use super::sync::bare_verify_rate;
use super::{backend_name, bare_sign_rate, bench_db, peak_rss_mib, round};

/// Province-level prefixes and, for each, a county outside the city nodes (a move's target).
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

/// How long a phase may take before the run gives up.
const PHASE_LIMIT: Duration = Duration::from_secs(3600);

struct Node {
    id: NodeId,
    county: &'static str,
    store: Store,
    node: Arc<LocalNode>,
}

/// `(node id, prefix, county)` of the 33 nodes.
fn plan() -> Vec<(String, String, &'static str)> {
    let mut nodes: Vec<(String, String, &'static str)> = PROVINCES
        .iter()
        .map(|(p, county)| (format!("{p}0000"), (*p).to_owned(), *county))
        .collect();
    nodes.push(("410100".into(), "4101".into(), "410105"));
    nodes.push(("510100".into(), "5101".into(), "510104"));
    nodes
}

pub(super) async fn bench_topology(
    children: usize,
    edit_share: f64,
    move_share: f64,
    postgres: Option<String>,
) -> anyhow::Result<serde_json::Value> {
    use crate::devnet::{DevNet, NodeSpec};
    anyhow::ensure!(children >= 100, "--children must be at least 100");
    let plan = plan();
    let n = plan.len();
    let root = tempfile::tempdir()?;
    let specs = plan
        .iter()
        .map(|(id, prefix, _)| NodeSpec::new(id, prefix))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut net = DevNet::create(&root.path().join("pki"), &specs, Vec::new())?;
    let mut dbs = Vec::new();
    let mut nodes = Vec::new();
    let mut stops = Vec::new();
    let started = Instant::now();
    for (spec, (_, _, county)) in specs.iter().zip(&plan) {
        let db = bench_db(postgres.as_deref(), &format!("t{}", spec.id))?;
        let mut settings = net.settings(&spec.id)?;
        settings.database.url = db.url.clone();
        settings.database.pool_size = 2;
        settings.log.filter = "error".into();
        let app = net.start(&spec.id, settings).await?;
        nodes.push(Node {
            id: spec.id.clone(),
            county,
            store: app.store,
            node: app.node,
        });
        stops.push(app.stop);
        dbs.push(db);
    }
    let boot = started.elapsed();
    let index: HashMap<NodeId, usize> = nodes
        .iter()
        .enumerate()
        .map(|(k, x)| (x.id.clone(), k))
        .collect();

    // The children: per residence node, a third each with three hukou provinces; routed by the
    // directory (a county under 4101 goes to the city node, not the province's).
    let now = Utc::now();
    let per_pair = children.div_ceil(3 * n) + 8;
    let mut seen = std::collections::HashSet::new();
    let mut rows_at: Vec<Vec<(usize, ChildRecord)>> = vec![Vec::new(); n];
    let mut parties_of: Vec<(IdNumber, usize, usize)> = Vec::with_capacity(children);
    'gen: for r in 0..n {
        for off in 1..=3 {
            let h = (r + off) % n;
            let rows = sample_records_between(
                per_pair,
                (r * 3 + off) as u64,
                &plan[h].1,
                &plan[r].1,
                &nodes[0].node,
                now,
            )?;
            for (line, rec) in rows {
                if parties_of.len() == children {
                    break 'gen;
                }
                let route = |region| {
                    nodes[0]
                        .node
                        .node_for(region)
                        .and_then(|id| index.get(&id).copied())
                };
                let (Some(rr), Some(hh)) = (route(&rec.residence_region), route(&rec.hukou_region))
                else {
                    continue;
                };
                if rr == hh || !seen.insert(rec.id_number.to_string()) {
                    continue;
                }
                parties_of.push((rec.id_number.clone(), rr, hh));
                rows_at[rr].push((line, rec));
            }
        }
    }
    anyhow::ensure!(
        parties_of.len() == children,
        "generated {} children of {children}",
        parties_of.len()
    );

    // Phase 1: every residence node imports its children (in transactions of 2,000), all at
    // once; each commit is pushed as it lands.
    let t0 = Instant::now();
    let mut imports = tokio::task::JoinSet::new();
    for (k, rows) in rows_at.into_iter().enumerate() {
        let (store, node) = (nodes[k].store.clone(), nodes[k].node.clone());
        imports.spawn_blocking(move || -> anyhow::Result<()> {
            let mut c = store.conn()?;
            for chunk in rows.chunks(2_000) {
                ledger::import_children(&mut c, &node, chunk, &Actor::console(), now, &mut |_| {})?;
            }
            Ok(())
        });
    }
    while let Some(done) = imports.join_next().await {
        done??;
    }
    let imported = t0.elapsed();
    converge(&nodes, &parties_of, t0).await?;
    let import_converged = t0.elapsed();
    let (v1, _, _) = wire(&nodes);

    // Phase 2: edits on both sides (risk at the residence node, benefits at the hukou node:
    // fields each side owns, which merge whatever the order) and moves to a third province.
    let edits = ((children as f64) * edit_share) as usize;
    let moves = ((children as f64) * move_share) as usize;
    let t1 = Instant::now();
    // Each node's edits, made one after another by one worker per node (as its clerks would).
    let mut todo: Vec<Vec<(IdNumber, serde_json::Value)>> = vec![Vec::new(); n];
    let mut moving: Vec<(IdNumber, usize, usize)> = Vec::new();
    let step = (children / edits.max(1)).max(1);
    for (i, (id, r, h)) in parties_of.iter().enumerate() {
        if edits > 0 && i % step == 0 && i / step < edits {
            todo[*r].push((id.clone(), serde_json::json!({"risk_level": 1})));
            todo[*h].push((
                id.clone(),
                serde_json::json!({"benefits": [{"benefit": "dibao", "since": "2026-11"}]}),
            ));
        } else if moving.len() < moves && i % 7 == 3 {
            let t = (1..n)
                .map(|k| (r + 5 * k) % n)
                .find(|t| t != r && t != h)
                .ok_or_else(|| anyhow::anyhow!("no third node"))?;
            todo[*r].push((
                id.clone(),
                serde_json::json!({"residence_region": nodes[t].county}),
            ));
            moving.push((id.clone(), *r, t));
        }
    }
    let mut work = tokio::task::JoinSet::new();
    for (k, list) in todo.into_iter().enumerate() {
        let (store, node) = (nodes[k].store.clone(), nodes[k].node.clone());
        work.spawn_blocking(move || -> anyhow::Result<()> {
            for (id, patch) in list {
                update(&store, &node, &id, patch)?;
            }
            Ok(())
        });
    }
    while let Some(done) = work.join_next().await {
        done??;
    }
    // Each family moves back once its new bureau holds the file.
    for (id, r, t) in &moving {
        let (store, node, id) = (nodes[*t].store.clone(), nodes[*t].node.clone(), id.clone());
        let patch = serde_json::json!({"residence_region": nodes[*r].county});
        let deadline = Instant::now() + PHASE_LIMIT;
        loop {
            let (s, i) = (store.clone(), id.to_string());
            if s.run(move |c| storage::records::get_child(c, &i))
                .await?
                .is_some()
            {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "a move did not arrive");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::task::spawn_blocking(move || update(&store, &node, &id, patch)).await??;
    }
    converge(&nodes, &parties_of, t1).await?;
    let edits_converged = t1.elapsed();
    let (versions, bytes_sent, bytes_received) = wire(&nodes);

    let rss = peak_rss_mib();
    for stop in stops {
        stop.stop(true).await;
    }
    let sign_rate = bare_sign_rate(crate::crypto::Suite::Ed25519, 20_000)?;
    let verify_rate = bare_verify_rate(crate::crypto::Suite::Ed25519, 20_000)?;
    let pairs = parties_of
        .iter()
        .map(|(_, r, h)| (*r.min(h), *r.max(h)))
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let per_version = |b: u64| round(b as f64 / versions.max(1) as f64);
    Ok(serde_json::json!({
        "backend": backend_name(postgres.as_deref()),
        "nodes": n,
        "children": children,
        "node_pairs_sharing_children": pairs,
        "boot_seconds": round(boot.as_secs_f64()),
        "import_signed_and_stored_seconds": round(imported.as_secs_f64()),
        "import_converged_seconds": round(import_converged.as_secs_f64()),
        "import_versions_per_s": (v1 as f64 / import_converged.as_secs_f64()).round(),
        "edited_children_both_sides": edits,
        "moved_there_and_back": moving.len(),
        "edits_and_moves_converged_seconds": round(edits_converged.as_secs_f64()),
        "versions_pushed": versions,
        "wire_bytes_sent": bytes_sent,
        "wire_bytes_per_version": per_version(bytes_sent),
        "receipt_bytes_per_version": per_version(bytes_received),
        "bare_ed25519_signatures_per_s": sign_rate.round(),
        "bare_ed25519_verifications_per_s": verify_rate.round(),
        "peak_rss_mib": round(rss),
    }))
}

/// One edit through the ledger, as the admin API makes it.
fn update(
    store: &Store,
    node: &LocalNode,
    id: &IdNumber,
    patch: serde_json::Value,
) -> anyhow::Result<()> {
    let mut c = store.conn()?;
    let patch = patch.as_object().cloned().unwrap_or_default();
    ledger::update_child(&mut c, node, id, patch, &Actor::console(), Utc::now())?;
    Ok(())
}

/// Versions, request bytes and receipt bytes pushed by every node so far.
fn wire(nodes: &[Node]) -> (u64, u64, u64) {
    nodes.iter().fold((0, 0, 0), |(a, b, c), x| {
        let (v, s, r) = x.node.wire.totals();
        (a + v, b + s, c + r)
    })
}

/// Waits until every outbox is empty and every file has the same heads at both its parties.
async fn converge(
    nodes: &[Node],
    parties: &[(IdNumber, usize, usize)],
    since: Instant,
) -> anyhow::Result<()> {
    loop {
        let mut queued = 0;
        for x in nodes {
            queued += x
                .store
                .run(storage::exchange::outbox_depths)
                .await?
                .iter()
                .map(|d| d.depth)
                .sum::<u64>();
        }
        if queued == 0 {
            let mut heads = Vec::with_capacity(nodes.len());
            for x in nodes {
                heads.push(
                    x.store
                        .run(|c| {
                            let docs = storage::reconcile::all_doc_ids(c, "child")?;
                            storage::reconcile::heads_of_docs(c, "child", &docs)
                        })
                        .await?,
                );
            }
            let equal = parties.iter().all(|(id, r, h)| {
                let id = id.to_string();
                let sorted = |k: usize| {
                    heads[k].get(&id).map(|v| {
                        let mut v = v.clone();
                        v.sort();
                        v
                    })
                };
                let at_r = sorted(*r);
                at_r.is_some() && at_r == sorted(*h)
            });
            if equal {
                return Ok(());
            }
        }
        anyhow::ensure!(
            since.elapsed() < PHASE_LIMIT,
            "the network did not converge"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `count` validated children registered under `hukou` and living under `residence`.
fn sample_records_between(
    count: usize,
    seed: u64,
    hukou: &str,
    residence: &str,
    node: &LocalNode,
    now: chrono::DateTime<Utc>,
) -> anyhow::Result<Vec<(usize, ChildRecord)>> {
    super::sample_records_in(count, seed, hukou, residence, &node.palette, now)
}
