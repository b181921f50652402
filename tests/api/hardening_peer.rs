//! Issue 18 #11–#19 (and issue 19 #9): the peer listener under a pinned peer that pushes too
//! much, malformed versions, refused directories, a peer that lost history, refusals repaired
//! later, and overlapping batches on PostgreSQL. Real nodes over mutual TLS on 127.0.0.1.

use chrono::Utc;
use hukou_sync::crypto::hlc::Hlc;
use hukou_sync::devnet::pki::resign_directory;
use hukou_sync::domain::NodeId;
use hukou_sync::sync::version::{DocKind, SignedVersion, Version};
use serde_json::{json, Value};

use crate::exchange::{creation, residence_edit};
use crate::helpers::{
    eventually, flowing_child, peer_url, problem, push, receipt, residence_client, residence_key,
    spawn_pair, spawn_pair_with, wait_for_versions, TestApp, CHENGDU, ZHENGZHOU,
};

/// The audit events of `action` on `app`.
async fn events(app: &TestApp, action: &str) -> Vec<Value> {
    let v: Value = app
        .get(&format!("/api/v1/audit/events?action={action}&limit=1000"))
        .await
        .json()
        .await
        .unwrap();
    v["items"].as_array().unwrap().clone()
}

/// A residence edit of a new file whose parent nobody has: refused `unknown_parents`.
fn orphan(seq: u16, key: &hukou_sync::crypto::keys::SigningKey) -> SignedVersion {
    let missing = creation(&flowing_child(seq), key, ZHENGZHOU);
    Version::new(
        DocKind::Child,
        missing.version.doc_id.clone(),
        vec![missing.id],
        NodeId::parse(ZHENGZHOU).unwrap(),
        Hlc::new(Utc::now().timestamp_millis(), 1).unwrap(),
        missing.version.body.clone(),
    )
    .sign(key, hukou_sync::crypto::hash::HashAlg::Sha256)
    .unwrap()
}

/// A pushed batch's refusals are one `batch.reject` audit event naming how many per code and the
/// SHA-256 of the refused ids (sorted, one per line), not one event per version; its good
/// batch-mate is stored.
#[tokio::test]
async fn a_batchs_refusals_are_one_audit_event_with_a_digest_of_their_ids() {
    let pair = spawn_pair().await;
    let hukou = &pair.hukou;
    let client = residence_client(&pair.pki);
    let key = residence_key(&pair.pki);
    let good = creation(&flowing_child(1), &key, ZHENGZHOU);
    let mut batch = vec![good.clone()];
    for i in 0..60u16 {
        batch.push(orphan(100 + i, &key));
    }
    let before = events(hukou, "batch.reject").await.len();
    let r = receipt(push(&client, hukou, ZHENGZHOU, batch.clone()).await).await;
    assert_eq!(r.receipt.accepted, vec![good.id]);
    assert_eq!(r.receipt.rejected.len(), 60);
    let rejected = events(hukou, "batch.reject").await;
    assert_eq!(rejected.len(), before + 1);
    assert!(events(hukou, "version.reject").await.is_empty());
    let d = &rejected[0]["details"];
    assert_eq!(d["rejected"], 60);
    assert_eq!(d["codes"]["unknown_parents"], 60);
    let mut ids: Vec<String> = batch[1..].iter().map(|v| v.id.to_string()).collect();
    ids.sort();
    let digest = hukou_sync::crypto::hash::Digest::of(ids.join("\n").as_bytes());
    assert_eq!(d["ids_sha256"], digest.to_string());
    assert_eq!(hukou.count("versions"), 1);
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

/// Bounds per peer: versions per batch (413 `too_many_versions`, nothing stored), bytes per
/// body (413 problem+json `body_too_large`, not text/plain), batches in flight (503 `busy` with
/// `Retry-After`; the others are received, and the peer is admitted again after).
#[tokio::test]
async fn a_pinned_peer_is_bounded_in_versions_bytes_and_batches_in_flight() {
    let pair = spawn_pair_with(|id, s| {
        if id == CHENGDU {
            s.sync.batch_size = 2;
            s.sync.peer_max_versions = 3;
            s.sync.peer_body_limit = 65_536;
            s.sync.peer_batches_in_flight = 1;
        }
    })
    .await;
    let hukou = &pair.hukou;
    let client = residence_client(&pair.pki);
    let key = residence_key(&pair.pki);

    let four: Vec<SignedVersion> = (0..4)
        .map(|i| creation(&flowing_child(10 + i), &key, ZHENGZHOU))
        .collect();
    let r = push(&client, hukou, ZHENGZHOU, four.clone()).await;
    let p = problem(r, 413, "too_many_versions").await;
    assert_eq!(p["field"], "versions");
    assert_eq!(hukou.count("versions"), 0);

    // A body past the byte limit, refused before it is parsed.
    let mut big = json!({"sender": ZHENGZHOU, "versions": [], "pad": ""});
    big["pad"] = json!("x".repeat(70_000));
    let r = client
        .post(peer_url(hukou))
        .header("content-type", "application/json")
        .body(big.to_string())
        .send()
        .await
        .unwrap();
    problem(r, 413, "body_too_large").await;

    // Eight batches of three at once, one admitted at a time: some wait their turn with 503.
    let batches: Vec<Vec<SignedVersion>> = (0..8)
        .map(|b| {
            (0..3)
                .map(|i| creation(&flowing_child(100 + b * 3 + i), &key, ZHENGZHOU))
                .collect()
        })
        .collect();
    let answers = futures_join_all(
        batches
            .iter()
            .map(|b| push(&client, hukou, ZHENGZHOU, b.clone())),
    )
    .await;
    let mut busy = 0;
    for (r, b) in answers.into_iter().zip(&batches) {
        if r.status() == 503 {
            assert_eq!(r.headers()["retry-after"], "1");
            problem(r, 503, "busy").await;
            busy += 1;
            // Admitted again once the others are received.
            let again = receipt(push(&client, hukou, ZHENGZHOU, b.clone()).await).await;
            assert_eq!(again.receipt.accepted.len(), 3);
        } else {
            assert_eq!(receipt(r).await.receipt.accepted.len(), 3);
        }
    }
    assert!(
        busy > 0,
        "eight concurrent batches with one admitted: none was refused"
    );
    assert_eq!(hukou.count("versions"), 24);
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

/// All the futures, run concurrently; their outputs in order.
async fn futures_join_all<F: std::future::Future>(fs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = fs.map(|f| Some(Box::pin(f))).collect();
    let mut results: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (slot, result) in pending.iter_mut().zip(results.iter_mut()) {
            if let Some(f) = slot {
                if let std::task::Poll::Ready(v) = f.as_mut().poll(cx) {
                    *result = Some(v);
                    *slot = None;
                }
            }
        }
        if pending.iter().all(Option::is_none) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    results.into_iter().map(|r| r.unwrap()).collect()
}

/// A version naming a parent twice, or its parents out of order, is refused in the signed
/// receipt with `non_canonical` (was: 500 on a UNIQUE constraint, the whole batch lost); its
/// batch-mates are stored.
#[tokio::test]
async fn a_version_not_in_canonical_form_is_refused_alone_in_the_receipt() {
    let pair = spawn_pair().await;
    let hukou = &pair.hukou;
    let client = residence_client(&pair.pki);
    let key = residence_key(&pair.pki);
    let created = creation(&flowing_child(20), &key, ZHENGZHOU);
    let a = residence_edit(&created, |b| b["notes"] = json!("a"), &key, 1);
    let b = residence_edit(&created, |b| b["notes"] = json!("b"), &key, 2);
    let (lo, hi) = if a.id < b.id {
        (a.id, b.id)
    } else {
        (b.id, a.id)
    };
    let shaped = |parents: Vec<_>, logical: u16| {
        let mut v = Version::new(
            DocKind::Child,
            created.version.doc_id.clone(),
            vec![],
            NodeId::parse(ZHENGZHOU).unwrap(),
            Hlc::new(Utc::now().timestamp_millis(), logical).unwrap(),
            a.version.body.clone(),
        );
        v.parents = parents;
        v.sign(&key, hukou_sync::crypto::hash::HashAlg::Sha256)
            .unwrap()
    };
    let twice = shaped(vec![lo, lo], 3);
    let unsorted = shaped(vec![hi, lo], 4);
    let other = creation(&flowing_child(21), &key, ZHENGZHOU);
    let r = receipt(
        push(
            &client,
            hukou,
            ZHENGZHOU,
            vec![
                created.clone(),
                a.clone(),
                b.clone(),
                twice.clone(),
                unsorted.clone(),
                other.clone(),
            ],
        )
        .await,
    )
    .await;
    let mut accepted = r.receipt.accepted.clone();
    accepted.sort();
    let mut expected = vec![created.id, a.id, b.id, other.id];
    expected.sort();
    assert_eq!(accepted, expected);
    let mut refused: Vec<_> = r
        .receipt
        .rejected
        .iter()
        .map(|x| (x.id, x.code.as_str()))
        .collect();
    refused.sort();
    let mut want = vec![(twice.id, "non_canonical"), (unsorted.id, "non_canonical")];
    want.sort();
    assert_eq!(refused, want);
    assert_eq!(hukou.count("versions"), 4);
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

/// A body naming another sender than its certificate is refused 403 and audited like every
/// other refusal of a peer.
#[tokio::test]
async fn a_sender_mismatch_is_audited() {
    let pair = spawn_pair().await;
    let hukou = &pair.hukou;
    let client = residence_client(&pair.pki);
    let r = push(&client, hukou, CHENGDU, vec![]).await;
    let p = problem(r, 403, "sender_mismatch").await;
    assert_eq!(p["field"], "sender");
    let refused = events(hukou, "peer.refused").await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["details"]["code"], "sender_mismatch");
    assert_eq!(refused[0]["event"]["actor"]["id"], ZHENGZHOU);
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

/// A refused directory file is reported (WARN, `directory.refuse` in the audit log) every time
/// it is reloaded — a second SIGHUP with the same failure too — and an install is audited
/// (`directory.install`).
#[tokio::test]
async fn directory_refusals_and_installs_are_audited_each_time() {
    let pair = spawn_pair_with(|id, s| {
        if id == CHENGDU {
            s.directory.as_mut().unwrap().reload_interval_secs = 1;
        }
    })
    .await;
    let hukou = &pair.hukou;
    let path = pair.pki.directory.clone();
    let good = std::fs::read(&path).unwrap();

    // The same bad file reloaded twice on request (as by SIGHUP): reported both times.
    let handle = hukou.node.directory.clone().unwrap();
    let bad = dir_path_sibling(&path, "bad.json");
    std::fs::write(&bad, b"{\"not\": \"a directory\"}").unwrap();
    let mut watcher = hukou_sync::directory::Watcher::default();
    for _ in 0..2 {
        let e = watcher
            .reload_now(&handle, &bad, &pair.pki.authority_public)
            .await;
        assert!(
            matches!(e, Some(hukou_sync::directory::WatchEvent::Refused { .. })),
            "{e:?}"
        );
    }

    // The node's own watch: a bad file is audited, a second (changed) bad file again.
    std::fs::write(&path, b"garbage").unwrap();
    eventually(10, "a refused directory audited", || async {
        events(hukou, "directory.refuse").await.len() == 1
    })
    .await;
    std::fs::write(&path, b"garbage, again").unwrap();
    eventually(10, "the second refusal audited", || async {
        events(hukou, "directory.refuse").await.len() == 2
    })
    .await;
    let refused = events(hukou, "directory.refuse").await;
    assert_eq!(refused[0]["event"]["outcome"], "rejected");
    // A good, newer directory is installed and audited.
    std::fs::write(&path, &good).unwrap();
    resign_directory(&pair.pki, |_| {}).unwrap();
    eventually(10, "the install audited", || async {
        !events(hukou, "directory.install").await.is_empty()
    })
    .await;
    let installed = events(hukou, "directory.install").await;
    assert!(installed[0]["details"]["new_serial"].as_u64().unwrap() > 0);
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

fn dir_path_sibling(path: &std::path::Path, name: &str) -> std::path::PathBuf {
    path.parent().unwrap().join(name)
}

/// A peer restored from an old backup answers `unknown_parents` to a new edit: the sender
/// queues the file's history with it (WARN) and the peer catches up without a manual
/// reconciliation; the refusal is not counted once the version was accepted.
#[tokio::test]
async fn a_peer_that_lost_history_gets_it_without_a_manual_reconcile() {
    let pair = spawn_pair().await;
    let (residence, hukou) = (&pair.residence, &pair.hukou);
    let child = flowing_child(30);
    let id = child["id_number"].as_str().unwrap().to_owned();
    residence.create_child(&child).await;
    let r = residence
        .patch_json(
            &format!("/api/v1/children/{id}"),
            &json!({"notes": "第一次家访"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    wait_for_versions(hukou, &id, 2).await;
    eventually(10, "the residence queue drained", || async {
        residence.count("outbox") == 0
    })
    .await;
    // The hukou node loses the edit, as a restored backup would.
    let lost = crate::reconcile::lose_versions(hukou, 1, 1);
    assert_eq!(hukou.count("versions"), 1);

    // The next edit's parent is the lost one.
    let r = residence
        .patch_json(
            &format!("/api/v1/children/{id}"),
            &json!({"notes": "第二次家访"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let at_hukou = wait_for_versions(hukou, &id, 3).await;
    assert_eq!(at_hukou["record"]["notes"], "第二次家访");
    assert!(hukou.count(&format!("versions WHERE id = '{}'", lost[0])) == 1);
    eventually(10, "the resend settled", || async {
        residence.count("outbox") == 0
    })
    .await;
    // The receipt that asked for the history is on record; the refusal is gone.
    let stored = events(residence, "receipt.store").await;
    assert!(
        stored
            .iter()
            .any(|e| e["details"]["resent_with_history"] == 1),
        "{stored:?}"
    );
    let peers: Value = residence.get("/api/v1/peers").await.json().await.unwrap();
    assert_eq!(peers[0]["rejected"], 0, "{peers}");
    let metrics = residence.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(&format!(
            "hukou_sync_peer_refused_versions{{peer=\"{CHENGDU}\"}} 0"
        )),
        "{metrics}"
    );
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

/// A refusal that a reconciliation run repairs is forgotten: the run is not stored as failed,
/// and `peers` and `/metrics` stop counting it (issue 18 #17, issue 19 #9).
#[tokio::test]
async fn a_refusal_repaired_later_is_no_longer_counted_and_the_run_is_ok() {
    let pair = spawn_pair().await;
    let (residence, hukou) = (&pair.residence, &pair.hukou);
    let child = flowing_child(40);
    let id = child["id_number"].as_str().unwrap().to_owned();
    residence.create_child(&child).await;
    let r = residence
        .patch_json(&format!("/api/v1/children/{id}"), &json!({"notes": "家访"}))
        .await;
    assert_eq!(r.status(), 200);
    wait_for_versions(hukou, &id, 2).await;
    eventually(10, "the residence queue drained", || async {
        residence.count("outbox") == 0
    })
    .await;
    // The hukou node lacks the edit, and once refused it (as before this fix, for good).
    let lost = crate::reconcile::lose_versions(hukou, 1, 2);
    residence.exec(&format!(
        "INSERT INTO outbox_rejected (peer, version_id, code, reason, rejected_at) \
         VALUES ('{CHENGDU}', '{}', 'unknown_parents', 'restored from a backup', '2026-01-01 00:00:00')",
        lost[0]
    ));
    let peers: Value = residence.get("/api/v1/peers").await.json().await.unwrap();
    assert_eq!(peers[0]["rejected"], 1);

    let report = crate::reconcile::run(residence, CHENGDU, false).await;
    assert_eq!(
        report.status,
        hukou_sync::reconcile::RunStatus::Ok,
        "{report:?}"
    );
    assert_eq!(report.versions_to_peer, 1);
    assert_eq!(
        hukou.count(&format!("versions WHERE id = '{}'", lost[0])),
        1
    );
    let peers: Value = residence.get("/api/v1/peers").await.json().await.unwrap();
    assert_eq!(peers[0]["rejected"], 0, "{peers}");
    let metrics = residence.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(&format!(
        "hukou_sync_peer_refused_versions{{peer=\"{CHENGDU}\"}} 0"
    )));
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

/// Two batches holding the same versions in opposite orders, pushed at once, round after round:
/// both are received (on PostgreSQL they lock rows in one order, and a deadlock would be
/// retried, never a 500 to the sender).
#[tokio::test]
async fn overlapping_batches_in_different_orders_never_deadlock() {
    let pair = spawn_pair().await;
    let hukou = &pair.hukou;
    let client = residence_client(&pair.pki);
    let key = residence_key(&pair.pki);
    for round in 0..6u16 {
        let mut batch = Vec::new();
        for i in 0..40u16 {
            let c = creation(&flowing_child(1000 + round * 100 + i), &key, ZHENGZHOU);
            let e = residence_edit(&c, |b| b["notes"] = json!("x"), &key, 1);
            batch.push(c);
            batch.push(e);
        }
        let mut reversed = batch.clone();
        reversed.reverse();
        let (a, b) = tokio::join!(
            push(&client, hukou, ZHENGZHOU, batch.clone()),
            push(&client, hukou, ZHENGZHOU, reversed),
        );
        for r in [a, b] {
            let r = receipt(r).await;
            assert!(r.receipt.rejected.is_empty(), "{:?}", r.receipt.rejected);
            assert_eq!(r.receipt.accepted.len(), 80);
        }
    }
    assert_eq!(hukou.count("versions"), 480);
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

/// Request ids (issue 25 #7, in part): both listeners answer with the `X-Request-Id` a request
/// brought when it is plain and short, with a new one otherwise, so one delivery can be followed
/// across two nodes' logs (the sender puts a new id on each batch it pushes).
#[tokio::test]
async fn both_listeners_answer_with_the_request_id() {
    let pair = crate::helpers::spawn_pair().await;
    let id_of = |r: &reqwest::Response| {
        r.headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    // Admin listener: kept, replaced when not plain, made when absent.
    let r = pair
        .residence
        .http
        .get(pair.residence.url("/api/v1/healthz"))
        .header("x-request-id", "gateway-7.abc_1")
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&r).as_deref(), Some("gateway-7.abc_1"));
    let r = pair
        .residence
        .http
        .get(pair.residence.url("/api/v1/healthz"))
        .header("x-request-id", "a b<script>")
        .send()
        .await
        .unwrap();
    let made = id_of(&r).unwrap();
    assert_eq!(made.len(), 32, "{made}");
    let r = pair
        .residence
        .http
        .get(pair.residence.url("/api/v1/healthz"))
        .send()
        .await
        .unwrap();
    assert_ne!(id_of(&r).unwrap(), made);
    // Peer listener (mutual TLS): a push answered with the sender's id, refusals too.
    let client = residence_client(&pair.pki);
    let r = client
        .post(peer_url(&pair.hukou))
        .header("x-request-id", "delivery-0001")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&r).as_deref(), Some("delivery-0001"));
    assert_eq!(r.status(), 400);

    // The directory's expiry is watched (issue 25 #8, in part): seconds left and its serial.
    let metrics = pair.residence.get("/metrics").await.text().await.unwrap();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"))
            .parse()
            .unwrap()
    };
    let left = value("hukou_sync_directory_expires_in_seconds");
    assert!(left > 0.0 && left <= 400.0 * 86_400.0, "{left}");
    assert_eq!(value("hukou_sync_directory_serial"), 1.0);
    // Process and pool figures (issue 25 #7, in part).
    assert!(value("process_resident_memory_bytes") > 1_000_000.0);
    assert!(value("process_open_fds") > 3.0);
    assert!(value("process_cpu_seconds_total") > 0.0);
    let max = value("hukou_sync_db_pool_max_connections");
    assert_eq!(
        max,
        f64::from(pair.residence.settings.database.pool_size.max(1))
    );
    let open = value("hukou_sync_db_pool_connections");
    assert!(open >= value("hukou_sync_db_pool_idle_connections") && open <= max);
}
