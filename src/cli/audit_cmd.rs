//! `hukou-sync audit verify|export|head`.

use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use clap::Subcommand;

use crate::audit::log;
use crate::audit::verify::{self, VerifyReport};
use crate::config::Settings;
use crate::crypto::keys::PublicKey;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the whole tree from the stored events and check every signed head; or, with
    /// --export, check an export file without the database. Exits 1 on any failure.
    Verify {
        #[arg(long)]
        export: Option<PathBuf>,
        /// The public key heads must be signed with (default: this node's key; for --export, the key in the file, reported).
        #[arg(long)]
        key: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Write events [from, to) as JSON Lines with a freshly signed head and inclusion proofs.
    Export {
        #[arg(long, default_value_t = 0)]
        from: i64,
        /// Exclusive; default: all.
        #[arg(long)]
        to: Option<i64>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a tree head for the current size now and print it.
    Head {
        #[arg(long)]
        json: bool,
    },
}

pub fn run(settings: &Settings, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify {
            export: Some(path),
            key,
            json,
        } => {
            let key = key
                .map(|k| k.parse::<PublicKey>())
                .transpose()
                .map_err(|e| anyhow::anyhow!("--key: {e}"))?;
            let f = std::fs::File::open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            let report = verify::verify_export(&mut BufReader::new(f), key.as_ref());
            Ok(print_report(&report, json))
        }
        AuditCommand::Verify {
            export: None,
            key,
            json,
        } => {
            let (store, node) = crate::startup::open_node_blocking(settings)?;
            let key = match key {
                Some(k) => k
                    .parse::<PublicKey>()
                    .map_err(|e| anyhow::anyhow!("--key: {e}"))?,
                None => node.key.public_key(),
            };
            let mut conn = store.conn()?;
            let pb = super::progress_bar(0, "verifying", json);
            let report = verify::verify_database(&mut conn, Some(&key), &mut |done, total| {
                pb.set_length(total);
                pb.set_position(done);
            })?;
            pb.finish_and_clear();
            Ok(print_report(&report, json))
        }
        AuditCommand::Export { from, to, out } => {
            let (store, node) = crate::startup::open_node_blocking(settings)?;
            let mut conn = store.conn()?;
            let head = log::sign_tree_head(&mut conn, &node.key, Utc::now())?;
            let mut w = std::io::BufWriter::new(
                std::fs::File::create(&out)
                    .with_context(|| format!("cannot write {}", out.display()))?,
            );
            let pb = super::progress_bar(0, "exporting", false);
            let n = verify::export(
                &mut conn,
                &head,
                from,
                to.unwrap_or(head.size as i64),
                &mut w,
                &mut |d, t| {
                    pb.set_length(t);
                    pb.set_position(d);
                },
            )?;
            pb.finish_and_clear();
            std::io::Write::flush(&mut w)?;
            println!(
                "exported {n} events with proofs against the head of size {} to {}",
                head.size,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Head { json } => {
            let (store, node) = crate::startup::open_node_blocking(settings)?;
            let mut conn = store.conn()?;
            let head = log::sign_tree_head(&mut conn, &node.key, Utc::now())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&head)?);
            } else {
                println!(
                    "size {}  root {}  at {}  key {}",
                    head.size,
                    head.root,
                    head.timestamp,
                    head.public_key.fingerprint()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_report(report: &VerifyReport, json: bool) -> ExitCode {
    if json {
        match serde_json::to_string_pretty(report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: could not write the report as JSON: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else if report.ok() {
        println!(
            "ok: {} events, {} signed tree heads, {} consistency proofs verified",
            report.events, report.tree_heads, report.consistency_proofs
        );
    } else {
        match report.first_bad_seq {
            Some(seq) => println!("FAILED: first bad event is sequence number {seq}"),
            None => println!("FAILED"),
        }
        for p in &report.problems {
            println!("  - {p}");
        }
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
