//! `bench soak`: a bounded run of mixed load on two nodes in this process — files created in
//! small imports (pushed), edits on both sides, reads, eligibility cases, a reconciliation every
//! minute, and the hukou node going down and coming back every few minutes — sampling this
//! process's resident memory and open descriptors, both nodes' outbox depth and database size
//! every few seconds. At the end the load stops and the queues must drain. Writes the samples as
//! CSV and an SVG plot (one panel per series) and judges the steadiness after a warm-up: the
//! least-squares slope of resident memory and descriptors. With `--steady` the imports stop at
//! half time, so the second half runs on databases that have stopped growing (edits, reads,
//! cases, reconciliations, outages) — where memory must be flat. Each sample also splits the
//! resident memory into anonymous and file-backed pages and reports SQLite's own heap (its page
//! caches, mostly), which tells a cache filling apart from a leak, and the allocator's bytes in
//! use and held, which tell a leak (in use grows) apart from fragmentation (held but free grows).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::audit::Actor;
use crate::storage::{self, Store};
use crate::sync::ledger;

use super::{backend_name, bench_pair_with, round, rss_mib, sample_records, status_mib};

/// One sample of the run.
#[derive(Debug, Clone, serde::Serialize)]
struct Sample {
    secs: f64,
    rss_mib: f64,
    fds: u64,
    /// Versions queued at both nodes.
    outbox: i64,
    /// Both nodes' databases.
    db_mib: f64,
    /// Anonymous resident pages (the heap: allocations, SQLite's page caches).
    rss_anon_mib: f64,
    /// File-backed resident pages (the binary, shared libraries).
    rss_file_mib: f64,
    /// What SQLite has allocated in this process (both nodes' page caches, statements, schema).
    sqlite_heap_mib: f64,
    /// Bytes the allocator has handed out and not had back (glibc's `mallinfo2`: every arena's
    /// chunks in use plus mapped blocks), SQLite's included: a leak grows this.
    malloc_in_use_mib: f64,
    /// Bytes the allocator holds from the system (arenas and mapped blocks), free chunks
    /// included: held less in use is fragmentation, which grows without a leak.
    malloc_held_mib: f64,
}

/// Turns SQLite's memory statistics on (the bundled library is built with them off, and then
/// [`sqlite_heap_bytes`] reads 0). Only before SQLite is first used in the process: afterwards it
/// is refused and this returns false.
fn count_sqlite_heap() -> bool {
    // SAFETY: `sqlite3_config(SQLITE_CONFIG_MEMSTATUS, int)` takes one int after the option, as
    // passed; before SQLite is initialized no other thread is inside it (this runs before any
    // connection is opened), and afterwards SQLite refuses it with SQLITE_MISUSE, changing
    // nothing.
    let rc = unsafe {
        libsqlite3_sys::sqlite3_config(
            libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS,
            std::ffi::c_int::from(1_u8),
        )
    };
    rc == libsqlite3_sys::SQLITE_OK
}

/// Bytes SQLite has allocated in this process now (all connections of all pools), when
/// [`count_sqlite_heap`] turned the statistics on; else 0.
fn sqlite_heap_bytes() -> i64 {
    // SAFETY: `sqlite3_memory_used` takes no argument, reads SQLite's memory counter under its
    // own mutex and may be called from any thread at any time (even before initialization).
    unsafe { libsqlite3_sys::sqlite3_memory_used() }
}

/// Least-squares slope of `y` over `x`, per minute (`x` in seconds); 0 with fewer than 2 points.
fn slope_per_min(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (sxy, sxx) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
    });
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx * 60.0
    }
}

/// Steady means: after the warm-up, resident memory rises by less than this (MiB a minute)…
pub(super) const RSS_SLOPE_LIMIT_MIB_PER_MIN: f64 = 0.5;
/// …and open descriptors by less than this (a minute).
pub(super) const FD_SLOPE_LIMIT_PER_MIN: f64 = 0.5;

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

async fn outbox_and_bytes(store: &Store) -> anyhow::Result<(i64, i64)> {
    Ok(store
        .run(|c| -> Result<_, storage::StorageError> {
            Ok((
                storage::exchange::queued_total(c)?,
                storage::database_bytes(c)?,
            ))
        })
        .await?)
}

/// Counts of what the load did.
#[derive(Default)]
struct Done {
    created: AtomicU64,
    edits: AtomicU64,
    reads: AtomicU64,
    cases: AtomicU64,
    reconciliations: AtomicU64,
    refused_while_down: AtomicU64,
}

pub(super) async fn bench_soak(
    minutes: f64,
    sample_secs: u64,
    out: PathBuf,
    postgres: Option<String>,
    steady: bool,
    sqlite_cache_mib: Option<u32>,
) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(
        (0.5..=240.0).contains(&minutes),
        "--minutes: between 0.5 and 240"
    );
    anyhow::ensure!((1..=600).contains(&sample_secs), "--sample-secs: 1 to 600");
    std::fs::create_dir_all(&out)?;
    let heap_counted = count_sqlite_heap();
    let backend = backend_name(postgres.as_deref());
    let mut pair = bench_pair_with(postgres.as_deref(), crate::crypto::Suite::Ed25519, |s| {
        if let Some(mib) = sqlite_cache_mib {
            s.database.sqlite_cache_mib = mib;
        }
    })
    .await?;
    let cache_mib = pair.settings[0].database.sqlite_cache_mib;
    let (zz_store, zz_node, _, zz_base) = pair.nodes[0].clone();
    // The hukou node's first store is held only here (the node is restarted with its own), so
    // that its connections and page caches go when it first stops, as a restarted process's do.
    let (cd_store, cd_node, cd_stop, cd_base) = pair.nodes.remove(1);
    let zz_http = crate::devnet::admin_client(zz_store.clone(), zz_node.clone()).await?;
    let cd_http = crate::devnet::admin_client(cd_store.clone(), cd_node.clone()).await?;

    // Every file the run will create, generated up front; the first 1,000 before the clock.
    let now = Utc::now();
    let pool = sample_records(60_000, 77, &zz_node.palette, now)?;
    let ids: Arc<Vec<String>> =
        Arc::new(pool.iter().map(|(_, r)| r.id_number.to_string()).collect());
    let mut pending = pool.into_iter();
    let first: Vec<_> = pending.by_ref().take(1000).collect();
    import(&zz_store, &zz_node, first).await?;
    let created = Arc::new(AtomicU64::new(1000));

    let stop = Arc::new(AtomicBool::new(false));
    let hukou_up = Arc::new(AtomicBool::new(true));
    let done = Arc::new(Done::default());
    let deadline = Instant::now() + Duration::from_secs_f64(minutes * 60.0);
    // With `--steady` the imports stop at half time.
    let imports_until = if steady {
        Instant::now() + Duration::from_secs_f64(minutes * 30.0)
    } else {
        deadline
    };
    let mut tasks = Vec::new();

    // Pushes: 50 new files a second, one import each.
    {
        let (store, node, stop, created, done) = (
            zz_store.clone(),
            zz_node.clone(),
            stop.clone(),
            created.clone(),
            done.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) && Instant::now() < imports_until {
                let batch: Vec<_> = pending.by_ref().take(50).collect();
                if batch.is_empty() {
                    break;
                }
                let n = batch.len() as u64;
                if import(&store, &node, batch).await.is_ok() {
                    created.fetch_add(n, Ordering::Relaxed);
                    done.created.fetch_add(n, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }));
    }
    // Edits on both sides and reads at the residence node.
    let pick = |ids: &Vec<String>, created: &AtomicU64, k: u64| {
        let n = created.load(Ordering::Relaxed).max(1);
        ids[(k.wrapping_mul(2_654_435_761) % n) as usize].clone()
    };
    for side in 0..3u8 {
        let (stop, ids, created, done, up) = (
            stop.clone(),
            ids.clone(),
            created.clone(),
            done.clone(),
            hukou_up.clone(),
        );
        let (http, base) = match side {
            1 => (cd_http.clone(), cd_base.clone()),
            _ => (zz_http.clone(), zz_base.clone()),
        };
        tasks.push(tokio::spawn(async move {
            let mut k: u64 = u64::from(side) * 1_000_003;
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                let id = pick(&ids, &created, k);
                let r = match side {
                    0 => {
                        let level = k % 3 + 1;
                        let body = serde_json::json!({
                            "last_visit_on": "2026-11-20",
                            "risk_level": level,
                        });
                        http.patch(format!("{base}/api/v1/children/{id}"))
                            .json(&body)
                            .send()
                            .await
                    }
                    1 => {
                        if !up.load(Ordering::Relaxed) {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                        let body = if k % 2 == 0 {
                            serde_json::json!({"benefits": [{"benefit": "dibao", "since": "2026-10"}]})
                        } else {
                            serde_json::json!({"benefits": []})
                        };
                        http.patch(format!("{base}/api/v1/children/{id}"))
                            .json(&body)
                            .send()
                            .await
                    }
                    _ => {
                        http.get(format!("{base}/api/v1/children/{id}?purpose=soak"))
                            .send()
                            .await
                    }
                };
                match r {
                    Ok(r) if r.status().is_success() => {
                        let counter = if side == 2 { &done.reads } else { &done.edits };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        done.refused_while_down.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(if side == 2 { 40 } else { 60 })).await;
            }
        }));
    }
    // An eligibility case every two seconds.
    {
        let (http, base, stop, ids, created, done) = (
            zz_http.clone(),
            zz_base.clone(),
            stop.clone(),
            ids.clone(),
            created.clone(),
            done.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut k = 7_777u64;
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                let id = pick(&ids, &created, k);
                let body = serde_json::json!({
                    "child_id": id, "benefit": "dibao",
                    "grounds": {"summary": "父母外出务工，家庭收入低于当地低保标准", "evidence": []},
                    "officers": {"requester": "SOAK-1"},
                });
                if let Ok(r) = http.post(format!("{base}/api/v1/cases")).json(&body).send().await {
                    if r.status().is_success() {
                        done.cases.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }));
    }
    // A reconciliation with the hukou node every minute.
    {
        let (http, base, stop, done) =
            (zz_http.clone(), zz_base.clone(), stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(60)).await;
                if let Ok(r) = http
                    .post(format!("{base}/api/v1/reconcile/510100"))
                    .send()
                    .await
                {
                    if r.status().is_success() {
                        done.reconciliations.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    // The sampler and the hukou node's outages (down 20 s every 2 minutes), on this task.
    let pb = crate::cli::progress_bar((minutes * 60.0) as u64, "soak (s)", false);
    let start = Instant::now();
    let mut samples = Vec::new();
    let cd_settings = pair.settings[1].clone();
    let mut cd_running: Option<crate::devnet::RunningNode> = None;
    let mut cd_store_now = cd_store;
    let mut cd_stop_now = Some(cd_stop);
    let mut next_sample = Instant::now();
    let mut outages = 0u32;
    while Instant::now() < deadline {
        let elapsed = start.elapsed().as_secs();
        let phase = elapsed % 120;
        let is_up = hukou_up.load(Ordering::Relaxed);
        if elapsed >= 60 && (60..80).contains(&phase) && is_up {
            hukou_up.store(false, Ordering::Relaxed);
            if let Some(s) = cd_stop_now.take() {
                s.stop(true).await;
            }
            if let Some(r) = cd_running.take() {
                r.stop.stop(true).await;
            }
            outages += 1;
        } else if !(60..80).contains(&phase) && !is_up {
            let node = restart(&cd_settings).await?;
            cd_store_now = node.store.clone();
            cd_running = Some(node);
            hukou_up.store(true, Ordering::Relaxed);
        }
        if Instant::now() >= next_sample {
            samples.push(sample(start, &zz_store, is_up.then_some(&cd_store_now)).await?);
            next_sample += Duration::from_secs(sample_secs);
        }
        pb.set_position(start.elapsed().as_secs());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    if !hukou_up.load(Ordering::Relaxed) {
        let node = restart(&cd_settings).await?;
        cd_store_now = node.store.clone();
        cd_running = Some(node);
    }
    // The queues drain once the load stops.
    let drain_start = Instant::now();
    let drained = loop {
        let (a, _) = outbox_and_bytes(&zz_store).await?;
        let (b, _) = outbox_and_bytes(&cd_store_now).await?;
        if a + b == 0 {
            break true;
        }
        if drain_start.elapsed() > Duration::from_secs(300) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let drain_secs = drain_start.elapsed().as_secs_f64();
    samples.push(sample(start, &zz_store, Some(&cd_store_now)).await?);
    pb.finish_and_clear();

    write_csv(&out.join("soak.csv"), &samples)?;
    std::fs::write(out.join("soak.svg"), svg(&samples, backend))?;

    // Steady after a warm-up of a fifth of the run (at least one minute when there is room);
    // with `--steady`, from one minute after the imports stopped (six tenths of the run).
    let warm = if steady {
        minutes * 30.0 + 60.0_f64.min(minutes * 6.0)
    } else {
        (minutes * 60.0 / 5.0).max(60.0_f64.min(minutes * 30.0))
    };
    let after: Vec<&Sample> = samples.iter().filter(|s| s.secs >= warm).collect();
    // The last sample is taken after the drain, with the load stopped: not part of the trend.
    let trend: &[&Sample] = &after[..after.len().saturating_sub(1)];
    let span = |f: &dyn Fn(&Sample) -> f64| {
        let v: Vec<f64> = after.iter().map(|s| f(s)).collect();
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
        let pts: Vec<(f64, f64)> = trend.iter().map(|s| (s.secs, f(s))).collect();
        serde_json::json!({
            "min": round(lo),
            "max": round(hi),
            "first": round(*v.first().unwrap_or(&0.0)),
            "last": round(*v.last().unwrap_or(&0.0)),
            "slope_per_min": round(slope_per_min(&pts)),
        })
    };
    let rss = span(&|s| s.rss_mib);
    let fds = span(&|s| s.fds as f64);
    let slope = |v: &serde_json::Value| v["slope_per_min"].as_f64().unwrap_or(f64::MAX);
    let rss_flat = slope(&rss) < RSS_SLOPE_LIMIT_MIB_PER_MIN;
    let fds_flat = slope(&fds) < FD_SLOPE_LIMIT_PER_MIN;
    for (_, _, s, _) in pair.nodes.iter().take(1) {
        s.stop(true).await;
    }
    if let Some(r) = cd_running {
        r.stop.stop(true).await;
    }
    Ok(serde_json::json!({
        "backend": backend,
        "minutes": minutes,
        "samples": samples.len(),
        "steady_second_half": steady,
        "sqlite_cache_mib_per_node": (backend == "sqlite").then_some(cache_mib),
        "warm_up_s": warm,
        "rss_mib_after_warm_up": rss,
        "rss_anon_mib_after_warm_up": span(&|s| s.rss_anon_mib),
        "sqlite_heap_counted": heap_counted,
        "sqlite_heap_mib_after_warm_up": span(&|s| s.sqlite_heap_mib),
        "rss_less_sqlite_heap_mib_after_warm_up": span(&|s| s.rss_mib - s.sqlite_heap_mib),
        "malloc_in_use_mib_after_warm_up": span(&|s| s.malloc_in_use_mib),
        "malloc_in_use_less_sqlite_heap_mib_after_warm_up": span(&|s| s.malloc_in_use_mib - s.sqlite_heap_mib),
        "malloc_held_less_in_use_mib_after_warm_up": span(&|s| s.malloc_held_mib - s.malloc_in_use_mib),
        "open_fds_after_warm_up": fds,
        "db_mib_after_warm_up": span(&|s| s.db_mib),
        "rss_slope_limit_mib_per_min": RSS_SLOPE_LIMIT_MIB_PER_MIN,
        "fd_slope_limit_per_min": FD_SLOPE_LIMIT_PER_MIN,
        "rss_flat": rss_flat,
        "fds_flat": fds_flat,
        "peak_outbox": samples.iter().map(|s| s.outbox).max(),
        "queues_drained": drained,
        "drain_s": round(drain_secs),
        "hukou_outages": outages,
        "files_created": created.load(Ordering::Relaxed),
        "edits": done.edits.load(Ordering::Relaxed),
        "reads": done.reads.load(Ordering::Relaxed),
        "cases": done.cases.load(Ordering::Relaxed),
        "reconciliations": done.reconciliations.load(Ordering::Relaxed),
        "requests_refused_or_failed": done.refused_while_down.load(Ordering::Relaxed),
        "csv": out.join("soak.csv"),
        "plot": out.join("soak.svg"),
    }))
}

async fn import(
    store: &Store,
    node: &Arc<crate::sync::LocalNode>,
    rows: Vec<(usize, crate::domain::child::ChildRecord)>,
) -> anyhow::Result<()> {
    let (s, n) = (store.clone(), node.clone());
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut c = s.conn()?;
        ledger::import_children(
            &mut c,
            &n,
            &rows,
            &Actor::console(),
            Utc::now(),
            &mut |_| {},
        )?;
        Ok(())
    })
    .await?
}

/// Starts the hukou node again on its ports and database.
async fn restart(settings: &crate::config::Settings) -> anyhow::Result<crate::devnet::RunningNode> {
    let peer = settings
        .peer
        .as_ref()
        .map(|p| std::net::TcpListener::bind(p.listen))
        .transpose()?;
    let admin = std::net::TcpListener::bind(settings.admin.listen)?;
    crate::devnet::run(
        settings.clone(),
        crate::startup::Listeners {
            admin: Some(admin),
            peer,
        },
    )
    .await
}

async fn sample(start: Instant, zz: &Store, cd: Option<&Store>) -> anyhow::Result<Sample> {
    let (a, abytes) = outbox_and_bytes(zz).await?;
    let (b, bbytes) = match cd {
        Some(s) => outbox_and_bytes(s).await?,
        None => (0, 0),
    };
    let (in_use, held) = crate::sync::memory::allocator_bytes();
    Ok(Sample {
        secs: round(start.elapsed().as_secs_f64()),
        rss_mib: round(rss_mib(std::process::id())),
        fds: open_fds(),
        outbox: a + b,
        db_mib: round((abytes + bbytes) as f64 / 1_048_576.0),
        rss_anon_mib: round(status_mib(std::process::id(), "RssAnon:")),
        rss_file_mib: round(status_mib(std::process::id(), "RssFile:")),
        sqlite_heap_mib: round(sqlite_heap_bytes() as f64 / 1_048_576.0),
        malloc_in_use_mib: round(in_use as f64 / 1_048_576.0),
        malloc_held_mib: round(held as f64 / 1_048_576.0),
    })
}

fn write_csv(path: &Path, samples: &[Sample]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    for s in samples {
        w.serialize(s)?;
    }
    w.flush()?;
    Ok(())
}

/// Seven panels (memory, SQLite's heap, the allocator's use and free pages, descriptors, queue,
/// database) over the run's minutes.
fn svg(samples: &[Sample], backend: &str) -> String {
    use std::fmt::Write as _;
    let (w, h, pad) = (760.0, 170.0, 48.0);
    type Series = fn(&Sample) -> f64;
    let series: [(&str, Series); 7] = [
        ("resident memory (MiB)", |s| s.rss_mib),
        ("SQLite heap: page caches (MiB)", |s| s.sqlite_heap_mib),
        ("allocator: in use, less SQLite's heap (MiB)", |s| {
            s.malloc_in_use_mib - s.sqlite_heap_mib
        }),
        ("allocator: held but free (MiB)", |s| {
            s.malloc_held_mib - s.malloc_in_use_mib
        }),
        ("open file descriptors", |s| s.fds as f64),
        ("outbox depth (versions)", |s| s.outbox as f64),
        ("database size (MiB)", |s| s.db_mib),
    ];
    let tmax = samples.iter().map(|s| s.secs).fold(1.0_f64, f64::max);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{}" font-family="sans-serif" font-size="11">"#,
        h * series.len() as f64 + 30.0
    );
    let _ = write!(
        out,
        r#"<text x="{pad}" y="16" font-size="13">bench soak ({backend}): samples over {:.1} minutes</text>"#,
        tmax / 60.0
    );
    for (k, (label, f)) in series.iter().enumerate() {
        let top = 30.0 + k as f64 * h;
        let vmax = samples.iter().map(f).fold(0.0_f64, f64::max).max(1.0) * 1.1;
        let (x0, x1, y0, y1) = (pad, w - 16.0, top + h - 28.0, top + 18.0);
        let _ = write!(
            out,
            r##"<text x="{x0}" y="{}">{label}</text><line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#888"/><line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#888"/><text x="4" y="{}">{:.0}</text><text x="4" y="{y0}">0</text><text x="{}" y="{}">{:.1} min</text>"##,
            top + 12.0,
            y1 + 4.0,
            vmax,
            x1 - 40.0,
            y0 + 14.0,
            tmax / 60.0
        );
        let points: Vec<String> = samples
            .iter()
            .map(|s| {
                let x = x0 + (x1 - x0) * s.secs / tmax;
                let y = y0 - (y0 - y1) * f(s) / vmax;
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = write!(
            out,
            r##"<polyline fill="none" stroke="#1f5fa8" stroke-width="1.5" points="{}"/>"##,
            points.join(" ")
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::slope_per_min;

    #[test]
    fn the_slope_is_per_minute_and_flat_for_noise_around_a_level() {
        let rising: Vec<(f64, f64)> = (0..30)
            .map(|k| (k as f64 * 10.0, 100.0 + k as f64))
            .collect();
        assert!((slope_per_min(&rising) - 6.0).abs() < 1e-9);
        let flat: Vec<(f64, f64)> = (0..30)
            .map(|k| (k as f64 * 10.0, if k % 2 == 0 { 90.0 } else { 110.0 }))
            .collect();
        assert!(slope_per_min(&flat).abs() < 0.5);
        assert_eq!(slope_per_min(&[(1.0, 5.0)]), 0.0);
    }
}
