//! `bench sync`: pushing versions from one node to another over mutual TLS beside bare
//! verifications of the suite the nodes sign with (Ed25519 or SM2), and single-edit latency to
//! the peer. Bare Ed25519 and SM2 sign/verify rates and SHA-256 and SM3 hash rates on one core
//! are reported in every run; with `--suite sm2-sm3` the network's content hash is SM3. Beside
//! them, the bare insert rate of the backend in the same run: the same versions and view rows
//! written with nothing else, a transaction per import.

use std::time::Instant;

use chrono::Utc;

use crate::audit::Actor;
use crate::storage;
use crate::sync::ledger;

use super::{backend_name, bare_sign_rate, bench_pair_in, round, sample_records};
use crate::crypto::hash::HashAlg;
use crate::crypto::Suite;

pub(super) async fn bench_sync(
    suite: Suite,
    count: usize,
    edits: usize,
    commit_every: usize,
    durable_receipts: bool,
    postgres: Option<String>,
) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(commit_every > 0, "--commit-every must be at least 1");
    // Both nodes run in this process: the switch applies to the receiving one.
    storage::set_durable_commits(durable_receipts);
    let backend = backend_name(postgres.as_deref());
    let pair = bench_pair_in(postgres.as_deref(), suite).await?;
    let (zz_store, zz_node, _, _) = pair.nodes[0].clone();
    let (cd_store, cd_node, _, _) = pair.nodes[1].clone();
    let count_versions = |store: crate::storage::Store| async move {
        store.run(storage::records::count_versions).await
    };

    // Throughput: N new files at the residence node, created (signed and stored) in imports of
    // `commit_every`, each pushed to the hukou node as soon as it commits.
    let now = Utc::now();
    let rows = sample_records(count, 11, &zz_node.palette, now)?;
    let pb = crate::cli::progress_bar(count as u64, "pushing", false);
    let cpu_node = super::cpu_seconds(std::process::id());
    let cpu_db = super::postgres_cpu_seconds();
    let start = Instant::now();
    let (s2, n2) = (zz_store.clone(), zz_node.clone());
    let rows2 = rows.clone();
    let mut signed = None;
    // The hukou node signals each batch it stores: the count is read then (or every 200 ms),
    // not polled beside the work it measures (a `count(*)` of the growing table every 50 ms
    // was 4% of the server's time on PostgreSQL).
    let mut stored = cd_node.outbox_changed.subscribe();
    let mut creating =
        tokio::task::spawn_blocking(move || -> anyhow::Result<std::time::Duration> {
            let mut c = s2.conn()?;
            for chunk in rows2.chunks(commit_every) {
                ledger::import_children(&mut c, &n2, chunk, &Actor::console(), now, &mut |_| {})?;
            }
            Ok(start.elapsed())
        });
    loop {
        let n = count_versions(cd_store.clone()).await? as usize;
        pb.set_position(n as u64);
        if n >= count {
            break;
        }
        if signed.is_none() && creating.is_finished() {
            // A failed import ends the run here, not at the time limit.
            signed = Some((&mut creating).await??);
        }
        anyhow::ensure!(
            start.elapsed() < std::time::Duration::from_secs(600),
            "push did not complete"
        );
        stored.borrow_and_update();
        let _ = tokio::time::timeout(std::time::Duration::from_millis(200), stored.changed()).await;
    }
    let total = start.elapsed();
    let cpu_node = super::cpu_seconds(std::process::id()) - cpu_node;
    let cpu_db = super::postgres_cpu_seconds() - cpu_db;
    let signed = match signed {
        Some(s) => s,
        None => creating.await??,
    };
    pb.finish_and_clear();

    // Latency: single edits, each until visible at the peer. The hukou node signals each batch
    // it stores (it wakes its senders), so the wait looks when something arrived instead of
    // querying its database in a tight loop beside the work it measures.
    let mut arrived = cd_node.outbox_changed.subscribe();
    let ids: Vec<crate::domain::IdNumber> = rows
        .iter()
        .take(edits)
        .map(|(_, r)| r.id_number.clone())
        .collect();
    let mut lat = Vec::with_capacity(edits);
    for (i, id) in ids.iter().enumerate() {
        let (s2, n2, id2) = (zz_store.clone(), zz_node.clone(), id.clone());
        arrived.borrow_and_update();
        let t = Instant::now();
        let file = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let mut c = s2.conn()?;
            let patch = serde_json::json!({"notes": format!("visit {i}")});
            Ok(ledger::update_child(
                &mut c,
                &n2,
                &id2,
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
        loop {
            let v = vid.clone();
            let found = cd_store
                .run(move |c| storage::records::get_version(c, &v))
                .await?;
            if found.is_some() {
                break;
            }
            anyhow::ensure!(
                t.elapsed() < std::time::Duration::from_secs(30),
                "edit did not arrive"
            );
            // Look again when the hukou node stored a batch (or after 20 ms regardless).
            let _ =
                tokio::time::timeout(std::time::Duration::from_millis(20), arrived.changed()).await;
        }
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0.0)
    };

    // Bare verifications and signatures per second on this machine, same run, both suites.
    let n = 20_000;
    let verify_rate = bare_verify_rate(Suite::Ed25519, n)?;
    let sign_rate = bare_sign_rate(Suite::Ed25519, n)?;
    let sm2_verify_rate = bare_verify_rate(Suite::Sm2Sm3, n / 4)?;
    let sm2_sign_rate = bare_sign_rate(Suite::Sm2Sm3, n / 4)?;
    let suite_verify_rate = match suite {
        Suite::Ed25519 => verify_rate,
        Suite::Sm2Sm3 => sm2_verify_rate,
    };
    // The content hash over a version's worth of canonical bytes (about 1 KiB), both hashes.
    let hash = pair.nodes.first().map(|n| n.1.hash).unwrap_or_default();
    let sha256_rate = bare_hash_rate(HashAlg::Sha256, n)?;
    let sm3_rate = bare_hash_rate(HashAlg::Sm3, n)?;
    for (_, _, stop, _) in &pair.nodes {
        stop.stop(true).await;
    }
    let bare_insert_rate = bare_insert_rate(postgres.as_deref(), &zz_node, &rows, commit_every)?;
    Ok(serde_json::json!({
        "backend": backend,
        "suite": suite.as_str(),
        "content_hash": hash.as_str(),
        "versions": count,
        "created_per_transaction": commit_every.min(count),
        "durable_receipts": durable_receipts,
        "signed_and_stored_at_sender_seconds": round(signed.as_secs_f64()),
        "end_to_end_seconds": round(total.as_secs_f64()),
        "end_to_end_versions_per_s": (count as f64 / total.as_secs_f64()).round(),
        "bare_ed25519_verifications_per_s": verify_rate.round(),
        "bare_ed25519_signatures_per_s": sign_rate.round(),
        "bare_sm2_verifications_per_s": sm2_verify_rate.round(),
        "bare_sm2_signatures_per_s": sm2_sign_rate.round(),
        "bare_sha256_1kib_hashes_per_s": sha256_rate.round(),
        "bare_sm3_1kib_hashes_per_s": sm3_rate.round(),
        "end_to_end_per_bare_verification_of_suite": round(
            count as f64 / total.as_secs_f64() / suite_verify_rate
        ),
        "bare_insert_versions_per_s": bare_insert_rate.round(),
        "end_to_end_per_bare_insert": round(count as f64 / total.as_secs_f64() / bare_insert_rate),
        // Where the push's CPU went: this process (both nodes) and, on PostgreSQL, the server's
        // processes on this machine — per version, in microseconds.
        "cpu_us_per_version_nodes": round(cpu_node * 1e6 / count as f64),
        "cpu_us_per_version_database": round(cpu_db * 1e6 / count as f64),
        "single_edit_latency_p50_ms": round(pct(0.50)),
        "single_edit_latency_p99_ms": round(pct(0.99)),
        "single_edits": edits,
    }))
}

/// The least the receiving database must do per version, alone on a fresh database of the run's
/// backend: the same files' signed versions and view rows inserted, `per_transaction` at a time,
/// each group one committed transaction (a received batch is one). The rows are built untimed;
/// no heads, audit events, reconciliation marks, locks or reads.
fn bare_insert_rate(
    postgres: Option<&str>,
    node: &crate::sync::node::LocalNode,
    rows: &[(usize, crate::domain::child::ChildRecord)],
    per_transaction: usize,
) -> anyhow::Result<f64> {
    let db = super::bench_db(postgres, "bare_sync")?;
    let store = storage::Store::open(&db.url, 1)?;
    let mut conn = store.conn()?;
    let at = Utc::now().naive_utc();
    let mut spent = std::time::Duration::ZERO;
    for chunk in rows.chunks(per_transaction.max(1)) {
        let versions = super::bare_version_rows(node, chunk, at)?;
        let views = super::bare_view_rows(node, chunk, at)?;
        let t = Instant::now();
        storage::transaction(&mut conn, |c| -> anyhow::Result<()> {
            storage::records::insert_versions(c, &versions)?;
            storage::records::insert_children(c, &views)?;
            Ok(())
        })?;
        spent += t.elapsed();
    }
    Ok(rows.len() as f64 / spent.as_secs_f64().max(1e-9))
}

/// Content hashes per second of `alg` on one core over 1 KiB (about a version's canonical
/// bytes).
fn bare_hash_rate(alg: HashAlg, n: usize) -> anyhow::Result<f64> {
    let mut msg = [7u8; 1024];
    let start = Instant::now();
    for i in 0..n {
        msg[0] = i as u8;
        std::hint::black_box(crate::crypto::hash::Digest::with(alg, &msg));
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Bare verifications per second of `suite` on one core: a 32-byte message (what a version
/// signs), one key, checked `n` times.
pub(super) fn bare_verify_rate(suite: Suite, n: usize) -> anyhow::Result<f64> {
    let key = crate::crypto::keys::SigningKey::generate_in(suite)?.0;
    let msg = [7u8; 32];
    let sig = key.sign(crate::crypto::keys::SigningContext::Version, &msg)?;
    let pk = key.public_key();
    let start = Instant::now();
    for _ in 0..n {
        pk.verify(crate::crypto::keys::SigningContext::Version, &msg, &sig)?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}
