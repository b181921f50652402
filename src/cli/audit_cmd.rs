//! `hukou-sync audit verify|export|head` (and `checkpoint`, `evidence`: `cli::witness_cmd`).

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
use crate::domain::shown_time::shown;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the whole tree from the stored events and check every signed head; or, with
    /// --export, check an export file without the database. Exits 1 on any failure.
    Verify {
        #[arg(long)]
        export: Option<PathBuf>,
        /// The public key heads must be signed with (default: this node's key; for --export, the key in the file, reported).
        /// A base64url key may begin with `-`: it is taken as the value, not as an option.
        #[arg(long, allow_hyphen_values = true)]
        key: Option<String>,
        #[arg(long)]
        json: bool,
        /// With --export: the signed directory to check the export's cosignatures against
        /// (default: this node's configuration; without one they are not checked).
        #[command(flatten)]
        directory: super::witness_cmd::DirectoryArgs,
        /// With --export: witnesses that must have cosigned (default: `[audit.witness] quorum`).
        #[arg(long)]
        quorum: Option<usize>,
        /// With --export: the content hash of the exporting node's network, `sha256` or `sm3`
        /// (default: the directory's `hash`; without a directory, sha256).
        #[arg(long)]
        hash: Option<crate::crypto::hash::HashAlg>,
    },
    /// Write events [from, to) as JSON Lines with a freshly signed head and inclusion proofs.
    Export {
        #[arg(long, default_value_t = 0)]
        from: i64,
        /// Exclusive; default: all.
        #[arg(long)]
        to: Option<i64>,
        /// Written with mode 0600 (events name children by ID number).
        #[arg(long)]
        out: PathBuf,
        /// Replace an existing output file (refused otherwise).
        #[arg(long)]
        force: bool,
        /// Why the log leaves the system (required); the export is itself audited.
        #[arg(long)]
        purpose: String,
    },
    /// Sign a tree head for the current size now and print it.
    Head {
        #[arg(long)]
        json: bool,
    },
    /// Print this node's latest checkpoint (C2SP signed note) with the cosignatures its
    /// witnesses gave it; `audit checkpoint verify FILE` checks one offline.
    #[command(args_conflicts_with_subcommands = true)]
    Checkpoint {
        #[command(subcommand)]
        action: Option<super::witness_cmd::CheckpointAction>,
        /// The largest checkpoint a witness cosigned, instead of the latest.
        #[arg(long)]
        cosigned: bool,
    },
    /// Evidence that a peer's log equivocated, rolled back or could not prove consistency.
    Evidence {
        #[command(subcommand)]
        action: super::witness_cmd::EvidenceAction,
    },
}

pub fn run(settings: &Settings, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    use super::witness_cmd::{self, CheckpointAction};
    match cmd {
        AuditCommand::Checkpoint {
            action: None,
            cosigned,
        } => witness_cmd::print_checkpoint(settings, cosigned),
        AuditCommand::Checkpoint {
            action:
                Some(CheckpointAction::Verify {
                    file,
                    directory,
                    quorum,
                }),
            ..
        } => witness_cmd::verify_checkpoint(settings, &file, &directory, quorum),
        AuditCommand::Evidence { action } => witness_cmd::evidence(settings, action),
        AuditCommand::Verify {
            export: Some(path),
            key,
            json,
            directory,
            quorum,
            hash,
        } => {
            let in_file = export_key(&path)?;
            let key = match key {
                Some(k) => Some(trusted_key(&k, in_file.as_ref())?),
                None => {
                    // Nothing to compare with: the file vouches for itself. Say which key that
                    // was, so it can be checked against the node's published one.
                    if let Some(k) = &in_file {
                        eprintln!(
                            "warning: no --key: trusting the key the export names, {} ({k}); \
                             compare it with the node's key (`hukou-sync audit head` there, or \
                             the node's signing keys in the directory)",
                            k.fingerprint()
                        );
                    }
                    None
                }
            };
            let f = std::fs::File::open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            let dir = directory.load_if_any(settings)?;
            if dir.is_none() {
                eprintln!(
                    "warning: no directory (--directory and --authority, or [directory] in the \
                     configuration): the export's cosignatures are not checked"
                );
            }
            let keys_of = |n: &crate::domain::NodeId| {
                dir.as_ref().map(|d| d.note_keys(n)).unwrap_or_default()
            };
            let policy = dir.as_ref().map(|_| verify::WitnessPolicy {
                keys_of: &keys_of,
                quorum: quorum.unwrap_or(settings.audit.witness.quorum),
            });
            let alg = hash
                .or_else(|| dir.as_ref().map(|d| d.hash()))
                .unwrap_or_default();
            let report = verify::verify_export_witnessed(
                &mut BufReader::new(f),
                alg,
                key.as_ref(),
                policy.as_ref(),
            );
            Ok(print_report(&report, json))
        }
        AuditCommand::Verify {
            export: None,
            key,
            json,
            ..
        } => {
            let (store, node) = crate::startup::open_node_blocking(settings)?;
            let own = node.key.public_key();
            let key = match key {
                Some(k) => trusted_key(&k, Some(&own))?,
                None => own,
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
        AuditCommand::Export {
            from,
            to,
            out,
            force,
            purpose,
        } => {
            let (store, node) = crate::startup::open_node_blocking(settings)?;
            let mut conn = store.conn()?;
            let head = log::sign_tree_head(&mut conn, &node.key, Utc::now())?;
            // The largest checkpoint witnesses cosigned travels with the export.
            let witnessed = match crate::sync::witness::checkpoint_with_cosignatures(
                &mut conn,
                &node,
                crate::sync::witness::WhichCheckpoint::Cosigned,
            ) {
                Ok((_, note, n)) if n > 0 => Some(note),
                Ok(_) | Err(crate::audit::AuditError::NoTreeHead) => None,
                Err(e) => return Err(e.into()),
            };
            let mut w = std::io::BufWriter::new(super::open_output(&out, force)?);
            let pb = super::progress_bar(0, "exporting", false);
            let n = verify::export_witnessed(
                &mut conn,
                &head,
                from,
                to.unwrap_or(head.size as i64),
                witnessed.as_ref(),
                &mut w,
                &mut |d, t| {
                    pb.set_length(t);
                    pb.set_position(d);
                },
            )?;
            pb.finish_and_clear();
            std::io::Write::flush(&mut w)?;
            // The export itself is an event: who took which range of the log, and why.
            crate::storage::transaction(&mut conn, |c| {
                crate::audit::append(
                    c,
                    node.clock.now(),
                    Utc::now(),
                    &crate::audit::Event::new(
                        crate::audit::Actor::console(),
                        "audit.export",
                        crate::audit::Outcome::Ok,
                    )
                    .purpose(Some(purpose.as_str()))
                    .details(serde_json::json!({
                        "from": from, "to": to.unwrap_or(head.size as i64), "events": n,
                        "tree_size": head.size,
                    })),
                )
            })?;
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
                    "size {}  root {}  at {}  key {} ({})",
                    head.size,
                    head.root,
                    shown(head.timestamp),
                    head.public_key.fingerprint(),
                    head.public_key
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
        if let Some(size) = report.witnessed_size {
            println!(
                "witnessed: the events below {size} were cosigned by {}",
                report.cosigned_by.join(", ")
            );
        }
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

/// The key an export's tree head names (its first line), if the file starts with one.
fn export_key(path: &std::path::Path) -> anyhow::Result<Option<PublicKey>> {
    use std::io::BufRead;
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    for line in BufReader::new(f).lines() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        return Ok(match serde_json::from_str::<verify::ExportLine>(&line) {
            Ok(verify::ExportLine::TreeHead(h)) => Some(h.public_key),
            // Not a head first: the verification reports it.
            _ => None,
        });
    }
    Ok(None)
}

/// `--key`: a public key (43 base64url characters), or its 16-hex-digit id as `audit head` and
/// the directory print it, which must then be the id of `known` (the export's or this node's
/// key) — an id alone cannot be checked against anything else.
fn trusted_key(given: &str, known: Option<&PublicKey>) -> anyhow::Result<PublicKey> {
    let given = given.trim();
    let is_id = given.len() == 16
        && given
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !is_id {
        return given.parse::<PublicKey>().map_err(|e| {
            anyhow::anyhow!("--key: {e} (give the 43-character key or its 16-hex-digit id)")
        });
    }
    match known {
        Some(k) if k.fingerprint() == given => Ok(*k),
        Some(k) => anyhow::bail!(
            "--key: {given} is not the id of the key that signed this log ({}, {k})",
            k.fingerprint()
        ),
        None => anyhow::bail!("--key: {given} is a key id, and the file names no key to match it"),
    }
}
