//! One node served by two `serve` processes on one PostgreSQL database (issue 25 #1): the
//! residence bureau runs as two real processes of the binary, both in the directory
//! (`endpoint` and `endpoints`). Under a push load the process holding the lease to send to the
//! hukou bureau is killed (SIGKILL) mid-delivery: the other takes the lease over within the
//! lease time and delivers the rest — nothing lost, nothing refused, parents before children —
//! and the hukou bureau's pushes fail over to the surviving process's endpoint. On SQLite (one
//! process by design: `serve` holds `<db>.lock`) there is nothing to test and it says so.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use hukou_sync::accounts::Role;
use hukou_sync::devnet::pki::resign_directory;
use serde_json::json;

use crate::helpers::{
    bind, client_with_token, create_token, eventually, flowing_child, id_number, restart,
    spawn_pair_with, CHENGDU, ZHENGZHOU,
};

const LEASE_SECS: u64 = 4;
const FILES: u16 = 240;

fn on_postgres() -> bool {
    std::env::var("TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres"))
}

/// A `serve` process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(QueryableByName)]
struct LeaseHolder {
    #[diesel(sql_type = diesel::sql_types::Text)]
    holder: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    fence: i64,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn sql_count(conn: &mut PgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<Count>(conn).unwrap().n
}

/// Who holds the lease `name`: the process id (from `host:pid:random`) and the fence.
fn holder(conn: &mut PgConnection, name: &str) -> Option<(u32, i64)> {
    let rows: Vec<LeaseHolder> = diesel::sql_query(
        "SELECT holder, fence FROM leases WHERE name = $1 AND expires_at > \
         CAST(clock_timestamp() AT TIME ZONE 'UTC' AS TIMESTAMP)",
    )
    .bind::<diesel::sql_types::Text, _>(name)
    .load(conn)
    .unwrap();
    rows.first().map(|r| {
        let pid = r.holder.split(':').nth(1).unwrap().parse().unwrap();
        (pid, r.fence)
    })
}

async fn healthy(admin: &str) {
    let http = reqwest::Client::new();
    let url = format!("{admin}/healthz");
    eventually(30, "the serve process answers", || {
        let (http, url) = (http.clone(), url.clone());
        async move { http.get(&url).send().await.is_ok_and(|r| r.status() == 200) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_serve_one_node_and_take_over_a_killed_senders_work() {
    if !on_postgres() {
        eprintln!(
            "skipped: several serve processes share one node only on PostgreSQL \
             (run with TEST_DATABASE_URL=postgres://...)"
        );
        return;
    }
    let pair = spawn_pair_with(|_, s| {
        s.database.lease_secs = LEASE_SECS;
        s.sync.batch_size = 10;
    })
    .await;
    let token = create_token(
        &pair.residence.store,
        &pair.residence.node,
        "load",
        Role::Administrator,
    );
    let pki = pair.pki;
    let url = pair.residence.settings.database.url.clone();
    let mut db = PgConnection::establish(&url).unwrap();
    // The processes' ports, held until each starts: taken while both nodes still hold theirs,
    // so none of them is the hukou node's (it starts again on its own later).
    let second_peer_listener = bind();
    let admin_listeners = [bind(), bind()];
    // The residence bureau's in-process node stops (releasing its leases); the hukou bureau
    // stops too, so the load queues up before anything is delivered.
    let (residence_settings, residence_db, _residence_dir) = pair.residence.shut_down().await;
    let (hukou_settings, hukou_db, hukou_dir) = pair.hukou.shut_down().await;

    // The directory lists the node's second process.
    let first_peer = residence_settings.peer.as_ref().unwrap().listen;
    let second_peer = second_peer_listener.local_addr().unwrap();
    resign_directory(&pki, |d| {
        let me = d
            .nodes
            .iter_mut()
            .find(|n| n.id.as_str() == ZHENGZHOU)
            .unwrap();
        me.endpoints = vec![format!("https://127.0.0.1:{}", second_peer.port())];
    })
    .unwrap();
    let config = &pki
        .nodes
        .iter()
        .find(|n| n.id.as_str() == ZHENGZHOU)
        .unwrap()
        .config;
    let [first_admin_listener, second_admin_listener] = admin_listeners;
    let serve = |peer: std::net::SocketAddr, listener: std::net::TcpListener| {
        let admin = listener.local_addr().unwrap();
        drop(listener);
        let child = Command::new(env!("CARGO_BIN_EXE_hukou-sync"))
            .arg("--config")
            .arg(config)
            .arg("serve")
            .env_remove("HUKOU_SYNC_CONFIG")
            .env("HUKOU_SYNC__DATABASE__URL", &url)
            .env("HUKOU_SYNC__DATABASE__POOL_SIZE", "4")
            .env("HUKOU_SYNC__DATABASE__LEASE_SECS", LEASE_SECS.to_string())
            .env("HUKOU_SYNC__SYNC__BATCH_SIZE", "10")
            .env("HUKOU_SYNC__SYNC__MAX_BACKOFF_SECS", "1")
            .env("HUKOU_SYNC__PEER__LISTEN", peer.to_string())
            .env("HUKOU_SYNC__ADMIN__LISTEN", admin.to_string())
            .env("HUKOU_SYNC__LOG__FILTER", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        (Process(child), format!("http://{admin}"))
    };
    // The first process takes the lease to send to the hukou bureau, then the second starts.
    let (first, first_admin) = serve(first_peer, first_admin_listener);
    healthy(&first_admin).await;
    let send_lease = format!("send:{CHENGDU}");
    let first_pid = first.0.id();
    eventually(30, "the first process holds the sending lease", || {
        let got = holder(&mut db, &send_lease);
        async move { got.is_some_and(|(pid, _)| pid == first_pid) }
    })
    .await;
    drop(second_peer_listener);
    let (second, second_admin) = serve(second_peer, second_admin_listener);
    healthy(&second_admin).await;

    // The load: every file created and then edited (two versions, the second on the first),
    // through both processes' admin listeners at once.
    let http = client_with_token(&token);
    let mut writes = Vec::new();
    for half in 0..2u16 {
        let (http, admin) = (
            http.clone(),
            if half == 0 {
                first_admin.clone()
            } else {
                second_admin.clone()
            },
        );
        writes.push(tokio::spawn(async move {
            for seq in (half..FILES).step_by(2) {
                let r = http
                    .post(format!("{admin}/api/v1/children"))
                    .json(&flowing_child(seq))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
                let id = id_number("510104", (2014, 6, 1), seq);
                let r = http
                    .patch(format!("{admin}/api/v1/children/{id}"))
                    .json(&json!({"last_visit_on": "2026-11-20"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
            }
        }));
    }
    for w in writes {
        w.await.unwrap();
    }
    let queued = sql_count(
        &mut db,
        &format!("SELECT COUNT(*) AS n FROM outbox WHERE peer = '{CHENGDU}'"),
    );
    assert_eq!(queued, 2 * i64::from(FILES), "every version queued once");

    // The hukou bureau comes back; once deliveries are under way, the sender is killed.
    let hukou = restart(hukou_settings, hukou_db, hukou_dir).await;
    eventually(60, "deliveries under way", || {
        let n = hukou.count("versions");
        async move { n > 0 }
    })
    .await;
    let (_, fence) = holder(&mut db, &send_lease).unwrap();
    let mut first = first;
    first.0.kill().unwrap();
    let killed = Instant::now();
    first.0.wait().unwrap();
    let left = sql_count(
        &mut db,
        &format!("SELECT COUNT(*) AS n FROM outbox WHERE peer = '{CHENGDU}'"),
    );
    assert!(
        left > 0,
        "killed mid-delivery: {left} versions still queued"
    );

    // The second process takes the lease over within the lease time (and a renewal period).
    let second_pid = second.0.id();
    eventually(
        30,
        "the second process takes the sending lease over",
        || {
            let got = holder(&mut db, &send_lease);
            async move { got.is_some_and(|(pid, f)| pid == second_pid && f > fence) }
        },
    )
    .await;
    let took = killed.elapsed();
    assert!(
        took <= Duration::from_secs(LEASE_SECS)
            + Duration::from_secs(LEASE_SECS) / 4
            + Duration::from_secs(2),
        "takeover after {took:?} (lease {LEASE_SECS} s)"
    );
    eprintln!("takeover {took:?} after the kill (lease {LEASE_SECS} s)");

    // The singleton jobs all run in the survivor now (those the killed process held expired).
    eventually(
        30,
        "every singleton job's lease with the second process",
        || {
            let jobs = [
                "job:tree_heads",
                "job:version_integrity",
                "job:age_out",
                "job:witnessing",
            ]
            .map(|j| holder(&mut db, j).map(|(pid, _)| pid));
            async move { jobs.iter().all(|p| *p == Some(second_pid)) }
        },
    )
    .await;
    // ... as the console shows an operator.
    let out = Command::new(env!("CARGO_BIN_EXE_hukou-sync"))
        .arg("--config")
        .arg(config)
        .args(["leases", "--json"])
        .env_remove("HUKOU_SYNC_CONFIG")
        .env("HUKOU_SYNC__DATABASE__URL", &url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let leases: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let send = leases
        .iter()
        .find(|l| l["name"] == send_lease.as_str())
        .unwrap();
    assert_eq!(send["held"], true);
    assert!(send["holder"]
        .as_str()
        .unwrap()
        .contains(&format!(":{second_pid}:")));

    // Nothing lost, nothing twice, nothing refused for order.
    eventually(60, "the queue drains", || {
        let n = sql_count(
            &mut db,
            &format!("SELECT COUNT(*) AS n FROM outbox WHERE peer = '{CHENGDU}'"),
        );
        async move { n == 0 }
    })
    .await;
    assert_eq!(hukou.count("versions"), 2 * i64::from(FILES));
    assert_eq!(hukou.count("children"), i64::from(FILES));
    assert_eq!(
        sql_count(&mut db, "SELECT COUNT(*) AS n FROM outbox_rejected"),
        0
    );
    assert_eq!(
        hukou.count("heads"),
        i64::from(FILES),
        "one head per file: every edit on its creation"
    );

    // The hukou bureau's pushes to the node fail over to the surviving process's endpoint.
    let id = id_number("510104", (2014, 6, 1), 7);
    let r = hukou
        .patch_json(
            &format!("/api/v1/children/{id}"),
            &json!({"benefits": [{"benefit": "dibao", "since": "2026-10"}]}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let via_second = reqwest::Client::new();
    eventually(
        30,
        "the edit reaches the node through its second endpoint",
        || {
            let (http, url) = (
                via_second.clone(),
                format!("{second_admin}/api/v1/children/{id}"),
            );
            let token = token.clone();
            async move {
                let Ok(r) = http.get(&url).bearer_auth(&token).send().await else {
                    return false;
                };
                let v: serde_json::Value = r.json().await.unwrap_or_default();
                v["history"].as_array().is_some_and(|h| h.len() == 3)
            }
        },
    )
    .await;
    drop(second);
    drop(residence_db);
    drop(residence_settings);
}
