//! Storage: the one module that names diesel. It owns the connection type over SQLite and
//! PostgreSQL, the pool, the embedded migrations, the schema and the repositories.
//!
//! The backend is chosen from the URL scheme here, never by trying each backend in turn: diesel's
//! `MultiConnection::establish` would hand any string to SQLite, which happily creates an empty
//! database file named like a mistyped PostgreSQL URL. An unknown scheme is refused instead.
//!
//! diesel is synchronous: all work runs on tokio's blocking pool through [`Store::run`], inside the
//! caller's tracing span. Writes that must be atomic with their audit event use [`transaction`],
//! which on SQLite begins `IMMEDIATE` so concurrent writers queue on the busy timeout instead of
//! failing a read-to-write upgrade.

/// Runs the same diesel expression on whichever backend `conn` is, for the statements the
/// multi-backend connection type cannot express (upserts, multi-row inserts).
macro_rules! per_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::storage::DbConn::Sqlite($c) => $body,
            $crate::storage::DbConn::Postgres($c) => $body,
        }
    };
}

/// Inserts many rows into one table: `insert_many!(conn, table, rows)` for a slice of owned
/// `Insertable` row structs, or `insert_many!(conn, table, items, |i| values)` where the closure
/// turns one item into owned column values (`column.eq(owned)`, ...).
///
/// Rows go in multi-row statements of fixed sizes — as many of 64 rows as fit, then of 16, of 4
/// and of 1 — built from arrays, so each size is one statement diesel prepares once per
/// connection and caches. (A statement over a `Vec` is prepared anew each time: parsing a
/// 200-row `INSERT` cost SQLite about as much as running it.) diesel caches by a `'static`
/// type, hence owned values. On SQLite diesel only writes multi-row `VALUES` when no value may
/// be `DEFAULT`, so every `Insertable` row struct given here carries
/// `#[diesel(treat_none_as_default_value = false)]` (`None` is bound as `NULL`); otherwise it
/// falls back to one statement per row inside a SAVEPOINT, whose statement journal copies every
/// page the batch touches.
///
/// On SQLite inside a transaction each statement is an `INSERT OR IGNORE` whose row count is
/// checked: a row refused by a key fails the call with the `UniqueViolation` a plain `INSERT`
/// would give. The caller must then roll the transaction (or its savepoint) back — the
/// statement's other rows are written — and [`transaction`] does roll back on error. The
/// reason is speed: a multi-row statement that may abort part way makes SQLite keep a
/// statement journal (a copy of each page it touches, so the statement alone can be undone),
/// which cost a fifth of an import's writer time; one that ignores conflicts, on tables whose
/// foreign keys are checked at COMMIT (migration `2026-11-24-000008_deferred_references`),
/// needs none. Outside a transaction, and on PostgreSQL, it is a plain `INSERT`.
macro_rules! insert_many {
    ($conn:expr, $table:expr, $rows:expr) => {{
        let mut rest = &$rows[..];
        insert_many!(@rows $conn, $table, rest, 64);
        insert_many!(@rows $conn, $table, rest, 16);
        insert_many!(@rows $conn, $table, rest, 4);
        insert_many!(@rows $conn, $table, rest, 1);
    }};
    ($conn:expr, $table:expr, $items:expr, |$i:ident| $value:expr) => {{
        let mut rest = &$items[..];
        insert_many!(@map $conn, $table, rest, |$i| $value, 64);
        insert_many!(@map $conn, $table, rest, |$i| $value, 16);
        insert_many!(@map $conn, $table, rest, |$i| $value, 4);
        insert_many!(@map $conn, $table, rest, |$i| $value, 1);
    }};
    (@rows $conn:expr, $table:expr, $rest:ident, $n:literal) => {
        while let Some((chunk, tail)) = $rest.split_first_chunk::<$n>() {
            use diesel::RunQueryDsl as _;
            insert_many!(@statement $conn, $table, chunk, $n);
            $rest = tail;
        }
    };
    (@map $conn:expr, $table:expr, $rest:ident, |$i:ident| $value:expr, $n:literal) => {
        while let Some((chunk, tail)) = $rest.split_first_chunk::<$n>() {
            use diesel::RunQueryDsl as _;
            let values: [_; $n] = std::array::from_fn(|k| {
                let $i = &chunk[k];
                $value
            });
            insert_many!(@statement $conn, $table, values, $n);
            $rest = tail;
        }
    };
    (@statement $conn:expr, $table:expr, $values:expr, $n:literal) => {
        match $conn {
            $crate::storage::DbConn::Sqlite(c) => {
                if $crate::storage::in_transaction(c)? {
                    let n = diesel::insert_or_ignore_into($table).values($values).execute(c)?;
                    $crate::storage::all_inserted(n, $n)?;
                } else {
                    diesel::insert_into($table).values($values).execute(c)?;
                }
            }
            $crate::storage::DbConn::Postgres(c) => {
                diesel::insert_into($table).values($values).execute(c)?;
            }
        }
    };
}

/// Whether a SQLite connection is inside a transaction (a `BEGIN` or a savepoint).
pub(crate) fn in_transaction(c: &mut SqliteConnection) -> Result<bool, StorageError> {
    Ok(AnsiTransactionManager::transaction_manager_status_mut(c)
        .transaction_depth()?
        .is_some())
}

/// An `INSERT OR IGNORE` of `rows` rows that stored only `inserted` refused a row: the same
/// error a plain `INSERT` gives, for the caller to roll the transaction back.
pub(crate) fn all_inserted(inserted: usize, rows: usize) -> Result<(), StorageError> {
    if inserted == rows {
        return Ok(());
    }
    Err(QueryError::DatabaseError(
        diesel::result::DatabaseErrorKind::UniqueViolation,
        Box::new(format!(
            "UNIQUE constraint failed: {} of {rows} rows refused \
             (a key already stored, or repeated in the statement)",
            rows - inserted
        )),
    )
    .into())
}

/// The size of the node's tables on disk, in bytes: SQLite's pages in use (the main file,
/// without its write-ahead log), or PostgreSQL's tables with their indexes and TOAST in the
/// connection's schema.
pub fn database_bytes(conn: &mut DbConn) -> Result<i64, StorageError> {
    #[derive(diesel::QueryableByName)]
    struct Bytes {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = match conn {
        DbConn::Sqlite(_) => {
            "SELECT page_count * page_size AS n FROM pragma_page_count(), pragma_page_size()"
        }
        DbConn::Postgres(_) => {
            "SELECT CAST(COALESCE(SUM(pg_total_relation_size(c.oid)), 0) AS BIGINT) AS n \
             FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace \
             WHERE s.nspname = current_schema() AND c.relkind = 'r'"
        }
    };
    Ok(diesel::RunQueryDsl::get_result::<Bytes>(diesel::sql_query(sql), conn)?.n)
}

/// Rows per chunk of the statements that take a list of values (`IN (...)`, upserts); bounded
/// by the bind parameters a statement may carry (PostgreSQL 65,535, SQLite 32,766).
pub const LIST_CHUNK: usize = 500;

/// Makes `$ty` — a PostgreSQL statement of static SQL whose `walk_ast` is written by hand, with
/// one lifetime parameter for the values it binds (`static $ty` for a unit struct that binds
/// none) — a statement diesel prepares once per
/// connection and caches. (diesel prepares a `sql_query` afresh on every call, parsed and
/// planned again by the server, because it cannot know the text is static; the statements in
/// every writing transaction should not pay that.) The SQL pushed must be the same on every
/// call: the type is the cache's key.
macro_rules! pg_cached_statement {
    // A statement that binds nothing: a unit struct.
    (static $ty:ident) => {
        impl diesel::query_builder::QueryId for $ty {
            type QueryId = $ty;
            const HAS_STATIC_QUERY_ID: bool = true;
        }
        impl diesel::query_builder::Query for $ty {
            type SqlType = diesel::sql_types::Untyped;
        }
        impl diesel::RunQueryDsl<diesel::PgConnection> for $ty {}
    };
    ($ty:ident) => {
        impl diesel::query_builder::QueryId for $ty<'_> {
            type QueryId = $ty<'static>;
            const HAS_STATIC_QUERY_ID: bool = true;
        }
        impl diesel::query_builder::Query for $ty<'_> {
            type SqlType = diesel::sql_types::Untyped;
        }
        impl diesel::RunQueryDsl<diesel::PgConnection> for $ty<'_> {}
    };
}

/// Pushes each `value` as a bind parameter of SQL type `type`, separated by `, ` — the argument
/// list of an `unnest(...)` whose rows are bound as arrays. `$out` is the statement's
/// `AstPass`; `?` returns its error.
macro_rules! push_binds {
    ($out:ident; $first_ty:ty => $first:expr $(, $ty:ty => $value:expr)* $(,)?) => {
        $out.push_bind_param::<$first_ty, _>($first)?;
        $(
            $out.push_sql(", ");
            $out.push_bind_param::<$ty, _>($value)?;
        )*
    };
}

pub mod accounts;
pub mod audit;
pub mod backup;
pub mod cases;
pub mod conflicts;
pub mod evidence;
pub mod exchange;
pub mod leases;
pub mod plans;
pub mod reconcile;
pub mod records;
pub mod reports;
pub mod schema;
pub mod stats;
pub mod visits;
pub mod witness;

use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::r2d2::{self, ManageConnection};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

/// diesel's error: private to storage, whose public functions return [`StorageError`].
use diesel::result::Error as QueryError;

/// The SQLite migrations, embedded; [`run_migrations`] applies them. Public for the tests that
/// revert and re-apply them.
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
/// The PostgreSQL migrations, embedded; [`run_migrations`] applies them. Public for the tests
/// that revert and re-apply them.
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A connection to either backend.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("cannot create the directory for {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("database pool: {0}")]
    Pool(#[from] r2d2::PoolError),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("database error: {0}")]
    Query(QueryFailure),
    /// A stored value that no longer parses as its type.
    #[error("stored data is corrupt: {table}: {reason}")]
    Corrupt { table: &'static str, reason: String },
    #[error("background task failed: {0}")]
    Join(String),
}

/// A statement the database refused or could not run. Its cause stays inside storage: callers
/// ask [`StorageError::is_write_race`] or show the message.
#[derive(Debug)]
pub struct QueryFailure(QueryError);

impl std::fmt::Display for QueryFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for QueryFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl From<QueryError> for StorageError {
    fn from(e: QueryError) -> Self {
        StorageError::Query(QueryFailure(e))
    }
}

impl StorageError {
    /// A stored value of `table` that no longer parses.
    pub fn corrupt(table: &'static str, reason: impl std::fmt::Display) -> Self {
        StorageError::Corrupt {
            table,
            reason: reason.to_string(),
        }
    }

    /// The database could not be reached, or the connection was lost under a statement (the
    /// server restarted or failed over): temporary; the pool replaces lost connections, and the
    /// work may be retried once the database is back. A transaction cut this way was rolled
    /// back by the server — unless the connection was lost during its `COMMIT`, whose outcome
    /// is then unknown (a retry must be one that a stored copy makes harmless).
    pub fn is_unavailable(&self) -> bool {
        use diesel::result::DatabaseErrorKind as K;
        match self {
            StorageError::Connect(_) | StorageError::Pool(_) => true,
            StorageError::Query(QueryFailure(e)) => matches!(
                e,
                QueryError::DatabaseError(K::ClosedConnection, _)
                    | QueryError::BrokenTransactionManager
            ),
            _ => false,
        }
    }

    /// A row another transaction committed first: on PostgreSQL two transactions that write
    /// the same key concurrently both pass their "already stored?" reads, and the later one's
    /// insert fails when the first commits. Running the later one again sees the row.
    ///
    /// Also a deadlock or a serialization failure (PostgreSQL aborts one of two transactions
    /// that wait on each other's rows): run again, it goes through.
    pub fn is_write_race(&self) -> bool {
        use diesel::result::DatabaseErrorKind as K;
        match self {
            StorageError::Query(QueryFailure(QueryError::DatabaseError(kind, info))) => {
                matches!(kind, K::UniqueViolation | K::SerializationFailure)
                    || info.message().contains("deadlock detected")
            }
            _ => false,
        }
    }
}

/// A parsed database URL.
#[derive(Debug, Clone)]
pub struct DatabaseUrl {
    pub backend: Backend,
    /// For SQLite the file path; for PostgreSQL the URL as given.
    target: String,
    /// On PostgreSQL, whether each connection runs `synchronous_commit = off` (see
    /// [`CommitDurability::Receipts`]).
    async_commit: bool,
    /// On SQLite, each connection's page cache in KiB (its share of the pool's budget).
    cache_kib: u64,
}

/// The page cache of all of a SQLite node's pooled connections together, MiB, unless
/// `[database] sqlite_cache_mib` says otherwise. Each connection keeps its own cache and fills it
/// with every page it reads, so without a total a pool of 8 held up to 8 × 64 MiB.
pub const DEFAULT_SQLITE_CACHE_MIB: u32 = 128;

/// One connection's share of a pool's cache budget, KiB: at least SQLite's default (2 MiB), at
/// most 64 MiB.
fn cache_share_kib(budget_mib: u32, pool_size: u32) -> u64 {
    (u64::from(budget_mib) * 1024 / u64::from(pool_size.max(1))).clamp(2 * 1024, 64 * 1024)
}

/// Which commits wait until they are on disk (`[database] durable_commits`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitDurability {
    /// Every commit waits for its flush, and for synchronous standbys (PostgreSQL's default
    /// `synchronous_commit = on`): what was acknowledged — to a caseworker or to a peer —
    /// survives a crash of the server and a failover. The default.
    #[default]
    Every,
    /// Only the commits that sign or answer for something to a peer — a received batch with its
    /// receipt, a signed tree head — wait for the flush; other commits return at once and reach
    /// the disk within a fraction of a second (PostgreSQL `synchronous_commit = off`: a crash of
    /// the server or a failover may lose the last of them — an edit a caseworker saw saved —
    /// never corrupt the database; the next durable commit carries them too). What SQLite nodes
    /// do (`synchronous = NORMAL`, `FULL` for the same commits). Several times the rate of small
    /// transactions (`bench cases`).
    Receipts,
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, StorageError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(StorageError::UnsupportedUrl(url.to_owned()));
            }
            Ok(Self {
                backend: Backend::Sqlite,
                target: path.to_owned(),
                async_commit: false,
                cache_kib: cache_share_kib(DEFAULT_SQLITE_CACHE_MIB, 8),
            })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self {
                backend: Backend::Postgres,
                target: url.to_owned(),
                async_commit: false,
                cache_kib: 0,
            })
        } else {
            Err(StorageError::UnsupportedUrl(url.to_owned()))
        }
    }

    fn establish(&self) -> Result<DbConn, StorageError> {
        match self.backend {
            Backend::Sqlite => {
                let mut c = SqliteConnection::establish(&self.target)
                    .map_err(|e| StorageError::Connect(e.to_string()))?;
                // WAL lets readers run beside the writer; the busy timeout makes writers queue
                // (set first: switching to WAL takes a lock, and another process — a CLI run
                // beside the server — may hold one); the page cache is this connection's share
                // of the pool's budget ([`DEFAULT_SQLITE_CACHE_MIB`]).
                c.batch_execute(&format!(
                    "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
                     PRAGMA cache_size = -{}; PRAGMA temp_store = MEMORY;",
                    self.cache_kib
                ))
                .map_err(|e| StorageError::Connect(e.to_string()))?;
                Ok(DbConn::Sqlite(c))
            }
            Backend::Postgres => {
                let mut c = PgConnection::establish(&self.target)
                    .map_err(|e| StorageError::Connect(e.to_string()))?;
                if self.async_commit {
                    c.batch_execute("SET synchronous_commit = off")
                        .map_err(|e| StorageError::Connect(e.to_string()))?;
                }
                Ok(DbConn::Postgres(c))
            }
        }
    }
}

/// r2d2 manager that establishes the backend the URL names.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: DatabaseUrl,
}

impl ManageConnection for ConnectionManager {
    type Connection = DbConn;
    type Error = StorageError;

    fn connect(&self) -> Result<DbConn, StorageError> {
        self.url.establish()
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), StorageError> {
        conn.batch_execute("SELECT 1").map_err(StorageError::from)
    }

    /// A connection whose transaction could not be closed (a rollback that failed because the
    /// server went away) is not put back: its next user would find itself inside the dead
    /// transaction. Dead sockets are caught at check-out instead ([`Store::open`]).
    fn has_broken(&self, conn: &mut DbConn) -> bool {
        std::thread::panicking() || diesel::r2d2::R2D2Connection::is_broken(conn)
    }
}

/// The pool, cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: r2d2::Pool<ConnectionManager>,
    backend: Backend,
}

/// How the connection pool stands: connections open, of them idle, and the most it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    pub open: u32,
    pub idle: u32,
    pub max: u32,
}

impl Store {
    /// The pool's connections now (for `/metrics`).
    pub fn pool_use(&self) -> PoolUse {
        let state = self.pool.state();
        PoolUse {
            open: state.connections,
            idle: state.idle_connections,
            max: self.pool.max_size(),
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Store {
    /// Connects, creating a SQLite file's directory if needed, and applies pending migrations.
    /// Every commit is durable (console commands; a node uses [`Store::open_with`]).
    pub fn open(url: &str, pool_size: u32) -> Result<Self, StorageError> {
        Self::open_with(url, pool_size, CommitDurability::Every)
    }

    /// [`Store::open`] with the commits that wait for the disk chosen by `durability` (on
    /// PostgreSQL; SQLite connections always sync only in [`durable_commits`]).
    pub fn open_with(
        url: &str,
        pool_size: u32,
        durability: CommitDurability,
    ) -> Result<Self, StorageError> {
        Self::open_with_cache(url, pool_size, durability, DEFAULT_SQLITE_CACHE_MIB)
    }

    /// [`Store::open_with`] with the SQLite connections' page caches together held to
    /// `sqlite_cache_mib` (`[database] sqlite_cache_mib`; each connection gets its share).
    pub fn open_with_cache(
        url: &str,
        pool_size: u32,
        durability: CommitDurability,
        sqlite_cache_mib: u32,
    ) -> Result<Self, StorageError> {
        let mut url = DatabaseUrl::parse(url)?;
        url.cache_kib = cache_share_kib(sqlite_cache_mib, pool_size);
        url.async_commit =
            url.backend == Backend::Postgres && durability == CommitDurability::Receipts;
        if url.backend == Backend::Sqlite {
            if let Some(dir) = std::path::Path::new(&url.target).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).map_err(|source| StorageError::CreateDir {
                        path: url.target.clone(),
                        source,
                    })?;
                }
            }
        }
        let backend = url.backend;
        // Migrate on one connection before the pool opens others.
        let mut first = url.establish()?;
        run_migrations(&mut first)?;
        drop(first);
        // Each check-out first runs `SELECT 1` ([`ConnectionManager::is_valid`]): after the
        // database restarted (or a standby was promoted) the pool's old connections fail it and
        // are replaced, so the node recovers by itself. While the database is down, a check-out
        // waits up to the timeout for a new connection, then fails as `unavailable`.
        let pool = r2d2::Pool::builder()
            .max_size(pool_size.max(1))
            .test_on_check_out(true)
            .connection_timeout(Duration::from_secs(30))
            .build(ConnectionManager { url })?;
        Ok(Self { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A pooled connection for synchronous callers (CLI work, benchmarks, the blocking pool).
    pub fn conn(&self) -> Result<r2d2::PooledConnection<ConnectionManager>, StorageError> {
        Ok(self.pool.get()?)
    }

    /// Runs `f` with a pooled connection on the blocking pool, in the current tracing span.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        let pool = self.pool.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                let mut conn = pool.get().map_err(StorageError::from)?;
                f(&mut conn)
            })
        })
        .await
        .map_err(|e| StorageError::Join(e.to_string()))?
    }
}

/// Applies every pending migration of the connection's backend; returns how many ran.
pub fn run_migrations(conn: &mut DbConn) -> Result<usize, StorageError> {
    let applied = match conn {
        DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
        DbConn::Postgres(c) => c
            .run_pending_migrations(POSTGRES_MIGRATIONS)
            .map(|v| v.len()),
    };
    applied.map_err(|e| StorageError::Migration(e.to_string()))
}

/// Runs `f` in a transaction (`BEGIN IMMEDIATE` on SQLite). Any error rolls everything back.
///
/// On PostgreSQL a transaction that appended to the audit log held the log's lock until its
/// commit; so that the lock is not held while the commit waits for the disk (one flush at a
/// time, for every writer of the node), the append commits without waiting
/// ([`note_flush_after_commit`]) and the commit's durability is restored here, after the lock
/// is gone: [`flush_wal`] waits until the commit is on disk (and at synchronous standbys), as
/// the connection's setting asked. Flushes of concurrent transactions then share one write of
/// the WAL. The caller gets its answer only after that flush, as before.
pub fn transaction<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<StorageError>,
{
    let outermost = match conn {
        DbConn::Sqlite(_) => false,
        DbConn::Postgres(c) => AnsiTransactionManager::transaction_manager_status_mut(c)
            .transaction_depth()
            .map_err(StorageError::from)?
            .is_none(),
    };
    if outermost {
        FLUSH_AFTER_COMMIT.with(|f| f.set(false));
    }
    let begin = match conn {
        DbConn::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE"),
        DbConn::Postgres(c) => AnsiTransactionManager::begin_transaction(c),
    };
    begin.map_err(StorageError::from)?;
    let result = match f(conn) {
        Ok(value) => match <DbConn as TransactionManager<DbConn>>::commit_transaction(conn) {
            Ok(()) => Ok(value),
            Err(e) => {
                let _ = <DbConn as TransactionManager<DbConn>>::rollback_transaction(conn);
                Err(StorageError::from(e).into())
            }
        },
        Err(e) => {
            // The caller's error is what matters; a failed rollback leaves the connection
            // marked broken and the pool discards it.
            let _ = <DbConn as TransactionManager<DbConn>>::rollback_transaction(conn);
            Err(e)
        }
    };
    if outermost && FLUSH_AFTER_COMMIT.with(|f| f.replace(false)) && result.is_ok() {
        flush_wal(conn)?;
    }
    result
}

thread_local! {
    /// Whether the current transaction's commit still owes a flush (set by
    /// [`note_flush_after_commit`], paid by [`transaction`]).
    static FLUSH_AFTER_COMMIT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Records that the transaction running on this thread turned its own commit asynchronous
/// although its connection's `synchronous_commit` waits for something: it owes a flush once it
/// has committed (the audit log's appender does this after taking its lock). [`transaction`]
/// pays it.
pub(crate) fn note_flush_after_commit() {
    FLUSH_AFTER_COMMIT.with(|f| f.set(true));
}

/// Waits until everything this connection committed is as durable as its `synchronous_commit`
/// asks: one small write (its slot in `wal_barrier`) committed at that level. PostgreSQL
/// flushes the WAL in order, so that commit's flush (and its standbys' confirmation) covers
/// every earlier commit of the connection. (A commit that wrote no WAL would not wait, hence the
/// write.) The slots keep concurrent flushes from queueing on one row.
pub fn flush_wal(conn: &mut DbConn) -> Result<(), StorageError> {
    if let DbConn::Postgres(_) = conn {
        conn.batch_execute(
            "INSERT INTO wal_barrier (slot, n) VALUES (pg_backend_pid() % 1024, 1) \
             ON CONFLICT (slot) DO UPDATE SET n = wal_barrier.n + 1",
        )?;
    }
    Ok(())
}

/// Whether [`durable_commits`] makes SQLite commits durable (always, except in `bench sync`'s
/// comparison of the cost).
static DURABLE_COMMITS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// For `bench sync` only: measure what [`durable_commits`] costs by turning it off for a run.
#[doc(hidden)]
pub fn set_durable_commits(on: bool) {
    DURABLE_COMMITS.store(on, std::sync::atomic::Ordering::SeqCst);
}

/// Runs `f` with every commit it makes durable before it returns: what it committed survives a
/// power loss. SQLite connections run `synchronous = NORMAL` (in WAL mode a commit is then not
/// synced to disk until a checkpoint); here they run `FULL` (the WAL is synced at each commit)
/// and go back to `NORMAL` after. PostgreSQL connections of a node run `synchronous_commit =
/// off` ([`CommitDurability::Receipts`]); here `on` (the commit waits for its flush and for
/// synchronous standbys, and carries every earlier commit's WAL with it), then back.
pub fn durable_commits<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<StorageError>,
{
    if !DURABLE_COMMITS.load(std::sync::atomic::Ordering::SeqCst) {
        return f(conn);
    }
    let (on, back) = match conn {
        DbConn::Sqlite(_) => (
            "PRAGMA synchronous = FULL".to_owned(),
            "PRAGMA synchronous = NORMAL".to_owned(),
        ),
        DbConn::Postgres(_) => {
            #[derive(diesel::QueryableByName)]
            struct Setting {
                #[diesel(sql_type = diesel::sql_types::Text)]
                value: String,
            }
            let now = diesel::RunQueryDsl::get_result::<Setting>(
                diesel::sql_query("SELECT current_setting('synchronous_commit') AS value"),
                conn,
            )
            .map_err(StorageError::from)?
            .value;
            if now == "on" || !now.chars().all(|c| c.is_ascii_alphabetic() || c == '_') {
                return f(conn);
            }
            (
                "SET synchronous_commit = on".to_owned(),
                format!("SET synchronous_commit = {now}"),
            )
        }
    };
    conn.batch_execute(&on).map_err(StorageError::from)?;
    let result = f(conn);
    if let Err(e) = conn.batch_execute(&back) {
        // Only slower: the connection keeps syncing every commit.
        tracing::warn!(error = %e, "could not set a connection back from durable commits");
    }
    result
}

/// A trivial query, to prove the database answers.
pub fn ping(conn: &mut DbConn) -> Result<(), StorageError> {
    conn.batch_execute("SELECT 1").map_err(StorageError::from)
}

/// A throw-away PostgreSQL schema for benchmarks: the URL to use, and the guard that drops it.
pub struct ScratchSchema {
    base: String,
    name: String,
}

impl ScratchSchema {
    /// Creates `name` in the database at `base` and returns a URL whose search path is it.
    pub fn create(base: &str, name: &str) -> Result<(String, Self), StorageError> {
        let mut c =
            PgConnection::establish(base).map_err(|e| StorageError::Connect(e.to_string()))?;
        c.batch_execute(&format!("CREATE SCHEMA {name}"))?;
        let sep = if base.contains('?') { '&' } else { '?' };
        Ok((
            format!("{base}{sep}options=-csearch_path%3D{name}"),
            Self {
                base: base.to_owned(),
                name: name.to_owned(),
            },
        ))
    }
}

impl Drop for ScratchSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = PgConnection::establish(&self.base) {
            let _ = c.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name));
        }
    }
}

/// Refreshes the query planner's statistics (after a bulk load: benchmarks).
pub fn analyze(conn: &mut DbConn) -> Result<(), StorageError> {
    use diesel::RunQueryDsl;
    diesel::sql_query("ANALYZE").execute(conn)?;
    Ok(())
}

/// The SQL call that takes the transaction-scoped advisory lock of `class` for the connection's
/// schema: advisory locks are per database, and nodes kept in schemas of one database (the tests,
/// the benchmarks, a small province's cluster) must not wait for each other's. A hash collision
/// between two schemas costs only waiting, never correctness.
pub(crate) fn schema_lock(class: i32) -> String {
    format!("pg_advisory_xact_lock({class}, hashtext(current_schema()))")
}

/// What PostgreSQL's planner believes a table of the connection's schema holds
/// (`pg_class.reltuples`, as of its last `ANALYZE` or vacuum; 0 for a table never analyzed);
/// `None` on SQLite, which keeps no such estimate between statements.
pub fn planner_rows(conn: &mut DbConn, table: &str) -> Result<Option<f64>, StorageError> {
    #[derive(diesel::QueryableByName)]
    struct Rows {
        #[diesel(sql_type = diesel::sql_types::Double)]
        n: f64,
    }
    let DbConn::Postgres(c) = conn else {
        return Ok(None);
    };
    let rows: Vec<Rows> = diesel::RunQueryDsl::load(
        diesel::sql_query(
            "SELECT CAST(GREATEST(reltuples, 0) AS DOUBLE PRECISION) AS n FROM pg_class \
             WHERE oid = to_regclass($1)",
        )
        .bind::<diesel::sql_types::Text, _>(table),
        c,
    )?;
    Ok(Some(rows.first().map_or(0.0, |r| r.n)))
}

/// `ANALYZE` of these tables on PostgreSQL (outside any transaction of the caller's), so the
/// planner sees rows a bulk load added; nothing on SQLite. Each table costs a sample of at
/// most 300 × `default_statistics_target` rows (30,000 by default), whatever its size.
pub fn analyze_tables(conn: &mut DbConn, tables: &[&str]) -> Result<(), StorageError> {
    if let DbConn::Postgres(c) = conn {
        if !tables.is_empty() {
            c.batch_execute(&format!("ANALYZE {}", tables.join(", ")))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::DatabaseErrorKind as K;

    #[test]
    fn a_lost_connection_is_unavailable_and_a_refused_statement_is_not() {
        let db =
            |kind| StorageError::from(QueryError::DatabaseError(kind, Box::new(String::new())));
        assert!(db(K::ClosedConnection).is_unavailable());
        assert!(StorageError::from(QueryError::BrokenTransactionManager).is_unavailable());
        assert!(StorageError::Connect("refused".into()).is_unavailable());
        assert!(!db(K::UniqueViolation).is_unavailable());
        assert!(!db(K::Unknown).is_unavailable());
        assert!(!StorageError::from(QueryError::NotFound).is_unavailable());
    }
}
