//! `hukou-sync reconcile` (run a reconciliation with a peer, or list past reports) and
//! `hukou-sync stale` (files not refreshed within the six-month window).
//!
//! A run from the CLI is a separate process beside the server, on the same database: the run
//! lock in the database keeps it from overlapping a scheduled or API run, and it delivers its
//! repairs itself, so it also works while the server is stopped (versions asked of the peer then
//! stay queued there and are reported as pending).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::audit::Actor;
use crate::config::Settings;
use crate::domain::shown_time::shown;
use crate::reconcile::run::{Progress, Stage};
use crate::reconcile::{ReconcileError, RunOptions, RunStatus, StartedBy};

#[derive(Debug, clap::Args)]
pub struct ReconcileArgs {
    /// The peer's node id, as in the directory (e.g. 510100).
    #[arg(long, required_unless_present = "list")]
    peer: Option<String>,
    /// Compare and report; repair nothing.
    #[arg(long)]
    dry_run: bool,
    /// List past runs and their reports instead (of --peer, if given).
    #[arg(long)]
    list: bool,
    /// How many past runs to list.
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct StaleArgs {
    /// Window in days (default: records.stale_after_days, 183).
    #[arg(long)]
    days: Option<u32>,
    /// Only children with a region under this prefix (2, 4 or 6 digits), or naming this
    /// township (9 digits).
    #[arg(long)]
    region: Option<String>,
    /// Why the list is read (recorded in the audit trail).
    #[arg(long)]
    purpose: Option<String>,
    /// JSON output, with full ID numbers (the human output masks them).
    #[arg(long)]
    json: bool,
}

pub fn run_reconcile(settings: &Settings, args: ReconcileArgs) -> anyhow::Result<ExitCode> {
    let (store, node) = crate::startup::open_node_blocking(settings)?;
    if args.list {
        let mut conn = store.conn()?;
        let rows = crate::reconcile::history::list(
            &mut conn,
            args.peer.as_deref(),
            None,
            i64::from(args.limit.clamp(1, 1000)),
        )?;
        let reports: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id, "peer": r.peer, "status": r.status, "started_by": r.started_by,
                    "dry_run": r.dry_run, "started_at": r.started_at,
                    "finished_at": r.finished_at, "differences": r.differences,
                    // A run without a report (running, or interrupted) shows `{}` as before.
                    "report": r.report.as_ref().map_or_else(
                        || serde_json::json!({}),
                        |report| serde_json::json!(report)
                    ),
                })
            })
            .collect();
        if args.json {
            println!("{}", serde_json::to_string_pretty(&reports)?);
        } else if rows.is_empty() {
            println!("no reconciliation runs yet");
        } else {
            for r in &rows {
                println!(
                    "{}  {:<10} {:<11} {:<8} differences {:>6}{}  {}",
                    shown(r.started_at),
                    r.peer,
                    r.status.as_str(),
                    r.started_by,
                    r.differences,
                    if r.dry_run { " (dry run)" } else { "" },
                    r.id
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let peer = args.peer.unwrap_or_default();
    let reconciler = crate::startup::reconciler(settings, store, node)?.ok_or_else(|| {
        anyhow::anyhow!(
            "this node has no [peer] and [directory] settings: it exchanges with nobody"
        )
    })?;
    // Name the peer problem before anything else runs.
    reconciler.check_peer(&peer).map_err(explain)?;
    let opts = RunOptions {
        dry_run: args.dry_run,
        started_by: StartedBy::Cli,
        actor: Actor::console(),
    };
    let pb = super::progress_bar(0, "summary", args.json);
    let bar = pb.clone();
    let progress = Arc::new(move |p: Progress| {
        let what = match p.stage {
            Stage::Summary => "summary",
            Stage::Compare => "comparing",
            Stage::Repair => "repairing",
            Stage::Waiting => "receiving",
        };
        bar.set_message(what);
        bar.set_length(p.total);
        bar.set_position(p.done);
    });
    let report = super::runtime()?
        .block_on(async { reconciler.run(&peer, opts, progress).await })
        .map_err(explain)?;
    pb.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(if report.status == RunStatus::Ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn explain(e: ReconcileError) -> anyhow::Error {
    match e {
        ReconcileError::UnknownPeer(p) => anyhow::anyhow!(
            "unknown peer {p:?}: it is not a node in the directory (see `hukou-sync peers`)"
        ),
        other => anyhow::Error::new(other),
    }
}

pub fn run_stale(settings: &Settings, args: StaleArgs) -> anyhow::Result<ExitCode> {
    let days = args.days.unwrap_or(settings.records.stale_after_days);
    anyhow::ensure!((1..=36_500).contains(&days), "--days: between 1 and 36500");
    if let Some(r) = &args.region {
        crate::domain::division::check_region_or_township(r)
            .map_err(|e| anyhow::anyhow!("--region {r:?}: {e}"))?;
    }
    let (store, node) = crate::startup::open_node_blocking(settings)?;
    let mut conn = store.conn()?;
    let list = crate::reconcile::stale::read_list(
        &mut conn,
        &node,
        days,
        args.region.as_deref(),
        &Actor::console(),
        args.purpose.as_deref(),
        chrono::Utc::now(),
    )
    .context("listing stale files")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} files not updated or visited in {days} days (since {}):",
        list.total,
        list.cutoff.format("%Y-%m-%d")
    );
    for (region, n) in &list.per_region {
        println!("  {region}  {n}");
    }
    if !list.files.is_empty() {
        println!(
            "\n{:<20} {:<8} {:<12} last visit",
            "ID (masked)", "region", "updated"
        );
        for f in &list.files {
            println!(
                "{:<20} {:<8} {:<12} {}",
                f.id_masked,
                f.region,
                f.updated_at.format("%Y-%m-%d"),
                f.last_visit_on
                    .map_or_else(|| "never".to_owned(), |d| d.to_string())
            );
        }
        println!("\n(ID numbers are masked; --json lists them in full)");
    }
    Ok(ExitCode::SUCCESS)
}
