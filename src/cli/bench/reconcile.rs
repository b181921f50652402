//! `bench reconcile`: a reconciliation dry run between two nodes beside a naive head-list
//! exchange, and the summary's catch-up rate. The two nodes are two provinces' (410100 serving
//! 41, 510100 serving 51), or with `--city` a province node and a city node under it (410000
//! serving 41, 410100 serving 4101, routed by the longest prefix), the province running the
//! reconciliation as its schedule would.

use std::time::Instant;

use chrono::Utc;

use crate::audit::Actor;
use crate::config::Settings;
use crate::storage;
use crate::sync::ledger;

use super::{
    backend_name, bench_pair, bench_province_city, peak_rss_mib, round, sample_records,
    sample_records_in,
};

/// The generated summary of the reconciliation benchmark: `docs` documents with one head each;
/// of the `differences` first ones (spread over the id space by hashing), a third have another
/// head at the second node, a third are missing there, a third are missing at the first node.
fn generated_summaries(
    alg: crate::crypto::hash::HashAlg,
    docs: usize,
    differences: usize,
    peers: [&str; 2],
) -> [(
    Vec<storage::reconcile::SummaryRow>,
    Vec<storage::reconcile::BucketRow>,
); 2] {
    use crate::crypto::hash::Digest;
    use crate::reconcile::tree;
    let mut sides: [(Vec<_>, Vec<(Digest, i64)>); 2] = [
        (
            Vec::with_capacity(docs),
            vec![(Digest([0; 32]), 0); tree::BUCKETS],
        ),
        (
            Vec::with_capacity(docs),
            vec![(Digest([0; 32]), 0); tree::BUCKETS],
        ),
    ];
    for i in 0..docs {
        let doc = doc_name(i);
        let head = Digest::of(format!("v{i}").as_bytes()).to_string();
        let bucket = tree::bucket_of(alg, &doc);
        for (side, (rows, accs)) in sides.iter_mut().enumerate() {
            let differs = i < differences;
            let head = match (differs, i % 3, side) {
                (true, 0, 1) => Digest::of(format!("w{i}").as_bytes()).to_string(),
                (true, 1, 1) | (true, 2, 0) => continue,
                _ => head.clone(),
            };
            let heads = vec![head];
            let leaf = tree::leaf(alg, "child", &doc, &heads);
            let slot = &mut accs[bucket as usize];
            slot.0 = tree::xor(&slot.0, &leaf);
            slot.1 += 1;
            rows.push(storage::reconcile::SummaryRow {
                peer: peers[side].to_owned(),
                kind: "child".into(),
                doc_id: doc.clone(),
                bucket: i64::from(bucket),
                heads: heads.join(","),
                leaf: leaf.to_string(),
            });
        }
    }
    sides.map(|(rows, accs)| {
        let peer = rows.first().map(|r| r.peer.clone()).unwrap_or_default();
        let buckets = accs
            .into_iter()
            .enumerate()
            .filter(|(_, (_, n))| *n > 0)
            .map(|(b, (acc, n))| storage::reconcile::BucketRow {
                peer: peer.clone(),
                bucket: b as i64,
                acc: acc.to_string(),
                docs: n,
            })
            .collect();
        (rows, buckets)
    })
}

/// The `i`th generated document's id.
fn doc_name(i: usize) -> String {
    format!("{:018}", 100_000_000_000_000_000u64 + i as u64 * 7919)
}

pub(super) async fn bench_reconcile(
    docs: usize,
    differences: usize,
    catch_up: usize,
    city: bool,
    explain: Option<std::path::PathBuf>,
    postgres: Option<String>,
) -> anyhow::Result<serde_json::Value> {
    use crate::reconcile::serve::{BucketsRequest, BucketsResponse};
    let backend = backend_name(postgres.as_deref());
    let pair = if city {
        bench_province_city(postgres.as_deref()).await?
    } else {
        bench_pair(postgres.as_deref()).await?
    };
    let ids = [
        pair.nodes[0].1.id.to_string(),
        pair.nodes[1].1.id.to_string(),
    ];
    let peer = ids[1].as_str();
    eprintln!(
        "nodes {} and {}; generating {docs} summary leaves with {differences} differences…",
        ids[0], ids[1]
    );
    // Each node's rows name the other node as the peer they are shared with.
    let generated = generated_summaries(
        pair.nodes[0].1.hash,
        docs,
        differences,
        [ids[1].as_str(), ids[0].as_str()],
    );
    let pb = crate::cli::progress_bar((docs * 2) as u64, "loading", false);
    for ((store, _, _, _), (rows, buckets)) in pair.nodes.iter().zip(generated) {
        let (store, pb) = (store.clone(), pb.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut c = store.conn()?;
            for chunk in rows.chunks(50_000) {
                storage::transaction(&mut c, |c| {
                    storage::reconcile::insert_summary_rows(c, chunk)
                })?;
                pb.inc(chunk.len() as u64);
            }
            storage::transaction(&mut c, |c| storage::reconcile::put_buckets(c, &buckets))?;
            Ok(())
        })
        .await??;
    }
    pb.finish_and_clear();
    let (zz_store, zz_node, _, _) = pair.nodes[0].clone();
    let rec = crate::startup::reconciler(&pair.settings[0], zz_store.clone(), zz_node.clone())?
        .ok_or_else(|| anyhow::anyhow!("the bench node has no peer settings"))?;
    let opts = |dry_run| crate::reconcile::RunOptions {
        dry_run,
        started_by: crate::reconcile::StartedBy::Cli,
        actor: Actor::console(),
    };
    // The protocol: a dry run (the figures of a repairing run are the same plus the pushes).
    let start = Instant::now();
    let report = rec
        .run(peer, opts(true), std::sync::Arc::new(|_| {}))
        .await?;
    let run_time = start.elapsed();
    anyhow::ensure!(
        report.documents_differing == differences as u64,
        "found {} differences, expected {differences}: {:?}",
        report.documents_differing,
        report.errors
    );
    // Naive: every (document, heads) of the peer over the same mutual-TLS channel (all 65,536
    // buckets listed), compared with the full local list.
    let http = {
        let dir = zz_node
            .directory
            .as_ref()
            .map(|d| d.current())
            .ok_or_else(|| anyhow::anyhow!("no directory"))?;
        let entry = dir
            .node(&crate::domain::NodeId::parse(peer)?)
            .ok_or_else(|| anyhow::anyhow!("no peer"))?
            .endpoint
            .clone();
        (entry, peer_client(&pair.settings[0], peer)?)
    };
    let start = Instant::now();
    let (mut sent, mut received) = (0u64, 0u64);
    let mut theirs: std::collections::HashMap<String, Vec<String>> = Default::default();
    let all: Vec<u32> = (0..crate::reconcile::tree::BUCKETS as u32).collect();
    for chunk in all.chunks(crate::reconcile::serve::MAX_BUCKETS) {
        let body = serde_json::to_vec(&BucketsRequest {
            buckets: chunk.to_vec(),
        })?;
        sent += body.len() as u64;
        let resp = http
            .1
            .post(format!(
                "{}/peer/v1/reconcile/buckets",
                http.0.trim_end_matches('/')
            ))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await?;
        let bytes = resp.error_for_status()?.bytes().await?;
        received += bytes.len() as u64;
        let page: BucketsResponse = serde_json::from_slice(&bytes)?;
        theirs.extend(page.docs.into_iter().map(|d| (d.doc_id, d.heads)));
    }
    let store2 = zz_store.clone();
    let peer_owned = peer.to_owned();
    let naive_diff = tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
        let mut c = store2.conn()?;
        let mut after: Option<(String, String)> = None;
        let mut differing = 0;
        let mut seen = 0;
        loop {
            let page = storage::reconcile::summary_page(
                &mut c,
                &peer_owned,
                after.as_ref().map(|(k, d)| (k.as_str(), d.as_str())),
                50_000,
            )?;
            let Some(last) = page.last() else { break };
            after = Some((last.kind.clone(), last.doc_id.clone()));
            for r in page {
                match theirs.get(&r.doc_id) {
                    Some(h) if h.join(",") == r.heads => seen += 1,
                    Some(_) => {
                        seen += 1;
                        differing += 1
                    }
                    None => differing += 1,
                }
            }
        }
        Ok(differing + (theirs.len() - seen))
    })
    .await??;
    let naive_time = start.elapsed();
    anyhow::ensure!(
        naive_diff == differences,
        "the naive exchange found {naive_diff} differences"
    );
    if let Some(dir) = explain {
        // The peer's side of each request of the run, on its own summary of `docs` leaves:
        // the root (catch-up and the bucket table), a level of the tree, the differing
        // buckets' leaves, the differing documents' versions.
        let (store, node) = (pair.nodes[1].0.clone(), pair.nodes[1].1.clone());
        let asker = zz_node.id.clone();
        let alg = zz_node.hash;
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            use crate::reconcile::serve::{self, DocRef, NodesRequest, VersionsRequest};
            use crate::storage::plans::record;
            let mut c = store.conn()?;
            let now = Utc::now();
            let (_, st) = record(&mut c, |c| serve::root(c, &node, &asker, now))?;
            super::stats::write_plans(&mut c, &dir, "reconcile_root", &st)?;
            let req = NodesRequest {
                level: 1,
                indices: (0..16).collect(),
            };
            let (_, st) = record(&mut c, |c| serve::nodes(c, alg, &asker, &req))?;
            super::stats::write_plans(&mut c, &dir, "reconcile_nodes", &st)?;
            let mut buckets: Vec<u32> = (0..differences)
                .map(|i| u32::from(crate::reconcile::tree::bucket_of(alg, &doc_name(i))))
                .collect();
            buckets.sort_unstable();
            buckets.dedup();
            buckets.truncate(crate::reconcile::serve::MAX_BUCKETS);
            let req = BucketsRequest { buckets };
            let (_, st) = record(&mut c, |c| serve::buckets(c, &asker, &req))?;
            super::stats::write_plans(&mut c, &dir, "reconcile_buckets", &st)?;
            let req = VersionsRequest {
                docs: (0..differences)
                    .map(|i| DocRef {
                        kind: "child".into(),
                        doc_id: doc_name(i),
                    })
                    .collect(),
            };
            let (_, st) = record(&mut c, |c| serve::versions(c, &asker, &req))?;
            super::stats::write_plans(&mut c, &dir, "reconcile_versions", &st)?;
            Ok(())
        })
        .await??;
    }

    // Catch-up: real files imported at a node (the peer stopped, so pushes do not compete).
    // With `--city`, children registered in Zhengzhou (4101, the city's) living elsewhere in
    // Henan (4102, the province's): files both nodes are party to.
    let cu = if city {
        bench_province_city(postgres.as_deref()).await?
    } else {
        bench_pair(postgres.as_deref()).await?
    };
    let (cu_store, cu_node, _, _) = cu.nodes[0].clone();
    cu.nodes[1].2.stop(true).await;
    let now = Utc::now();
    let rows = if city {
        sample_records_in(catch_up, 17, "4101", "4102", &cu_node.palette, now)?
    } else {
        sample_records(catch_up, 17, &cu_node.palette, now)?
    };
    let (s2, n2) = (cu_store.clone(), cu_node.clone());
    let catch_up_time = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut c = s2.conn()?;
        ledger::import_children(&mut c, &n2, &rows, &Actor::console(), now, &mut |_| {})?;
        let start = Instant::now();
        let n = crate::reconcile::summary::catch_up(&mut c, &n2, &mut |_| {})?;
        anyhow::ensure!(n == rows.len(), "caught up {n} of {}", rows.len());
        Ok(start.elapsed())
    })
    .await??;
    for (_, _, stop, _) in pair.nodes.iter().chain(cu.nodes.iter()) {
        stop.stop(true).await;
    }
    Ok(serde_json::json!({
        "backend": backend,
        "nodes": ids,
        "documents": docs,
        "differences": differences,
        "reconcile_dry_run_seconds": round(run_time.as_secs_f64()),
        "reconcile_bytes_sent": report.bytes_sent,
        "reconcile_bytes_received": report.bytes_received,
        "reconcile_bytes_total": report.bytes_sent + report.bytes_received,
        "reconcile_requests": report.round_trips,
        "reconcile_buckets_listed": report.buckets_differing,
        "naive_full_exchange_seconds": round(naive_time.as_secs_f64()),
        "naive_bytes_total": sent + received,
        "naive_over_reconcile_bytes": round((sent + received) as f64 / (report.bytes_sent + report.bytes_received).max(1) as f64),
        "catch_up_documents": catch_up,
        "catch_up_seconds": round(catch_up_time.as_secs_f64()),
        "catch_up_documents_per_s": (catch_up as f64 / catch_up_time.as_secs_f64()).round(),
        "peak_rss_mib": round(peak_rss_mib()),
    }))
}

/// A mutual-TLS client of the first bench node towards the second.
fn peer_client(settings: &Settings, server: &str) -> anyhow::Result<reqwest::Client> {
    let peer = settings
        .peer
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no peer settings"))?;
    let ca = crate::tls::pki::load_certs(&peer.ca)?;
    let chain = crate::tls::pki::load_certs(&peer.cert)?;
    let key = crate::tls::pki::load_private_key(&peer.key)?;
    let cfg = crate::tls::peer_client_config(&ca, chain, key, server, &Default::default())?;
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls((*cfg).clone())
        .timeout(std::time::Duration::from_secs(300))
        .build()?)
}
