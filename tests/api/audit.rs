//! The audit trail: every action and read recorded in its own transaction; RFC 9162 proofs over
//! the API; `verify` catches tampering and names the place.

use std::cell::RefCell;

use chrono::Utc;
use hukou_sync::audit::merkle;
use hukou_sync::audit::verify::{verify_database, verify_export};
use hukou_sync::audit::{self, log, Actor, Event, Outcome};
use hukou_sync::storage;
use serde_json::{json, Value};

use crate::helpers::{flowing_child, spawn_app, TestApp};

/// A node with some history: creations, an update, reads, and two signed heads.
async fn app_with_history() -> TestApp {
    let app = spawn_app().await;
    for seq in 0..5u16 {
        let c = app.create_child(&flowing_child(40 + seq)).await;
        let id = c["record"]["id_number"].as_str().unwrap().to_owned();
        if seq == 0 {
            app.http
                .get(app.url(&format!("/api/v1/children/{id}")))
                .header("X-Purpose", "home-visit")
                .send()
                .await
                .unwrap();
        }
    }
    app.post_json("/api/v1/audit/tree-head", &json!({})).await;
    app.create_child(&flowing_child(50)).await;
    app.post_json("/api/v1/audit/tree-head", &json!({})).await;
    app
}

fn verify(app: &TestApp) -> audit::verify::VerifyReport {
    let mut conn = app.store.conn().unwrap();
    verify_database(&mut conn, Some(&app.node.key.public_key()), &mut |_, _| {}).unwrap()
}

#[tokio::test]
async fn actions_and_reads_are_recorded_with_purpose() {
    let app = app_with_history().await;
    let starts: Value = app
        .get("/api/v1/audit/events?action=node.start")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        starts["items"][0]["details"]["signing_key"],
        app.node.key.public_key().to_string()
    );
    let keys: Value = app
        .get("/api/v1/audit/events?action=key.create")
        .await
        .json()
        .await
        .unwrap();
    // The record-signing key and the evidence key, each created once (the latter by path only).
    let keys = keys["items"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys
        .iter()
        .any(|k| k["details"]["public_key"] == app.node.key.public_key().to_string()));
    assert!(keys
        .iter()
        .any(|k| k["details"]["evidence_key"].as_str().is_some()));
    let events: Value = app
        .get("/api/v1/audit/events?limit=100")
        .await
        .json()
        .await
        .unwrap();
    let items = events["items"].as_array().unwrap();
    let actions: Vec<&str> = items
        .iter()
        .map(|e| e["event"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.iter().filter(|a| **a == "child.create").count(), 6);
    let read = items
        .iter()
        .find(|e| e["event"]["action"] == "child.read")
        .unwrap();
    assert_eq!(read["event"]["purpose"], "home-visit");
    assert_eq!(read["event"]["object_kind"], "child");
    // Reading the log was itself recorded.
    let again: Value = app
        .get("/api/v1/audit/events?action=audit.read")
        .await
        .json()
        .await
        .unwrap();
    assert!(!again["items"].as_array().unwrap().is_empty());
    assert!(verify(&app).ok());
    app.stop().await;
}

#[tokio::test]
async fn served_proofs_verify() {
    let app = app_with_history().await;
    let head: Value = app
        .get("/api/v1/audit/tree-head")
        .await
        .json()
        .await
        .unwrap();
    let size = head["size"].as_u64().unwrap();
    let root = merkle::from_hex(head["root"].as_str().unwrap()).unwrap();
    for seq in [0, 3, size - 1] {
        let ev: Value = app
            .get(&format!("/api/v1/audit/events/{seq}"))
            .await
            .json()
            .await
            .unwrap();
        let entry: log::AuditEntry = serde_json::from_value(ev["entry"].clone()).unwrap();
        assert!(entry.inclusion.is_some(), "{seq} of {size}: {ev}");
        let leaf = merkle::leaf_hash(
            hukou_sync::crypto::hash::HashAlg::Sha256,
            &entry.event.canonical_bytes().unwrap(),
        );
        let path: Vec<_> = entry
            .inclusion
            .unwrap()
            .path
            .iter()
            .map(|h| merkle::from_hex(h).unwrap())
            .collect();
        merkle::verify_inclusion(
            hukou_sync::crypto::hash::HashAlg::Sha256,
            &leaf,
            seq,
            size,
            &path,
            &root,
        )
        .unwrap();
    }
    let heads = {
        let mut conn = app.store.conn().unwrap();
        let mut h = storage::audit::all_tree_heads(&mut conn).unwrap();
        h.retain(|h| h.size > 0);
        h
    };
    let (old, new) = (&heads[0], &heads[1]);
    let proof: Value = app
        .get(&format!(
            "/api/v1/audit/consistency?old_size={}&new_size={}",
            old.size, new.size
        ))
        .await
        .json()
        .await
        .unwrap();
    let path: Vec<_> = proof["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| merkle::from_hex(h.as_str().unwrap()).unwrap())
        .collect();
    merkle::verify_consistency(
        hukou_sync::crypto::hash::HashAlg::Sha256,
        old.size,
        new.size,
        &merkle::from_hex(&old.root.to_string()).unwrap(),
        &merkle::from_hex(&new.root.to_string()).unwrap(),
        &path,
    )
    .unwrap();
    let r = app
        .get("/api/v1/audit/consistency?old_size=5&new_size=999999")
        .await;
    assert_eq!(r.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn changing_one_byte_of_an_event_is_caught() {
    let app = app_with_history().await;
    assert!(verify(&app).ok());
    app.exec("UPDATE audit_events SET purpose = 'home-visiT' WHERE purpose = 'home-visit'");
    let report = verify(&app);
    assert!(!report.ok());
    let seq = report.first_bad_seq.unwrap();
    let mut conn = app.store.conn().unwrap();
    let row = storage::audit::get_event(&mut conn, seq).unwrap().unwrap();
    assert_eq!(row.purpose.as_deref(), Some("home-visiT"));
    app.stop().await;
}

#[tokio::test]
async fn changing_the_details_of_an_event_is_caught() {
    let app = app_with_history().await;
    app.exec("UPDATE audit_events SET details = '{}' WHERE seq = 2");
    let report = verify(&app);
    assert_eq!(report.first_bad_seq, Some(2));
    app.stop().await;
}

#[tokio::test]
async fn deleting_an_event_is_caught() {
    let app = app_with_history().await;
    app.exec("DELETE FROM audit_events WHERE seq = 4");
    let report = verify(&app);
    assert!(!report.ok());
    assert_eq!(report.first_bad_seq, Some(4));
    app.stop().await;
}

#[tokio::test]
async fn deleting_the_newest_events_is_caught_by_the_head() {
    let app = app_with_history().await;
    let size = app.count("audit_events");
    app.exec(&format!(
        "DELETE FROM audit_events WHERE seq >= {}",
        size - 3
    ));
    let report = verify(&app);
    assert!(!report.ok(), "{report:?}");
    app.stop().await;
}

#[tokio::test]
async fn reordering_two_events_is_caught() {
    let app = app_with_history().await;
    // Swap the contents of events 1 and 2 (sequence numbers stay).
    app.exec("UPDATE audit_events SET seq = -1 WHERE seq = 1");
    app.exec("UPDATE audit_events SET seq = 1 WHERE seq = 2");
    app.exec("UPDATE audit_events SET seq = 2 WHERE seq = -1");
    let report = verify(&app);
    assert_eq!(report.first_bad_seq, Some(1), "{report:?}");
    app.stop().await;
}

#[tokio::test]
async fn replacing_a_stored_head_is_caught() {
    let app = app_with_history().await;
    let mut conn = app.store.conn().unwrap();
    let head = storage::audit::latest_tree_head(&mut conn)
        .unwrap()
        .unwrap();
    drop(conn);
    let root = head.root.to_string();
    // Another root under the same signature.
    let forged = format!(
        "{}{}",
        if root.starts_with('0') { '1' } else { '0' },
        &root[1..]
    );
    app.exec(&format!(
        "UPDATE tree_heads SET root = '{forged}' WHERE size = {}",
        head.size
    ));
    let report = verify(&app);
    assert!(!report.ok());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains(&format!("size {}", head.size))),
        "{report:?}"
    );
    // A head signed by another key.
    let app2 = app_with_history().await;
    let other = hukou_sync::crypto::keys::SigningKey::generate().unwrap().0;
    let mut conn = app2.store.conn().unwrap();
    let h = log::sign_tree_head(&mut conn, &other, Utc::now());
    // The latest head already covers the size, so sign after one more event.
    drop(h);
    storage::transaction(&mut conn, |c| {
        audit::append(
            c,
            app2.node.clock.now(),
            Utc::now(),
            &Event::new(Actor::console(), "test.event", Outcome::Ok),
        )
    })
    .unwrap();
    log::sign_tree_head(&mut conn, &other, Utc::now()).unwrap();
    drop(conn);
    let report = verify(&app2);
    assert!(
        report.problems.iter().any(|p| p.contains("untrusted key")),
        "{report:?}"
    );
    app.stop().await;
    app2.stop().await;
}

#[tokio::test]
async fn a_rolled_back_action_leaves_no_event() {
    let app = app_with_history().await;
    let before = app.count("audit_events");
    // A duplicate creation fails after nothing was written.
    let r = app.post_json("/api/v1/children", &flowing_child(40)).await;
    assert_eq!(r.status(), 409);
    // An action that fails after appending its event rolls the event back with it.
    let mut conn = app.store.conn().unwrap();
    let result: Result<(), audit::AuditError> = storage::transaction(&mut conn, |c| {
        audit::append(
            c,
            app.node.clock.now(),
            Utc::now(),
            &Event::new(Actor::console(), "child.update", Outcome::Ok),
        )?;
        Err(audit::AuditError::Corrupt("the action failed".into()))
    });
    assert!(result.is_err());
    drop(conn);
    assert_eq!(app.count("audit_events"), before);
    assert!(verify(&app).ok());
    app.stop().await;
}

#[tokio::test]
async fn concurrent_writers_produce_a_gapless_sequence() {
    let app = spawn_app().await;
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let store = app.store.clone();
            let node = app.node.clone();
            std::thread::spawn(move || {
                for i in 0..40 {
                    let mut conn = store.conn().unwrap();
                    storage::transaction(&mut conn, |c| {
                        audit::append(
                            c,
                            node.clock.now(),
                            Utc::now(),
                            &Event::new(
                                Actor::job(&format!("writer-{t}")),
                                "test.append",
                                Outcome::Ok,
                            )
                            .details(json!({ "i": i })),
                        )
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Start-up wrote its own events first (the key's creation, the node's start).
    let total = app.count("audit_events");
    let mut conn = app.store.conn().unwrap();
    let rows = storage::audit::events_range(&mut conn, 0, 1000).unwrap();
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (0..total).collect::<Vec<_>>());
    assert_eq!(
        rows.iter().filter(|r| r.action == "test.append").count(),
        80
    );
    log::sign_tree_head(&mut conn, &app.node.key, Utc::now()).unwrap();
    drop(conn);
    assert!(verify(&app).ok());
    // The stored subtrees give the same root as recomputing from all leaves.
    let mut conn = app.store.conn().unwrap();
    let leaves: Vec<_> = rows
        .iter()
        .map(|r| merkle::from_hex(&r.leaf_hash).unwrap())
        .collect();
    let src = log::StoredSubtrees(RefCell::new(&mut conn));
    assert_eq!(
        merkle::root_from(
            hukou_sync::crypto::hash::HashAlg::Sha256,
            &src,
            total as u64
        )
        .unwrap(),
        merkle::root(hukou_sync::crypto::hash::HashAlg::Sha256, &leaves)
    );
    app.stop().await;
}

#[tokio::test]
async fn exports_verify_offline_and_tampering_is_caught() {
    let app = app_with_history().await;
    let mut conn = app.store.conn().unwrap();
    let head = log::sign_tree_head(&mut conn, &app.node.key, Utc::now()).unwrap();
    let mut out = Vec::new();
    let n = audit::verify::export(
        &mut conn,
        &head,
        2,
        head.size as i64,
        &mut out,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(n, head.size - 2);
    let text = String::from_utf8(out).unwrap();
    let report = verify_export(
        &mut text.as_bytes(),
        hukou_sync::crypto::hash::HashAlg::Sha256,
        Some(&app.node.key.public_key()),
    );
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.events, n);
    // One changed byte in one exported event.
    let tampered = text.replacen("\"child.create\"", "\"child.delete\"", 1);
    let report = verify_export(
        &mut tampered.as_bytes(),
        hukou_sync::crypto::hash::HashAlg::Sha256,
        None,
    );
    assert!(!report.ok());
    // The first exported child.create (after start-up's events and the test's token).
    let first_create = text
        .lines()
        .position(|l| l.contains("\"child.create\""))
        .unwrap() as u64
        + 1; // line 0 is the tree head; line i > 0 is the event of sequence 2 + i - 1

    assert_eq!(report.first_bad_seq.map(|s| s as u64), Some(first_create));
    // Another key than the trusted one.
    let other = hukou_sync::crypto::keys::SigningKey::generate()
        .unwrap()
        .0
        .public_key();
    assert!(!verify_export(
        &mut text.as_bytes(),
        hukou_sync::crypto::hash::HashAlg::Sha256,
        Some(&other)
    )
    .ok());
    app.stop().await;
}
