//! Signature suites across a network (issue 24): two nodes migrate from Ed25519 to SM2 without
//! the exchange stopping — the directory publishes SM2 keys under a new serial, the residence
//! node signs every version twice for a window (both signatures checked by its peer), then
//! signs with SM2 alone and the directory retires its Ed25519 key. Dual-signed versions with one
//! bad signature, and versions signed with a retired key, are refused.

use chrono::{Duration, Utc};
use hukou_sync::crypto::keys::{Signature, SigningKey, Suite};
use hukou_sync::devnet::pki::resign_directory;
use hukou_sync::directory::KeyWindow;
use hukou_sync::domain::NodeId;
use serde_json::json;

use crate::exchange::creation;
use crate::helpers::{
    flowing_child, push, receipt, residence_client, restart, spawn_pair, wait_for_versions,
    TestApp, CHENGDU, ZHENGZHOU,
};

/// Versions stored at `app` that carry a second signature.
fn dual_signed(app: &TestApp) -> i64 {
    let mut conn = app.store.conn().unwrap();
    hukou_sync::storage::records::count_dual_signed(&mut conn).unwrap()
}

async fn edit(app: &TestApp, id: &str, notes: &str) {
    let r = app
        .patch_json(
            &format!("/api/v1/children/{id}"),
            &json!({ "notes": notes }),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

fn reload(app: &TestApp, pki: &hukou_sync::devnet::pki::DevPki) {
    app.node
        .directory
        .as_ref()
        .unwrap()
        .reload_from(&pki.directory, &pki.authority_public, Utc::now())
        .unwrap();
}

#[tokio::test]
async fn a_two_node_network_migrates_from_ed25519_to_sm2_without_stopping() {
    let pair = spawn_pair().await;
    let pki = pair.pki.clone();
    let zz = NodeId::parse(ZHENGZHOU).unwrap();
    let child = flowing_child(24);
    let id = child["id_number"].as_str().unwrap().to_owned();
    pair.residence.create_child(&child).await;
    wait_for_versions(&pair.hukou, &id, 1).await;

    // 1. An SM2 key for the residence node, published beside its Ed25519 key (serial 2).
    let node_dir = pki.nodes.iter().find(|n| n.id == zz).unwrap();
    let ed_path = node_dir.signing_key.clone();
    let sm2_path = node_dir.dir.join("signing-sm2.key");
    let sm2 = SigningKey::write_new_in(&sm2_path, Suite::Sm2Sm3).unwrap();
    let now = Utc::now();
    resign_directory(&pki, |d| {
        let n = d.nodes.iter_mut().find(|n| n.id == zz).unwrap();
        let until = n.signing_keys[0].valid_until;
        n.signing_keys.push(KeyWindow {
            key: sm2.public_key(),
            valid_from: now - Duration::hours(1),
            valid_until: until,
        });
    })
    .unwrap();
    reload(&pair.hukou, &pki);
    assert_eq!(
        pair.hukou
            .node
            .directory
            .as_ref()
            .unwrap()
            .current()
            .signing_keys_at(&zz, Utc::now())
            .len(),
        2
    );

    // 2. The migration window: Ed25519 signatures with an SM2 second signature.
    let (mut settings, db, dir) = pair.residence.shut_down().await;
    settings.node.dual_signing_key = Some(sm2_path.clone());
    let residence = restart(settings, db, dir).await;
    edit(&residence, &id, "dual signed").await;
    wait_for_versions(&pair.hukou, &id, 2).await;
    assert_eq!(dual_signed(&pair.hukou), 1);
    // The hukou node (still Ed25519 only) keeps editing; its versions reach the residence node.
    edit(&pair.hukou, &id, "from the hukou side").await;
    wait_for_versions(&residence, &id, 3).await;

    // 3. SM2 first, Ed25519 second.
    let (mut settings, db, dir) = residence.shut_down().await;
    settings.node.signing_key = sm2_path.clone();
    settings.node.signature_suite = Suite::Sm2Sm3;
    settings.node.dual_signing_key = Some(ed_path.clone());
    let residence = restart(settings, db, dir).await;
    edit(&residence, &id, "sm2 first").await;
    wait_for_versions(&pair.hukou, &id, 4).await;
    assert_eq!(dual_signed(&pair.hukou), 2);

    // 4. Ed25519 retired: its window closes now (versions it signed before stay valid), and the
    //    residence node signs with SM2 alone.
    let retired_at = Utc::now();
    resign_directory(&pki, |d| {
        let n = d.nodes.iter_mut().find(|n| n.id == zz).unwrap();
        n.signing_keys[0].valid_until = retired_at;
    })
    .unwrap();
    reload(&pair.hukou, &pki);
    let (mut settings, db, dir) = residence.shut_down().await;
    settings.node.dual_signing_key = None;
    let residence = restart(settings, db, dir).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    edit(&residence, &id, "sm2 only").await;
    let at_hukou = wait_for_versions(&pair.hukou, &id, 5).await;
    assert_eq!(at_hukou["record"]["notes"], "sm2 only");
    assert_eq!(dual_signed(&pair.hukou), 2);
    let at_residence = wait_for_versions(&residence, &id, 5).await;
    assert_eq!(at_hukou["heads"], at_residence["heads"]);

    // 5. Refused: a new version signed with the retired Ed25519 key (its key is no longer
    //    valid), and a dual-signed version one of whose signatures is bad.
    let client = residence_client(&pki);
    let ed = SigningKey::load(&ed_path).unwrap();
    let late = creation(&flowing_child(25), &ed, ZHENGZHOU);
    let r = receipt(push(&client, &pair.hukou, ZHENGZHOU, vec![late]).await).await;
    assert_eq!(r.receipt.rejected[0].code.as_str(), "key_not_valid");
    let mut bad = creation(&flowing_child(26), &sm2, ZHENGZHOU).countersign(&ed);
    let mut bytes = *bad.second_signature.unwrap().as_bytes();
    bytes[0] ^= 1;
    bad.second_signature = Some(Signature::from_suite_bytes(Suite::Ed25519, bytes));
    let r = receipt(push(&client, &pair.hukou, ZHENGZHOU, vec![bad]).await).await;
    assert_eq!(r.receipt.rejected[0].code.as_str(), "bad_signature");
    // SM2 alone, by the published key: accepted.
    let good = creation(&flowing_child(27), &sm2, ZHENGZHOU);
    let r = receipt(push(&client, &pair.hukou, ZHENGZHOU, vec![good]).await).await;
    assert!(r.receipt.rejected.is_empty(), "{:?}", r.receipt.rejected);
    // The receipt the hukou node signed is Ed25519 (its own suite), verified with its key.
    assert_eq!(r.signature.suite(), Suite::Ed25519);

    residence.stop().await;
    pair.hukou.stop().await;
}

/// A whole network on `sm2-sm3`: SM2 directory authority and node keys, pushes, receipts,
/// checkpoints.
#[tokio::test]
async fn an_sm2_network_exchanges_and_refuses_ed25519_versions() {
    let root = tempfile::tempdir().unwrap();
    let specs = [
        hukou_sync::devnet::NodeSpec::new(ZHENGZHOU, "4101").unwrap(),
        hukou_sync::devnet::NodeSpec::new(CHENGDU, "5101").unwrap(),
    ];
    let mut net = hukou_sync::devnet::DevNet::create_in(
        &root.path().join("pki"),
        &specs,
        vec![],
        Suite::Sm2Sm3,
    )
    .unwrap();
    assert_eq!(net.pki.authority_public.suite(), Suite::Sm2Sm3);
    let mut apps = Vec::new();
    for spec in &specs {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::helpers::TestDb::new(dir.path());
        let settings = crate::helpers::node_settings(&net.pki, spec.id.as_str(), &db);
        assert_eq!(settings.node.signature_suite, Suite::Sm2Sm3);
        let running = net.start(&spec.id, settings.clone()).await.unwrap();
        apps.push(TestApp::new(running, settings, db, dir));
    }
    let hukou = apps.pop().unwrap();
    let residence = apps.pop().unwrap();
    assert_eq!(residence.node.key.suite(), Suite::Sm2Sm3);
    let child = flowing_child(30);
    let id = child["id_number"].as_str().unwrap().to_owned();
    residence.create_child(&child).await;
    wait_for_versions(&hukou, &id, 1).await;
    edit(&hukou, &id, "sm2 network").await;
    wait_for_versions(&residence, &id, 2).await;

    // An Ed25519 version claiming the residence node: no key of that suite in the directory.
    let client = residence_client(&net.pki);
    let ed = SigningKey::generate().unwrap().0;
    let forged = creation(&flowing_child(31), &ed, ZHENGZHOU);
    let r = receipt(push(&client, &hukou, ZHENGZHOU, vec![forged]).await).await;
    assert_eq!(r.receipt.rejected[0].code.as_str(), "bad_signature");
    assert_eq!(r.signature.suite(), Suite::Sm2Sm3);
    residence.stop().await;
    hukou.stop().await;
}
