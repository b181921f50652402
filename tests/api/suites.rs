//! Signature suites across a network (issue 24): two nodes migrate from Ed25519 to SM2 without
//! the exchange stopping — the directory publishes SM2 keys under a new serial, the residence
//! node signs every version twice for a window (both signatures checked by its peer), then
//! signs with SM2 alone and the directory retires its Ed25519 key. Dual-signed versions with one
//! bad signature, and versions signed with a retired key, are refused. And a whole network on
//! `sm2-sm3` with SM3 content ids (ids, receipts, audit tree, reconciliation summary).

use chrono::{Duration, Utc};
use hukou_sync::audit::{log, merkle};
use hukou_sync::crypto::hash::{Digest, HashAlg};
use hukou_sync::crypto::keys::{Signature, SigningKey, Suite};
use hukou_sync::devnet::pki::resign_directory;
use hukou_sync::directory::KeyWindow;
use hukou_sync::domain::NodeId;
use hukou_sync::sync::version::SignedVersion;
use serde_json::json;

use crate::exchange::{creation, creation_in};
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
    let mut bad = creation(&flowing_child(26), &sm2, ZHENGZHOU)
        .countersign(&ed)
        .unwrap();
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

/// A whole network on `sm2-sm3` with SM3 content ids (what `pki init --suite sm2-sm3` declares
/// by default): SM2 directory authority and node keys; version ids, receipt digests, the audit
/// tree and the reconciliation summary on SM3. The nodes exchange, reconcile to zero
/// differences and serve audit proofs that verify under SM3 (and not under SHA-256). A version
/// whose id is a SHA-256 is refused `id_mismatch`, an Ed25519 signature `bad_signature`; a
/// directory declaring another hash is refused on reload, and a node whose data is on SM3 does
/// not start under a SHA-256 directory.
#[tokio::test]
async fn an_sm2_sm3_network_exchanges_reconciles_and_proves_on_sm3() {
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
    for app in [&residence, &hukou] {
        assert_eq!(app.node.hash, HashAlg::Sm3);
        let dir = app.node.directory.as_ref().unwrap().current();
        assert_eq!(dir.hash(), HashAlg::Sm3);
    }
    let child = flowing_child(30);
    let id = child["id_number"].as_str().unwrap().to_owned();
    residence.create_child(&child).await;
    wait_for_versions(&hukou, &id, 1).await;
    edit(&hukou, &id, "sm2 network").await;
    wait_for_versions(&residence, &id, 2).await;

    // Every stored version's id is the SM3 of its canonical bytes, at both nodes.
    for app in [&residence, &hukou] {
        let mut conn = app.store.conn().unwrap();
        let stored = hukou_sync::storage::records::versions_of(&mut conn, "child", &id).unwrap();
        assert_eq!(stored.len(), 2);
        for v in &stored {
            let signed = SignedVersion::from_stored(v).unwrap();
            let bytes = signed.version.canonical_bytes().unwrap();
            assert_eq!(v.id, Digest::sm3_of(&bytes));
            assert_ne!(v.id, Digest::of(&bytes));
            assert_eq!(signed.version.id(HashAlg::Sm3).unwrap(), signed.id);
        }
    }

    // Reconciliation on the SM3 summary: nothing differs.
    let report = crate::reconcile::run(&residence, CHENGDU, false).await;
    assert_eq!(report.documents_differing, 0, "{report:?}");
    assert!(report.documents_equal >= 1, "{report:?}");
    assert_eq!(report.local_root, report.peer_root);

    // The audit tree is on SM3: the log verifies, and served proofs verify under SM3 only.
    let key = residence.node.key.public_key();
    let (store, node) = (residence.store.clone(), residence.node.clone());
    let (report, proofs) = tokio::task::spawn_blocking(move || {
        let mut conn = store.conn().unwrap();
        assert_eq!(
            hukou_sync::storage::audit::content_hash(&mut conn).unwrap(),
            HashAlg::Sm3
        );
        let first = log::sign_tree_head(&mut conn, &node.key, Utc::now()).unwrap();
        log::append(
            &mut conn,
            hukou_sync::crypto::hlc::Hlc::new(Utc::now().timestamp_millis(), 0).unwrap(),
            Utc::now(),
            &hukou_sync::audit::Event::new(
                hukou_sync::audit::Actor::console(),
                "test.sm3",
                hukou_sync::audit::Outcome::Ok,
            ),
        )
        .unwrap();
        let second = log::sign_tree_head(&mut conn, &node.key, Utc::now()).unwrap();
        let report =
            hukou_sync::audit::verify::verify_database(&mut conn, Some(&key), &mut |_, _| {})
                .unwrap();
        let entry = log::entry_with_proof(&mut conn, 0, second.size).unwrap();
        let consistency = log::consistency(&mut conn, first.size, second.size).unwrap();
        // An export verifies offline under SM3, and not under SHA-256.
        let mut export = Vec::new();
        hukou_sync::audit::verify::export(
            &mut conn,
            &second,
            0,
            second.size as i64,
            &mut export,
            &mut |_, _| {},
        )
        .unwrap();
        let offline =
            |alg| hukou_sync::audit::verify::verify_export(&mut export.as_slice(), alg, Some(&key));
        assert!(offline(HashAlg::Sm3).ok(), "{:?}", offline(HashAlg::Sm3));
        assert!(!offline(HashAlg::Sha256).ok());
        (report, (first, second, entry, consistency))
    })
    .await
    .unwrap();
    assert!(report.ok(), "{report:?}");
    assert!(report.consistency_proofs >= 1, "{report:?}");
    let (first, second, entry, consistency) = proofs;
    let hex = |h: &String| merkle::from_hex(h).unwrap();
    let path: Vec<_> = entry
        .inclusion
        .as_ref()
        .unwrap()
        .path
        .iter()
        .map(hex)
        .collect();
    let bytes = entry.event.canonical_bytes().unwrap();
    let root = second.root_hash().unwrap();
    assert_eq!(
        entry.leaf_hash,
        merkle::to_hex(&merkle::leaf_hash(HashAlg::Sm3, &bytes))
    );
    merkle::verify_inclusion(
        HashAlg::Sm3,
        &merkle::leaf_hash(HashAlg::Sm3, &bytes),
        0,
        second.size,
        &path,
        &root,
    )
    .unwrap();
    assert!(merkle::verify_inclusion(
        HashAlg::Sha256,
        &merkle::leaf_hash(HashAlg::Sha256, &bytes),
        0,
        second.size,
        &path,
        &root,
    )
    .is_err());
    let cpath: Vec<_> = consistency.path.iter().map(hex).collect();
    let old_root = first.root_hash().unwrap();
    merkle::verify_consistency(
        HashAlg::Sm3,
        first.size,
        second.size,
        &old_root,
        &root,
        &cpath,
    )
    .unwrap();
    assert!(merkle::verify_consistency(
        HashAlg::Sha256,
        first.size,
        second.size,
        &old_root,
        &root,
        &cpath
    )
    .is_err());

    // Refused at the hukou node: a version by the residence node's own SM2 key whose id is a
    // SHA-256 (`id_mismatch`), and an Ed25519 version with a correct SM3 id (`bad_signature`).
    let client = residence_client(&net.pki);
    let zz = NodeId::parse(ZHENGZHOU).unwrap();
    let sm2 = SigningKey::load(
        &net.pki
            .nodes
            .iter()
            .find(|n| n.id == zz)
            .unwrap()
            .signing_key,
    )
    .unwrap();
    let sha = creation_in(HashAlg::Sha256, &flowing_child(32), &sm2, ZHENGZHOU);
    let r = receipt(push(&client, &hukou, ZHENGZHOU, vec![sha]).await).await;
    assert_eq!(r.receipt.rejected[0].code.as_str(), "id_mismatch");
    assert!(
        r.receipt.rejected[0].reason.contains("sm3"),
        "{:?}",
        r.receipt
    );
    let ed = SigningKey::generate().unwrap().0;
    let forged = creation_in(HashAlg::Sm3, &flowing_child(31), &ed, ZHENGZHOU);
    let r = receipt(push(&client, &hukou, ZHENGZHOU, vec![forged]).await).await;
    assert_eq!(r.receipt.rejected[0].code.as_str(), "bad_signature");
    assert_eq!(r.signature.suite(), Suite::Sm2Sm3);
    // The same author's SM3-id version is accepted.
    let good = creation_in(HashAlg::Sm3, &flowing_child(33), &sm2, ZHENGZHOU);
    let r = receipt(push(&client, &hukou, ZHENGZHOU, vec![good]).await).await;
    assert!(r.receipt.rejected.is_empty(), "{:?}", r.receipt.rejected);

    // The network's hash cannot change: a directory declaring SHA-256 is refused on reload,
    // and the residence node (its data on SM3) does not start under it.
    resign_directory(&net.pki, |d| d.hash = HashAlg::Sha256).unwrap();
    let refused = hukou
        .node
        .directory
        .as_ref()
        .unwrap()
        .reload_from(&net.pki.directory, &net.pki.authority_public, Utc::now())
        .unwrap_err();
    assert!(refused.to_string().contains("content hash"), "{refused}");
    assert_eq!(
        hukou.node.directory.as_ref().unwrap().current().hash(),
        HashAlg::Sm3
    );
    let (settings, _db, _dir) = residence.shut_down().await;
    let err = hukou_sync::startup::open_node(&settings).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("made with sm3") && msg.contains("sha256"),
        "{msg}"
    );
    hukou.stop().await;
}
