//! `bench import`: importing generated children (parse, validate, sign, store, audit) beside
//! bare batched inserts of the same rows into the same backend, on a node of either signature
//! suite in a one-node network (its directory declares the suite's default content hash).

use std::time::Instant;

use chrono::Utc;

use crate::audit::Actor;
use crate::domain::child::ChildRecord;
use crate::domain::RecordRules;
use crate::ledger_file::csv::LedgerReader;
use crate::storage;
use crate::sync::ledger::{self, china_today};

use super::{backend_name, bare_sign_rate, bench_db, peak_rss_mib, round, settings_for};

pub(super) fn bench_import(
    suite: crate::crypto::Suite,
    count: usize,
    postgres: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    let backend = backend_name(postgres);
    let mut csv = Vec::new();
    crate::ledger_file::sample::write_ledger(&mut csv, count, 7, "51", "41")?;
    let text = String::from_utf8(csv)?;
    eprintln!(
        "generated {count} rows ({} KiB); importing into {backend}…",
        text.len() / 1024
    );

    let db = bench_db(postgres, "import")?;
    // One node serving every region, in a directory of its suite: the directory declares the
    // network's content hash (SM3 beside SM2), as `pki init --suite` does.
    let root = tempfile::tempdir()?;
    let spec = crate::devnet::NodeSpec::new("410100", "*")?;
    let net = crate::devnet::DevNet::create_in(
        &root.path().join("pki"),
        std::slice::from_ref(&spec),
        Vec::new(),
        suite,
    )?;
    let mut settings = net.settings(&spec.id)?;
    let standalone = settings_for(&db);
    settings.database = standalone.database;
    settings.log.filter = "error".into();
    let (store, node) = crate::startup::open_node_blocking(&settings)?;
    let hash = node.hash;
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
    let pb = crate::cli::progress_bar(count as u64, "importing", false);
    ledger::import_children(&mut conn, &node, &rows, &Actor::console(), now, &mut |n| {
        pb.set_position(n as u64)
    })?;
    pb.finish_and_clear();
    let total = start.elapsed();
    let peak = peak_rss_mib();

    // Bare: the same number of current-view rows, batched, one transaction, nothing else.
    let bare_rows: Vec<_> = rows
        .iter()
        .map(|(_, r)| ledger::view_row(r, now.naive_utc(), &node.visits))
        .collect::<Result<_, _>>()?;
    let bare = time_bare_insert(postgres, "bare", |c| {
        storage::records::insert_children(c, &bare_rows)
    })?;

    // The least any import must do per row, each measured alone in this run: parse and
    // validate it (one core), sign it (a bare signature of the suite over 32 bytes, one core),
    // store its signed version, store its view row. Spread perfectly over every core and with nothing else to do
    // (no heads, audit events, reconciliation marks, JSON or commit), this machine cannot import
    // faster than `ceiling`.
    let sign_rate = bare_sign_rate(suite, 20_000)?;
    let start = Instant::now();
    let mut valid = 0usize;
    for (_, fields) in LedgerReader::new(text_again)? {
        valid += usize::from(fields.is_ok_and(|f| ChildRecord::from_fields(f, &rules).is_ok()));
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
        "suite": suite.as_str(),
        "content_hash": hash.as_str(),
        "rows": count,
        "import_seconds": round(total.as_secs_f64()),
        "parse_validate_seconds": round(parsed.as_secs_f64()),
        "import_rows_per_s": rate.round(),
        "bare_insert_rows_per_s": bare_rate.round(),
        "bare_over_import": round(bare_rate / rate),
        "bare_signatures_per_s_one_core": sign_rate.round(),
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
    insert: impl FnOnce(&mut storage::DbConn) -> Result<(), storage::StorageError>,
) -> anyhow::Result<std::time::Duration> {
    let db = bench_db(postgres, tag)?;
    let store = storage::Store::open(&db.url, 1)?;
    let mut conn = store.conn()?;
    let start = Instant::now();
    storage::transaction(&mut conn, |c| insert(c))?;
    Ok(start.elapsed())
}
