//! `hukou-sync bench`: throughput figures beside the bare limits of this machine, measured in
//! the same run (see BENCHMARKS.md). Release builds only give meaningful numbers.

use std::process::ExitCode;
use std::time::Instant;

use chrono::Utc;

use crate::audit::{self, Actor, Event, Outcome};
use crate::config::Settings;
use crate::domain::child::ChildRecord;
use crate::domain::RecordRules;
use crate::ledger_file::csv::LedgerReader;
use crate::storage::{self, ScratchSchema};
use crate::sync::ledger::{self, china_today};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
    /// Print the figures as JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
enum BenchWhat {
    /// Import N generated children (parse, validate, sign, store, audit) beside bare batched
    /// inserts of the same rows into the same backend.
    Import {
        #[arg(long, default_value_t = 100_000)]
        count: usize,
        /// PostgreSQL URL to measure there (a scratch schema is created and dropped); default SQLite.
        #[arg(long)]
        postgres: Option<String>,
    },
    /// Push N versions from one node to another over mutual TLS (sign, send, verify, store,
    /// receipt) beside bare Ed25519 verifications; and single-edit latency to the peer.
    Sync {
        #[arg(long, default_value_t = 20_000)]
        versions: usize,
        /// Single edits for the latency figures.
        #[arg(long, default_value_t = 200)]
        edits: usize,
        /// The residence node creates the files in imports of this many (each one transaction),
        /// one after another while the push runs; `--commit-every` = `--versions` is one import
        /// pushed after it commits.
        #[arg(long, default_value_t = 2_000)]
        commit_every: usize,
        #[arg(long)]
        postgres: Option<String>,
    },
    /// Eligibility requests from the residence node to the hukou node under load: each request
    /// until the hukou node's signed receipt (the automatic `received`) is visible at the
    /// requester; `concurrency` requests in flight.
    Cases {
        #[arg(long, default_value_t = 1000)]
        cases: usize,
        #[arg(long, default_value_t = 100)]
        concurrency: usize,
        #[arg(long)]
        postgres: Option<String>,
    },
    /// Merged view of one file with 2, 10 and 100 concurrent heads (pure merge, and read from the
    /// database); and the conflict queue page with N open conflicts, over HTTP with a session.
    Conflicts {
        #[arg(long, default_value_t = 10_000)]
        conflicts: usize,
        #[arg(long)]
        postgres: Option<String>,
    },
    /// Reconciliation between two nodes over mutual TLS: DOCS shared documents of which
    /// DIFFERENCES differ (the summaries are filled directly from a generator), a dry run's wall
    /// time and bytes beside a naive full head-list exchange over the same channel; and the
    /// summary's catch-up rate over CATCH_UP real imported files.
    Reconcile {
        #[arg(long, default_value_t = 1_000_000)]
        docs: usize,
        #[arg(long, default_value_t = 100)]
        differences: usize,
        #[arg(long, default_value_t = 100_000)]
        catch_up: usize,
        #[arg(long)]
        postgres: Option<String>,
    },
    /// Append N audit events, then time `audit verify` beside the bare SHA-256 rate, and an
    /// inclusion proof at N.
    Audit {
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        #[arg(long)]
        postgres: Option<String>,
    },
}

/// A fresh database for one measurement.
struct BenchDb {
    url: String,
    _dir: tempfile::TempDir,
    _schema: Option<ScratchSchema>,
}

fn bench_db(postgres: Option<&str>, tag: &str) -> anyhow::Result<BenchDb> {
    let dir = tempfile::tempdir()?;
    Ok(match postgres {
        Some(base) => {
            let name = format!("bench_{tag}_{}", uuid::Uuid::now_v7().simple());
            let (url, guard) = ScratchSchema::create(base, &name)?;
            BenchDb {
                url,
                _dir: dir,
                _schema: Some(guard),
            }
        }
        None => BenchDb {
            url: format!("sqlite://{}", dir.path().join("bench.db").display()),
            _dir: dir,
            _schema: None,
        },
    })
}

/// The backend a `--postgres` option selects, as the figures name it.
fn backend_name(postgres: Option<&str>) -> &'static str {
    if postgres.is_some() {
        "postgres"
    } else {
        "sqlite"
    }
}

fn settings_for(db: &BenchDb) -> Settings {
    let mut s = Settings::default();
    s.database.url = db.url.clone();
    s.database.pool_size = 2;
    s.node.signing_key = db._dir.path().join("bench.key");
    s
}

/// Peak resident memory of this process so far, in MiB (Linux).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let figures = match args.what {
        BenchWhat::Import { count, postgres } => bench_import(count, postgres.as_deref())?,
        BenchWhat::Audit { events, postgres } => bench_audit(events, postgres.as_deref())?,
        BenchWhat::Sync {
            versions,
            edits,
            commit_every,
            postgres,
        } => super::runtime()?.block_on(bench_sync(versions, edits, commit_every, postgres))?,
        BenchWhat::Cases {
            cases,
            concurrency,
            postgres,
        } => super::runtime()?.block_on(bench_cases(cases, concurrency, postgres))?,
        BenchWhat::Conflicts {
            conflicts,
            postgres,
        } => super::runtime()?.block_on(bench_conflicts(conflicts, postgres))?,
        BenchWhat::Reconcile {
            docs,
            differences,
            catch_up,
            postgres,
        } => super::runtime()?.block_on(bench_reconcile(docs, differences, catch_up, postgres))?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&figures)?);
    } else if let serde_json::Value::Object(m) = &figures {
        for (k, v) in m {
            println!("{k:>32}: {v}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn bench_import(count: usize, postgres: Option<&str>) -> anyhow::Result<serde_json::Value> {
    let backend = backend_name(postgres);
    let mut csv = Vec::new();
    crate::ledger_file::sample::write_ledger(&mut csv, count, 7, "51", "41")?;
    let text = String::from_utf8(csv)?;
    eprintln!(
        "generated {count} rows ({} KiB); importing into {backend}…",
        text.len() / 1024
    );

    let db = bench_db(postgres, "import")?;
    let (store, node) = crate::startup::open_node_blocking(&settings_for(&db))?;
    let now = Utc::now();
    let text_again = text.clone();
    let start = Instant::now();
    let rules = RecordRules {
        today: china_today(now),
        palette: &node.palette,
    };
    let mut rows = Vec::with_capacity(count);
    for (line, record) in LedgerReader::new(text)?.validate_all(&rules) {
        rows.push((line, record?));
    }
    let parsed = start.elapsed();
    let mut conn = store.conn()?;
    let pb = super::progress_bar(count as u64, "importing", false);
    ledger::import_children(&mut conn, &node, &rows, &Actor::console(), now, &mut |n| {
        pb.set_position(n as u64)
    })?;
    pb.finish_and_clear();
    let total = start.elapsed();
    let peak = peak_rss_mib();

    // Bare: the same number of current-view rows, batched, one transaction, nothing else.
    let bare_rows: Vec<_> = rows
        .iter()
        .map(|(_, r)| ledger::view_row(r, now.naive_utc()))
        .collect();
    let bare = time_bare_insert(postgres, "bare", |c| {
        storage::records::insert_children(c, &bare_rows)
    })?;

    // The least any import must do per row, each measured alone in this run: parse and
    // validate it (one core), sign it (bare Ed25519 over 32 bytes, one core), store its signed
    // version, store its view row. Spread perfectly over every core and with nothing else to do
    // (no heads, audit events, reconciliation marks, JSON or commit), this machine cannot import
    // faster than `ceiling`.
    let sign_rate = bare_sign_rate(20_000)?;
    let start = Instant::now();
    let mut valid = 0usize;
    for (_, fields) in LedgerReader::new(text_again)? {
        valid += usize::from(fields.is_ok_and(|f| ChildRecord::from_fields(&f, &rules).is_ok()));
    }
    let parse_one_core = start.elapsed();
    anyhow::ensure!(
        valid == count,
        "the single-core parse found {valid} valid rows"
    );
    let version_rows: Vec<_> = rows
        .iter()
        .map(|(_, r)| {
            ledger::signed_version(&node, r, vec![], false).map(|v| v.to_row(now.naive_utc()))
        })
        .collect::<Result<_, _>>()?;
    let bare_versions = time_bare_insert(postgres, "bare_versions", |c| {
        storage::records::insert_versions(c, &version_rows)
    })?;

    let rate = count as f64 / total.as_secs_f64();
    let bare_rate = count as f64 / bare.as_secs_f64();
    let bare_versions_rate = count as f64 / bare_versions.as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let parse_per_row = parse_one_core.as_secs_f64() / count as f64;
    let ceiling =
        cores / (1.0 / sign_rate + 1.0 / bare_rate + 1.0 / bare_versions_rate + parse_per_row);
    Ok(serde_json::json!({
        "backend": backend,
        "rows": count,
        "import_seconds": round(total.as_secs_f64()),
        "parse_validate_seconds": round(parsed.as_secs_f64()),
        "import_rows_per_s": rate.round(),
        "bare_insert_rows_per_s": bare_rate.round(),
        "bare_over_import": round(bare_rate / rate),
        "bare_ed25519_signatures_per_s_one_core": sign_rate.round(),
        "bare_version_insert_rows_per_s": bare_versions_rate.round(),
        "parse_validate_one_core_seconds": round(parse_one_core.as_secs_f64()),
        "cores": cores,
        "ceiling_rows_per_s": ceiling.round(),
        "peak_rss_mib": round(peak),
    }))
}

/// How long `insert` takes in one transaction on a fresh database of the backend, with
/// nothing else: the "bare" rates beside the import's.
fn time_bare_insert(
    postgres: Option<&str>,
    tag: &str,
    insert: impl FnOnce(&mut storage::DbConn) -> Result<(), storage::QueryError>,
) -> anyhow::Result<std::time::Duration> {
    let db = bench_db(postgres, tag)?;
    let store = storage::Store::open(&db.url, 1)?;
    let mut conn = store.conn()?;
    let start = Instant::now();
    storage::transaction(&mut conn, |c| {
        insert(c).map_err(storage::StorageError::from)
    })?;
    Ok(start.elapsed())
}

/// Bare Ed25519 signatures per second on one core: 32-byte messages (what a version signs).
fn bare_sign_rate(n: usize) -> anyhow::Result<f64> {
    let key = crate::crypto::keys::SigningKey::generate()?.0;
    let mut msg = [7u8; 32];
    let start = Instant::now();
    for i in 0..n {
        msg[0] = i as u8;
        let sig = key.sign(crate::crypto::keys::SigningContext::Version, &msg);
        std::hint::black_box(sig);
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn bench_audit(events: usize, postgres: Option<&str>) -> anyhow::Result<serde_json::Value> {
    use crate::audit::merkle;
    let backend = backend_name(postgres);
    let db = bench_db(postgres, "audit")?;
    let (store, node) = crate::startup::open_node_blocking(&settings_for(&db))?;
    let mut conn = store.conn()?;
    let pb = super::progress_bar(events as u64, "appending", false);
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

    let pb = super::progress_bar(0, "verifying", false);
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
    for i in 0..events {
        let mut b = buf.clone();
        b[0] = i as u8;
        acc = merkle::node_hash(&acc, &merkle::leaf_hash(&b));
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

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `count` generated children (hukou in Sichuan, living in Henan), validated.
fn sample_records(
    count: usize,
    seed: u64,
    palette: &crate::domain::RiskPalette,
    now: chrono::DateTime<Utc>,
) -> anyhow::Result<Vec<(usize, ChildRecord)>> {
    let mut csv = Vec::new();
    crate::ledger_file::sample::write_ledger(&mut csv, count, seed, "51", "41")?;
    let rules = RecordRules {
        today: china_today(now),
        palette,
    };
    let mut rows = Vec::with_capacity(count);
    for (line, record) in LedgerReader::new(String::from_utf8(csv)?)?.validate_all(&rules) {
        rows.push((line, record?));
    }
    Ok(rows)
}

async fn bench_sync(
    count: usize,
    edits: usize,
    commit_every: usize,
    postgres: Option<String>,
) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(commit_every > 0, "--commit-every must be at least 1");
    let backend = backend_name(postgres.as_deref());
    let pair = bench_pair(postgres.as_deref()).await?;
    let (zz_store, zz_node, _, _) = pair.nodes[0].clone();
    let (cd_store, cd_node, _, _) = pair.nodes[1].clone();
    let count_versions = |store: crate::storage::Store| async move {
        store
            .run(|c| storage::records::count_versions(c).map_err(storage::StorageError::from))
            .await
    };

    // Throughput: N new files at the residence node, created (signed and stored) in imports of
    // `commit_every`, each pushed to the hukou node as soon as it commits.
    let now = Utc::now();
    let rows = sample_records(count, 11, &zz_node.palette, now)?;
    let pb = super::progress_bar(count as u64, "pushing", false);
    let start = Instant::now();
    let (s2, n2) = (zz_store.clone(), zz_node.clone());
    let rows2 = rows.clone();
    let mut signed = None;
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
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let total = start.elapsed();
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
                .run(move |c| {
                    storage::records::get_version(c, &v).map_err(storage::StorageError::from)
                })
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

    // Bare Ed25519 verifications per second on this machine, same run.
    let key = crate::crypto::keys::SigningKey::generate()?.0;
    let msg = [7u8; 32];
    let sig = key.sign(crate::crypto::keys::SigningContext::Version, &msg);
    let pk = key.public_key();
    let n = 20_000;
    let start = Instant::now();
    for _ in 0..n {
        pk.verify(crate::crypto::keys::SigningContext::Version, &msg, &sig)?;
    }
    let verify_rate = n as f64 / start.elapsed().as_secs_f64();
    let sign_rate = bare_sign_rate(n)?;
    for (_, _, stop, _) in &pair.nodes {
        stop.stop(true).await;
    }
    Ok(serde_json::json!({
        "backend": backend,
        "versions": count,
        "created_per_transaction": commit_every.min(count),
        "signed_and_stored_at_sender_seconds": round(signed.as_secs_f64()),
        "end_to_end_seconds": round(total.as_secs_f64()),
        "end_to_end_versions_per_s": (count as f64 / total.as_secs_f64()).round(),
        "bare_ed25519_verifications_per_s": verify_rate.round(),
        "bare_ed25519_signatures_per_s": sign_rate.round(),
        "single_edit_latency_p50_ms": round(pct(0.50)),
        "single_edit_latency_p99_ms": round(pct(0.99)),
        "single_edits": edits,
    }))
}

/// Two nodes (residence 410100, hukou 510100) on fresh databases, as in the demo.
struct BenchPair {
    _root: tempfile::TempDir,
    _dbs: Vec<BenchDb>,
    settings: Vec<Settings>,
    nodes: Vec<(
        crate::storage::Store,
        std::sync::Arc<crate::sync::LocalNode>,
        crate::startup::StopHandle,
        String,
    )>,
}

async fn bench_pair(postgres: Option<&str>) -> anyhow::Result<BenchPair> {
    use crate::devnet::{DevNet, NodeSpec};
    let root = tempfile::tempdir()?;
    let specs = [
        NodeSpec::new("410100", "41")?,
        NodeSpec::new("510100", "51")?,
    ];
    let mut net = DevNet::create(&root.path().join("pki"), &specs, Vec::new())?;
    let mut nodes = Vec::new();
    let mut dbs = Vec::new();
    let mut all_settings = Vec::new();
    for spec in &specs {
        let db = bench_db(postgres, &format!("n{}", spec.id))?;
        let mut settings = net.settings(&spec.id)?;
        settings.database.url = db.url.clone();
        settings.log.filter = "error".into();
        all_settings.push(settings.clone());
        let app = net.start(&spec.id, settings).await?;
        nodes.push((app.store, app.node, app.stop, app.admin_base));
        dbs.push(db);
    }
    Ok(BenchPair {
        _root: root,
        _dbs: dbs,
        settings: all_settings,
        nodes,
    })
}

async fn bench_cases(
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
    while (cd_store
        .run(|c| storage::records::count_versions(c).map_err(storage::StorageError::from))
        .await? as usize)
        < count
    {
        anyhow::ensure!(
            start.elapsed() < std::time::Duration::from_secs(600),
            "children did not arrive"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let http = super::demo::admin_client(zz_store.clone(), zz_node.clone()).await?;
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency));
    let pb = super::progress_bar(count as u64, "cases", false);
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
                let row = store
                    .run(move |c| storage::cases::get(c, &id2).map_err(storage::StorageError::from))
                    .await?;
                if row.is_some_and(|r| r.state == "received") {
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

/// A root version and `heads` concurrent edits of it, each by one of two authors: half change the
/// shared `notes` differently (so they dispute it); the residence side's also move the address.
fn merge_inputs(heads: usize) -> anyhow::Result<Vec<crate::sync::merge::MergeInput>> {
    use crate::domain::child::{ChildField, Roles};
    use crate::sync::merge::MergeInput;
    use crate::sync::version::VersionId;
    let now = Utc::now();
    let palette = crate::domain::RiskPalette::default();
    let (_, record) = sample_records(1, 11, &palette, now)?
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no sample"))?;
    let id = |i: usize| -> anyhow::Result<VersionId> {
        Ok(crate::crypto::hash::Digest::of(format!("v{i}").as_bytes())
            .to_string()
            .parse()?)
    };
    let hukou = Roles {
        hukou: true,
        residence: false,
    };
    let residence = Roles {
        hukou: false,
        residence: true,
    };
    let root = id(0)?;
    let mut out = vec![MergeInput {
        id: root,
        parents: vec![],
        author_roles: residence,
        resolution: false,
        hlc: 1,
        fields: record.to_fields(),
    }];
    for i in 1..=heads {
        let mut fields = record.to_fields();
        let roles = if i % 2 == 0 { hukou } else { residence };
        fields.insert(ChildField::Notes, serde_json::json!(format!("note {i}")));
        if i % 2 == 1 {
            fields.insert(
                ChildField::ResidenceAddress,
                serde_json::json!(format!("某街道 {i} 号")),
            );
        }
        out.push(MergeInput {
            id: id(i)?,
            parents: vec![root],
            author_roles: roles,
            resolution: false,
            hlc: 1 + i as i64,
            fields,
        });
    }
    Ok(out)
}

async fn bench_conflicts(
    count: usize,
    postgres: Option<String>,
) -> anyhow::Result<serde_json::Value> {
    use crate::storage::conflicts::ConflictRow;
    let mut figures = serde_json::Map::new();
    // 1. Merged view: pure, then JSON parse of the bodies as a bare reference.
    for heads in [2usize, 10, 100] {
        let inputs = merge_inputs(heads)?;
        let rounds = if heads == 100 { 50 } else { 500 };
        let start = Instant::now();
        let mut conflicts = 0;
        for _ in 0..rounds {
            conflicts = crate::sync::merge::merged_view(&inputs)?.conflicts.len();
        }
        let per = start.elapsed().as_secs_f64() / rounds as f64;
        let bodies: Vec<String> = inputs
            .iter()
            .map(|i| {
                serde_json::to_string(
                    &i.fields
                        .iter()
                        .map(|(f, v)| (f.name(), v))
                        .collect::<std::collections::BTreeMap<_, _>>(),
                )
            })
            .collect::<Result<_, _>>()?;
        let start = Instant::now();
        for _ in 0..rounds {
            for b in &bodies {
                std::hint::black_box(serde_json::from_str::<serde_json::Value>(b)?);
            }
        }
        let parse = start.elapsed().as_secs_f64() / rounds as f64;
        figures.insert(
            format!("merge_{heads}_heads_ms"),
            round(per * 1000.0).into(),
        );
        figures.insert(
            format!("merge_{heads}_heads_open_conflicts"),
            conflicts.into(),
        );
        figures.insert(
            format!("bare_json_parse_{heads}_bodies_ms"),
            round(parse * 1000.0).into(),
        );
    }

    // 2. The queue page with `count` open conflicts, over HTTP, logged in.
    let db = bench_db(postgres.as_deref(), "conflicts")?;
    let mut settings = settings_for(&db);
    settings.admin.listen = "127.0.0.1:0".parse()?;
    settings.log.filter = "warn".into();
    let app = crate::startup::Application::build(settings).await?;
    let (store, node) = (app.store().clone(), app.node().clone());
    let base = format!("http://127.0.0.1:{}", app.admin_port());
    let stop = app.handle();
    let server = tokio::spawn(app.run_until_stopped());
    let now = Utc::now();
    let records = sample_records(count, 23, &node.palette, now)?;
    let (s2, n2) = (store.clone(), node.clone());
    let cookie = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        let mut conn = s2.conn()?;
        ledger::import_children(&mut conn, &n2, &records, &Actor::console(), now, &mut |_| {})?;
        let at = now.naive_utc();
        let rows: Vec<ConflictRow> = records
            .iter()
            .enumerate()
            .map(|(i, (_, r))| ConflictRow {
                doc_id: r.id_number.to_string(),
                field: "notes".into(),
                merge_point: String::new(),
                owner: n2.id.to_string(),
                base: "null".into(),
                candidates: serde_json::json!([
                    {"side": "a", "author": "410100", "hlc": null, "at": null, "value": format!("甲 {i}")},
                    {"side": "b", "author": "510100", "hlc": null, "at": null, "value": format!("乙 {i}")},
                ])
                .to_string(),
                opened_at: at + chrono::Duration::milliseconds(i as i64),
            })
            .collect();
        storage::conflicts::insert_many(&mut conn, &rows)?;
        crate::accounts::add_user(
            &mut conn,
            n2.clock.now(),
            &Actor::console(),
            &crate::accounts::NewUser {
                username: "bench",
                display_name: "bench",
                role: crate::accounts::Role::Reviewer,
                password: "bench password 1",
            },
            now,
        )?;
        let policy = crate::accounts::Policy {
            session: chrono::Duration::hours(1),
            max_failures: 5,
            lockout: chrono::Duration::minutes(1),
        };
        Ok(crate::accounts::login(&mut conn, n2.clock.now(), "bench", "bench password 1", "bench", policy, now)?.cookie)
    })
    .await??;
    let http = reqwest::Client::new();
    let rounds = 50;
    let mut times = Vec::with_capacity(rounds);
    let mut bytes = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let r = http
            .get(format!("{base}/ui/conflicts"))
            .header(
                "cookie",
                format!("{}={cookie}", crate::accounts::SESSION_COOKIE),
            )
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "queue page answered {}", r.status());
        bytes = r.bytes().await?.len();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    // Bare: the page's query alone, on the database.
    let (s3, me) = (store.clone(), node.id.to_string());
    let bare = tokio::task::spawn_blocking(move || -> anyhow::Result<f64> {
        let mut conn = s3.conn()?;
        let t = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(crate::conflicts::queue(&mut conn, Some(&me), None, 100)?);
        }
        Ok(t.elapsed().as_secs_f64() * 1000.0 / rounds as f64)
    })
    .await??;
    figures.insert("backend".into(), backend_name(postgres.as_deref()).into());
    figures.insert("queue_open_conflicts".into(), count.into());
    figures.insert("queue_page_p50_ms".into(), round(times[rounds / 2]).into());
    figures.insert(
        "queue_page_p99_ms".into(),
        round(times[rounds * 99 / 100]).into(),
    );
    figures.insert("queue_page_bytes".into(), bytes.into());
    figures.insert("bare_queue_query_ms".into(), round(bare).into());
    stop.stop(true).await;
    let _ = server.await;
    Ok(serde_json::Value::Object(figures))
}

/// The generated summary of the reconciliation benchmark: `docs` documents with one head each;
/// of the `differences` first ones (spread over the id space by hashing), a third have another
/// head at the second node, a third are missing there, a third are missing at the first node.
fn generated_summaries(
    docs: usize,
    differences: usize,
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
    let peers = ["510100", "410100"];
    for i in 0..docs {
        let doc = format!("{:018}", 100_000_000_000_000_000u64 + i as u64 * 7919);
        let head = Digest::of(format!("v{i}").as_bytes()).to_string();
        let bucket = tree::bucket_of(&doc);
        for (side, (rows, accs)) in sides.iter_mut().enumerate() {
            let differs = i < differences;
            let head = match (differs, i % 3, side) {
                (true, 0, 1) => Digest::of(format!("w{i}").as_bytes()).to_string(),
                (true, 1, 1) | (true, 2, 0) => continue,
                _ => head.clone(),
            };
            let heads = vec![head];
            let leaf = tree::leaf("child", &doc, &heads);
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

async fn bench_reconcile(
    docs: usize,
    differences: usize,
    catch_up: usize,
    postgres: Option<String>,
) -> anyhow::Result<serde_json::Value> {
    use crate::reconcile::serve::{BucketsRequest, BucketsResponse};
    let backend = backend_name(postgres.as_deref());
    let pair = bench_pair(postgres.as_deref()).await?;
    eprintln!("generating {docs} summary leaves with {differences} differences…");
    let generated = generated_summaries(docs, differences);
    let pb = super::progress_bar((docs * 2) as u64, "loading", false);
    for ((store, _, _, _), (rows, buckets)) in pair.nodes.iter().zip(generated) {
        let (store, pb) = (store.clone(), pb.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut c = store.conn()?;
            for chunk in rows.chunks(50_000) {
                storage::transaction(&mut c, |c| {
                    storage::reconcile::insert_summary_rows(c, chunk)
                        .map_err(storage::StorageError::from)
                })?;
                pb.inc(chunk.len() as u64);
            }
            storage::transaction(&mut c, |c| {
                storage::reconcile::put_buckets(c, &buckets).map_err(storage::StorageError::from)
            })?;
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
        .run("510100", opts(true), std::sync::Arc::new(|_| {}))
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
            .node(&crate::domain::NodeId::parse("510100")?)
            .ok_or_else(|| anyhow::anyhow!("no peer"))?
            .endpoint
            .clone();
        (entry, peer_client(&pair.settings[0])?)
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
    let naive_diff = tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
        let mut c = store2.conn()?;
        let mut after: Option<(String, String)> = None;
        let mut differing = 0;
        let mut seen = 0;
        loop {
            let page = storage::reconcile::summary_page(
                &mut c,
                "510100",
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

    // Catch-up: real files imported at a node (the peer stopped, so pushes do not compete).
    let cu = bench_pair(postgres.as_deref()).await?;
    let (cu_store, cu_node, _, _) = cu.nodes[0].clone();
    cu.nodes[1].2.stop(true).await;
    let now = Utc::now();
    let rows = sample_records(catch_up, 17, &cu_node.palette, now)?;
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
fn peer_client(settings: &Settings) -> anyhow::Result<reqwest::Client> {
    let peer = settings
        .peer
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no peer settings"))?;
    let ca = crate::tls::pki::load_certs(&peer.ca)?;
    let chain = crate::tls::pki::load_certs(&peer.cert)?;
    let key = crate::tls::pki::load_private_key(&peer.key)?;
    let cfg = crate::tls::peer_client_config(&ca, chain, key, "510100", &Default::default())?;
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls((*cfg).clone())
        .timeout(std::time::Duration::from_secs(300))
        .build()?)
}
