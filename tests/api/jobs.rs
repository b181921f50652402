//! The background jobs of a node (`hukou_sync::jobs`): stopping an application ends all of them.

use std::net::TcpListener;
use std::time::Duration;

use hukou_sync::devnet::pki::{init_dev_pki, NodePlan};
use hukou_sync::domain::{NodeId, RegionPrefix};
use hukou_sync::startup::{Application, Listeners};

use crate::helpers::{eventually, TestDb};
use crate::helpers::{node_settings, CHENGDU, ZHENGZHOU};

#[tokio::test]
async fn stopping_an_application_ends_all_its_jobs() {
    let root = tempfile::tempdir().unwrap();
    let bind = || TcpListener::bind("127.0.0.1:0").unwrap();
    let (admin, peer, other_admin, other_peer) = (bind(), bind(), bind(), bind());
    let port = |l: &TcpListener| l.local_addr().unwrap().port();
    let plans = vec![
        NodePlan {
            id: NodeId::parse(ZHENGZHOU).unwrap(),
            serves: vec![RegionPrefix::parse("4101").unwrap()],
            peer_port: port(&peer),
            admin_port: port(&admin),
        },
        // A peer that never runs: its sender loop keeps failing and backing off.
        NodePlan {
            id: NodeId::parse(CHENGDU).unwrap(),
            serves: vec![RegionPrefix::parse("5101").unwrap()],
            peer_port: port(&other_peer),
            admin_port: port(&other_admin),
        },
    ];
    let pki = init_dev_pki(&root.path().join("pki"), &plans, 30).unwrap();
    let db = TestDb::new(root.path());
    let mut settings = node_settings(&pki, ZHENGZHOU, &db);
    // Every kind of job: tree heads, version integrity, age-out, evidence expiry, the directory
    // watch, a scheduled run, witnessing, the sender loops.
    settings.reconcile.schedule = vec![hukou_sync::config::ReconcileSchedule {
        peer: NodeId::parse(CHENGDU).unwrap(),
        cron: "0 0 3 * * *".into(),
    }];
    drop((other_admin, other_peer));
    let app = Application::build_with(
        settings,
        Listeners {
            admin: Some(admin),
            peer: Some(peer),
        },
    )
    .await
    .unwrap();
    let running = app.running_jobs();
    let handle = app.handle();
    let served = tokio::spawn(app.run_until_stopped());
    // Tree heads, version integrity, age-out, evidence expiry, directory watch, directory fetch,
    // one schedule, evidence fetch, witnessing, the supervisor and its loop for the peer; and the
    // keepers of the leases of the seven singleton jobs and of sending to the peer.
    eventually(20, "every job started", || {
        let n = running.count();
        async move { n == 19 }
    })
    .await;
    handle.stop(true).await;
    tokio::time::timeout(Duration::from_secs(20), served)
        .await
        .expect("the application stops")
        .unwrap()
        .unwrap();
    assert_eq!(running.count(), 0, "every job ended");
}
