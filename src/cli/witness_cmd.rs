//! `hukou-sync audit checkpoint [verify FILE]` and `hukou-sync audit evidence
//! list|show|verify|ack`: this node's checkpoints and their cosignatures, and the evidence its
//! witnessing found against peers. Verification is offline: a file and the signed directory.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Subcommand;

use crate::audit::checkpoint::{self, Checkpoint, Note};
use crate::audit::merkle;
use crate::audit::witness::Evidence;
use crate::config::Settings;
use crate::crypto::keys::PublicKey;
use crate::directory::Directory;
use crate::domain::shown_time::shown;
use crate::domain::NodeId;
use crate::sync::witness::{self, note_keys};

/// Largest checkpoint or evidence file read.
const MAX_FILE: u64 = 256 * 1024;

#[derive(Debug, Subcommand)]
pub enum CheckpointAction {
    /// Check a checkpoint file offline: the log's signature and each witness's cosignature,
    /// with the keys of the signed directory. Exits 1 if the log's signature does not verify
    /// or fewer witnesses than the quorum cosigned it.
    Verify {
        file: PathBuf,
        #[command(flatten)]
        directory: DirectoryArgs,
        /// Witnesses that must have cosigned (default: `[audit.witness] quorum`).
        #[arg(long)]
        quorum: Option<usize>,
    },
}

#[derive(Debug, Subcommand)]
pub enum EvidenceAction {
    /// Evidence against peers (open first; --all includes acknowledged).
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Write one piece of evidence (by id, or a unique prefix of it) as its JSON document.
    Show { id: String },
    /// Check an evidence file offline with the signed directory: both checkpoints signed by the
    /// accused node's key and showing what the evidence says. Exits 1 if not.
    Verify {
        file: PathBuf,
        #[command(flatten)]
        directory: DirectoryArgs,
    },
    /// Acknowledge the evidence against a peer (an administrator's decision, audited): this
    /// node cosigns for it again, starting over from its next checkpoint.
    Ack {
        peer: String,
        /// Why (e.g. "restored from the 2026-12-01 backup, ticket 4411"); audited.
        #[arg(long)]
        reason: String,
    },
}

/// Where the directory comes from (default: this node's configuration).
#[derive(Debug, clap::Args)]
pub struct DirectoryArgs {
    /// The signed directory file.
    #[arg(long)]
    directory: Option<PathBuf>,
    /// The directory authority's public key (base64url).
    #[arg(long)]
    authority: Option<String>,
}

impl DirectoryArgs {
    /// The directory when one is given or configured; `None` when neither.
    pub fn load_if_any(&self, settings: &Settings) -> anyhow::Result<Option<Directory>> {
        if self.directory.is_none() && settings.directory.is_none() {
            return Ok(None);
        }
        self.load(settings).map(Some)
    }

    fn load(&self, settings: &Settings) -> anyhow::Result<Directory> {
        let configured = settings.directory.as_ref();
        let path = self
            .directory
            .clone()
            .or_else(|| configured.map(|d| d.path.clone()))
            .context("no directory: give --directory and --authority, or a configuration with [directory]")?;
        let authority = self
            .authority
            .clone()
            .or_else(|| configured.map(|d| d.authority_key.clone()))
            .context("no directory authority key: give --authority")?;
        let authority: PublicKey = authority
            .parse()
            .map_err(|e| anyhow::anyhow!("--authority: {e}"))?;
        Directory::load_for_verification(&path, &authority)
            .with_context(|| format!("loading the directory {}", path.display()))
    }
}

fn read_small(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut bytes = Vec::new();
    f.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE {
        anyhow::bail!("{} is larger than {MAX_FILE} bytes", path.display());
    }
    Ok(bytes)
}

/// `audit checkpoint`: prints the latest checkpoint (or the latest cosigned one) with its
/// cosignatures.
pub fn print_checkpoint(settings: &Settings, cosigned: bool) -> anyhow::Result<ExitCode> {
    let (store, node) = crate::startup::open_node_blocking(settings)?;
    let mut conn = store.conn()?;
    let which = if cosigned {
        witness::WhichCheckpoint::Cosigned
    } else {
        witness::WhichCheckpoint::SignedNow
    };
    let (_, note, n) =
        witness::checkpoint_with_cosignatures(&mut conn, &node, which).context(if cosigned {
            "no witness has cosigned a checkpoint of this log yet"
        } else {
            "cannot sign a checkpoint"
        })?;
    print!("{note}");
    eprintln!(
        "{n} cosignature(s); log key {}",
        checkpoint::log_vkey(&checkpoint::name_of(&node.id), &node.key.public_key())
    );
    Ok(ExitCode::SUCCESS)
}

pub fn verify_checkpoint(
    settings: &Settings,
    file: &Path,
    directory: &DirectoryArgs,
    quorum: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let dir = directory.load(settings)?;
    let bytes = read_small(file)?;
    let note = Note::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let cp =
        Checkpoint::parse(&note.text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let Some(log) = checkpoint::node_of_name(&cp.origin).filter(|n| dir.node(n).is_some()) else {
        println!(
            "FAILED: the origin {} is no node of the directory",
            cp.origin
        );
        return Ok(ExitCode::from(1));
    };
    println!(
        "checkpoint of {log}: size {}, root {}{}",
        cp.size,
        merkle::to_hex(&cp.root),
        cp.timestamp
            .map(|t| format!(", signed {}", shown(t)))
            .unwrap_or_default()
    );
    if !note.signed_by(&cp.origin, &note_keys(&dir, &log)) {
        println!("FAILED: no key of {log} in the directory signed it");
        return Ok(ExitCode::from(1));
    }
    println!("ok: signed by {log}");
    let cosigned = checkpoint::cosigners(&note, &log, |n| dir.note_keys(n));
    for (w, t) in &cosigned {
        let at = DateTime::<Utc>::from_timestamp(*t as i64, 0)
            .map(shown)
            .unwrap_or_else(|| t.to_string());
        println!("ok: cosigned by {w} at {at}");
    }
    let quorum = quorum.unwrap_or(settings.audit.witness.quorum);
    if cosigned.len() < quorum {
        println!(
            "FAILED: {} witness(es) cosigned it; the quorum is {quorum}",
            cosigned.len()
        );
        return Ok(ExitCode::from(1));
    }
    println!(
        "witnessed: {} of the quorum of {quorum} cosigned it",
        cosigned.len()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn evidence(settings: &Settings, action: EvidenceAction) -> anyhow::Result<ExitCode> {
    match action {
        EvidenceAction::Verify { file, directory } => {
            let dir = directory.load(settings)?;
            let bytes = read_small(&file)?;
            let ev: Evidence = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not witness evidence", file.display()))?;
            let keys = note_keys(&dir, &ev.log);
            if keys.is_empty() {
                println!("FAILED: {} has no key in the directory", ev.log);
                return Ok(ExitCode::from(1));
            }
            match ev.verify(dir.hash(), &keys) {
                Ok(f) => {
                    println!(
                        "ok: {} evidence against {}, witnessed by {} at {}",
                        f.kind.as_str(),
                        ev.log,
                        ev.witness,
                        shown(ev.detected_at)
                    );
                    println!(
                        "  held:     size {} root {}",
                        f.held.size,
                        merkle::to_hex(&f.held.root)
                    );
                    println!(
                        "  received: size {} root {}",
                        f.received.size,
                        merkle::to_hex(&f.received.root)
                    );
                    println!(
                        "  {}{}",
                        f.summary,
                        if f.conclusive {
                            " (proof on its own)"
                        } else {
                            ""
                        }
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!("FAILED: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        EvidenceAction::List { all, json } => {
            let (store, _) = crate::startup::open_node_blocking(settings)?;
            let mut conn = store.conn()?;
            let rows = crate::storage::witness::evidence(&mut conn, None, !all)?;
            if json {
                let items: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "id": r.id, "peer": r.peer, "kind": r.kind,
                            "detected_at": r.detected_at.and_utc(),
                            "acknowledged_at": r.acknowledged_at.map(|t| t.and_utc()),
                            "acknowledged_by": r.acknowledged_by,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else if rows.is_empty() {
                println!("no evidence{}", if all { "" } else { " open" });
            } else {
                for r in &rows {
                    println!(
                        "{}  {}  {}  {}{}",
                        &r.id[..16.min(r.id.len())],
                        r.peer,
                        r.kind,
                        shown(r.detected_at.and_utc()),
                        match (&r.acknowledged_at, &r.acknowledged_by) {
                            (Some(t), Some(by)) =>
                                format!("  acknowledged by {by} at {}", shown(t.and_utc())),
                            _ => "  OPEN: cosigning stopped".into(),
                        }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        EvidenceAction::Show { id } => {
            let (store, _) = crate::startup::open_node_blocking(settings)?;
            let mut conn = store.conn()?;
            let rows = crate::storage::witness::evidence(&mut conn, None, false)?;
            let found: Vec<_> = rows.iter().filter(|r| r.id.starts_with(&id)).collect();
            match found.as_slice() {
                [one] => {
                    println!("{}", one.document);
                    Ok(ExitCode::SUCCESS)
                }
                [] => anyhow::bail!("no evidence {id}"),
                _ => anyhow::bail!("{id} is the start of several evidence ids; give more of it"),
            }
        }
        EvidenceAction::Ack { peer, reason } => {
            let peer = NodeId::parse(&peer).map_err(|e| anyhow::anyhow!("{peer}: {e}"))?;
            if reason.trim().is_empty() {
                anyhow::bail!("--reason: say why the evidence is acknowledged");
            }
            let (store, node) = crate::startup::open_node_blocking(settings)?;
            let mut conn = store.conn()?;
            let n = witness::acknowledge(
                &mut conn,
                &node,
                &peer,
                &crate::audit::Actor::console(),
                reason.trim(),
                Utc::now(),
            )?;
            if n == 0 {
                println!("no open evidence against {peer}");
            } else {
                println!(
                    "acknowledged {n} piece(s) of evidence against {peer}; this node cosigns its next checkpoint afresh"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
