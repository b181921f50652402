//! `bench import`: importing generated children (parse, validate, sign, store, audit) beside
//! bare batched inserts of the same rows into the same backend, on a node of either signature
//! suite in a one-node network (its directory declares the suite's default content hash).
//! The generated ledger is a file read a chunk of [`CHUNK`] rows at a time
//! (`ledger::import_children_chunked`, one transaction), so a million rows are never all in
//! memory: the peak RSS printed is the import's, not the file's size.

use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::audit::Actor;
use crate::domain::child::ChildRecord;
use crate::domain::RecordRules;
use crate::ledger_file::csv::LedgerReader;
use crate::storage;
use crate::sync::ledger::{self, china_today, ImportError};
use crate::sync::LedgerError;

use super::{
    backend_name, bare_sign_rate, bare_version_rows, bare_view_rows, bench_db, peak_rss_mib, round,
    settings_for,
};

/// Rows read, validated and written at a time.
const CHUNK: usize = 20_000;

/// The ledger file at `path` a chunk at a time, validated: `(row, record)` pairs, or the first
/// row that fails (a bug in the generator).
fn chunks_of<'r>(
    path: &Path,
    rules: &'r RecordRules<'r>,
) -> anyhow::Result<impl Iterator<Item = Result<Vec<(usize, ChildRecord)>, ImportError>> + 'r> {
    let mut reader = LedgerReader::from_utf8_reader(BufReader::new(std::fs::File::open(path)?))?;
    Ok(std::iter::from_fn(move || {
        let chunk = reader.validate_next(rules, CHUNK);
        (!chunk.is_empty()).then(|| {
            chunk
                .into_iter()
                .map(|(line, r)| {
                    r.map(|r| (line, r))
                        .map_err(|e| ImportError::Ledger(LedgerError::Invalid(e)))
                })
                .collect()
        })
    }))
}

pub(super) fn bench_import(
    suite: crate::crypto::Suite,
    count: usize,
    postgres: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    let backend = backend_name(postgres);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ledger.csv");
    {
        let mut out = BufWriter::new(std::fs::File::create(&path)?);
        crate::ledger_file::sample::write_ledger(&mut out, count, 7, "51", "41")?;
        out.flush()?;
    }
    let file_bytes = std::fs::metadata(&path)?.len();
    eprintln!(
        "generated {count} rows ({} KiB); importing into {backend}…",
        file_bytes / 1024
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
    let start = Instant::now();
    let rules = RecordRules {
        today: china_today(now),
        palette: &node.palette,
    };
    // Parse and validate alone, streamed (the import below does it again, chunk by chunk).
    let mut parsed_rows = 0;
    for chunk in chunks_of(&path, &rules)? {
        parsed_rows += chunk?.len();
    }
    anyhow::ensure!(parsed_rows == count, "parsed {parsed_rows} rows");
    let parsed = start.elapsed();
    let mut conn = store.conn()?;
    let pb = crate::cli::progress_bar(count as u64, "importing", false);
    let start = Instant::now();
    let summary = ledger::import_children_chunked(
        &mut conn,
        &node,
        &mut chunks_of(&path, &rules)?,
        &Actor::console(),
        now,
        &mut |n| pb.set_position(n as u64),
    )?;
    pb.finish_and_clear();
    let total = start.elapsed();
    anyhow::ensure!(summary.imported == count, "imported {}", summary.imported);
    let peak = peak_rss_mib();
    let database_bytes = storage::database_bytes(&mut conn)?;
    drop(conn);

    // Bare: the same number of current-view rows, batched, one transaction, nothing else
    // (each chunk's rows are built untimed).
    let at = now.naive_utc();
    let bare = time_bare_chunks(postgres, "bare", &path, &rules, |c, rows| {
        let view = bare_view_rows(&node, rows, at)?;
        let t = Instant::now();
        storage::records::insert_children(c, &view)?;
        Ok(t.elapsed())
    })?;

    // The least any import must do per row, each measured alone in this run: parse and
    // validate it (one core), sign it (a bare signature of the suite over 32 bytes, one core),
    // store its signed version, store its view row. Spread perfectly over every core and with nothing else to do
    // (no heads, audit events, reconciliation marks, JSON or commit), this machine cannot import
    // faster than `ceiling`.
    let sign_rate = bare_sign_rate(suite, 20_000)?;
    let start = Instant::now();
    let mut valid = 0usize;
    let reader = LedgerReader::from_utf8_reader(BufReader::new(std::fs::File::open(&path)?))?;
    for (_, fields) in reader {
        valid += usize::from(fields.is_ok_and(|f| ChildRecord::from_fields(f, &rules).is_ok()));
    }
    let parse_one_core = start.elapsed();
    anyhow::ensure!(
        valid == count,
        "the single-core parse found {valid} valid rows"
    );
    let bare_versions = time_bare_chunks(postgres, "bare_versions", &path, &rules, |c, rows| {
        let versions = bare_version_rows(&node, rows, at)?;
        let t = Instant::now();
        storage::records::insert_versions(c, &versions)?;
        Ok(t.elapsed())
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
        "file_mib": round(file_bytes as f64 / 1048576.0),
        "chunk_rows": CHUNK,
        "database_mib": round(database_bytes as f64 / 1048576.0),
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

/// How long the inserts of every chunk of the ledger at `path` take, all in one transaction on
/// a fresh database of the backend, with nothing else: the "bare" rates beside the import's.
/// `insert` builds a chunk's rows (untimed) and returns how long their insert took.
fn time_bare_chunks(
    postgres: Option<&str>,
    tag: &str,
    path: &Path,
    rules: &RecordRules<'_>,
    mut insert: impl FnMut(&mut storage::DbConn, &[(usize, ChildRecord)]) -> anyhow::Result<Duration>,
) -> anyhow::Result<Duration> {
    let db = bench_db(postgres, tag)?;
    let store = storage::Store::open(&db.url, 1)?;
    let mut conn = store.conn()?;
    let mut spent = Duration::ZERO;
    storage::transaction(&mut conn, |c| -> anyhow::Result<()> {
        for chunk in chunks_of(path, rules)? {
            spent += insert(c, &chunk?)?;
        }
        Ok(())
    })?;
    // The commit is not timed (a few milliseconds beside the inserts).
    Ok(spent)
}
