//! `bench audit`: appending audit events, `audit verify` beside the bare SHA-256 rate, and an
//! inclusion proof.

use std::time::Instant;

use chrono::Utc;

use crate::audit::{self, Actor, Event, Outcome};
use crate::storage;

use super::{backend_name, bench_db, peak_rss_mib, round, settings_for};

pub(super) fn bench_audit(
    events: usize,
    postgres: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    use crate::audit::merkle;
    let backend = backend_name(postgres);
    let db = bench_db(postgres, "audit")?;
    let (store, node) = crate::startup::open_node_blocking(&settings_for(&db))?;
    let mut conn = store.conn()?;
    let pb = crate::cli::progress_bar(events as u64, "appending", false);
    let start = Instant::now();
    let batch = 10_000;
    let mut done = 0;
    while done < events {
        let n = batch.min(events - done);
        let evs: Vec<Event> = (0..n)
            .map(|i| {
                Event::new(Actor::job("bench"), "child.read", Outcome::Ok)
                    .object("child", &format!("{:018}", done + i))
                    .purpose(Some("benchmark"))
            })
            .collect();
        let stamps = node.clock.now_many(evs.len());
        storage::transaction(&mut conn, |c| {
            audit::append_many(c, &stamps, Utc::now(), &evs)
        })?;
        done += n;
        pb.set_position(done as u64);
    }
    pb.finish_and_clear();
    let append = start.elapsed();
    let head = audit::log::sign_tree_head(&mut conn, &node.key, Utc::now())?;

    // Single appends inside real transactions (the rate of audited actions).
    let start = Instant::now();
    let singles = 2000;
    for _ in 0..singles {
        storage::transaction(&mut conn, |c| {
            audit::append(
                c,
                node.clock.now(),
                Utc::now(),
                &Event::new(Actor::job("bench"), "child.read", Outcome::Ok).object("child", "x"),
            )
        })?;
    }
    let single = start.elapsed();

    let pb = crate::cli::progress_bar(0, "verifying", false);
    let start = Instant::now();
    let report =
        audit::verify::verify_database(&mut conn, Some(&node.key.public_key()), &mut |d, t| {
            pb.set_length(t);
            pb.set_position(d);
        })?;
    let verify = start.elapsed();
    pb.finish_and_clear();
    anyhow::ensure!(report.ok(), "verification failed: {:?}", report.problems);

    // Bare SHA-256 over event-sized inputs, in the same run.
    let sample = audit::log::list(
        &mut conn,
        &storage::audit::EventFilter {
            limit: 1,
            ..Default::default()
        },
    )?;
    let len = sample
        .first()
        .map_or(300, |e| e.event.canonical_bytes().map_or(300, |b| b.len()));
    let buf = vec![7u8; len];
    let start = Instant::now();
    let mut acc = [0u8; 32];
    let alg = crate::crypto::hash::HashAlg::Sha256;
    for i in 0..events {
        let mut b = buf.clone();
        b[0] = i as u8;
        acc = merkle::node_hash(alg, &acc, &merkle::leaf_hash(alg, &b));
    }
    let sha = start.elapsed();
    let _ = acc;

    let start = Instant::now();
    let proofs = 200;
    let mut proof_len = 0;
    for i in 0..proofs {
        let seq = (i * 4999) % head.size as i64;
        let e = audit::log::entry_with_proof(&mut conn, seq, head.size)?;
        proof_len = e.inclusion.map_or(0, |p| p.path.len());
    }
    let proof = start.elapsed() / proofs as u32;

    Ok(serde_json::json!({
        "backend": backend,
        "events": events,
        "bulk_append_events_per_s": (events as f64 / append.as_secs_f64()).round(),
        "single_audited_txn_per_s": (singles as f64 / single.as_secs_f64()).round(),
        "verify_seconds": round(verify.as_secs_f64()),
        "verify_events_per_s": (report.events as f64 / verify.as_secs_f64()).round(),
        "bare_sha256_leaf_plus_node_per_s": (events as f64 / sha.as_secs_f64()).round(),
        "event_bytes": len,
        "inclusion_proof_ms": round(proof.as_secs_f64() * 1000.0),
        "inclusion_proof_hashes": proof_len,
        "inclusion_proof_bytes": proof_len * 32,
        "peak_rss_mib": round(peak_rss_mib()),
    }))
}
