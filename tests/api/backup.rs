//! Backups of an SQLite node (issue 25 #9): `hukou-sync backup` under a push load while the node
//! serves, more writes after it, the node stopped and the copy restored, the start refused until
//! the restore is accepted, then one reconciliation with the peer brings back every version the
//! copy lacked. And the refusals: an existing output, a PostgreSQL node, a restore while the
//! node runs, a file that is not a backup of this node — each a non-zero exit with a clear
//! message, nothing changed.

use std::process::Output;
use std::sync::Arc;

use hukou_sync::audit::Actor;
use hukou_sync::devnet::pki::DevPki;
use hukou_sync::reconcile::{RunOptions, RunStatus, StartedBy};
use hukou_sync::storage::reconcile as recon_repo;
use serde_json::Value;

use crate::helpers::{
    eventually, flowing_child, restart, spawn_app, spawn_pair, Pair, TestApp, CHENGDU, ZHENGZHOU,
};

fn on_postgres() -> bool {
    std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty())
}

/// The binary as node `id` of the pair's network, on the database `url`.
fn cli(pki: &DevPki, id: &str, url: &str, args: &[&str]) -> Output {
    let node = pki.nodes.iter().find(|n| n.id.as_str() == id).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_hukou-sync"))
        .arg("--config")
        .arg(&node.config)
        .args(args)
        .env_remove("HUKOU_SYNC_CONFIG")
        .env("HUKOU_SYNC__DATABASE__URL", url)
        .env("HUKOU_SYNC__LOG__FILTER", "error")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn all_heads(app: &TestApp) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut conn = app.store.conn().unwrap();
    let docs = recon_repo::all_doc_ids(&mut conn, "child").unwrap();
    recon_repo::heads_of_docs(&mut conn, "child", &docs)
        .unwrap()
        .into_iter()
        .collect()
}

fn events(app: &TestApp, action: &str) -> Vec<Value> {
    let mut conn = app.store.conn().unwrap();
    let rows: Vec<Details> = diesel::RunQueryDsl::load(
        diesel::sql_query("SELECT details FROM audit_events WHERE action = $1 ORDER BY seq")
            .bind::<diesel::sql_types::Text, _>(action),
        &mut *conn,
    )
    .unwrap();
    rows.iter()
        .map(|r| serde_json::from_str(&r.details).unwrap())
        .collect()
}

#[derive(diesel::QueryableByName)]
struct Details {
    #[diesel(sql_type = diesel::sql_types::Text)]
    details: String,
}

fn sqlite_path(app_url: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(app_url.strip_prefix("sqlite://").unwrap())
}

async fn create_range(app: &TestApp, seqs: std::ops::Range<u16>) {
    for seq in seqs {
        app.create_child(&flowing_child(seq)).await;
    }
}

/// Waits until the hukou node holds every version the residence node made.
async fn delivered(pair_residence: &TestApp, hukou: &TestApp) {
    let want = pair_residence.count("versions");
    eventually(60, "every version is delivered", || async {
        hukou.count("versions") == want
    })
    .await;
}

#[tokio::test]
async fn a_backup_under_load_restores_and_reconciles_to_zero_differences() {
    if on_postgres() {
        eprintln!(
            "skipped on PostgreSQL: `backup`/`restore` copy an SQLite node (the PostgreSQL \
             refusal is tested by backup_and_restore_refuse_a_postgres_node)"
        );
        return;
    }
    let Pair {
        pki,
        residence,
        hukou,
        _root,
    } = spawn_pair().await;
    // Files made at the residence node are pushed to the hukou node, which is backed up.
    create_range(&residence, 1..150).await;
    delivered(&residence, &hukou).await;

    // The backup while the residence node keeps pushing new files to it.
    let out = hukou.dir.path().join("hukou-backup.db");
    let url = hukou.settings.database.url.clone();
    let backup = {
        let (pki_dir, out) = (pki.clone(), out.clone());
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            cli(
                &pki_dir,
                CHENGDU,
                &url,
                &["backup", "--out", out.to_str().unwrap(), "--json"],
            )
        })
    };
    let load = async {
        create_range(&residence, 150..230).await;
    };
    let (backup, ()) = tokio::join!(backup, load);
    let backup = backup.unwrap();
    assert!(backup.status.success(), "{}", stderr(&backup));
    let report: Value = serde_json::from_slice(&backup.stdout).unwrap();
    assert_eq!(report["node_id"], CHENGDU);
    let in_backup = report["versions"].as_u64().unwrap();
    assert!(in_backup >= 149, "{report}");
    assert!(report["bytes"].as_u64().unwrap() > 0);
    // Audited at the node, without child data.
    let ev = events(&hukou, "node.backup");
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["versions"], report["versions"]);
    assert!(!ev[0].to_string().contains("510104"), "{}", ev[0]);

    // More writes after the backup, all delivered.
    create_range(&residence, 230..260).await;
    delivered(&residence, &hukou).await;
    let before = hukou.count("versions");
    assert!(before as u64 > in_backup, "{before} {in_backup}");

    // Restore while it runs: refused, nothing changed.
    let refused = cli(
        &pki,
        CHENGDU,
        &url,
        &["restore", "--from", out.to_str().unwrap()],
    );
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("the node is running"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(hukou.count("versions"), before);

    // Stop, restore.
    let (settings, db, dir) = hukou.shut_down().await;
    let restored = tokio::task::spawn_blocking({
        let (pki, url, out) = (pki.clone(), url.clone(), out.clone());
        move || {
            cli(
                &pki,
                CHENGDU,
                &url,
                &["restore", "--from", out.to_str().unwrap(), "--json"],
            )
        }
    })
    .await
    .unwrap();
    assert!(restored.status.success(), "{}", stderr(&restored));
    let said: Value = serde_json::from_slice(&restored.stdout).unwrap();
    assert_eq!(said["versions"].as_u64().unwrap(), in_backup);
    let kept = said["previous_database"].as_str().unwrap();
    assert!(std::path::Path::new(kept).exists(), "{kept}");

    // The next start refuses until the restore is accepted.
    let listeners = || hukou_sync::startup::Listeners {
        admin: Some(std::net::TcpListener::bind(settings.admin.listen).unwrap()),
        peer: Some(std::net::TcpListener::bind(settings.peer.as_ref().unwrap().listen).unwrap()),
    };
    let err = match hukou_sync::devnet::run(settings.clone(), listeners()).await {
        Ok(_) => panic!("a restored node started without --accept-restore"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("restored from a backup"), "{err}");
    assert!(err.contains("--accept-restore"), "{err}");
    let mut accepted = settings.clone();
    accepted.accept_restore = true;
    let hukou = restart(accepted, db, dir).await;
    assert_eq!(hukou.count("versions") as u64, in_backup);
    // The copy taken under load is one consistent snapshot: its whole audit log verifies
    // (every leaf against its hash, every signed head against the recomputed root).
    let verified = cli(&pki, CHENGDU, &url, &["audit", "verify", "--json"]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    let ev = events(&hukou, "audit.restore_accepted");
    assert_eq!(ev.len(), 1);
    assert!(
        ev[0]["finding"]
            .as_str()
            .unwrap()
            .contains("hukou-backup.db"),
        "{}",
        ev[0]
    );

    // One reconciliation brings back what the copy lacked: zero differences after.
    let reconciler =
        hukou_sync::startup::reconciler(&hukou.settings, hukou.store.clone(), hukou.node.clone())
            .unwrap()
            .unwrap();
    let opts = || RunOptions {
        dry_run: false,
        started_by: StartedBy::Cli,
        actor: Actor::console(),
    };
    let report = reconciler
        .run(ZHENGZHOU, opts(), Arc::new(|_| {}))
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Ok, "{report:?}");
    assert_eq!(
        report.versions_from_peer,
        before as u64 - in_backup,
        "{report:?}"
    );
    eventually(60, "the lost versions are back", || async {
        hukou.count("versions") == before
    })
    .await;
    assert_eq!(all_heads(&hukou), all_heads(&residence));
    let again = reconciler
        .run(ZHENGZHOU, opts(), Arc::new(|_| {}))
        .await
        .unwrap();
    assert_eq!(again.documents_differing, 0, "{again:?}");

    // A second start passes the self check without the flag.
    let (settings, db, dir) = hukou.shut_down().await;
    let mut plain = settings.clone();
    plain.accept_restore = false;
    restart(plain, db, dir).await.stop().await;
    residence.stop().await;
}

#[tokio::test]
async fn backup_and_restore_refuse_bad_inputs_and_change_nothing() {
    if on_postgres() {
        eprintln!("skipped on PostgreSQL: the SQLite refusals need an SQLite node");
        return;
    }
    let Pair {
        pki,
        residence,
        hukou,
        _root,
    } = spawn_pair().await;
    create_range(&residence, 1..5).await;
    let url = hukou.settings.database.url.clone();
    let dir = hukou.dir.path().to_owned();

    // An existing output is never overwritten.
    let existing = dir.join("existing.db");
    std::fs::write(&existing, b"keep me").unwrap();
    let o = cli(
        &pki,
        CHENGDU,
        &url,
        &["backup", "--out", existing.to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("exists"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
    // An output in a directory that does not exist.
    let o = cli(
        &pki,
        CHENGDU,
        &url,
        &[
            "backup",
            "--out",
            dir.join("no/such/dir/b.db").to_str().unwrap(),
        ],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cannot write"), "{}", stderr(&o));
    assert!(events(&hukou, "node.backup").is_empty());

    // A good backup of the other node, and a file that is no database at all.
    let theirs = dir.join("residence.db");
    let o = cli(
        &pki,
        ZHENGZHOU,
        &residence.settings.database.url,
        &["backup", "--out", theirs.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let (settings, db, keep) = hukou.shut_down().await;
    let file = sqlite_path(&url);
    let bytes = std::fs::read(&file).unwrap();
    let o = cli(
        &pki,
        CHENGDU,
        &url,
        &["restore", "--from", theirs.to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("a backup of node 410100, not of this node 510100"),
        "{}",
        stderr(&o)
    );
    let o = cli(
        &pki,
        CHENGDU,
        &url,
        &["restore", "--from", existing.to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("is not an SQLite database"),
        "{}",
        stderr(&o)
    );
    // A copy of the node's own database made without `backup` (a bare file copy).
    let bare = dir.join("bare.db");
    std::fs::copy(&file, &bare).unwrap();
    let o = cli(
        &pki,
        CHENGDU,
        &url,
        &["restore", "--from", bare.to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("not a hukou-sync backup"),
        "{}",
        stderr(&o)
    );
    // Nothing changed: the same file, nothing kept aside, and the node starts as before.
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
    let aside: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("restor"))
        .collect();
    assert!(aside.is_empty(), "{aside:?}");
    restart(settings, db, keep).await.stop().await;
    residence.stop().await;
}

/// On PostgreSQL (or any node whose URL is postgres://) both commands refuse and say what to
/// use instead.
#[tokio::test]
async fn backup_and_restore_refuse_a_postgres_node() {
    let app = spawn_app().await;
    let config = app.dir.path().join("pg.toml");
    let own = std::fs::read_to_string(app.config_file()).unwrap();
    let pg = own.replace(
        &format!("url = \"{}\"", app.settings.database.url),
        "url = \"postgres://postgres@127.0.0.1:5432/test\"",
    );
    assert_ne!(pg, own);
    std::fs::write(&config, pg).unwrap();
    let out = app.dir.path().join("b.db");
    for args in [
        vec!["backup", "--out", out.to_str().unwrap()],
        vec!["restore", "--from", out.to_str().unwrap()],
    ] {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_hukou-sync"))
            .arg("--config")
            .arg(&config)
            .args(&args)
            .env_remove("HUKOU_SYNC_CONFIG")
            .env_remove("HUKOU_SYNC__DATABASE__URL")
            .output()
            .unwrap();
        assert!(!o.status.success(), "{args:?}");
        let e = stderr(&o);
        assert!(e.contains("PostgreSQL"), "{e}");
        assert!(
            e.contains("pg_basebackup") || e.contains("pg_restore"),
            "{e}"
        );
        assert!(!out.exists());
    }
    app.stop().await;
}
