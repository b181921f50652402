//! `hukou-sync import` and `hukou-sync export`. A CSV ledger is imported streamed: read,
//! checked and written a chunk of rows at a time in one transaction
//! (`ledger::import_children_streamed`), so memory is bounded by the chunk, not the file; a
//! workbook is read whole (its format is a compressed archive of the whole sheet) and bounded
//! by `sheet::MAX_FILE_BYTES` and `sheet::MAX_ROWS`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;

use crate::audit::{self, Actor, Event, Outcome};
use crate::config::Settings;
use crate::ledger_file::csv::{self as ledger_csv, Encoding, RowError};
use crate::ledger_file::header::IgnoredColumn;
use crate::ledger_file::input::{InputError, LedgerInput};
use crate::ledger_file::sheet;
use crate::ledger_file::xlsx::{self, LedgerWorkbook};
use crate::sync::ledger::{self, ImportError};

/// Rows a CSV import reads, checks and writes at a time.
const CHUNK_ROWS: u32 = 20_000;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "A CSV file is read, checked and written a chunk of 20,000 rows at a time, in \
one transaction: its size does not matter to memory, and a refused row anywhere stores nothing \
(without --skip-invalid, which skips each chunk's invalid rows). \
A workbook (.xlsx, .xls, .ods) is read whole, as its format requires: at most 32 MiB and \
200,000 rows (save a larger ledger as CSV)."
)]
pub struct ImportArgs {
    /// The ledger: CSV, or a workbook (.xlsx, .xls, .ods; recognised by its bytes).
    file: PathBuf,
    /// Import the valid rows and report the others, instead of refusing the whole file (read a
    /// chunk at a time, a CSV file's invalid rows are reported and skipped chunk by chunk).
    #[arg(long)]
    skip_invalid: bool,
    /// Write the per-row error report (CSV: row, field, reason; a workbook's also names the cell) here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// The CSV file's encoding (a workbook says its own).
    #[arg(long, value_enum, default_value_t = Encoding::Auto)]
    encoding: Encoding,
    /// Refuse a file with columns the ledger does not use (序号, 联系人, …) instead of ignoring
    /// and reporting them.
    #[arg(long)]
    strict: bool,
    /// Machine-readable summary on standard output.
    #[arg(long)]
    json: bool,
    /// The file is a visit ledger (走访台账, as `export --visits` writes it): every row checked
    /// first, then all recorded as this node's visits in one transaction, or none.
    #[arg(long)]
    visits: bool,
    /// Rows per chunk of a CSV import (tests use small chunks).
    #[arg(long, hide = true, default_value_t = CHUNK_ROWS, value_parser = clap::value_parser!(u32).range(1..))]
    chunk_rows: u32,
}

#[derive(serde::Serialize)]
struct ImportOutcome {
    file: String,
    /// The workbook's sheet the ledger was read from (absent for CSV).
    #[serde(skip_serializing_if = "Option::is_none")]
    sheet: Option<String>,
    rows: usize,
    imported: usize,
    rejected: usize,
    /// Columns of the file the ledger does not use (序号, 联系人, …): ignored, or with
    /// `--strict` refused.
    ignored_columns: Vec<IgnoredColumn>,
    /// Imported children one of whose regions no node in the directory serves: nobody receives
    /// their file for that region (a hukou region without a node has no bureau to decide
    /// benefits). Counted and listed by row, and warned about.
    unserved: Vec<UnservedRow>,
    errors: Vec<RowError>,
}

impl ImportOutcome {
    /// The outcome of an import of `rows` rows; the unserved regions are listed only if
    /// something was imported.
    fn new(
        args: &ImportArgs,
        sheet: Option<String>,
        ignored_columns: Vec<IgnoredColumn>,
        rows: usize,
        imported: usize,
        errors: Vec<RowError>,
        unserved: Vec<UnservedRow>,
    ) -> Self {
        ImportOutcome {
            file: args.file.display().to_string(),
            sheet,
            ignored_columns,
            rows,
            imported,
            rejected: errors.len(),
            unserved: if imported > 0 { unserved } else { Vec::new() },
            errors,
        }
    }
}

#[derive(serde::Serialize)]
struct UnservedRow {
    row: usize,
    field: &'static str,
    region: String,
}

/// Whether the file is a workbook: by its name (`.xlsx`, `.xlsm`, `.xls`, `.ods`) or by its
/// first bytes (a ZIP archive or an OLE2 file, whatever it is called); anything else is CSV.
fn is_workbook(path: &std::path::Path) -> anyhow::Result<bool> {
    let by_name = path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        ["xlsx", "xlsm", "xls", "ods"]
            .iter()
            .any(|w| e.eq_ignore_ascii_case(w))
    });
    if by_name {
        return Ok(true);
    }
    let mut head = [0u8; 8];
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let n = std::io::Read::read(&mut f, &mut head)?;
    Ok(crate::ledger_file::input::looks_like_workbook(&head[..n]))
}

/// Reads the workbook named on the command line (whole: see the module's doc).
fn read_workbook(args: &ImportArgs) -> anyhow::Result<LedgerInput> {
    let size = std::fs::metadata(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?
        .len();
    if size > sheet::MAX_FILE_BYTES {
        anyhow::bail!(
            "{}: {}",
            args.file.display(),
            sheet::SheetError::FileTooLarge {
                size,
                max: sheet::MAX_FILE_BYTES
            }
        );
    }
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    match LedgerInput::read_bytes(bytes, true, args.encoding, args.strict) {
        Ok(input) => Ok(input),
        // A workbook's errors name the file, as before; a CSV file's speak for themselves.
        Err(e @ InputError::Sheet(_)) => {
            Err(anyhow::Error::from(e).context(format!("{}", args.file.display())))
        }
        Err(InputError::Csv(e)) => Err(e.into()),
    }
}

pub fn run_import(settings: &Settings, args: ImportArgs) -> anyhow::Result<ExitCode> {
    if args.visits {
        return import_visits(settings, &args);
    }
    if is_workbook(&args.file)? {
        import_workbook(settings, &args)
    } else {
        import_csv(settings, &args)
    }
}

fn warn_ignored(ignored: &[IgnoredColumn], json: bool) {
    if !ignored.is_empty() && !json {
        eprintln!(
            "ignored {} column(s) the ledger does not use: {} (--strict refuses them)",
            ignored.len(),
            crate::ledger_file::header::describe(ignored)
        );
    }
}

/// Imported rows' regions that no node in the directory serves (with a directory; a node
/// without one exchanges with nobody and serves its own regions).
fn unserved_of(
    node: &crate::sync::LocalNode,
    good: &[(usize, crate::domain::child::ChildRecord)],
) -> Vec<UnservedRow> {
    if node.directory.is_none() {
        return Vec::new();
    }
    good.iter()
        .flat_map(|(line, r)| {
            [
                ("hukou_region", &r.hukou_region),
                ("residence_region", &r.residence_region),
            ]
            .into_iter()
            .filter(|(_, region)| node.node_for(region).is_none())
            .map(|(field, region)| UnservedRow {
                row: *line,
                field,
                region: region.to_string(),
            })
            .collect::<Vec<_>>()
        })
        .collect()
}

fn import_error(e: ImportError) -> anyhow::Error {
    match e {
        ImportError::Ledger(l) => anyhow::Error::from(l),
        other => anyhow::Error::from(other),
    }
}

/// A workbook: read whole, every row checked, then the good rows imported in one transaction.
fn import_workbook(settings: &Settings, args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let input = read_workbook(args)?;
    let ignored = input.header().ignored().to_vec();
    warn_ignored(&ignored, args.json);
    let sheet_name = input.sheet();
    let (store, node) = crate::startup::open_node_blocking(settings)?;
    let now = Utc::now();
    let mut conn = store.conn()?;
    let ledger::CheckedLedger { good, errors, rows } =
        ledger::check_ledger(&mut conn, &node, input, now)
            .context("cannot check the rows against the files on record")?;
    if let Some(path) = &args.report {
        write_report(path, &errors, sheet_name.is_some())?;
    }
    let unserved = unserved_of(&node, &good);
    let refuse = !errors.is_empty() && !args.skip_invalid;
    let mut imported = 0;
    if !refuse && !good.is_empty() {
        let pb = super::progress_bar(good.len() as u64, "importing", args.json);
        let summary =
            ledger::import_children(&mut conn, &node, &good, &Actor::console(), now, &mut |n| {
                pb.set_position(n as u64)
            })
            .map_err(import_error)?;
        pb.finish_and_clear();
        imported = summary.imported;
    }
    let outcome = ImportOutcome::new(args, sheet_name, ignored, rows, imported, errors, unserved);
    print_outcome(args, &outcome, refuse)
}

/// A file read through, counting the bytes read (the progress of a streamed import).
struct Counted {
    file: std::fs::File,
    read: Arc<AtomicU64>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A CSV ledger, streamed: its encoding checked in a first pass (a block at a time), then its
/// rows read, validated, checked against the files on record and written a chunk at a time,
/// all in one transaction. Without `--skip-invalid`, the first refused row stops the writing;
/// the rest of the file is still read and checked so that the report names every invalid row,
/// and the transaction is rolled back (nothing stored). With it, each chunk's invalid rows are
/// reported and its valid rows imported. A repeated ID number is found across chunks too (the
/// earlier row is in the transaction); after a refusal, only within a chunk and against the
/// rows stored before it.
fn import_csv(settings: &Settings, args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let path = &args.file;
    let cannot_open = || format!("cannot open {}", path.display());
    let mut open = || -> std::io::Result<Box<dyn Read>> {
        Ok(Box::new(std::io::BufReader::with_capacity(
            64 * 1024,
            std::fs::File::open(path)?,
        )))
    };
    let decided = ledger_csv::check_encoding(&mut open, args.encoding)?;
    let file = std::fs::File::open(path).with_context(cannot_open)?;
    let size = file.metadata().with_context(cannot_open)?.len();
    let read = Arc::new(AtomicU64::new(0));
    let counted = std::io::BufReader::with_capacity(
        64 * 1024,
        Counted {
            file,
            read: read.clone(),
        },
    );
    let mut reader = ledger_csv::LedgerReader::decoding(counted, decided)?;
    if args.strict {
        reader.header().check_strict()?;
    }
    let ignored = reader.header().ignored().to_vec();
    warn_ignored(&ignored, args.json);
    let (store, node) = crate::startup::open_node_blocking(settings)?;
    let now = Utc::now();
    let mut conn = store.conn()?;
    let rules = ledger::rules(&node, now);
    let pb = bytes_bar(size, args.json);
    let chunk_rows = args.chunk_rows as usize;
    let (mut rows, mut errors, mut unserved) = (0usize, Vec::<RowError>::new(), Vec::new());
    let mut since = None;
    let result = {
        let mut next = |conn: &mut crate::storage::DbConn| {
            let since = match since {
                Some(s) => s,
                None => *since.insert(ledger::audit_size(conn)?),
            };
            let validated =
                crate::ledger_file::input::csv_validated(reader.validate_next(&rules, chunk_rows));
            if validated.is_empty() {
                let refused = !errors.is_empty() && !args.skip_invalid;
                return if refused {
                    Err(ImportError::RowsRefused(errors.len()))
                } else {
                    Ok(None)
                };
            }
            let checked = ledger::check_chunk(conn, &node, validated, since)?;
            rows += checked.rows;
            errors.extend(checked.errors);
            pb.set_position(read.load(Ordering::Relaxed));
            pb.set_message(format!("{rows} rows"));
            if !errors.is_empty() && !args.skip_invalid {
                // Refused: the rest is read and checked for the report, not written.
                return Ok(Some(Vec::new()));
            }
            unserved.extend(unserved_of(&node, &checked.good));
            Ok(Some(checked.good))
        };
        ledger::import_children_streamed(
            &mut conn,
            &node,
            &mut next,
            &Actor::console(),
            now,
            &mut |_| pb.set_position(read.load(Ordering::Relaxed)),
        )
    };
    pb.finish_and_clear();
    let (imported, refuse) = match result {
        Ok(summary) => (summary.imported, false),
        Err(ImportError::RowsRefused(_)) => (0, true),
        Err(e) => return Err(import_error(e)),
    };
    if let Some(path) = &args.report {
        write_report(path, &errors, false)?;
    }
    let outcome = ImportOutcome::new(args, None, ignored, rows, imported, errors, unserved);
    print_outcome(args, &outcome, refuse)
}

/// Progress through a file read a chunk at a time: bytes read of its size, and rows so far.
fn bytes_bar(size: u64, hidden: bool) -> indicatif::ProgressBar {
    if hidden {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(size);
    let style = indicatif::ProgressStyle::with_template(
        "importing [{bar:40}] {bytes}/{total_bytes} {msg} ({bytes_per_sec}, eta {eta})",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    pb.set_style(style);
    pb
}

fn print_outcome(
    args: &ImportArgs,
    outcome: &ImportOutcome,
    refuse: bool,
) -> anyhow::Result<ExitCode> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(outcome)?);
    } else {
        for e in outcome.errors.iter().take(50) {
            match &e.cell {
                Some(cell) => eprintln!("{cell}: {}: {}", e.field, e.reason),
                None => eprintln!("row {}: {}: {}", e.row, e.field, e.reason),
            }
        }
        if outcome.errors.len() > 50 {
            eprintln!("… and {} more (see --report)", outcome.errors.len() - 50);
        }
        if refuse {
            eprintln!(
                "refused: {} of {} rows are invalid; nothing was imported (fix them, or use --skip-invalid)",
                outcome.rejected, outcome.rows
            );
        } else {
            println!(
                "imported {} of {} rows ({} skipped)",
                outcome.imported, outcome.rows, outcome.rejected
            );
            if !outcome.unserved.is_empty() {
                for u in outcome.unserved.iter().take(20) {
                    eprintln!(
                        "warning: row {}: {} {}: no node in the directory serves this region",
                        u.row, u.field, u.region
                    );
                }
                eprintln!(
                    "warning: {} region(s) of imported children are served by no node: no bureau \
                     receives those files for them (add the node to the directory)",
                    outcome.unserved.len()
                );
            }
        }
    }
    Ok(if refuse {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// The error report: `row, field, reason`, and for a workbook `row, cell, field, reason`.
fn write_report(path: &std::path::Path, errors: &[RowError], cells: bool) -> anyhow::Result<()> {
    let mut w =
        csv::Writer::from_path(path).with_context(|| format!("cannot write {}", path.display()))?;
    if cells {
        w.write_record(["row", "cell", "field", "reason"])?;
    } else {
        w.write_record(["row", "field", "reason"])?;
    }
    for e in errors {
        let row = e.row.to_string();
        match (&e.cell, cells) {
            (Some(cell), true) => w.write_record([&row, cell, &e.field, &e.reason])?,
            (None, true) => w.write_record([&row, "", &e.field, &e.reason])?,
            _ => w.write_record([&row, &e.field, &e.reason])?,
        }
    }
    w.flush()?;
    Ok(())
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Csv,
    Jsonl,
    /// A workbook (needs --out): Chinese headers, labels, dates as dates, drop-down lists.
    Xlsx,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
    format: ExportFormat,
    /// Output file (default: standard output). Written with mode 0600: it holds full ID numbers.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace an existing output file (refused otherwise).
    #[arg(long)]
    force: bool,
    /// Start a CSV with a UTF-8 byte-order mark, so Excel and WPS on Chinese Windows read it as
    /// UTF-8 (the import accepts it either way).
    #[arg(long)]
    bom: bool,
    /// Why the data leaves the system (required); recorded in the audit log.
    #[arg(long)]
    purpose: String,
    /// Also export the files this node no longer serves (children who moved to another
    /// bureau's regions: read-only copies as of the move, left out by default).
    #[arg(long)]
    include_former: bool,
    /// Export the visit ledger (走访台账: one visit per row, Chinese headers) instead of the files.
    #[arg(long)]
    visits: bool,
}

pub fn run_export(settings: &Settings, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let (store, node) = crate::startup::open_node_blocking(settings)?;
    let mut conn = store.conn()?;
    if args.visits {
        return export_visits(&mut conn, &node, &args);
    }
    if let ExportFormat::Xlsx = args.format {
        return export_xlsx(&mut conn, &node, &args);
    }
    let total = ledger::count(&mut conn)?;
    let out: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(std::io::BufWriter::new(super::open_output(p, args.force)?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let pb = super::progress_bar(total as u64, "exporting", args.out.is_none());
    enum Sink {
        Csv(Box<csv::Writer<Box<dyn Write>>>),
        Jsonl(Box<dyn Write>),
    }
    let mut sink = match args.format {
        ExportFormat::Csv => {
            let mut out = out;
            if args.bom {
                out.write_all("\u{feff}".as_bytes())?;
            }
            let mut w = csv::Writer::from_writer(out);
            w.write_record(ledger_csv::headers())?;
            Sink::Csv(Box::new(w))
        }
        ExportFormat::Jsonl | ExportFormat::Xlsx => Sink::Jsonl(out),
    };
    let mut after: Option<String> = None;
    let mut written = 0usize;
    let mut former = 0usize;
    let mut digest_input = Vec::new();
    loop {
        let page = ledger::export_page(&mut conn, after.as_deref(), 1000)?;
        let Some(last) = page.last() else { break };
        after = Some(last.id_number.to_string());
        let scanned = page.len();
        for r in &page {
            if !args.include_former && !node.roles(&r.hukou_region, &r.residence_region).is_party()
            {
                former += 1;
                continue;
            }
            written += 1;
            digest_input.extend_from_slice(r.id_number.as_str().as_bytes());
            match &mut sink {
                Sink::Csv(w) => w.write_record(ledger_csv::export_row(r, &node.palette))?,
                Sink::Jsonl(w) => writeln!(w, "{}", serde_json::to_string(r)?)?,
            }
        }
        pb.inc(scanned as u64);
    }
    match &mut sink {
        Sink::Csv(w) => w.flush()?,
        Sink::Jsonl(w) => w.flush()?,
    }
    pb.finish_and_clear();
    // One event for the export: how many files left, and a digest of which.
    let ids_digest = crate::crypto::hash::Digest::of(&digest_input).to_string();
    crate::storage::transaction(&mut conn, |conn| {
        audit::append(
            conn,
            node.clock.now(),
            Utc::now(),
            &Event::new(Actor::console(), "child.export", Outcome::Ok)
                .purpose(Some(args.purpose.as_str()))
                .details(
                    serde_json::json!({"count": written, "ids_sha256": ids_digest,
                    "former_left_out": former}),
                ),
        )
        .map_err(anyhow::Error::from)
    })?;
    eprintln!("exported {written} files");
    if former > 0 {
        eprintln!(
            "left out {former} files this node no longer serves (the children moved to other \
             bureaus' regions; --include-former exports them too)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `export --format xlsx`: the ledger as a workbook ([`crate::ledger_file::xlsx`]), the same
/// files as the CSV export, audited the same way (`child.export`, with `"format": "xlsx"`).
fn export_xlsx(
    conn: &mut crate::storage::DbConn,
    node: &crate::sync::LocalNode,
    args: &ExportArgs,
) -> anyhow::Result<ExitCode> {
    let Some(path) = &args.out else {
        anyhow::bail!("--format xlsx writes a workbook: name it with --out FILE.xlsx");
    };
    // Opened first: an existing file is refused before any work.
    let file = super::open_output(path, args.force)?;
    let total = ledger::count(conn)?;
    let pb = super::progress_bar(total as u64, "exporting", false);
    // Rows stream to an unlinked temporary file beside the output: the sheet is never whole in
    // memory (a million files made it gigabytes).
    let beside = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let mut book = LedgerWorkbook::streaming(&node.palette, beside)?;
    let (mut after, mut former) = (None::<String>, 0usize);
    let mut digest_input = Vec::new();
    loop {
        let page = ledger::export_page(conn, after.as_deref(), 1000)?;
        let Some(last) = page.last() else { break };
        after = Some(last.id_number.to_string());
        for r in &page {
            if !args.include_former && !node.roles(&r.hukou_region, &r.residence_region).is_party()
            {
                former += 1;
                continue;
            }
            digest_input.extend_from_slice(r.id_number.as_str().as_bytes());
            book.push(r, &node.palette)?;
        }
        pb.inc(page.len() as u64);
    }
    let written = book.rows();
    book.finish(std::io::BufWriter::new(file))?;
    pb.finish_and_clear();
    let ids_digest = crate::crypto::hash::Digest::of(&digest_input).to_string();
    crate::storage::transaction(conn, |conn| {
        audit::append(
            conn,
            node.clock.now(),
            Utc::now(),
            &Event::new(Actor::console(), "child.export", Outcome::Ok)
                .purpose(Some(args.purpose.as_str()))
                .details(
                    serde_json::json!({"count": written, "ids_sha256": ids_digest,
                    "former_left_out": former, "format": "xlsx"}),
                ),
        )
        .map_err(anyhow::Error::from)
    })?;
    eprintln!(
        "exported {written} files to {} (sheet {})",
        path.display(),
        xlsx::SHEET
    );
    if former > 0 {
        eprintln!(
            "left out {former} files this node no longer serves (the children moved to other \
             bureaus' regions; --include-former exports them too)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub struct TemplateArgs {
    /// Where to write the empty ledger workbook (e.g. 台账模板.xlsx).
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing file (refused otherwise).
    #[arg(long)]
    force: bool,
}

/// `template`: the empty ledger workbook with this node's risk labels in its lists. Holds no
/// child's data, so it needs no database and is not audited.
pub fn run_template(settings: &Settings, args: TemplateArgs) -> anyhow::Result<ExitCode> {
    let palette = settings.risk_palette()?;
    let bytes = xlsx::template(&palette)?;
    let mut file = super::open_output(&args.out, args.force)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    println!(
        "wrote {}: sheet {}, {} columns, drop-down lists for the vocabularies",
        args.out.display(),
        xlsx::SHEET,
        ledger_csv::headers().len()
    );
    Ok(ExitCode::SUCCESS)
}

/// `export --visits`: the visit ledger, CSV (Chinese headers, labels) or JSON Lines (the signed
/// visit bodies), audited as one `visit.export` event with a digest of the ids.
fn export_visits(
    conn: &mut crate::storage::DbConn,
    node: &crate::sync::LocalNode,
    args: &ExportArgs,
) -> anyhow::Result<ExitCode> {
    let out: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(std::io::BufWriter::new(super::open_output(p, args.force)?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let total = crate::storage::visits::count(conn)?;
    let pb = super::progress_bar(total as u64, "exporting visits", args.out.is_none());
    let mut csv_out = None;
    let mut jsonl_out = None;
    match args.format {
        ExportFormat::Csv => {
            let mut out = out;
            if args.bom {
                out.write_all("\u{feff}".as_bytes())?;
            }
            let mut w = csv::Writer::from_writer(out);
            w.write_record(crate::ledger_file::visits::headers())?;
            csv_out = Some(w);
        }
        ExportFormat::Jsonl => jsonl_out = Some(out),
        ExportFormat::Xlsx => anyhow::bail!("export --visits writes csv or jsonl"),
    }
    let (mut after, mut written, mut former) = (None::<String>, 0usize, 0usize);
    let mut digest_input = Vec::new();
    loop {
        let page = crate::visits::export_page(conn, node, after.as_deref(), 1000)?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.visit_id.to_string());
        pb.inc(page.len() as u64);
        for (v, served) in &page {
            if !served && !args.include_former {
                former += 1;
                continue;
            }
            written += 1;
            digest_input.extend_from_slice(v.visit_id.to_string().as_bytes());
            if let Some(w) = &mut csv_out {
                w.write_record(crate::ledger_file::visits::row(v, &node.palette))?;
            }
            if let Some(w) = &mut jsonl_out {
                writeln!(w, "{}", serde_json::to_string(v)?)?;
            }
        }
    }
    if let Some(w) = &mut csv_out {
        w.flush()?;
    }
    if let Some(w) = &mut jsonl_out {
        w.flush()?;
    }
    pb.finish_and_clear();
    let ids_digest = crate::crypto::hash::Digest::of(&digest_input).to_string();
    crate::storage::transaction(conn, |conn| {
        audit::append(
            conn,
            node.clock.now(),
            Utc::now(),
            &Event::new(Actor::console(), "visit.export", Outcome::Ok)
                .purpose(Some(args.purpose.as_str()))
                .details(
                    serde_json::json!({"count": written, "ids_sha256": ids_digest,
                    "former_left_out": former}),
                ),
        )
        .map_err(anyhow::Error::from)
    })?;
    eprintln!("exported {written} visits");
    if former > 0 {
        eprintln!(
            "left out {former} visits of children this node no longer serves (--include-former exports them too)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `import --visits`: a visit ledger, all rows or none; every refused row is named.
fn import_visits(settings: &Settings, args: &ImportArgs) -> anyhow::Result<ExitCode> {
    if is_workbook(&args.file)? {
        anyhow::bail!(
            "import --visits reads the visit ledger as CSV (as export --visits writes it); save \
             the workbook as CSV first"
        );
    }
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let text = ledger_csv::decode(file, args.encoding)?;
    let rows = crate::ledger_file::visits::read(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut good = Vec::with_capacity(rows.len());
    let mut errors = Vec::new();
    for (line, child, body) in rows {
        let child = match crate::domain::IdNumber::parse(&child) {
            Ok(c) => c,
            Err(e) => {
                errors.push(format!("line {line}: 身份证号: {e}"));
                continue;
            }
        };
        match serde_path_to_error::deserialize::<_, crate::visits::VisitInput>(body) {
            Ok(input) => good.push((line, child, input)),
            Err(e) => errors.push(format!("line {line}: {}: {}", e.path(), e.inner())),
        }
    }
    if !errors.is_empty() {
        for e in errors.iter().take(50) {
            eprintln!("{e}");
        }
        anyhow::bail!(
            "{} of {} rows refused; nothing imported",
            errors.len(),
            errors.len() + good.len()
        );
    }
    let (store, node) = crate::startup::open_node_blocking(settings)?;
    let mut conn = store.conn()?;
    let total = good.len();
    let pb = super::progress_bar(total as u64, "recording visits", false);
    let n = crate::visits::import(
        &mut conn,
        &node,
        good,
        &Actor::console(),
        Utc::now(),
        &mut |n| pb.set_position(n as u64),
    )
    .map_err(|e| anyhow::anyhow!("{e}; nothing imported"))?;
    pb.finish_and_clear();
    if args.json {
        println!(
            "{}",
            serde_json::json!({"file": args.file.display().to_string(), "visits": n})
        );
    } else {
        println!("imported {n} visits from {}", args.file.display());
    }
    Ok(ExitCode::SUCCESS)
}
