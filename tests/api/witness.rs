//! Peers witness each other's audit logs (issue 20): checkpoints in the C2SP signed-note
//! format, cosigned over the peer listener (mutual TLS) by the tlog-witness rules; a second root
//! for a size, a rollback after a restore from backup and a failing proof are caught, kept as
//! evidence anyone verifies offline, logged, audited, counted in a metric, shown on the peers
//! page, and stop cosigning until an administrator acknowledges.

use chrono::Utc;
use hukou_sync::audit::checkpoint::{Checkpoint, Note};
use hukou_sync::audit::witness::AddCheckpoint;
use hukou_sync::config::Settings;
use hukou_sync::domain::NodeId;
use hukou_sync::storage;
use hukou_sync::storage::audit::EventFilter;
use hukou_sync::sync::witness::{request_cosignature, CosignError, ADD_CHECKPOINT_PATH};
use serde_json::Value;

use crate::helpers::{
    flowing_child, node_command, peer_client, problem, residence_key, restart, spawn_pair_with,
    Pair, TestApp, CHENGDU, ZHENGZHOU,
};

/// Nodes whose witnessing job waits an hour: the tests ask for cosignatures themselves.
fn by_hand(_: &str, s: &mut Settings) {
    s.audit.witness.interval_secs = 3600;
    s.audit.witness.idle_secs = 3600;
}

fn node(id: &str) -> NodeId {
    NodeId::parse(id).unwrap()
}

/// `from` asks `to` to cosign its latest checkpoint.
async fn cosign(
    pki: &hukou_sync::devnet::pki::DevPki,
    from: &TestApp,
    to: &str,
) -> Result<u64, CosignError> {
    let http = peer_client(pki, from.node.id.as_str(), to);
    request_cosignature(&from.store, &from.node, &node(to), &http)
        .await
        .map(|c| c.size)
}

fn witness_url(app: &TestApp) -> String {
    format!(
        "https://127.0.0.1:{}{ADD_CHECKPOINT_PATH}",
        app.settings.peer.as_ref().unwrap().listen.port()
    )
}

fn held(app: &TestApp, peer: &str) -> Option<(u64, String)> {
    let mut c = app.store.conn().unwrap();
    storage::witness::witnessed(&mut c, peer)
        .unwrap()
        .map(|r| (r.size as u64, r.checkpoint))
}

fn events(app: &TestApp, action: &str) -> Vec<Value> {
    let mut c = app.store.conn().unwrap();
    storage::audit::list_events(
        &mut c,
        &EventFilter {
            action: Some(action.into()),
            limit: 100,
            ..Default::default()
        },
    )
    .unwrap()
    .into_iter()
    .map(|r| serde_json::from_str(&r.details).unwrap())
    .collect()
}

fn open_evidence(app: &TestApp) -> Vec<storage::witness::EvidenceRow> {
    let mut c = app.store.conn().unwrap();
    storage::witness::evidence(&mut c, None, true).unwrap()
}

fn run(cmd: &mut std::process::Command) -> (bool, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn metric(app: &TestApp, line_start: &str) -> Option<String> {
    let m = app.get("/metrics").await.text().await.unwrap();
    m.lines()
        .find(|l| l.starts_with(line_start))
        .map(str::to_owned)
}

/// Each node's checkpoint is cosigned by the other on the job's own schedule; a third node of
/// the directory that never runs cosigns nothing, so a quorum of two is not met — in the
/// checkpoint and in an export, both verified offline.
#[tokio::test]
async fn each_nodes_checkpoint_is_cosigned_by_the_other_and_verifies_offline() {
    let pair = crate::helpers::spawn_pair_among(vec![crate::exchange::absent_wuhan()], |_, s| {
        s.audit.witness.interval_secs = 1;
        s.audit.witness.idle_secs = 1;
    })
    .await;
    pair.residence.create_child(&flowing_child(1)).await;
    crate::helpers::eventually(30, "each node cosigned by the other", || async {
        pair.residence.count("cosignatures") > 0 && pair.hukou.count("cosignatures") > 0
    })
    .await;
    let peers: Value = pair
        .residence
        .get("/api/v1/peers")
        .await
        .json()
        .await
        .unwrap();
    let of = |id: &str| {
        peers
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["peer"] == id)
            .unwrap()
            .clone()
    };
    assert!(
        of(CHENGDU)["cosigned_size"].as_u64().unwrap() > 0,
        "{peers}"
    );
    assert_eq!(of(CHENGDU)["witness_inconsistent"], 0);
    assert!(
        of(crate::helpers::WUHAN)["cosigned_size"].is_null(),
        "{peers}"
    );

    // The cosigned checkpoint, printed, verifies offline with the directory alone.
    let (ok, note, err) = run(node_command(&pair.pki, ZHENGZHOU, &pair.residence).args([
        "audit",
        "checkpoint",
        "--cosigned",
    ]));
    assert!(ok, "{err}");
    assert!(note.starts_with("hukou-sync/410100\n"), "{note}");
    assert!(note.contains("\n\n\u{2014} hukou-sync/410100 "), "{note}");
    assert!(note.contains("\u{2014} hukou-sync/510100 "), "{note}");
    let file = pair.residence.dir.path().join("checkpoint.txt");
    std::fs::write(&file, &note).unwrap();
    // Verified on the other node's configuration (its directory): no database needed.
    let verify = |extra: &[&str]| {
        let mut c = node_command(&pair.pki, CHENGDU, &pair.hukou);
        c.args(["audit", "checkpoint", "verify", file.to_str().unwrap()])
            .args(extra)
            .env(
                "HUKOU_SYNC__DATABASE__URL",
                "sqlite:///nonexistent/never-opened.db",
            );
        run(&mut c)
    };
    let (ok, out, err) = verify(&[]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("ok: signed by 410100"), "{out}");
    assert!(out.contains("ok: cosigned by 510100"), "{out}");
    // One witness in this network: a quorum of two is not met.
    let (ok, out, _) = verify(&["--quorum", "2"]);
    assert!(!ok);
    assert!(
        out.contains("FAILED: 1 witness(es) cosigned it; the quorum is 2"),
        "{out}"
    );
    // A changed size breaks the log's signature and the cosignature.
    let cp = Checkpoint::parse(&Note::parse(note.as_bytes()).unwrap().text).unwrap();
    std::fs::write(
        &file,
        note.replacen(
            &format!("\n{}\n", cp.size),
            &format!("\n{}\n", cp.size + 1),
            1,
        ),
    )
    .unwrap();
    let (ok, out, _) = verify(&[]);
    assert!(!ok);
    assert!(out.contains("FAILED: no key of 410100"), "{out}");

    // An audit export carries the cosigned checkpoint; its verification checks the quorum.
    let export = pair.residence.dir.path().join("audit.jsonl");
    let (ok, _, err) = run(node_command(&pair.pki, ZHENGZHOU, &pair.residence).args([
        "audit",
        "export",
        "--out",
        export.to_str().unwrap(),
        "--purpose",
        "test",
    ]));
    assert!(ok, "{err}");
    let verify_export = |extra: &[&str]| {
        let mut c = node_command(&pair.pki, CHENGDU, &pair.hukou);
        c.args(["audit", "verify", "--export", export.to_str().unwrap()])
            .args(extra)
            .env(
                "HUKOU_SYNC__DATABASE__URL",
                "sqlite:///nonexistent/never-opened.db",
            );
        run(&mut c)
    };
    let (ok, out, err) = verify_export(&[]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("were cosigned by 510100"), "{out}");
    let (ok, out, _) = verify_export(&["--quorum", "2"]);
    assert!(!ok);
    assert!(
        out.contains("is cosigned by 1 witness(es); the quorum is 2"),
        "{out}"
    );
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

#[tokio::test]
async fn a_second_root_for_a_size_is_caught_and_cosigning_stops_until_acknowledged() {
    let pair = spawn_pair_with(by_hand).await;
    pair.residence.create_child(&flowing_child(1)).await;
    let size = cosign(&pair.pki, &pair.residence, CHENGDU).await.unwrap();
    assert_eq!(held(&pair.hukou, ZHENGZHOU).unwrap().0, size);

    // The residence node's key signs a second root for the size its witness holds.
    let forged = Checkpoint {
        origin: "hukou-sync/410100".into(),
        size,
        root: [0x9f; 32],
        timestamp: Some(Utc::now()),
    }
    .sign(&residence_key(&pair.pki))
    .unwrap();
    let body = AddCheckpoint {
        old_size: size,
        proof: vec![],
        note: forged.to_string(),
    }
    .body();
    let client = peer_client(&pair.pki, ZHENGZHOU, CHENGDU);
    let r = client
        .post(witness_url(&pair.hukou))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    problem(r, 422, "inconsistent_checkpoint").await;

    // Kept, audited, counted, shown.
    let open = open_evidence(&pair.hukou);
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0].peer.as_str(), open[0].kind.as_str()),
        (ZHENGZHOU, "equivocation")
    );
    let ev = events(&pair.hukou, "witness.inconsistent");
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["kind"], "equivocation");
    assert_eq!(ev[0]["evidence"], open[0].id.as_str());
    assert_eq!(
        metric(
            &pair.hukou,
            "hukou_sync_witness_inconsistent{peer=\"410100\"}"
        )
        .await
        .as_deref(),
        Some("hukou_sync_witness_inconsistent{peer=\"410100\"} 1")
    );
    let peers: Value = pair.hukou.get("/api/v1/peers").await.json().await.unwrap();
    assert_eq!(peers[0]["witness_inconsistent"], 1, "{peers}");
    crate::helpers::add_user(
        &pair.hukou,
        "wang.fang",
        hukou_sync::accounts::Role::Administrator,
        "correct horse battery",
    );
    let mut v = crate::ui::Visitor::new(&pair.hukou);
    v.login("wang.fang", "correct horse battery").await;
    let page = v.get("/ui/peers").await;
    assert!(
        page.body.contains("LOG INCONSISTENT: 1 evidence open"),
        "{}",
        page.body
    );

    // The same request again is one piece of evidence, not two; a valid one is not cosigned.
    let r = client
        .post(witness_url(&pair.hukou))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(open_evidence(&pair.hukou).len(), 1);
    match cosign(&pair.pki, &pair.residence, CHENGDU).await {
        Err(CosignError::Refused {
            status: 422, body, ..
        }) => {
            assert!(body.contains("cosigning_suspended"), "{body}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    // Anyone with the directory verifies the evidence offline; a doctored copy fails.
    let file = pair.hukou.dir.path().join("evidence.json");
    std::fs::write(&file, &open[0].document).unwrap();
    let verify = || {
        let mut c = node_command(&pair.pki, ZHENGZHOU, &pair.residence);
        c.args(["audit", "evidence", "verify", file.to_str().unwrap()])
            .env(
                "HUKOU_SYNC__DATABASE__URL",
                "sqlite:///nonexistent/never-opened.db",
            );
        run(&mut c)
    };
    let (ok, out, err) = verify();
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("ok: equivocation evidence against 410100, witnessed by 510100"),
        "{out}"
    );
    assert!(out.contains("(proof on its own)"), "{out}");
    let mut doc: Value = serde_json::from_str(&open[0].document).unwrap();
    doc["received"] = doc["held"].clone();
    std::fs::write(&file, doc.to_string()).unwrap();
    let (ok, out, _) = verify();
    assert!(!ok);
    assert!(
        out.contains("FAILED: the checkpoints do not show equivocation"),
        "{out}"
    );

    // An administrator acknowledges (audited); cosigning starts over.
    let (ok, out, err) = run(node_command(&pair.pki, CHENGDU, &pair.hukou).args([
        "audit",
        "evidence",
        "ack",
        ZHENGZHOU,
        "--reason",
        "restored from backup, ticket 4411",
    ]));
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("acknowledged 1 piece(s) of evidence against 410100"),
        "{out}"
    );
    let acks = events(&pair.hukou, "witness.acknowledge");
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0]["reason"], "restored from backup, ticket 4411");
    assert!(open_evidence(&pair.hukou).is_empty());
    assert_eq!(
        metric(
            &pair.hukou,
            "hukou_sync_witness_inconsistent{peer=\"410100\"}"
        )
        .await
        .as_deref(),
        Some("hukou_sync_witness_inconsistent{peer=\"410100\"} 0")
    );
    let again = cosign(&pair.pki, &pair.residence, CHENGDU).await.unwrap();
    assert_eq!(held(&pair.hukou, ZHENGZHOU).unwrap().0, again);
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

/// The first scenario: a node restored from an old backup signs a smaller tree after
/// its witness cosigned a larger one.
#[tokio::test]
async fn a_node_restored_from_an_old_backup_is_caught_by_its_witness() {
    let Pair {
        pki,
        residence,
        hukou,
        _root,
    } = spawn_pair_with(by_hand).await;
    residence.create_child(&flowing_child(1)).await;
    let backup = cosign(&pki, &residence, CHENGDU).await.unwrap();
    for seq in 2..8 {
        residence.create_child(&flowing_child(seq)).await;
    }
    let seen = cosign(&pki, &residence, CHENGDU).await.unwrap();
    assert!(seen >= backup + 6, "{backup} {seen}");

    // The backup: the log, its subtrees, heads and cosignatures as they were at `backup`.
    let (settings, db, dir) = residence.shut_down().await;
    let app_exec = |sql: &str| {
        use diesel::connection::SimpleConnection;
        let mut c = hukou_sync::storage::Store::open(&db.url, 1)
            .unwrap()
            .conn()
            .unwrap();
        match &mut *c {
            storage::DbConn::Sqlite(s) => s.batch_execute(sql).unwrap(),
            storage::DbConn::Postgres(p) => p.batch_execute(sql).unwrap(),
        }
    };
    app_exec(&format!(
        "DELETE FROM audit_events WHERE seq >= {backup}; \
         DELETE FROM audit_nodes WHERE ((idx + 1) * (CAST(1 AS BIGINT) << CAST(level AS INTEGER))) > {backup}; \
         DELETE FROM tree_heads WHERE size > {backup}; \
         DELETE FROM cosignatures WHERE size > {backup};"
    ));
    let residence = restart(settings, db, dir).await;
    // The restored node asks its witness as usual: the witness proves the rollback.
    match cosign(&pki, &residence, CHENGDU).await {
        Err(CosignError::Refused {
            status: 422, body, ..
        }) => {
            assert!(body.contains("inconsistent_checkpoint"), "{body}")
        }
        other => panic!("expected the witness to refuse, got {other:?}"),
    }
    let open = open_evidence(&hukou);
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].kind, "rollback");
    let doc: Value = serde_json::from_str(&open[0].document).unwrap();
    let held = Checkpoint::parse(
        &Note::parse(doc["held"].as_str().unwrap().as_bytes())
            .unwrap()
            .text,
    )
    .unwrap();
    let received = Checkpoint::parse(
        &Note::parse(doc["received"].as_str().unwrap().as_bytes())
            .unwrap()
            .text,
    )
    .unwrap();
    assert_eq!(held.size, seen);
    assert!(received.size < seen, "{} {seen}", received.size);
    let file = hukou.dir.path().join("rollback.json");
    std::fs::write(&file, &open[0].document).unwrap();
    let (ok, out, err) = run(node_command(&pki, CHENGDU, &hukou).args([
        "audit",
        "evidence",
        "verify",
        file.to_str().unwrap(),
    ]));
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("ok: rollback evidence against 410100"),
        "{out}"
    );
    residence.stop().await;
    hukou.stop().await;
}

/// A witness that restarts keeps what it cosigned: an old size other than the one it holds gets
/// 409 with that size (`text/x.tlog.size`), and the log retries from it. Bad requests are
/// refused with problem+json and change nothing.
#[tokio::test]
async fn a_witness_keeps_its_state_across_a_restart_and_refuses_bad_requests() {
    let Pair {
        pki,
        residence,
        hukou,
        _root,
    } = spawn_pair_with(by_hand).await;
    residence.create_child(&flowing_child(1)).await;
    let size = cosign(&pki, &residence, CHENGDU).await.unwrap();
    let (settings, db, dir) = hukou.shut_down().await;
    let hukou = restart(settings, db, dir).await;
    assert_eq!(held(&hukou, ZHENGZHOU).unwrap().0, size);

    let key = residence_key(&pki);
    let mut c = residence.store.conn().unwrap();
    let (cp, note) =
        hukou_sync::audit::log::latest_checkpoint(&mut c, &residence.node.id, &key, Utc::now())
            .unwrap();
    drop(c);
    let client = peer_client(&pki, ZHENGZHOU, CHENGDU);
    let post = |body: String| {
        let client = client.clone();
        let url = witness_url(&hukou);
        async move { client.post(url).body(body).send().await.unwrap() }
    };
    let r = post(
        AddCheckpoint {
            old_size: 0,
            proof: vec![],
            note: note.to_string(),
        }
        .body(),
    )
    .await;
    assert_eq!(r.status(), 409);
    assert_eq!(r.headers()["content-type"], "text/x.tlog.size");
    assert_eq!(r.text().await.unwrap(), format!("{size}\n"));

    // Not a request; another node's log; an unknown log; a signature by no key of the peer.
    problem(
        post("old x\n\nnothing".into()).await,
        400,
        "malformed_checkpoint",
    )
    .await;
    let signed = |origin: &str, k: &hukou_sync::crypto::keys::SigningKey| {
        Checkpoint {
            origin: origin.into(),
            ..cp.clone()
        }
        .sign(k)
        .unwrap()
        .to_string()
    };
    let body = |note: String| {
        AddCheckpoint {
            old_size: size,
            proof: vec![],
            note,
        }
        .body()
    };
    problem(
        post(body(signed("hukou-sync/510100", &key))).await,
        403,
        "checkpoint_not_trusted",
    )
    .await;
    problem(
        post(body(signed("hukou-sync/999999", &key))).await,
        404,
        "unknown_log",
    )
    .await;
    let stranger = hukou_sync::crypto::keys::SigningKey::generate().unwrap().0;
    problem(
        post(body(signed("hukou-sync/410100", &stranger))).await,
        403,
        "checkpoint_not_trusted",
    )
    .await;
    problem(
        post(
            AddCheckpoint {
                old_size: cp.size + 1,
                proof: vec![],
                note: note.to_string(),
            }
            .body(),
        )
        .await,
        400,
        "malformed_checkpoint",
    )
    .await;
    assert_eq!(held(&hukou, ZHENGZHOU).unwrap().0, size);
    assert!(open_evidence(&hukou).is_empty());

    // The log's own client follows the 409 and is cosigned.
    residence.create_child(&flowing_child(2)).await;
    residence.exec("DELETE FROM cosignatures");
    let newer = cosign(&pki, &residence, CHENGDU).await.unwrap();
    assert!(newer > size);
    residence.stop().await;
    hukou.stop().await;
}

fn exec_on(db: &crate::helpers::TestDb, sql: &str) {
    use diesel::connection::SimpleConnection;
    let mut c = hukou_sync::storage::Store::open(&db.url, 1)
        .unwrap()
        .conn()
        .unwrap();
    match &mut *c {
        storage::DbConn::Sqlite(s) => s.batch_execute(sql).unwrap(),
        storage::DbConn::Postgres(p) => p.batch_execute(sql).unwrap(),
    }
}

/// Starts a stopped node again; the error of a refused start.
async fn start_again(settings: &Settings) -> Result<hukou_sync::devnet::RunningNode, String> {
    let listeners = hukou_sync::startup::Listeners {
        admin: Some(std::net::TcpListener::bind(settings.admin.listen).unwrap()),
        peer: Some(std::net::TcpListener::bind(settings.peer.as_ref().unwrap().listen).unwrap()),
    };
    hukou_sync::devnet::run(settings.clone(), listeners)
        .await
        .map_err(|e| format!("{e:#}"))
}

/// The second scenario: the last 30 events of a stopped node deleted with its tree
/// heads. Its own `audit verify` passes, but its witness had cosigned a larger tree: it refuses
/// to start, naming the sizes and the witness; `--accept-restore` starts it and audits the gap.
#[tokio::test]
async fn a_node_whose_log_lost_its_last_events_refuses_to_start() {
    let Pair {
        pki,
        residence,
        hukou,
        _root,
    } = spawn_pair_with(by_hand).await;
    for seq in 1..36 {
        residence.create_child(&flowing_child(seq)).await;
    }
    let cosigned = cosign(&pki, &residence, CHENGDU).await.unwrap();
    assert!(cosigned > 30);
    {
        let mut c = residence.store.conn().unwrap();
        let rows = storage::witness::latest_cosignatures(&mut c).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].size as u64, cosigned, "{rows:?}");
    }
    let (settings, db, dir) = residence.shut_down().await;
    let end = cosigned - 30;
    exec_on(
        &db,
        &format!(
            "DELETE FROM audit_events WHERE seq >= {end}; \
             DELETE FROM audit_nodes WHERE ((idx + 1) * (CAST(1 AS BIGINT) << CAST(level AS INTEGER))) > {end}; \
             DELETE FROM tree_heads WHERE size > {end};"
        ),
    );
    let err = start_again(&settings)
        .await
        .err()
        .expect("the start is refused");
    assert!(err.contains("refusing to start"), "{err}");
    assert!(
        err.contains(&format!(
            "witness 510100 cosigned size {cosigned} of this log"
        )),
        "{err}"
    );
    // (A write the stopping node had under way may land after the deletion: `end` or a few more.)
    assert!(err.contains("it lost history its witness saw"), "{err}");
    assert!(err.contains("--accept-restore"), "{err}");

    let mut accepted = settings.clone();
    accepted.accept_restore = true;
    let running = start_again(&accepted).await.unwrap();
    let residence = TestApp::new(running, settings, db, dir);
    let ev = events(&residence, "audit.restore_accepted");
    assert_eq!(ev.len(), 1);
    assert!(ev[0]["size"].as_u64().unwrap() < cosigned, "{}", ev[0]);
    assert_eq!(ev[0]["lost_cosignatures"][0]["witness"], CHENGDU);
    assert_eq!(ev[0]["lost_cosignatures"][0]["size"], cosigned);
    // The check passes from now on: a second start is not refused.
    let (settings, db, dir) = residence.shut_down().await;
    let running = start_again(&settings).await.unwrap();
    TestApp::new(running, settings, db, dir).stop().await;
    hukou.stop().await;
}

/// An audit event rewritten in a stopped node's database: the node refuses to start, naming it.
#[tokio::test]
async fn a_node_whose_audit_event_was_rewritten_refuses_to_start() {
    let Pair {
        residence,
        hukou,
        _root,
        ..
    } = spawn_pair_with(by_hand).await;
    residence.create_child(&flowing_child(1)).await;
    let seq = residence.count("audit_events") - 1;
    let (settings, db, dir) = residence.shut_down().await;
    exec_on(
        &db,
        &format!("UPDATE audit_events SET purpose = 'nothing to see' WHERE seq = {seq}"),
    );
    let err = start_again(&settings)
        .await
        .err()
        .expect("the start is refused");
    assert!(
        err.contains(&format!(
            "audit event {seq} was changed after it was written"
        )),
        "{err}"
    );
    drop((db, dir));
    hukou.stop().await;
}

/// The third scenario: a version body changed in a stopped node's database. The
/// integrity job finds it (audit event, metric) and reconciliation no longer counts the file
/// equal.
#[tokio::test]
async fn a_version_body_changed_in_the_database_is_found_and_never_counted_equal() {
    let Pair {
        pki: _pki,
        residence,
        hukou,
        _root,
    } = spawn_pair_with(|id, s| {
        by_hand(id, s);
        s.audit.version_check_interval_secs = 1;
    })
    .await;
    let body = flowing_child(1);
    residence.create_child(&body).await;
    let id = body["id_number"].as_str().unwrap().to_owned();
    crate::helpers::wait_for_versions(&hukou, &id, 1).await;
    let (settings, db, dir) = residence.shut_down().await;
    exec_on(
        &db,
        &format!(
            "UPDATE versions SET body = replace(body, '\"name\":\"', '\"name\":\"改') \
             WHERE doc_id = '{id}'"
        ),
    );
    let residence = restart(settings, db, dir).await;
    crate::helpers::eventually(20, "the changed version is found", || async {
        !events(&residence, "version.tampered").is_empty()
    })
    .await;
    let ev = events(&residence, "version.tampered");
    assert_eq!(ev.len(), 1);
    assert_eq!(
        metric(&residence, "hukou_sync_versions_tampered ")
            .await
            .as_deref(),
        Some("hukou_sync_versions_tampered 1")
    );
    // Reconciliation: the file is not equal (it is in no summary of the changed node).
    let r = residence
        .http
        .post(residence.url("/api/v1/reconcile/510100?dry_run=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    crate::helpers::eventually(30, "the run finishes", || async {
        let v: Value = residence.get(&location).await.json().await.unwrap();
        v["status"] == "ok"
    })
    .await;
    let v: Value = residence.get(&location).await.json().await.unwrap();
    assert_eq!(v["report"]["documents_equal"], 0, "{v}");
    assert!(
        v["report"]["documents_differing"].as_u64().unwrap() >= 1,
        "{v}"
    );
    residence.stop().await;
    hukou.stop().await;
}

/// A node restored from a backup that then grows past the size its witness holds: the witness
/// answers 409 with its size, the node proves consistency from there with its own (other)
/// history, the proof fails, and the witness keeps the evidence (verifiable; a fork unless the
/// node can give a proof that verifies).
#[tokio::test]
async fn a_restored_node_that_grew_past_its_witness_fails_the_proof() {
    let Pair {
        pki,
        residence,
        hukou,
        _root,
    } = spawn_pair_with(by_hand).await;
    residence.create_child(&flowing_child(1)).await;
    let backup = cosign(&pki, &residence, CHENGDU).await.unwrap();
    for seq in 2..5 {
        residence.create_child(&flowing_child(seq)).await;
    }
    let seen = cosign(&pki, &residence, CHENGDU).await.unwrap();
    let (settings, db, dir) = residence.shut_down().await;
    exec_on(
        &db,
        &format!(
            "DELETE FROM audit_events WHERE seq >= {backup}; \
             DELETE FROM audit_nodes WHERE ((idx + 1) * (CAST(1 AS BIGINT) << CAST(level AS INTEGER))) > {backup}; \
             DELETE FROM tree_heads WHERE size > {backup}; \
             DELETE FROM cosignatures WHERE size > {backup};"
        ),
    );
    let residence = restart(settings, db, dir).await;
    // Other history, longer than what the witness saw.
    for seq in 10..(12 + seen) as u16 {
        residence.create_child(&flowing_child(seq)).await;
    }
    match cosign(&pki, &residence, CHENGDU).await {
        Err(CosignError::Refused {
            status: 422, body, ..
        }) => {
            assert!(body.contains("inconsistent_checkpoint"), "{body}")
        }
        other => panic!("expected the witness to refuse, got {other:?}"),
    }
    let open = open_evidence(&hukou);
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].kind, "inconsistent_proof");
    let file = hukou.dir.path().join("fork.json");
    std::fs::write(&file, &open[0].document).unwrap();
    let (ok, out, err) = run(node_command(&pki, CHENGDU, &hukou).args([
        "audit",
        "evidence",
        "verify",
        file.to_str().unwrap(),
    ]));
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("ok: inconsistent_proof evidence against 410100"),
        "{out}"
    );
    assert!(!out.contains("(proof on its own)"), "{out}");
    residence.stop().await;
    hukou.stop().await;
}
