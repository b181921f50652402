//! The `hukou-sync` command line: serve a node, migrate, import and export the ledger, read and
//! update files, keep the audit trail, reconcile with peers and list stale files, run the demo
//! and the benchmarks. Human-readable output by
//! default, `--json` for machines; progress bars on long work; a non-zero exit on any failure.

mod admin;
mod audit_cmd;
mod backup_cmd;
mod bench;
mod benefit;
mod case;
mod child;
mod conflict;
mod demo;
mod import;
mod lookup;
pub mod pki;
mod reconcile_cmd;
mod report;
mod stats_cmd;
mod visit;
mod witness_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{LogFormat, Settings};
use crate::domain::shown_time::shown;

#[derive(Debug, Parser)]
#[command(
    name = "hukou-sync",
    version,
    about = "Signed exchange of children's welfare files between civil-affairs bureaus"
)]
pub struct Cli {
    /// Configuration file (TOML). Without one, defaults apply; HUKOU_SYNC__SECTION__KEY overrides.
    #[arg(long, short, global = true, env = "HUKOU_SYNC_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the node until interrupted. It first checks its own audit log (README, "Witnessing")
    /// and refuses to start on a log that lost or rewrote history.
    Serve {
        /// Start although the self check failed, after a restore from backup an administrator
        /// decided on: what was lost is audited (`audit.restore_accepted`) and reconciliation
        /// brings the versions back.
        #[arg(long)]
        accept_restore: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Copy an SQLite node's database while it serves (a consistent snapshot, `VACUUM INTO`),
    /// audited as `node.backup`. PostgreSQL nodes use pg_basebackup or pg_dump (README,
    /// "Backups (备份与恢复)").
    Backup(backup_cmd::BackupArgs),
    /// Put a backup of this node back in place of its SQLite database (the node stopped); the
    /// next start refuses until `serve --accept-restore`, then reconcile with every peer.
    Restore(backup_cmd::RestoreArgs),
    /// Run the demo: two bureaus on loopback (real mutual TLS, each on a temporary SQLite
    /// database) exchanging a child's file, an eligibility case and a reconciliation run.
    Demo(demo::DemoArgs),
    /// Import a ledger: CSV (UTF-8 or GB18030) or a workbook (.xlsx, .xls, .ods); all rows or
    /// none, unless --skip-invalid. Columns the ledger does not use are ignored and reported
    /// (--strict refuses them). A CSV file is read a chunk of rows at a time, whatever its
    /// size; a workbook is read whole (at most 32 MiB and 200,000 rows).
    Import(import::ImportArgs),
    /// Export every file as CSV, JSON Lines or an .xlsx workbook.
    Export(import::ExportArgs),
    /// Write the empty ledger workbook (.xlsx): Chinese headers, drop-down lists for the
    /// vocabularies and this node's risk labels.
    Template(import::TemplateArgs),
    /// Read, list and update children's files.
    #[command(subcommand)]
    Child(child::ChildCommand),
    /// Benefits over time: the review due list, the age-out run.
    #[command(subcommand)]
    Benefit(benefit::BenefitCommand),
    /// Eligibility cases: list, show, create, act.
    #[command(subcommand)]
    Case(case::CaseCommand),
    /// Visits (走访): add, amend, show, list a child's, and the due list.
    #[command(subcommand)]
    Visit(visit::VisitCommand),
    /// Mandatory reports and referrals (强制报告与转介): add, list, show.
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// The review queue of concurrent edits: list, show, resolve.
    #[command(subcommand)]
    Conflict(conflict::ConflictCommand),
    /// Accounts of the admin listener: users (admin pages) and bearer tokens (local systems).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Audit trail: verify, export, sign a tree head, show proofs.
    #[command(subcommand)]
    Audit(audit_cmd::AuditCommand),
    /// Write a new record-signing key (PKCS#8, mode 0600) and print its public key.
    Keygen {
        /// Where to write the key; refuses to overwrite.
        #[arg(long)]
        out: PathBuf,
        /// Signature suite: `ed25519`, or `sm2-sm3` (SM2 over SM3, PKCS#8 with the SM2 curve
        /// OID; its public key prints as `sm2:…`).
        #[arg(long, default_value_t = crate::crypto::keys::Suite::Ed25519)]
        suite: crate::crypto::keys::Suite,
    },
    /// Write a generated sample ledger with valid-checksum ID numbers.
    Sample {
        #[arg(long, default_value_t = 100)]
        count: usize,
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Hukou region prefix of the generated children (default: Chengdu, as `pki init`'s
        /// 510100 serves it).
        #[arg(long, default_value = "5101")]
        hukou: String,
        /// Residence region prefix.
        #[arg(long, default_value = "4101")]
        residence: String,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Development PKI: exchange CA, node certificates and keys, signed directory.
    #[command(subcommand)]
    Pki(pki::PkiCommand),
    /// Delivery state of each peer: outbox depth, lag, last success, last error.
    Peers {
        #[arg(long)]
        json: bool,
    },
    /// Which process of this node holds each lease — sending to each peer, each singleton job —
    /// and until when (several `serve` processes on one PostgreSQL database share the work by
    /// them).
    Leases {
        #[arg(long)]
        json: bool,
    },
    /// Reconcile with a peer (Merkle anti-entropy and repair), or list past runs (--list).
    Reconcile(reconcile_cmd::ReconcileArgs),
    /// Children whose file was neither updated nor visited in six months (configurable).
    Stale(reconcile_cmd::StaleArgs),
    /// Statistics for superiors: files by region, township, category, risk and worker; visits
    /// due and per month; cases by state and timeliness; stale files (`--json` for all of them).
    Stats {
        #[arg(long)]
        json: bool,
        /// A month's figures (YYYY-MM): counted at its last day, the cases decided within it.
        #[arg(long)]
        month: Option<crate::domain::Month>,
        /// Write the month's report (月报) as an .xlsx workbook, one sheet per table (the
        /// current month without --month).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Measure throughput beside the bare limits of this machine (see BENCHMARKS.md).
    Bench(bench::BenchArgs),
}

/// Entry point of the binary.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(
        cli.command,
        Command::Serve { .. } | Command::Demo(_) | Command::Bench(_)
    ) {
        quiet_on_closed_pipe();
    }
    crate::startup::install_crypto_provider();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// A command whose output is piped into a reader that stops early (`| head`) ends quietly, as
/// Unix tools do, instead of panicking on the closed pipe: SIGPIPE is given back its default
/// action. Not for the commands that run nodes (`serve`, `demo`, `bench`): a peer closing its
/// connection must never end a node (their sockets write with `MSG_NOSIGNAL` anyway).
fn quiet_on_closed_pipe() {
    // SAFETY: `signal` with a valid signal number and `SIG_DFL` only resets a disposition; it is
    // called once, at start, before any thread is spawned.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Opens an export's output file (0600; never over an existing file unless `force`).
fn open_output(path: &std::path::Path, force: bool) -> anyhow::Result<std::fs::File> {
    crate::crypto::open_private(path, force).map_err(|e| match e {
        crate::crypto::SecretFileError::AlreadyExists { path } => {
            anyhow::anyhow!("{} exists; --force replaces it", path.display())
        }
        other => other.into(),
    })
}

fn load_settings(path: Option<&std::path::Path>) -> anyhow::Result<Settings> {
    let settings = Settings::load(path)?;
    if path.is_none() {
        // Without a configuration the defaults put a database and a signing key under the
        // current directory, created on first use: say so, every time.
        eprintln!(
            "warning: no --config (or HUKOU_SYNC_CONFIG): using the defaults — database {} and \
             signing key {}, relative to the current directory, created if missing",
            crate::startup::redact_url(&settings.database.url),
            settings.node.signing_key.display()
        );
    }
    Ok(settings)
}

fn init_tracing(settings: &Settings) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.log.filter));
    // Colour only on a terminal: a log file or a journal gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match settings.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = cli.config.as_deref();
    match cli.command {
        Command::Serve { accept_restore } => {
            let mut settings = load_settings(config)?;
            settings.accept_restore = accept_restore;
            init_tracing(&settings);
            runtime()?.block_on(async {
                let app = crate::startup::Application::build(settings).await?;
                app.run_until_stopped().await?;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            let settings = load_settings(config)?;
            let store = crate::storage::Store::open(&settings.database.url, 1)?;
            println!(
                "migrations applied; database {} is current",
                crate::startup::redact_url(&settings.database.url)
            );
            drop(store);
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup(args) => backup_cmd::run_backup(&load_settings(config)?, args),
        Command::Restore(args) => backup_cmd::run_restore(&load_settings(config)?, args),
        Command::Demo(args) => demo::run(args),
        Command::Import(args) => import::run_import(&load_settings(config)?, args),
        Command::Export(args) => import::run_export(&load_settings(config)?, args),
        // The template holds no data: the configuration only names the risk labels.
        Command::Template(args) => import::run_template(&Settings::load(config)?, args),
        Command::Child(cmd) => child::run(&load_settings(config)?, cmd),
        Command::Case(cmd) => case::run(&load_settings(config)?, cmd),
        Command::Benefit(cmd) => benefit::run(&load_settings(config)?, cmd),
        Command::Conflict(cmd) => conflict::run(&load_settings(config)?, cmd),
        Command::Visit(cmd) => visit::run(&load_settings(config)?, cmd),
        Command::Report(cmd) => report::run(&load_settings(config)?, cmd),
        // Checking an export needs no database: no warning about the defaults' database.
        Command::Audit(
            cmd @ audit_cmd::AuditCommand::Verify {
                export: Some(_), ..
            },
        ) => audit_cmd::run(&Settings::load(config)?, cmd),
        Command::Audit(cmd) => audit_cmd::run(&load_settings(config)?, cmd),
        Command::Admin(cmd) => admin::run(&load_settings(config)?, cmd),
        Command::Keygen { out, suite } => {
            let key = crate::crypto::keys::SigningKey::write_new_in(&out, suite)?;
            println!("wrote {} (mode 0600, {suite})", out.display());
            println!("public key: {}", key.public_key());
            println!("fingerprint: {}", key.public_key().fingerprint());
            Ok(ExitCode::SUCCESS)
        }
        Command::Sample {
            count,
            seed,
            hukou,
            residence,
            out,
        } => {
            match out {
                Some(path) => {
                    let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
                    crate::ledger_file::sample::write_ledger(
                        &mut f, count, seed, &hukou, &residence,
                    )?;
                    eprintln!("wrote {count} children to {}", path.display());
                }
                None => crate::ledger_file::sample::write_ledger(
                    &mut std::io::stdout().lock(),
                    count,
                    seed,
                    &hukou,
                    &residence,
                )?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(args) => bench::run(args),
        Command::Reconcile(args) => {
            let settings = load_settings(config)?;
            init_tracing(&settings);
            reconcile_cmd::run_reconcile(&settings, args)
        }
        Command::Stale(args) => reconcile_cmd::run_stale(&load_settings(config)?, args),
        Command::Stats { json, month, out } => {
            stats_cmd::run(&load_settings(config)?, json, month, out)
        }
        Command::Pki(cmd) => pki::run(cmd),
        Command::Leases { json } => {
            let settings = load_settings(config)?;
            let store = crate::storage::Store::open(&settings.database.url, 1)?;
            let mut conn = store.conn()?;
            let now = crate::storage::leases::db_now(&mut conn)?;
            let list = crate::storage::leases::list(&mut conn)?;
            if json {
                let items: Vec<serde_json::Value> = list
                    .iter()
                    .map(|l| {
                        serde_json::json!({
                            "name": l.name, "holder": l.holder, "fence": l.fence,
                            "expires_at": l.expires_at.and_utc(), "held": l.expires_at > now,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else if list.is_empty() {
                println!("no leases taken yet (the node has not served)");
            } else {
                for l in &list {
                    let left = (l.expires_at - now).num_seconds();
                    println!(
                        "{:<24} {:<40} fence {:>4}  {}",
                        l.name,
                        l.holder,
                        l.fence,
                        if left > 0 {
                            format!("held, {left} s left")
                        } else {
                            "free (expired or released)".into()
                        }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Peers { json } => {
            let settings = load_settings(config)?;
            let (store, node) = crate::startup::open_node_blocking(&settings)?;
            let list = crate::sync::sender::peer_statuses(&mut *store.conn()?, &node)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no peers (this node has no directory)");
            } else {
                for p in &list {
                    println!(
                        "{:<12} queued {:>6}  lag {:>5}s  delivered {:>8}  refused {:>4}  last ok {}  {}",
                        p.peer,
                        p.outbox_depth,
                        p.lag_seconds.unwrap_or(0),
                        p.delivered,
                        p.rejected,
                        p.last_success_at.map_or("never".into(), shown),
                        // An error older than the last success is history, not the state.
                        match (&p.last_error, p.last_error_at, p.last_success_at) {
                            (Some(e), Some(at), ok) if ok.map_or(true, |ok| at > ok) =>
                                format!("last error ({}): {e}", shown(at)),
                            _ => String::new(),
                        }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A progress bar on standard error, hidden for `--json` or when standard error is not a terminal.
pub(crate) fn progress_bar(len: u64, what: &str, hidden: bool) -> indicatif::ProgressBar {
    if hidden {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template(
        "{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    pb.set_style(style);
    pb.set_message(what.to_owned());
    pb
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    /// A base64url public key may begin with `-` (one in 64 does): `--key` takes it as its value.
    #[test]
    fn a_key_beginning_with_a_hyphen_is_a_value() {
        let cli = super::Cli::try_parse_from([
            "hukou-sync",
            "audit",
            "verify",
            "--export",
            "a.jsonl",
            "--key",
            "-iX9mQ3Yb2cVn8Lk4Jw7Hs1Gd5Fa0Ze6Rt9Uo2Pq4Wk",
        ]);
        assert!(cli.is_ok(), "{:?}", cli.err());
    }
}
