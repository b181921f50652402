//! `bench witness`: what witnessing costs — a cosignature round trip over mutual TLS between two
//! real nodes (checkpoint signed, consistency proof built, note verified, proof checked,
//! cosigned, both sides stored) after the log grew and when it is idle, with the process's CPU
//! time per round (both nodes run in this process, so it is both sides together); the witness's
//! pure work per cosignature (open the note, check the proof, cosign) beside one bare Ed25519
//! signature; and the start-up self check at the log's size.

use std::time::Instant;

use chrono::Utc;

use crate::audit::checkpoint::Checkpoint;
use crate::audit::merkle::{self, MemoryTree};
use crate::audit::{self, Actor, Event, Outcome};
use crate::domain::NodeId;
use crate::storage;

use super::{backend_name, bare_sign_rate, bench_pair, round};

/// CPU seconds this process has used (user + system; Linux, 100 ticks per second).
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces) end with ')'.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = f.get(11)?.parse().ok()?;
            let stime: f64 = f.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(0.0)
}

fn append(store: &storage::Store, node: &crate::sync::LocalNode, n: usize) -> anyhow::Result<()> {
    let mut conn = store.conn()?;
    let mut done = 0;
    while done < n {
        let k = 10_000.min(n - done);
        let evs: Vec<Event> = (0..k)
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
        done += k;
    }
    Ok(())
}

pub(super) async fn bench_witness(
    events: usize,
    rounds: usize,
    grow: usize,
    postgres: Option<String>,
) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(rounds > 0, "--rounds must be at least 1");
    let backend = backend_name(postgres.as_deref());
    let pair = bench_pair(postgres.as_deref()).await?;
    let (zz_store, zz_node, _, _) = pair.nodes[0].clone();
    let peer = NodeId::parse("510100")?;
    let clients = crate::startup::peer_clients(&pair.settings[0])?
        .ok_or_else(|| anyhow::anyhow!("the bench node has no peer material"))?;
    let http = clients(&peer).map_err(|e| anyhow::anyhow!(e))?;

    let (s, n) = (zz_store.clone(), zz_node.clone());
    tokio::task::spawn_blocking(move || append(&s, &n, events)).await??;
    // The first cosignature of a log (no proof) is not timed.
    crate::sync::witness::request_cosignature(&zz_store, &zz_node, &peer, &http).await?;

    // After growth: `grow` events between rounds, so each carries a real consistency proof.
    let mut wall = std::time::Duration::ZERO;
    let mut cpu = 0.0;
    for _ in 0..rounds {
        let (s, n) = (zz_store.clone(), zz_node.clone());
        tokio::task::spawn_blocking(move || append(&s, &n, grow)).await??;
        let (c0, t0) = (cpu_seconds(), Instant::now());
        crate::sync::witness::request_cosignature(&zz_store, &zz_node, &peer, &http).await?;
        wall += t0.elapsed();
        cpu += cpu_seconds() - c0;
    }
    // Idle: the same checkpoint again (a fresh timestamp).
    let (c0, t0) = (cpu_seconds(), Instant::now());
    for _ in 0..rounds {
        crate::sync::witness::request_cosignature(&zz_store, &zz_node, &peer, &http).await?;
    }
    let idle_wall = t0.elapsed();
    let idle_cpu = cpu_seconds() - c0;

    // The witness's pure work per cosignature at this size.
    let size = zz_store.run(storage::audit::size).await? as u64;
    let alg = zz_node.hash;
    let leaves: Vec<merkle::Hash> = (0..size)
        .map(|i| merkle::leaf_hash(alg, &i.to_be_bytes()))
        .collect();
    let tree = MemoryTree::from_leaves(alg, &leaves);
    let old = size - grow.min(size as usize - 1) as u64;
    let old_root = merkle::root_from(alg, &tree, old).map_err(|e| anyhow::anyhow!("{e}"))?;
    let proof =
        merkle::consistency_proof(alg, &tree, old, size).map_err(|e| anyhow::anyhow!("{e}"))?;
    let log_key = crate::crypto::keys::SigningKey::generate()?.0;
    let witness_key = crate::crypto::keys::SigningKey::generate()?.0;
    let cp = Checkpoint {
        origin: "hukou-sync/410100".into(),
        size,
        root: tree.root(),
        timestamp: Some(Utc::now()),
    };
    let note = cp.sign(&log_key)?.to_string();
    let held = Checkpoint {
        size: old,
        root: old_root,
        ..cp.clone()
    };
    let pure_n = 2000;
    let t0 = Instant::now();
    for i in 0..pure_n {
        let (c, n) = Checkpoint::open(note.as_bytes(), &[log_key.public_key()])?;
        let v = audit::witness::judge(alg, Some(&held), old, &proof, &c);
        anyhow::ensure!(v == audit::witness::Verdict::Cosign, "{v:?}");
        let sig = audit::checkpoint::cosign(&n.text, "hukou-sync/510100", &witness_key, i)?;
        std::hint::black_box(sig);
    }
    let pure = t0.elapsed() / pure_n as u32;
    let bare_sign = bare_sign_rate(crate::crypto::Suite::Ed25519, 2000)?;

    // The start-up self check at this size: from nothing, then with nothing new.
    let mut conn = zz_store.conn()?;
    reset_self_check(&mut conn)?;
    let t0 = Instant::now();
    let full = audit::selfcheck::self_check(&mut conn, &mut |_, _| {})?;
    let full_s = t0.elapsed();
    anyhow::ensure!(full.is_ok(), "self check: {full:?}");
    let t0 = Instant::now();
    let again = audit::selfcheck::self_check(&mut conn, &mut |_, _| {})?;
    let again_s = t0.elapsed();
    anyhow::ensure!(again.is_ok(), "self check: {again:?}");

    Ok(serde_json::json!({
        "backend": backend,
        "log_events": size,
        "rounds": rounds,
        "events_between_rounds": grow,
        "cosignature_round_trip_ms": round(wall.as_secs_f64() * 1000.0 / rounds as f64),
        "cosignature_cpu_ms_both_sides": round(cpu * 1000.0 / rounds as f64),
        "idle_round_trip_ms": round(idle_wall.as_secs_f64() * 1000.0 / rounds as f64),
        "idle_cpu_ms_both_sides": round(idle_cpu * 1000.0 / rounds as f64),
        "witness_pure_work_per_cosignature_ms": round(pure.as_secs_f64() * 1000.0),
        "consistency_proof_hashes": proof.len(),
        "bare_ed25519_sign_ms": round(1000.0 / bare_sign),
        "startup_self_check_full_s": round(full_s.as_secs_f64()),
        "startup_self_check_nothing_new_ms": round(again_s.as_secs_f64() * 1000.0),
    }))
}

/// Forgets the self check's resume point, so the next check reads the whole log.
fn reset_self_check(c: &mut storage::DbConn) -> Result<(), storage::StorageError> {
    storage::audit::set_self_check_mark(c, 0, "", Utc::now().naive_utc())
}
