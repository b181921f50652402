//! PostgreSQL restarted under a running node (issue 25 #2). The node of the residence bureau
//! (410100) runs on a private PostgreSQL cluster this test starts (initdb in a temporary
//! directory, a free port, trust authentication); its peer, the hukou bureau (510100), on the
//! shared test database. The private cluster is restarted (`pg_ctl restart -m fast`, and once
//! `-m immediate`, a crash and recovery) while the node sends and receives pushes under load,
//! in the middle of an import's transaction, and during a reconciliation run; the node, never
//! restarted itself, must serve again and lose nothing. A second test opens a multi-host URL
//! (`host1,host2` with `target_session_attrs=read-write`, as a node behind a primary and a
//! standby would use) whose first host is dead.
//!
//! The tests run in the PostgreSQL pass only (`TEST_DATABASE_URL=postgres://...`). Where the
//! PostgreSQL server binaries are missing or a cluster cannot be made they are skipped with a
//! notice; CI sets `HUKOU_SYNC_REQUIRE_PG_RESTART=1` and then a skip fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use diesel::connection::SimpleConnection;
use hukou_sync::audit::Actor;
use hukou_sync::domain::child::ChildRecord;
use hukou_sync::domain::RecordRules;
use hukou_sync::ledger_file::csv::LedgerReader;
use hukou_sync::reconcile::run::{Progress, Stage};
use hukou_sync::reconcile::{RunOptions, RunStatus, StartedBy};
use hukou_sync::storage::{StorageError, Store};
use hukou_sync::sync::ledger;
use serde_json::json;

use crate::helpers::{
    eventually, flowing_child, spawn_app_with, spawn_pair_with, Pair, TestApp, TestDb, CHENGDU,
    ZHENGZHOU,
};

/// Where the PostgreSQL server binaries are: `PG_BINDIR`, else the newest of Debian's
/// `/usr/lib/postgresql/<major>/bin`.
fn pg_bindir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .max()
        .unwrap_or(15);
    PathBuf::from(format!("/usr/lib/postgresql/{newest}/bin"))
}

/// Whether the tests run in the PostgreSQL pass (so they do not run twice).
fn postgres_pass() -> Option<String> {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
}

/// A private PostgreSQL cluster, stopped and removed when dropped.
struct Cluster {
    /// Runs `pg_ctl` on the cluster (cheap to clone, for blocking threads).
    ctl: ClusterCtl,
    port: u16,
    _dir: tempfile::TempDir,
}

#[derive(Clone)]
struct ClusterCtl {
    bindir: PathBuf,
    data: PathBuf,
    log: PathBuf,
    /// initdb refuses root: run the binaries as the `postgres` user then.
    as_postgres: bool,
}

impl ClusterCtl {
    fn command(&self, program: &str) -> Command {
        let program = self.bindir.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        self.command("pg_ctl")
            .args(args)
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-w", "-t", "60"])
            .output()
            .expect("run pg_ctl")
    }

    /// `pg_ctl restart -m <mode>`: `fast` disconnects every session and shuts down cleanly,
    /// `immediate` kills the server (crash recovery at the start).
    fn restart(&self, mode: &str) {
        let out = self.pg_ctl(&["restart", "-m", mode]);
        assert!(
            out.status.success(),
            "pg_ctl restart -m {mode}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

impl Cluster {
    /// initdb and start on a free port; `Err` says why it cannot run here.
    fn start() -> Result<Self, String> {
        let bindir = pg_bindir();
        for b in ["initdb", "pg_ctl", "postgres", "pg_basebackup"] {
            if !bindir.join(b).exists() {
                return Err(format!(
                    "{} is missing (apt-get install postgresql, or set PG_BINDIR)",
                    bindir.join(b).display()
                ));
            }
        }
        let root = is_root();
        if root
            && !Command::new("id")
                .arg("postgres")
                .output()
                .is_ok_and(|o| o.status.success())
        {
            return Err("running as root and there is no `postgres` user to run initdb".into());
        }
        let (dir, ctl) = Self::new_dir(bindir, root)?;
        let out = ctl
            .command("initdb")
            .arg("-D")
            .arg(&ctl.data)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Self::configure_and_start(dir, ctl)
    }

    /// A streaming standby of `primary` (`pg_basebackup -R`: `standby.signal` and
    /// `primary_conninfo`), started on its own port; it follows the primary until promoted.
    fn standby_of(primary: &Cluster) -> Self {
        let (dir, ctl) = Self::new_dir(primary.ctl.bindir.clone(), primary.ctl.as_postgres)
            .expect("a directory for the standby");
        let out = ctl
            .command("pg_basebackup")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg("-D")
            .arg(&ctl.data)
            .args(["-R", "-X", "stream", "--no-sync"])
            .output()
            .expect("run pg_basebackup");
        assert!(
            out.status.success(),
            "pg_basebackup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self::configure_and_start(dir, ctl).expect("start the standby")
    }

    /// A temporary directory the server's user owns, and the control of a cluster in it.
    fn new_dir(
        bindir: PathBuf,
        as_postgres: bool,
    ) -> Result<(tempfile::TempDir, ClusterCtl), String> {
        let dir = tempfile::Builder::new()
            .prefix("hukou-pg-restart-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        if as_postgres {
            let out = Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path())
                .output()
                .map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!(
                    "chown to postgres: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        let ctl = ClusterCtl {
            bindir,
            data: dir.path().join("data"),
            log: dir.path().join("server.log"),
            as_postgres,
        };
        Ok((dir, ctl))
    }

    /// Sets a free port and local-only listening, then starts the server.
    fn configure_and_start(dir: tempfile::TempDir, ctl: ClusterCtl) -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        // Settings in the file (later lines win), so `pg_ctl restart` keeps them. fsync off: a
        // restart, even `-m immediate`, kills processes, not the machine; what they wrote is in
        // the kernel's cache.
        let conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = off\nmax_connections = 40\nshared_buffers = 16MB\n",
            dir.path().display()
        );
        append(&ctl.data.join("postgresql.conf"), &conf).map_err(|e| e.to_string())?;
        let out = ctl.pg_ctl(&["start"]);
        if !out.status.success() {
            return Err(format!(
                "pg_ctl start failed: {}{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&ctl.log).unwrap_or_default()
            ));
        }
        Ok(Self {
            ctl,
            port,
            _dir: dir,
        })
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs one statement on the cluster.
    fn sql(&self, sql: &str) {
        use diesel::Connection;
        let mut c = diesel::PgConnection::establish(&self.url()).unwrap();
        c.batch_execute(sql).unwrap();
    }

    /// A count on the cluster (`SELECT count(*) FROM <from>`).
    fn count(&self, from: &str) -> i64 {
        count_at(&self.url(), from)
    }
}

/// `SELECT count(*) FROM <from>` on the database at `url`.
fn count_at(url: &str, from: &str) -> i64 {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut c = diesel::PgConnection::establish(url).unwrap();
    diesel::sql_query(format!("SELECT count(*) AS n FROM {from}"))
        .load::<N>(&mut c)
        .unwrap()[0]
        .n
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.ctl.pg_ctl(&["stop", "-m", "immediate"]);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn append(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)?
        .write_all(text.as_bytes())
}

/// The private cluster, or `None` (with a notice) where the test does not run.
fn cluster_or_skip(test: &str) -> Option<Cluster> {
    postgres_pass().or_else(|| {
        eprintln!(
            "SKIPPED {test}: it runs in the PostgreSQL pass (TEST_DATABASE_URL=postgres://...)"
        );
        None
    })?;
    match Cluster::start() {
        Ok(c) => Some(c),
        Err(why) => {
            assert!(
                std::env::var_os("HUKOU_SYNC_REQUIRE_PG_RESTART").is_none(),
                "HUKOU_SYNC_REQUIRE_PG_RESTART is set but a private PostgreSQL cluster cannot run: {why}"
            );
            eprintln!("SKIPPED {test}: {why}");
            None
        }
    }
}

/// Every stored version id of a node.
fn version_ids(app: &TestApp) -> BTreeSet<String> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
    }
    let mut conn = app.store.conn().unwrap();
    diesel::sql_query("SELECT id FROM versions")
        .load::<Row>(&mut *conn)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

/// How many of `ids` have a file on the node.
fn files_among(store: &Store, ids: &[String]) -> usize {
    let mut conn = store.conn().unwrap();
    ledger::existing_ids(&mut conn, ids.to_vec()).unwrap().len()
}

/// Both nodes hold the same versions and have nothing left to send.
async fn converged(pair: &Pair) -> bool {
    pair.residence.count("outbox") == 0
        && pair.hukou.count("outbox") == 0
        && version_ids(&pair.residence) == version_ids(&pair.hukou)
}

/// `n` generated ledger rows (hukou in Chengdu, living in Zhengzhou), validated.
fn ledger_rows(app: &TestApp, n: usize, seed: u64) -> Vec<(usize, ChildRecord)> {
    let mut csv = Vec::new();
    hukou_sync::ledger_file::sample::write_ledger(&mut csv, n, seed, "5101", "4101").unwrap();
    let rules = RecordRules {
        today: ledger::china_today(Utc::now()),
        palette: &app.node.palette,
    };
    LedgerReader::new(String::from_utf8(csv).unwrap())
        .unwrap()
        .map(|(line, f)| (line, ChildRecord::from_fields(f.unwrap(), &rules).unwrap()))
        .collect()
}

/// Edits on both nodes, counted when the node acknowledged them: children created at the
/// residence node by three concurrent clients (pushed to the hukou node) and benefits
/// recorded at the hukou node on children it received (pushed to the residence node, which
/// writes them to the restarted cluster). Runs until `stop`; other answers are counted by
/// status (0: no answer).
struct Load {
    acknowledged: AtomicUsize,
    refused: Mutex<BTreeMap<u16, usize>>,
    created: Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl Load {
    fn new() -> Self {
        Self {
            acknowledged: AtomicUsize::new(0),
            refused: Mutex::new(BTreeMap::new()),
            created: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        }
    }

    fn acknowledged(&self) -> usize {
        self.acknowledged.load(Ordering::SeqCst)
    }

    fn refuse(&self, status: u16) {
        *self.refused.lock().unwrap().entry(status).or_default() += 1;
    }

    async fn run(&self, pair: &Pair) {
        tokio::join!(
            self.create(pair, 0),
            self.create(pair, 1),
            self.create(pair, 2),
            self.edit(pair)
        );
    }

    /// Creates children at the residence node (ID sequence numbers `lane * 300 + 1..`). Three
    /// lanes keep several connections busy when the database goes away.
    async fn create(&self, pair: &Pair, lane: u16) {
        let mut seq = lane * 300;
        while !self.stop.load(Ordering::SeqCst) {
            seq += 1;
            assert!(seq < (lane + 1) * 300, "the load ran out of ID numbers");
            let child = flowing_child(seq);
            let id = child["id_number"].as_str().unwrap().to_owned();
            let r = pair
                .residence
                .http
                .post(pair.residence.url("/api/v1/children"))
                .json(&child)
                .send()
                .await;
            match r.map(|r| r.status().as_u16()) {
                Ok(201) => {
                    self.acknowledged.fetch_add(1, Ordering::SeqCst);
                    self.created.lock().unwrap().push(id);
                }
                Ok(status) => self.refuse(status),
                Err(_) => self.refuse(0),
            }
        }
    }

    /// Records a benefit at the hukou node on each created child in turn, once it arrived.
    async fn edit(&self, pair: &Pair) {
        let mut next = 0;
        while !self.stop.load(Ordering::SeqCst) {
            let Some(id) = self.created.lock().unwrap().get(next).cloned() else {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            let r = pair
                .hukou
                .http
                .patch(pair.hukou.url(&format!("/api/v1/children/{id}")))
                .json(&json!({"benefits": [{"benefit": "dibao", "since": "2026-10"}]}))
                .send()
                .await;
            match r.map(|r| r.status().as_u16()) {
                Ok(200) => {
                    next += 1;
                    self.acknowledged.fetch_add(1, Ordering::SeqCst);
                }
                // Not arrived yet: try again.
                Ok(404) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                Ok(status) => self.refuse(status),
                Err(_) => self.refuse(0),
            }
        }
    }
}

#[tokio::test]
async fn the_node_survives_postgresql_restarts_during_pushes_imports_and_reconciliation() {
    let Some(cluster) = cluster_or_skip("the PostgreSQL restart test") else {
        return;
    };
    let url = cluster.url();
    let pair = spawn_pair_with(|id, s| {
        if id == ZHENGZHOU {
            s.database.url = url.clone();
            // A run's lock left by a run that died with the database expires soon.
            s.reconcile.lock_lease_secs = 5;
        }
    })
    .await;

    // A statement running when the server goes away fails as `unavailable` (a request then
    // answers 503), and the pool's next connection works.
    let store = pair.residence.store.clone();
    let sleeper = tokio::task::spawn_blocking(move || {
        let mut conn = store.conn().unwrap();
        conn.batch_execute("SELECT pg_sleep(60)")
            .map_err(StorageError::from)
    });
    eventually(30, "the statement runs", || async {
        pair.residence
            .count("pg_stat_activity WHERE state = 'active' AND query = 'SELECT pg_sleep(60)'")
            == 1
    })
    .await;
    let ctl = cluster.ctl.clone();
    tokio::task::spawn_blocking(move || ctl.restart("fast"))
        .await
        .unwrap();
    let cut = sleeper.await.unwrap().unwrap_err();
    assert!(cut.is_unavailable(), "{cut}");
    assert_eq!(pair.residence.count("children"), 0);

    // (a) Pushes both ways under load, through a clean restart and a crash.
    let load = Load::new();
    let restarts = async {
        for mode in ["fast", "immediate"] {
            let before = load.acknowledged();
            eventually(60, "edits acknowledged before the restart", || async {
                load.acknowledged() >= before + 5
            })
            .await;
            let ctl = cluster.ctl.clone();
            tokio::task::spawn_blocking(move || ctl.restart(mode))
                .await
                .unwrap();
            // The node serves again by itself: new edits are acknowledged.
            let after = load.acknowledged();
            eventually(
                60,
                &format!("edits acknowledged after -m {mode}"),
                || async { load.acknowledged() >= after + 5 },
            )
            .await;
        }
        load.stop.store(true, Ordering::SeqCst);
    };
    tokio::join!(load.run(&pair), restarts);
    let refused = load.refused.lock().unwrap().clone();
    eprintln!(
        "under load: {} edits acknowledged; refused while the database restarted (status: count): {refused:?}",
        load.acknowledged(),
    );
    // While the database is away the node answers 503 `unavailable` (Retry-After), never a
    // 500 or a refusal of the edit itself.
    assert!(refused.keys().all(|s| *s == 503), "{refused:?}");
    eventually(
        90,
        "both nodes hold the same versions after the restarts",
        || converged(&pair),
    )
    .await;
    let created = load.created.lock().unwrap().clone();
    assert_eq!(files_among(&pair.residence.store, &created), created.len());
    assert_eq!(files_among(&pair.hukou.store, &created), created.len());
    // Every acknowledged edit is a version on both sides (beside the received ones).
    assert!(version_ids(&pair.residence).len() >= load.acknowledged());

    // (b) An import whose transaction is cut by a restart between its batches: it fails
    // clearly and stores nothing; run again, it stores everything.
    let rows = Arc::new(ledger_rows(&pair.residence, 2_100, 25));
    let ids: Vec<String> = rows.iter().map(|(_, r)| r.id_number.to_string()).collect();
    let (store, node, ctl, r2) = (
        pair.residence.store.clone(),
        pair.residence.node.clone(),
        cluster.ctl.clone(),
        rows.clone(),
    );
    let (first, restarted) = tokio::task::spawn_blocking(move || {
        let mut conn = store.conn().unwrap();
        let mut restarted = false;
        let result = ledger::import_children(
            &mut conn,
            &node,
            &r2,
            &Actor::console(),
            Utc::now(),
            &mut |done| {
                // Written so far: the first batch, inside the transaction.
                if done < r2.len() && !restarted {
                    restarted = true;
                    ctl.restart("fast");
                }
            },
        );
        (result.map(|s| s.imported), restarted)
    })
    .await
    .unwrap();
    assert!(restarted, "the import wrote in more than one batch");
    match first {
        Ok(n) => {
            assert_eq!(n, ids.len());
            assert_eq!(files_among(&pair.residence.store, &ids), ids.len());
        }
        Err(e) => {
            eprintln!("the import cut by the restart failed: {e}");
            assert_eq!(
                files_among(&pair.residence.store, &ids),
                0,
                "an import that failed stored some of its files"
            );
            let (store, node, r2) = (
                pair.residence.store.clone(),
                pair.residence.node.clone(),
                rows.clone(),
            );
            let again = tokio::task::spawn_blocking(move || {
                let mut conn = store.conn().unwrap();
                ledger::import_children(
                    &mut conn,
                    &node,
                    &r2,
                    &Actor::console(),
                    Utc::now(),
                    &mut |_| {},
                )
                .map(|s| s.imported)
            })
            .await
            .unwrap();
            assert_eq!(again.unwrap(), ids.len());
        }
    }
    assert_eq!(files_among(&pair.residence.store, &ids), ids.len());
    eventually(180, "the imported files reach the hukou node", || {
        converged(&pair)
    })
    .await;
    assert_eq!(files_among(&pair.hukou.store, &ids), ids.len());

    // (c) A reconciliation run during a restart: the hukou node lost versions (a restored
    // backup); the residence node's run is cut by a restart as it starts repairing. Runs until
    // one finds nothing to repair.
    let lost = crate::reconcile::lose_versions(&pair.hukou, 40, 9);
    assert!(!converged(&pair).await);
    let reconciler = hukou_sync::startup::reconciler(
        &pair.residence.settings,
        pair.residence.store.clone(),
        pair.residence.node.clone(),
    )
    .unwrap()
    .unwrap();
    let ctl = cluster.ctl.clone();
    let restarted = Arc::new(AtomicBool::new(false));
    let r2 = restarted.clone();
    let progress = Arc::new(move |p: Progress| {
        if matches!(p.stage, Stage::Repair) && !r2.swap(true, Ordering::SeqCst) {
            // Blocks the run's task (and this test's runtime) for the restart: the run goes on
            // against a database that restarted under it.
            ctl.restart("fast");
        }
    });
    let opts = || RunOptions {
        dry_run: false,
        started_by: StartedBy::Cli,
        actor: Actor::console(),
    };
    let first = reconciler.run(CHENGDU, opts(), progress).await;
    assert!(
        restarted.load(Ordering::SeqCst),
        "the run reached its repairs"
    );
    eprintln!("the run cut by the restart: {first:?}");
    let mut runs = 1;
    eventually(120, "a reconciliation that finds nothing to repair", || {
        runs += 1;
        let r = reconciler.run(CHENGDU, opts(), Arc::new(|_| {}));
        async move {
            matches!(r.await, Ok(report) if report.status == RunStatus::Ok
                && report.documents_differing == 0)
        }
    })
    .await;
    eprintln!("{} lost versions repaired in {runs} runs", lost.len());
    eventually(
        60,
        "both nodes hold the same versions after the repair",
        || converged(&pair),
    )
    .await;
    let held = version_ids(&pair.hukou);
    assert!(lost.iter().all(|v| held.contains(v)));

    // The node still answers without having been restarted. (Polled: the client's idle
    // keep-alive connection may have been closed by the server meanwhile.)
    let path = format!("/api/v1/children/{}", created[0]);
    eventually(10, "the node answers a read", || async {
        let r = pair
            .residence
            .http
            .get(pair.residence.url(&path))
            .send()
            .await;
        r.is_ok_and(|r| r.status() == 200)
    })
    .await;
    pair.residence.stop().await;
    pair.hukou.stop().await;
    drop(cluster);
}

/// A libpq multi-host URL: the first host is dead (a failed primary), the next (where the
/// private cluster can run) answers but is read-only (a standby), the last accepts writes;
/// `target_session_attrs=read-write` makes libpq pass over the others.
#[tokio::test]
async fn a_multi_host_url_reaches_the_host_that_accepts_writes() {
    let Some(base) = postgres_pass() else {
        eprintln!("SKIPPED the multi-host URL test: it runs in the PostgreSQL pass");
        return;
    };
    assert!(base.contains('@'), "TEST_DATABASE_URL names its user");
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(dir.path());
    let (scheme, rest) = db.url.split_once("://").unwrap();
    let (user, host) = rest.split_once('@').unwrap();
    let database = host.split(['/', '?']).nth(1).unwrap();
    let read_only = cluster_or_skip("the read-only host of the multi-host URL test");
    let mut before = format!("127.0.0.1:{dead},");
    if let Some(c) = &read_only {
        // The same database name, so that only the read-only state turns libpq away.
        c.sql(&format!("CREATE DATABASE {database}"));
        c.sql("ALTER SYSTEM SET default_transaction_read_only = on");
        c.ctl.restart("fast");
        before.push_str(&format!("127.0.0.1:{},", c.port));
    }
    // TEST_DATABASE_URL's host after the others: postgres://u@dead,read-only,host/db?...
    let multi = format!("{scheme}://{user}@{before}{host}&target_session_attrs=read-write");
    let app = spawn_app_with(|s| s.database.url = multi.clone()).await;
    let file = app.create_child(&flowing_child(1)).await;
    let id = file["record"]["id_number"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/api/v1/children/{id}")).await.status(),
        200
    );
    // The file is on the host that accepts writes.
    assert_eq!(count_at(&db.url, "children"), 1);
    if let Some(c) = &read_only {
        let url = format!("postgres://postgres@127.0.0.1:{}/{database}", c.port);
        assert_eq!(count_at(&url, "pg_tables WHERE tablename = 'children'"), 0);
    }
    app.stop().await;
    drop(db);
}

/// A primary and a synchronous streaming standby, the node's URL naming both: the primary
/// crashes under load, the standby is promoted, and the node goes on writing to it without a
/// restart; every edit it acknowledged is there.
#[tokio::test]
async fn a_node_fails_over_to_a_promoted_standby_and_loses_nothing_acknowledged() {
    let Some(primary) = cluster_or_skip("the failover test") else {
        return;
    };
    let standby = Cluster::standby_of(&primary);
    // Commits wait until the standby has them: an acknowledged edit survives the failover.
    primary.sql("ALTER SYSTEM SET synchronous_standby_names = '*'");
    primary.sql("SELECT pg_reload_conf()");
    eventually(30, "the standby streams synchronously", || async {
        primary.count("pg_stat_replication WHERE state = 'streaming' AND sync_state = 'sync'") == 1
    })
    .await;
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
        primary.port, standby.port
    );
    let app = spawn_app_with(|s| s.database.url = url.clone()).await;
    let acknowledged = Mutex::new(Vec::new());
    let refused = Mutex::new(BTreeMap::<u16, usize>::new());
    let stop = AtomicBool::new(false);
    let load = async {
        let mut seq = 0;
        while !stop.load(Ordering::SeqCst) {
            seq += 1;
            assert!(seq < 1000, "the load ran out of ID numbers");
            let child = flowing_child(seq);
            let r = app
                .http
                .post(app.url("/api/v1/children"))
                .json(&child)
                .send()
                .await;
            match r.map(|r| r.status().as_u16()) {
                Ok(201) => acknowledged
                    .lock()
                    .unwrap()
                    .push(child["id_number"].as_str().unwrap().to_owned()),
                Ok(status) => *refused.lock().unwrap().entry(status).or_default() += 1,
                Err(_) => *refused.lock().unwrap().entry(0).or_default() += 1,
            }
        }
    };
    let failover = async {
        let n = || acknowledged.lock().unwrap().len();
        eventually(60, "edits acknowledged by the primary", || async {
            n() >= 10
        })
        .await;
        let (p, s) = (primary.ctl.clone(), standby.ctl.clone());
        tokio::task::spawn_blocking(move || {
            let out = p.pg_ctl(&["stop", "-m", "immediate"]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let out = s.pg_ctl(&["promote"]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        })
        .await
        .unwrap();
        let after = n();
        eventually(60, "edits acknowledged by the promoted standby", || async {
            n() >= after + 10
        })
        .await;
        stop.store(true, Ordering::SeqCst);
    };
    tokio::join!(load, failover);
    let acknowledged = acknowledged.into_inner().unwrap();
    let refused = refused.into_inner().unwrap();
    eprintln!(
        "failover: {} edits acknowledged; refused (status: count): {refused:?}",
        acknowledged.len()
    );
    assert!(refused.keys().all(|s| *s == 503), "{refused:?}");
    // Every acknowledged file is on the promoted standby, which the node now uses.
    assert_eq!(files_among(&app.store, &acknowledged), acknowledged.len());
    assert_eq!(standby.count("children"), app.count("children"));
    assert!(standby.count("children") >= acknowledged.len() as i64);
    app.stop().await;
    drop(standby);
    drop(primary);
}
