//! `hukou-sync backup` and `hukou-sync restore` for an SQLite node (README, "Backups
//! (备份与恢复)"): the copy is taken online with `VACUUM INTO` (`storage::backup`), verified and
//! marked as this node's, and audited as `node.backup`; a restore checks the file, takes the
//! node's lock (refusing while the node runs), keeps the current database beside it and puts
//! the copy in place, marked so that the next start refuses until the restore is accepted.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use crate::config::Settings;
use crate::storage::backup::{self, BackupError, BackupInfo, NodeLock};

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The file to write (a new one: never overwritten).
    #[arg(long)]
    out: PathBuf,
    /// Print the result as JSON (no progress bar).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A file written by `hukou-sync backup` of this node.
    #[arg(long)]
    from: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// How long `restore` waits for a stopping node to release its lock.
const RESTORE_LOCK_WAIT: Duration = Duration::from_secs(10);

pub fn run_backup(settings: &Settings, args: BackupArgs) -> anyhow::Result<ExitCode> {
    // Refusals first, before anything is opened or written.
    let db = backup::sqlite_file(&settings.database.url)?;
    if !db.exists() {
        return Err(BackupError::NoDatabase(db).into());
    }
    backup::check_output(&args.out)?;
    let (store, node) = crate::startup::open_node_blocking(settings)?;
    let mut conn = store.conn()?;
    let total = backup::database_bytes(&mut conn)?;
    let pb = super::progress_bar(total, "backup", args.json);
    let started = Instant::now();
    // VACUUM INTO is one statement: its progress is the size of the file it writes.
    let done = std::sync::atomic::AtomicBool::new(false);
    let copied = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(m) = std::fs::metadata(&args.out) {
                    pb.set_position(m.len().min(total));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let r = backup::vacuum_into(&mut conn, &args.out);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        r
    });
    pb.finish_and_clear();
    copied?;
    let taken_at = chrono::Utc::now();
    backup::mark_backup(&args.out, node.id.as_str(), &taken_at.to_rfc3339())?;
    let info = backup::inspect(&args.out)?;
    let ms = started.elapsed().as_millis() as u64;
    crate::storage::transaction(&mut conn, |c| {
        crate::audit::append(
            c,
            node.clock.now(),
            chrono::Utc::now(),
            &crate::audit::Event::new(
                crate::audit::Actor::console(),
                "node.backup",
                crate::audit::Outcome::Ok,
            )
            .details(serde_json::json!({
                "out": args.out,
                "bytes": info.bytes,
                "audit_size": info.audit_size,
                "versions": info.versions,
                "taken_at": info.taken_at,
                "ms": ms,
            })),
        )
    })?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "out": args.out,
                "node_id": info.node_id,
                "taken_at": info.taken_at,
                "bytes": info.bytes,
                "audit_size": info.audit_size,
                "versions": info.versions,
                "ms": ms,
            }))?
        );
    } else {
        println!(
            "backup written (备份完成): {} — {} bytes, {} versions, audit log of {} events, in {} ms",
            args.out.display(),
            info.bytes,
            info.versions,
            info.audit_size,
            ms
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_restore(settings: &Settings, args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let db = backup::sqlite_file(&settings.database.url).map_err(|e| match e {
        BackupError::Postgres => anyhow::anyhow!(
            "restore puts back an SQLite node's file; this node's database is PostgreSQL: \
             restore it with PostgreSQL's own tools (pg_restore, or a base backup with \
             point-in-time recovery) and reconcile with every peer — see README, \
             \"Backups (备份与恢复)\""
        ),
        other => other.into(),
    })?;
    let info = check_backup(&args.from, settings.node.id.as_str())?;
    let lock = NodeLock::acquire(&db, RESTORE_LOCK_WAIT)?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let staged = backup::beside(&db, &format!(".restoring-{stamp}"));
    std::fs::copy(&args.from, &staged)
        .with_context(|| format!("copying {} to {}", args.from.display(), staged.display()))?;
    let about = format!(
        "{}, taken at {}",
        args.from.display(),
        info.taken_at.as_deref().unwrap_or("an unknown time")
    );
    let marked = backup::mark_restored(&staged, &about, chrono::Utc::now().naive_utc())
        .and_then(|_| backup::swap_in(&db, &staged, &stamp));
    let kept = match marked {
        Ok(kept) => kept,
        Err(e) => {
            let _ = std::fs::remove_file(&staged);
            return Err(e.into());
        }
    };
    drop(lock);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "from": args.from,
                "database": db,
                "previous_database": kept,
                "taken_at": info.taken_at,
                "audit_size": info.audit_size,
                "versions": info.versions,
            }))?
        );
    } else {
        println!(
            "restored (已恢复) {} in place of {}: a backup taken at {}, {} versions, audit log of {} events",
            args.from.display(),
            db.display(),
            info.taken_at.as_deref().unwrap_or("an unknown time"),
            info.versions,
            info.audit_size
        );
        if let Some(kept) = kept {
            println!("the previous database is kept as {}", kept.display());
        }
        println!(
            "next: `hukou-sync serve --accept-restore` (the restore is audited as \
             audit.restore_accepted), ask each peer's administrator to acknowledge the witness \
             evidence their node keeps, and reconcile with every peer to bring back the versions \
             the backup lacks"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A backup of this node, sound and of a schema this binary knows; refused otherwise.
fn check_backup(from: &Path, node: &str) -> Result<BackupInfo, BackupError> {
    if !from.is_file() {
        return Err(BackupError::NotSqlite {
            path: from.to_owned(),
            reason: "no such file".into(),
        });
    }
    let info = backup::inspect(from)?;
    match &info.node_id {
        None => Err(BackupError::NotABackup {
            path: from.to_owned(),
            reason: "it was not written by `hukou-sync backup` (no backup.node_id)".into(),
        }),
        Some(of) if of != node => Err(BackupError::OtherNode {
            path: from.to_owned(),
            of: of.clone(),
            node: node.to_owned(),
        }),
        Some(_) => Ok(info),
    }
}
