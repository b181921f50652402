//! Backups of an SQLite node (README, "Backups (备份与恢复)"): the SQL that copies, inspects and
//! marks a node's database file, and the lock that says a node is serving from it.
//!
//! Why `VACUUM INTO`: it reads the whole database inside one read transaction, so in WAL mode
//! the copy is the database as of one commit while the node keeps writing beside it (writers
//! append to the WAL, the reader keeps its snapshot) — a consistent online copy without stopping
//! the node, and a compact file. Copying the file with `cp` while the node runs is not: the WAL
//! holds commits the main file does not yet have.
//!
//! A copy is marked as a backup *of one node* (`node_meta`: `backup.node_id`, `backup.taken_at`,
//! `backup.audit_size`) so that `restore` refuses another node's file. A restored database
//! carries a mark in `audit_self_check` (name `restored`) that the start-up self check turns
//! into a finding: the node refuses to serve until an administrator accepts the restore
//! (`serve --accept-restore`), because its peers may have cosigned later checkpoints of its
//! audit log and any event it appends now forks from what they saw.
//!
//! PostgreSQL nodes are backed up with PostgreSQL's own tools (`pg_basebackup` with WAL
//! archiving, or `pg_dump`); nothing here applies to them.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel::SqliteConnection;
use diesel_migrations::MigrationHarness;

use super::{Backend, DatabaseUrl, DbConn, StorageError};

/// The first 16 bytes of every SQLite 3 database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// The name of the restore mark in `audit_self_check`.
const RESTORED: &str = "restored";

/// What goes wrong around a backup or a restore.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("the database is PostgreSQL: back it up with PostgreSQL's own tools — `pg_basebackup` (with WAL archiving for point-in-time recovery) or `pg_dump` — see README, \"Backups (备份与恢复)\"")]
    Postgres,
    #[error("{0} exists: a backup never overwrites a file; name a new one")]
    OutputExists(PathBuf),
    #[error("cannot write {path}: {source}")]
    NotWritable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the node's database {0} does not exist")]
    NoDatabase(PathBuf),
    #[error("{path} is not an SQLite database: {reason}")]
    NotSqlite { path: PathBuf, reason: String },
    #[error("{path} is not a hukou-sync backup: {reason}")]
    NotABackup { path: PathBuf, reason: String },
    #[error("{path} is a backup of node {of}, not of this node {node}")]
    OtherNode {
        path: PathBuf,
        of: String,
        node: String,
    },
    #[error("{path} was written by a newer hukou-sync: it has migrations this binary does not know ({unknown})")]
    NewerSchema { path: PathBuf, unknown: String },
    #[error("the node is running: another process holds {0} (stop `hukou-sync serve` first)")]
    Running(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<diesel::result::Error> for BackupError {
    fn from(e: diesel::result::Error) -> Self {
        BackupError::Storage(e.into())
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The database file of an SQLite URL; [`BackupError::Postgres`] for PostgreSQL.
pub fn sqlite_file(url: &str) -> Result<PathBuf, BackupError> {
    let url = DatabaseUrl::parse(url)?;
    match url.backend {
        Backend::Sqlite => Ok(PathBuf::from(url.target)),
        Backend::Postgres => Err(BackupError::Postgres),
    }
}

/// `<database>` + `suffix`, beside the database (`-wal`, `.lock`, …).
pub fn beside(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// An exclusive advisory lock on `<database>.lock`, held by `serve` for as long as it runs and
/// by `restore` while it replaces the file: one process serves an SQLite node, and nobody
/// swaps its database under it. Released when dropped (or when the process dies).
#[derive(Debug)]
pub struct NodeLock {
    /// The open lock file; the lock lives as long as this descriptor.
    _file: File,
}

impl NodeLock {
    /// Takes the lock, trying for up to `wait` (a node that is stopping releases it shortly).
    pub fn acquire(db: &Path, wait: Duration) -> Result<Self, BackupError> {
        let path = beside(db, ".lock");
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        let started = Instant::now();
        loop {
            match try_lock(&file) {
                Ok(true) => return Ok(Self { _file: file }),
                Ok(false) if started.elapsed() < wait => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Ok(false) => return Err(BackupError::Running(path)),
                Err(e) => return Err(io(&path)(e)),
            }
        }
    }
}

/// `flock(LOCK_EX | LOCK_NB)` on the file: whether it was taken (false: another holder). The
/// lock belongs to the open file description and goes with it (`File::try_lock` does the same
/// from Rust 1.89, above this crate's MSRV).
fn try_lock(file: &File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: `flock` takes a descriptor this `File` owns and keeps open for the call, and two
    // plain flags; it touches no memory of ours.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Refuses an output that exists or cannot be written, without leaving anything behind.
pub fn check_output(out: &Path) -> Result<(), BackupError> {
    if out.symlink_metadata().is_ok() {
        return Err(BackupError::OutputExists(out.to_owned()));
    }
    let probe = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .map_err(|source| BackupError::NotWritable {
            path: out.to_owned(),
            source,
        })?;
    drop(probe);
    std::fs::remove_file(out).map_err(io(out))
}

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    text: String,
}

/// The size of the database in bytes (pages in use × page size), for progress.
pub fn database_bytes(conn: &mut DbConn) -> Result<u64, StorageError> {
    let DbConn::Sqlite(c) = conn else {
        return Ok(0);
    };
    let rows: Vec<Number> = diesel::sql_query(
        "SELECT page_count * page_size AS n FROM pragma_page_count(), pragma_page_size()",
    )
    .load(c)?;
    Ok(rows.first().map_or(0, |r| r.n.max(0) as u64))
}

/// Writes a consistent copy of the database to `out` (which must not exist) with `VACUUM INTO`.
pub fn vacuum_into(conn: &mut DbConn, out: &Path) -> Result<(), BackupError> {
    let DbConn::Sqlite(c) = conn else {
        return Err(BackupError::Postgres);
    };
    diesel::sql_query("VACUUM INTO ?")
        .bind::<Text, _>(out.to_string_lossy().into_owned())
        .execute(c)?;
    Ok(())
}

/// What a backup file says about itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupInfo {
    /// The node it is a backup of (`None`: a database not made by `backup`).
    pub node_id: Option<String>,
    /// When the copy was taken (UTC, RFC 3339), as `backup` recorded it.
    pub taken_at: Option<String>,
    /// Events in its audit log.
    pub audit_size: u64,
    /// Versions it holds.
    pub versions: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

/// Opens an existing SQLite file for inspection, refusing anything else; never creates one.
fn open_file(path: &Path) -> Result<SqliteConnection, BackupError> {
    let mut header = [0u8; 16];
    let read = File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header))
        .map_err(|e| BackupError::NotSqlite {
            path: path.to_owned(),
            reason: e.to_string(),
        });
    read?;
    if &header != SQLITE_HEADER {
        return Err(BackupError::NotSqlite {
            path: path.to_owned(),
            reason: "it does not begin with the SQLite 3 header".into(),
        });
    }
    let mut c = SqliteConnection::establish(&path.to_string_lossy()).map_err(|e| {
        BackupError::NotSqlite {
            path: path.to_owned(),
            reason: e.to_string(),
        }
    })?;
    c.batch_execute("PRAGMA busy_timeout = 10000;")?;
    Ok(c)
}

fn meta(c: &mut SqliteConnection, name: &str) -> Result<Option<String>, BackupError> {
    let rows: Vec<Line> = diesel::sql_query("SELECT value AS text FROM node_meta WHERE name = ?")
        .bind::<Text, _>(name)
        .load(c)?;
    Ok(rows.into_iter().next().map(|r| r.text))
}

fn count(c: &mut SqliteConnection, sql: &str) -> Result<u64, BackupError> {
    let rows: Vec<Number> = diesel::sql_query(sql).load(c)?;
    Ok(rows.first().map_or(0, |r| r.n.max(0) as u64))
}

/// Checks that `path` is a sound hukou-sync database whose migrations this binary knows, and
/// reads what it says about itself.
pub fn inspect(path: &Path) -> Result<BackupInfo, BackupError> {
    let not_backup = |reason: String| BackupError::NotABackup {
        path: path.to_owned(),
        reason,
    };
    let mut c = open_file(path)?;
    let check: Vec<Line> =
        diesel::sql_query("SELECT integrity_check AS text FROM pragma_integrity_check")
            .load(&mut c)
            .map_err(|e| BackupError::NotSqlite {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
    if check.first().map(|l| l.text.as_str()) != Some("ok") {
        return Err(not_backup(format!(
            "SQLite's integrity check fails: {}",
            check.first().map_or("", |l| l.text.as_str())
        )));
    }
    let applied = c
        .applied_migrations()
        .map_err(|e| not_backup(format!("it has no hukou-sync migrations ({e})")))?;
    if applied.is_empty() {
        return Err(not_backup("it has no hukou-sync migrations".into()));
    }
    let known: std::collections::BTreeSet<String> = diesel::migration::MigrationSource::<
        diesel::sqlite::Sqlite,
    >::migrations(&super::SQLITE_MIGRATIONS)
    .map_err(|e| BackupError::Storage(StorageError::Migration(e.to_string())))?
    .iter()
    .map(|m| m.name().version().to_string())
    .collect();
    let unknown: Vec<String> = applied
        .iter()
        .map(|v| v.to_string())
        .filter(|v| !known.contains(v))
        .collect();
    if !unknown.is_empty() {
        return Err(BackupError::NewerSchema {
            path: path.to_owned(),
            unknown: unknown.join(", "),
        });
    }
    let bytes = std::fs::metadata(path).map_err(io(path))?.len();
    Ok(BackupInfo {
        node_id: meta(&mut c, "backup.node_id")?,
        taken_at: meta(&mut c, "backup.taken_at")?,
        audit_size: count(&mut c, "SELECT COUNT(*) AS n FROM audit_events")?,
        versions: count(&mut c, "SELECT COUNT(*) AS n FROM versions")?,
        bytes,
    })
}

/// Marks a fresh copy as a backup of `node_id` taken at `taken_at`, and flushes it to disk.
pub fn mark_backup(path: &Path, node_id: &str, taken_at: &str) -> Result<(), BackupError> {
    let mut c = open_file(path)?;
    let audit_size = count(&mut c, "SELECT COUNT(*) AS n FROM audit_events")?;
    for (name, value) in [
        ("backup.node_id", node_id.to_owned()),
        ("backup.taken_at", taken_at.to_owned()),
        ("backup.audit_size", audit_size.to_string()),
    ] {
        diesel::sql_query("INSERT OR REPLACE INTO node_meta (name, value) VALUES (?, ?)")
            .bind::<Text, _>(name)
            .bind::<Text, _>(value)
            .execute(&mut c)?;
    }
    drop(c);
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path))
}

/// Marks a staged restore: the next start's self check refuses until the restore is accepted.
/// `about` says where it came from (shown in the finding and audited on acceptance).
pub fn mark_restored(
    path: &Path,
    about: &str,
    now: chrono::NaiveDateTime,
) -> Result<u64, BackupError> {
    let mut c = open_file(path)?;
    let size = count(&mut c, "SELECT COUNT(*) AS n FROM audit_events")?;
    diesel::sql_query(
        "INSERT OR REPLACE INTO audit_self_check (name, size, peaks, checked_at) VALUES (?, ?, ?, ?)",
    )
    .bind::<Text, _>(RESTORED)
    .bind::<BigInt, _>(size as i64)
    .bind::<Text, _>(about)
    .bind::<diesel::sql_types::Timestamp, _>(now)
    .execute(&mut c)?;
    drop(c);
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path))?;
    Ok(size)
}

/// The restore mark, if this database was restored and the restore not yet accepted:
/// (audit events restored, where from).
pub fn restored_mark(conn: &mut DbConn) -> Result<Option<(i64, String)>, StorageError> {
    use super::schema::audit_self_check;
    audit_self_check::table
        .find(RESTORED)
        .select((audit_self_check::size, audit_self_check::peaks))
        .first(conn)
        .optional()
        .map_err(StorageError::from)
}

/// Forgets the restore mark (the restore was accepted and audited).
pub fn clear_restored_mark(conn: &mut DbConn) -> Result<(), StorageError> {
    use super::schema::audit_self_check;
    diesel::delete(audit_self_check::table.find(RESTORED)).execute(conn)?;
    Ok(())
}

/// Puts `staged` in place of the database `db`: the current database (with its WAL and shared
/// memory files, which belong to it) is kept beside it as `<db>.before-restore-<stamp>`, never
/// deleted. Returns where it was kept, if there was one. Call with the [`NodeLock`] held.
pub fn swap_in(db: &Path, staged: &Path, stamp: &str) -> Result<Option<PathBuf>, BackupError> {
    let kept = beside(db, &format!(".before-restore-{stamp}"));
    let had = db.exists();
    for suffix in ["-wal", "-shm", "-journal"] {
        let from = beside(db, suffix);
        if from.exists() {
            let to = beside(&kept, suffix);
            std::fs::rename(&from, &to).map_err(io(&from))?;
        }
    }
    if had {
        std::fs::rename(db, &kept).map_err(io(db))?;
    }
    std::fs::rename(staged, db).map_err(io(db))?;
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(had.then_some(kept))
}
