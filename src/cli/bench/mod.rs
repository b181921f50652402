//! `hukou-sync bench`: throughput figures beside the bare limits of this machine, measured in
//! the same run (see BENCHMARKS.md). Release builds only give meaningful numbers.
//!
//! This file parses the arguments, dispatches to one file per benchmark and holds what they
//! share: fresh databases, the two-node pair (booted through [`crate::devnet`]), sample records,
//! the bare signing rate, peak memory and rounding.

mod audit;
mod cases;
mod conflicts;
mod import;
mod push_memory;
mod reconcile;
mod soak;
mod stats;
mod sync;
mod topology;
mod visits;
mod witness;

use std::process::ExitCode;
use std::time::Instant;

use chrono::Utc;

use crate::config::Settings;
use crate::domain::child::ChildRecord;
use crate::domain::RecordRules;
use crate::ledger_file::csv::LedgerReader;
use crate::storage::ScratchSchema;
use crate::sync::ledger::china_today;

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
        /// Signature suite of the node's key (`ed25519` or `sm2-sm3`); the node's one-node
        /// directory declares the suite's default content hash (SHA-256, or SM3 for `sm2-sm3`).
        #[arg(long, default_value_t = crate::crypto::Suite::Ed25519)]
        suite: crate::crypto::Suite,
        #[arg(long, default_value_t = 100_000)]
        count: usize,
        /// PostgreSQL URL to measure there (a scratch schema is created and dropped); default SQLite.
        #[arg(long)]
        postgres: Option<String>,
    },
    /// Push N versions from one node to another over mutual TLS (sign, send, verify, store,
    /// receipt) beside bare verifications of the suite; and single-edit latency to the peer.
    Sync {
        /// Signature suite of both nodes' keys (`ed25519` or `sm2-sm3`).
        #[arg(long, default_value_t = crate::crypto::Suite::Ed25519)]
        suite: crate::crypto::Suite,
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
        /// Whether the receiving node syncs each batch's commit to disk before it signs the
        /// receipt (SQLite `synchronous = FULL` for that transaction; always on in a node): `false`
        /// measures what durability costs.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        durable_receipts: bool,
        #[arg(long)]
        postgres: Option<String>,
    },
    /// A pinned peer pushing PUSHES maximum-size batches at once (as many versions with unknown
    /// parents as a batch may hold, padded to the body limit) to a node running as its own
    /// process: the node's resident memory before, at peak and after, and the audit events
    /// written per refused batch. Answers 503 busy are retried as a sender does.
    PushMemory {
        #[arg(long, default_value_t = 8)]
        pushes: usize,
        /// The node's `sync.peer_batches_in_flight` for this run.
        #[arg(long, default_value_t = 4)]
        in_flight: usize,
        #[arg(long)]
        postgres: Option<String>,
    },
    /// A bounded soak of mixed load on two nodes in this process (files created and pushed,
    /// edits on both sides, reads, cases, a reconciliation a minute, the hukou node down 20 s
    /// every 2 minutes): this process's resident memory and open descriptors, the outbox depth
    /// and the databases' size sampled every SAMPLE_SECS; the queues must drain at the end.
    /// Writes soak.csv and soak.svg to OUT. With --steady the imports stop at half time and the
    /// second half (edits, reads, cases, reconciliations, outages) is judged.
    Soak {
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
        #[arg(long, default_value_t = 10)]
        sample_secs: u64,
        #[arg(long, default_value = "target/soak")]
        out: std::path::PathBuf,
        #[arg(long)]
        postgres: Option<String>,
        #[arg(long)]
        steady: bool,
        /// Both nodes' `[database] sqlite_cache_mib` (default: the configuration's default).
        #[arg(long)]
        sqlite_cache_mib: Option<u32>,
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
        /// A province node (410000, serving 41) and a city node under it (410100, serving
        /// 4101) instead of two provinces' (410100 and 510100).
        #[arg(long)]
        city: bool,
        /// Write the peer's statements of each request with their `EXPLAIN (ANALYZE,
        /// BUFFERS)` plans to this directory (PostgreSQL).
        #[arg(long)]
        explain: Option<std::path::PathBuf>,
        #[arg(long)]
        postgres: Option<String>,
    },
    /// What witnessing costs: cosignature round trips between two nodes over mutual TLS (after
    /// the log grew, and idle) with CPU time, the witness's pure work per cosignature, and the
    /// start-up self check, on a log of EVENTS.
    Witness {
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        #[arg(long, default_value_t = 200)]
        rounds: usize,
        /// Events appended between two timed rounds.
        #[arg(long, default_value_t = 100)]
        grow: usize,
        #[arg(long)]
        postgres: Option<String>,
    },
    /// Visits: each recorded at the residence node until its signed version is stored at the
    /// hukou node (beside a single edit measured the same way, alternately), over FILES files;
    /// and the due list over DUE_FILES files (QUERIES of each query shape) beside the bare index
    /// scan of the same page.
    Visits {
        #[arg(long, default_value_t = 1000)]
        files: usize,
        #[arg(long, default_value_t = 200)]
        visits: usize,
        #[arg(long, default_value_t = 1_000_000)]
        due_files: usize,
        #[arg(long, default_value_t = 200)]
        queries: usize,
        #[arg(long)]
        postgres: Option<String>,
    },
    /// The statistics over FILES files of a province (every county of 41, written directly)
    /// and CASES cases: `stats::compute` for the whole node, one county's scope and one
    /// street's, QUERIES times each, beside one bare `count(*)` pass over the view.
    Stats {
        #[arg(long, default_value_t = 1_000_000)]
        files: usize,
        #[arg(long, default_value_t = 20_000)]
        cases: usize,
        #[arg(long, default_value_t = 20)]
        queries: usize,
        /// Write each timed query's statements with their `EXPLAIN (ANALYZE, BUFFERS)` plans
        /// to this directory, one file per query (PostgreSQL).
        #[arg(long)]
        explain: Option<std::path::PathBuf>,
        #[arg(long)]
        postgres: Option<String>,
    },
    /// A national network in one process: 33 nodes (31 provinces, two cities) over mutual TLS,
    /// CHILDREN imported where the directory routes them, then edits on both sides and moves to
    /// a third province and back: time to converge (outboxes empty, equal heads at both parties
    /// of every file) and bytes per version on the wire.
    Topology {
        #[arg(long, default_value_t = 100_000)]
        children: usize,
        /// Share of the children edited at both parties after the import.
        #[arg(long, default_value_t = 0.05)]
        edit_share: f64,
        /// Share of the children moving to a third province and back.
        #[arg(long, default_value_t = 0.01)]
        move_share: f64,
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

/// A memory line of /proc/PID/status (`VmRSS:`, `VmHWM:`, `RssAnon:`, ...) of process `pid`,
/// in MiB (Linux), or 0 when it cannot be read.
pub(super) fn status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resident memory of process `pid` in MiB (Linux), or 0 when it cannot be read.
pub(super) fn rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmRSS:")
}

/// CPU time (user and system) of process `pid` so far, in seconds (Linux), or 0 when it cannot
/// be read.
pub(super) fn cpu_seconds(pid: u32) -> f64 {
    // Fields 14 and 15 of /proc/PID/stat, counted after the command name's closing parenthesis
    // (the name may hold spaces), in clock ticks (100 a second on Linux).
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

/// CPU time of every PostgreSQL server process on this machine so far (the server the
/// benchmark's database runs on, when it is local), in seconds: what the database spent beside
/// the node. Processes that ended between two readings are not counted, so read it around work
/// whose connections stay open.
pub(super) fn postgres_cpu_seconds() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim_end() == "postgres")
        })
        .map(cpu_seconds)
        .sum()
}

/// Peak resident memory of this process so far, in MiB (Linux).
fn peak_rss_mib() -> f64 {
    status_mib(std::process::id(), "VmHWM:")
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let figures = match args.what {
        BenchWhat::Import {
            suite,
            count,
            postgres,
        } => import::bench_import(suite, count, postgres.as_deref())?,
        BenchWhat::Visits {
            files,
            visits,
            due_files,
            queries,
            postgres,
        } => super::runtime()?.block_on(visits::bench_visits(
            files, visits, due_files, queries, postgres,
        ))?,
        BenchWhat::Topology {
            children,
            edit_share,
            move_share,
            postgres,
        } => super::runtime()?.block_on(topology::bench_topology(
            children, edit_share, move_share, postgres,
        ))?,
        BenchWhat::Audit { events, postgres } => audit::bench_audit(events, postgres.as_deref())?,
        BenchWhat::Stats {
            files,
            cases,
            queries,
            explain,
            postgres,
        } => stats::bench_stats(
            files,
            cases,
            queries,
            postgres.as_deref(),
            explain.as_deref(),
        )?,
        BenchWhat::Witness {
            events,
            rounds,
            grow,
            postgres,
        } => super::runtime()?.block_on(witness::bench_witness(events, rounds, grow, postgres))?,
        BenchWhat::Sync {
            suite,
            versions,
            edits,
            commit_every,
            durable_receipts,
            postgres,
        } => super::runtime()?.block_on(sync::bench_sync(
            suite,
            versions,
            edits,
            commit_every,
            durable_receipts,
            postgres,
        ))?,
        BenchWhat::PushMemory {
            pushes,
            in_flight,
            postgres,
        } => super::runtime()?
            .block_on(push_memory::bench_push_memory(pushes, in_flight, postgres))?,
        BenchWhat::Soak {
            minutes,
            sample_secs,
            out,
            postgres,
            steady,
            sqlite_cache_mib,
        } => super::runtime()?.block_on(soak::bench_soak(
            minutes,
            sample_secs,
            out,
            postgres,
            steady,
            sqlite_cache_mib,
        ))?,
        BenchWhat::Cases {
            cases,
            concurrency,
            postgres,
        } => super::runtime()?.block_on(cases::bench_cases(cases, concurrency, postgres))?,
        BenchWhat::Conflicts {
            conflicts,
            postgres,
        } => super::runtime()?.block_on(conflicts::bench_conflicts(conflicts, postgres))?,
        BenchWhat::Reconcile {
            docs,
            differences,
            catch_up,
            city,
            explain,
            postgres,
        } => super::runtime()?.block_on(reconcile::bench_reconcile(
            docs,
            differences,
            catch_up,
            city,
            explain,
            postgres,
        ))?,
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

/// Bare signatures per second of `suite` on one core: 32-byte messages (what a version signs).
fn bare_sign_rate(suite: crate::crypto::Suite, n: usize) -> anyhow::Result<f64> {
    let key = crate::crypto::keys::SigningKey::generate_in(suite)?.0;
    let mut msg = [7u8; 32];
    let start = Instant::now();
    for i in 0..n {
        msg[0] = i as u8;
        let sig = key.sign(crate::crypto::keys::SigningContext::Version, &msg)?;
        std::hint::black_box(sig);
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// The signed versions of `rows` as new files of `node` (no parents), stored at `at`: what a
/// bare insert of versions writes.
fn bare_version_rows(
    node: &crate::sync::LocalNode,
    rows: &[(usize, ChildRecord)],
    at: chrono::NaiveDateTime,
) -> anyhow::Result<Vec<crate::storage::records::VersionRow>> {
    Ok(rows
        .iter()
        .map(|(_, r)| {
            crate::sync::ledger::signed_version(node, r, vec![], false).map(|v| v.to_row(at))
        })
        .collect::<Result<_, _>>()?)
}

/// The view rows of `rows` at `at`: what a bare insert of views writes.
fn bare_view_rows(
    node: &crate::sync::LocalNode,
    rows: &[(usize, ChildRecord)],
    at: chrono::NaiveDateTime,
) -> anyhow::Result<Vec<crate::storage::records::ChildRow>> {
    Ok(rows
        .iter()
        .map(|(_, r)| crate::sync::ledger::view_row(r, at, &node.visits))
        .collect::<Result<_, _>>()?)
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
    sample_records_in(count, seed, "51", "41", palette, now)
}

/// `count` generated children registered under the prefix `hukou` and living under
/// `residence`, validated.
fn sample_records_in(
    count: usize,
    seed: u64,
    hukou: &str,
    residence: &str,
    palette: &crate::domain::RiskPalette,
    now: chrono::DateTime<Utc>,
) -> anyhow::Result<Vec<(usize, ChildRecord)>> {
    let mut csv = Vec::new();
    crate::ledger_file::sample::write_ledger(&mut csv, count, seed, hukou, residence)?;
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
    bench_pair_in(postgres, crate::crypto::Suite::Ed25519).await
}

/// [`bench_pair`] with every key of `suite`.
async fn bench_pair_in(
    postgres: Option<&str>,
    suite: crate::crypto::Suite,
) -> anyhow::Result<BenchPair> {
    bench_pair_with(postgres, suite, |_| {}).await
}

/// [`bench_pair_in`] with both nodes' settings changed by `tweak` first.
async fn bench_pair_with(
    postgres: Option<&str>,
    suite: crate::crypto::Suite,
    tweak: impl Fn(&mut crate::config::Settings),
) -> anyhow::Result<BenchPair> {
    use crate::devnet::NodeSpec;
    let specs = [
        NodeSpec::new("410100", "41")?,
        NodeSpec::new("510100", "51")?,
    ];
    bench_pair_of(postgres, suite, specs, tweak).await
}

/// A province node (410000, serving 41) and a city node under it (410100, Zhengzhou, serving
/// 4101): the directory routes a region of 4101 to the city by its longer prefix, every other
/// region of 41 to the province.
async fn bench_province_city(postgres: Option<&str>) -> anyhow::Result<BenchPair> {
    use crate::devnet::NodeSpec;
    let specs = [
        NodeSpec::new("410000", "41")?,
        NodeSpec::new("410100", "4101")?,
    ];
    bench_pair_of(postgres, crate::crypto::Suite::Ed25519, specs, |_| {}).await
}

/// Two nodes of `specs` on fresh databases, started.
async fn bench_pair_of(
    postgres: Option<&str>,
    suite: crate::crypto::Suite,
    specs: [crate::devnet::NodeSpec; 2],
    tweak: impl Fn(&mut crate::config::Settings),
) -> anyhow::Result<BenchPair> {
    use crate::devnet::DevNet;
    let root = tempfile::tempdir()?;
    let mut net = DevNet::create_in(&root.path().join("pki"), &specs, Vec::new(), suite)?;
    let mut nodes = Vec::new();
    let mut dbs = Vec::new();
    let mut all_settings = Vec::new();
    for spec in &specs {
        let db = bench_db(postgres, &format!("n{}", spec.id))?;
        let mut settings = net.settings(&spec.id)?;
        settings.database.url = db.url.clone();
        settings.log.filter = "error".into();
        tweak(&mut settings);
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
