//! Two real nodes over mutual TLS on 127.0.0.1: a residence bureau in Zhengzhou (410100) and a
//! hukou bureau in Chengdu (510100), with a fresh dev PKI and signed directory per test.

use chrono::Utc;
use hukou_sync::crypto::hlc::Hlc;
use hukou_sync::crypto::keys::SigningKey;
use hukou_sync::devnet::pki::{resign_directory, NodePlan};
use hukou_sync::domain::{NodeId, RegionPrefix};
use hukou_sync::sync::version::{DocKind, SignedVersion, Version};
use serde_json::{json, Value};

use crate::helpers::{
    bind, client_as, eventually, file, flowing_child, id_number, peer_url, push, receipt,
    residence_client, residence_key, restart, spawn_pair, spawn_pair_among, spawn_pair_with,
    wait_for_versions, Pair, TestApp, CHENGDU, WUHAN, ZHENGZHOU,
};

#[tokio::test]
async fn edits_on_either_node_reach_the_other_with_signed_receipts() {
    let pair = spawn_pair().await;
    let child = flowing_child(1);
    let id = child["id_number"].as_str().unwrap().to_owned();
    pair.residence.create_child(&child).await;
    let at_hukou = wait_for_versions(&pair.hukou, &id, 1).await;
    assert_eq!(at_hukou["record"]["name"], "张小明");
    assert_eq!(at_hukou["history"][0]["author_node"], ZHENGZHOU);

    // The hukou bureau records a benefit (a hukou field); the residence bureau a visit.
    let r = pair
        .hukou
        .patch_json(
            &format!("/api/v1/children/{id}"),
            &json!({"benefits": [{"benefit": "dibao", "since": "2026-10"}]}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    wait_for_versions(&pair.residence, &id, 2).await;
    let r = pair
        .residence
        .patch_json(
            &format!("/api/v1/children/{id}"),
            &json!({"last_visit_on": "2026-11-20", "risk_level": "橙"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let a = wait_for_versions(&pair.hukou, &id, 3).await;
    let b = wait_for_versions(&pair.residence, &id, 3).await;
    assert_eq!(a["record"], b["record"]);
    assert_eq!(a["heads"], b["heads"]);
    assert_eq!(a["record"]["benefits"][0]["benefit"], "dibao");
    // The residence side may not change a hukou field, locally refused.
    let r = pair
        .residence
        .patch_json(&format!("/api/v1/children/{id}"), &json!({"benefits": []}))
        .await;
    assert_eq!(r.status(), 403);

    // Receipts: each side holds the other's signed receipts, and it was audited.
    eventually(10, "receipts stored", || async {
        pair.residence.count("receipts") >= 2 && pair.hukou.count("receipts") >= 2
    })
    .await;
    // Each side witnessed the other's signed tree head (sent with pushes and receipts).
    assert!(
        pair.residence.count("peer_tree_heads") >= 1 && pair.hukou.count("peer_tree_heads") >= 1
    );
    let events: Value = pair
        .residence
        .get("/api/v1/audit/events?action=receipt.store")
        .await
        .json()
        .await
        .unwrap();
    assert!(!events["items"].as_array().unwrap().is_empty());
    let events: Value = pair
        .hukou
        .get("/api/v1/audit/events?action=version.ingest")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(events["items"].as_array().unwrap().len(), 2);
    let peers: Value = pair
        .residence
        .get("/api/v1/peers")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(peers[0]["peer"], CHENGDU);
    eventually(10, "outbox drained", || async {
        pair.residence.count("outbox") == 0 && pair.hukou.count("outbox") == 0
    })
    .await;
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

/// A creation version of `body` authored by the residence node (SHA-256 id).
pub(crate) fn creation(body: &Value, key: &SigningKey, author: &str) -> SignedVersion {
    creation_in(hukou_sync::crypto::hash::HashAlg::Sha256, body, key, author)
}

/// [`creation`] with its id under the content hash `alg`.
pub(crate) fn creation_in(
    alg: hukou_sync::crypto::hash::HashAlg,
    body: &Value,
    key: &SigningKey,
    author: &str,
) -> SignedVersion {
    Version::new(
        DocKind::Child,
        body["id_number"].as_str().unwrap().into(),
        vec![],
        NodeId::parse(author).unwrap(),
        Hlc::new(Utc::now().timestamp_millis(), 0).unwrap(),
        full_record(body),
    )
    .sign(key, alg)
    .unwrap()
}

/// An edit by the residence node on top of `parent`: its body with `change` applied, stamped now
/// with logical counter `logical`.
pub(crate) fn residence_edit(
    parent: &SignedVersion,
    change: impl FnOnce(&mut Value),
    key: &SigningKey,
    logical: u16,
) -> SignedVersion {
    let mut body = parent.version.body.clone();
    change(&mut body);
    Version::new(
        DocKind::Child,
        parent.version.doc_id.clone(),
        vec![parent.id],
        NodeId::parse(ZHENGZHOU).unwrap(),
        Hlc::new(Utc::now().timestamp_millis(), logical).unwrap(),
        body,
    )
    .sign(key, hukou_sync::crypto::hash::HashAlg::Sha256)
    .unwrap()
}

/// The stored form of a record (every field present).
pub(crate) fn full_record(body: &Value) -> Value {
    let fields =
        hukou_sync::domain::ChildRecord::fields_from_json(body.as_object().unwrap().clone())
            .unwrap();
    serde_json::to_value(hukou_sync::domain::ChildRecord::from_fields_structural(&fields).unwrap())
        .unwrap()
}

#[tokio::test]
async fn refused_peers_never_reach_the_data() {
    let pair = spawn_pair().await;
    let hukou = &pair.hukou;
    let ca = hukou_sync::tls::pki::load_certs(&pair.pki.ca_cert).unwrap();

    // No client certificate: the TLS handshake fails.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca[0].clone()).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let anon = reqwest::Client::builder()
        .use_preconfigured_tls(cfg)
        .build()
        .unwrap();
    assert!(anon
        .post(peer_url(hukou))
        .json(&json!({}))
        .send()
        .await
        .is_err());

    // A certificate from another CA: refused in the handshake too.
    let other_ca = hukou_sync::tls::pki::generate_ca("rogue").unwrap();
    let rogue =
        hukou_sync::tls::pki::issue_node_cert(&other_ca, ZHENGZHOU, &["localhost", "127.0.0.1"])
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    hukou_sync::tls::pki::write_public_pem(&c, &rogue.cert_pem).unwrap();
    hukou_sync::tls::pki::write_private_pem(&k, &rogue.key_pem).unwrap();
    let rogue_client = client_as(&pair.pki, &c, &k);
    assert!(rogue_client
        .post(peer_url(hukou))
        .json(&json!({}))
        .send()
        .await
        .is_err());

    // A valid certificate of the exchange CA for a node not in the directory: 403 unknown_node.
    let ca_pair = hukou_sync::tls::pki::load_ca(&pair.pki.ca_cert, &pair.pki.ca_key).unwrap();
    let stranger =
        hukou_sync::tls::pki::issue_node_cert(&ca_pair, "420100", &["localhost", "127.0.0.1"])
            .unwrap();
    let (c2, k2) = (dir.path().join("c2.pem"), dir.path().join("k2.pem"));
    hukou_sync::tls::pki::write_public_pem(&c2, &stranger.cert_pem).unwrap();
    hukou_sync::tls::pki::write_private_pem(&k2, &stranger.key_pem).unwrap();
    let r = client_as(&pair.pki, &c2, &k2)
        .post(peer_url(hukou))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    crate::helpers::problem(r, 403, "unknown_node").await;

    // A node's certificate reissued (same id, not the pinned one): 403 certificate_not_pinned.
    let reissued =
        hukou_sync::tls::pki::issue_node_cert(&ca_pair, ZHENGZHOU, &["localhost", "127.0.0.1"])
            .unwrap();
    let (c3, k3) = (dir.path().join("c3.pem"), dir.path().join("k3.pem"));
    hukou_sync::tls::pki::write_public_pem(&c3, &reissued.cert_pem).unwrap();
    hukou_sync::tls::pki::write_private_pem(&k3, &reissued.key_pem).unwrap();
    let r = client_as(&pair.pki, &c3, &k3)
        .post(peer_url(hukou))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    crate::helpers::problem(r, 403, "certificate_not_pinned").await;

    // The body naming another sender than the certificate: 403.
    let client = residence_client(&pair.pki);
    let r = push(&client, hukou, CHENGDU, vec![]).await;
    crate::helpers::problem(r, 403, "sender_mismatch").await;
    // Malformed and oversized bodies.
    let r = client
        .post(peer_url(hukou))
        .header("content-type", "application/json")
        .body("{\"sender\":")
        .send()
        .await
        .unwrap();
    crate::helpers::problem(r, 400, "malformed_json").await;
    // (Oversized bodies: `hardening_peer`.)

    // A revoked certificate: the directory authority revokes the residence node's certificate.
    revoke_certificate(&pair, ZHENGZHOU, hukou);
    let r = push(&client, hukou, ZHENGZHOU, vec![]).await;
    crate::helpers::problem(r, 403, "certificate_revoked").await;
    let refused: Value = hukou
        .get("/api/v1/audit/events?action=peer.refused")
        .await
        .json()
        .await
        .unwrap();
    // Unknown node, unpinned certificate, sender mismatch, revoked certificate.
    assert_eq!(refused["items"].as_array().unwrap().len(), 4);
    assert_eq!(hukou.count("versions"), 0);
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

/// The directory authority revokes `node`'s TLS certificate (a new signed directory over the
/// pair's file), and `at` loads it.
fn revoke_certificate(pair: &crate::helpers::Pair, node: &str, at: &crate::helpers::TestApp) {
    let fp = pair
        .pki
        .nodes
        .iter()
        .find(|n| n.id.as_str() == node)
        .unwrap()
        .fingerprint
        .clone();
    resign_directory(&pair.pki, |d| d.revoked_certificates.push(fp)).unwrap();
    at.node
        .directory
        .clone()
        .unwrap()
        .reload_from(&pair.pki.directory, &pair.pki.authority_public, Utc::now())
        .unwrap();
}

/// The sending side of a revocation: once a directory revoking the hukou node's TLS certificate
/// is in use at the residence node, the residence node refuses that certificate at the
/// handshake — also where a pooled connection to it was open — and keeps its versions queued.
#[tokio::test]
async fn a_sender_refuses_a_peer_whose_certificate_its_directory_revokes() {
    let pair = spawn_pair().await;
    let first = flowing_child(41);
    pair.residence.create_child(&first).await;
    wait_for_versions(&pair.hukou, first["id_number"].as_str().unwrap(), 1).await;

    revoke_certificate(&pair, CHENGDU, &pair.residence);
    let second = flowing_child(42);
    pair.residence.create_child(&second).await;
    eventually(20, "the delivery refused at the handshake", || async {
        let peers: Value = pair
            .residence
            .get("/api/v1/peers")
            .await
            .json()
            .await
            .unwrap();
        peers.as_array().unwrap().iter().any(|p| {
            p["peer"] == CHENGDU
                && p["outbox_depth"] == 1
                && p["last_error"].as_str().is_some_and(|e| {
                    e.contains("the peer's TLS certificate is revoked in the directory")
                })
        })
    })
    .await;
    assert!(file(&pair.hukou, second["id_number"].as_str().unwrap())
        .await
        .is_none());
    assert_eq!(pair.hukou.count("versions"), 1);
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

#[tokio::test]
async fn bad_versions_are_rejected_with_precise_codes_and_nothing_is_stored() {
    let pair = spawn_pair().await;
    let hukou = &pair.hukou;
    let client = residence_client(&pair.pki);
    let key = residence_key(&pair.pki);

    let good = creation(&flowing_child(2), &key, ZHENGZHOU);
    // Bad signature: signed by a key that is not the residence node's.
    let stranger_key = SigningKey::generate().unwrap().0;
    let forged = creation(&flowing_child(3), &stranger_key, ZHENGZHOU);
    // Id that does not match the content.
    let mut tampered = creation(&flowing_child(4), &key, ZHENGZHOU);
    tampered.version.body["name"] = json!("李四");
    // A child neither node serves (Shenzhen): the author and sender are not parties.
    let mut shenzhen = flowing_child(5);
    shenzhen["hukou_region"] = json!("440305");
    shenzhen["residence_region"] = json!("440306");
    shenzhen["id_number"] = json!(id_number("440305", (2015, 5, 5), 5));
    let not_party = creation(&shenzhen, &key, ZHENGZHOU);
    // Unknown parents.
    let orphan = Version::new(
        DocKind::Child,
        good.version.doc_id.clone(),
        vec![forged.id],
        NodeId::parse(ZHENGZHOU).unwrap(),
        Hlc::new(Utc::now().timestamp_millis(), 1).unwrap(),
        good.version.body.clone(),
    )
    .sign(&key, hukou_sync::crypto::hash::HashAlg::Sha256)
    .unwrap();
    // A stamp far in the future.
    let mut future_body = flowing_child(6);
    future_body["name"] = json!("王五");
    let future = Version::new(
        DocKind::Child,
        future_body["id_number"].as_str().unwrap().into(),
        vec![],
        NodeId::parse(ZHENGZHOU).unwrap(),
        Hlc::new(Utc::now().timestamp_millis() + 3_600_000, 0).unwrap(),
        full_record(&future_body),
    )
    .sign(&key, hukou_sync::crypto::hash::HashAlg::Sha256)
    .unwrap();
    // A residence edit of a hukou field (benefits), on top of the good creation.
    let overreach = residence_edit(
        &good,
        |b| b["benefits"] = json!([{"benefit": "tekun"}]),
        &key,
        5,
    );

    let r = receipt(
        push(
            &client,
            hukou,
            ZHENGZHOU,
            vec![
                good.clone(),
                forged.clone(),
                tampered.clone(),
                not_party.clone(),
                orphan.clone(),
                future.clone(),
                overreach.clone(),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(r.receipt.accepted, vec![good.id]);
    let codes: Vec<(String, &str)> = r
        .receipt
        .rejected
        .iter()
        .map(|x| (x.id.to_string(), x.code.as_str()))
        .collect();
    let code_of = |v: &SignedVersion| {
        codes
            .iter()
            .find(|(id, _)| *id == v.id.to_string())
            .map(|(_, c)| *c)
    };
    assert_eq!(code_of(&forged), Some("bad_signature"));
    assert_eq!(code_of(&tampered), Some("id_mismatch"));
    assert_eq!(code_of(&not_party), Some("author_not_party"));
    assert_eq!(code_of(&orphan), Some("unknown_parents"));
    assert_eq!(code_of(&future), Some("clock_skew"));
    assert_eq!(code_of(&overreach), Some("field_not_owned"));
    // The receipt is signed by the hukou node's key.
    let hk = hukou.node.key.public_key();
    r.verify(
        &[hk],
        &NodeId::parse(CHENGDU).unwrap(),
        &NodeId::parse(ZHENGZHOU).unwrap(),
        &r.receipt.batch,
    )
    .unwrap();
    assert_eq!(hukou.count("versions"), 1);
    // The batch's refusals are one audit event, however many there are.
    let rejected: Value = hukou
        .get("/api/v1/audit/events?action=batch.reject")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rejected["items"].as_array().unwrap().len(), 1);
    assert_eq!(rejected["items"][0]["details"]["rejected"], 6);

    // A replayed batch is accepted again with a receipt, and stores nothing new.
    let again = receipt(push(&client, hukou, ZHENGZHOU, vec![good.clone()]).await).await;
    assert_eq!(again.receipt.accepted, vec![good.id]);
    assert_eq!(hukou.count("versions"), 1);

    // A revoked key, and a key used outside its validity window.
    let mut later = flowing_child(7);
    later["name"] = json!("赵六");
    let old_stamp = Version::new(
        DocKind::Child,
        later["id_number"].as_str().unwrap().into(),
        vec![],
        NodeId::parse(ZHENGZHOU).unwrap(),
        Hlc::new(
            (Utc::now() - chrono::Duration::days(3)).timestamp_millis(),
            0,
        )
        .unwrap(),
        full_record(&later),
    )
    .sign(&key, hukou_sync::crypto::hash::HashAlg::Sha256)
    .unwrap();
    let r = receipt(push(&client, hukou, ZHENGZHOU, vec![old_stamp.clone()]).await).await;
    assert_eq!(r.receipt.rejected[0].code.as_str(), "key_not_valid");
    let public = key.public_key();
    resign_directory(&pair.pki, |d| d.revoked_keys.push(public)).unwrap();
    hukou
        .node
        .directory
        .clone()
        .unwrap()
        .reload_from(&pair.pki.directory, &pair.pki.authority_public, Utc::now())
        .unwrap();
    let fresh = creation(&flowing_child(8), &key, ZHENGZHOU);
    let r = receipt(push(&client, hukou, ZHENGZHOU, vec![fresh]).await).await;
    assert_eq!(r.receipt.rejected[0].code.as_str(), "key_not_valid");
    assert_eq!(hukou.count("versions"), 1);
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

/// Wuhan (4201) in the directory, with nothing listening on its ports: its deliveries wait in the
/// outbox.
pub(crate) fn absent_wuhan() -> NodePlan {
    let (admin, peer) = (bind(), bind());
    NodePlan {
        id: NodeId::parse(WUHAN).unwrap(),
        serves: vec![RegionPrefix::parse("4201").unwrap()],
        peer_port: peer.local_addr().unwrap().port(),
        admin_port: admin.local_addr().unwrap().port(),
    }
}

/// A bureau the child moved to receives the file's history in one batch, and passes its creation
/// on to the child's other party (a third node): the creation, batched with other creations
/// before it is written, is written before the outbox row that names it — on PostgreSQL that
/// row's foreign key is checked at once.
#[tokio::test]
async fn a_moved_childs_history_is_forwarded_to_its_other_party() {
    let pair = spawn_pair_among(vec![absent_wuhan()], |_, _| {}).await;
    let hukou = &pair.hukou;
    let client = residence_client(&pair.pki);
    let key = residence_key(&pair.pki);
    // Hukou in Wuhan, living in Zhengzhou; then the family moves to Chengdu.
    let mut body = flowing_child(300);
    body["id_number"] = json!(id_number("420102", (2016, 2, 3), 300));
    body["hukou_region"] = json!("420102");
    let created = creation(&body, &key, ZHENGZHOU);
    let moved = residence_edit(
        &created,
        |b| b["residence_region"] = json!("510104"),
        &key,
        1,
    );
    // Another file's creation first, so that the moved child's creation waits in the batch.
    let other = creation(&flowing_child(301), &key, ZHENGZHOU);

    let r = receipt(
        push(
            &client,
            hukou,
            ZHENGZHOU,
            vec![other.clone(), created.clone(), moved.clone()],
        )
        .await,
    )
    .await;
    assert!(r.receipt.rejected.is_empty(), "{:?}", r.receipt.rejected);
    assert_eq!(r.receipt.accepted.len(), 3);
    assert_eq!(hukou.count("versions"), 3);
    // Both versions of the moved child are queued for Wuhan, the other file for nobody.
    assert_eq!(hukou.count(&format!("outbox WHERE peer = '{WUHAN}'")), 2);
    assert_eq!(hukou.count("outbox"), 2);
    let view = file(hukou, created.version.doc_id.as_str()).await.unwrap();
    assert_eq!(view["record"]["residence_region"], "510104");
}

/// Every version this node stores goes out once to each other party of the child, never to this
/// node nor to a bureau that is no party, with one audit event: a file created and edited at the
/// hukou bureau of a child living in Wuhan is queued twice for Wuhan and for nobody else.
#[tokio::test]
async fn a_stored_version_is_queued_once_for_each_other_party_with_one_audit_event() {
    let pair = spawn_pair_among(vec![absent_wuhan()], |_, _| {}).await;
    let hukou = &pair.hukou;
    let mut body = flowing_child(310);
    body["residence_region"] = json!("420102");
    let id = body["id_number"].as_str().unwrap().to_owned();
    hukou.create_child(&body).await;
    assert_eq!(hukou.count(&format!("outbox WHERE peer = '{WUHAN}'")), 1);
    assert_eq!(hukou.count("outbox"), 1);
    assert_eq!(hukou.count("audit_events WHERE action = 'child.create'"), 1);
    let r = hukou
        .patch_json(
            &format!("/api/v1/children/{id}"),
            &json!({"benefits": [{"benefit": "dibao", "since": "2026-10"}]}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(hukou.count(&format!("outbox WHERE peer = '{WUHAN}'")), 2);
    assert_eq!(hukou.count("outbox"), 2);
    assert_eq!(hukou.count("audit_events WHERE action = 'child.update'"), 1);
    assert_eq!(hukou.count("versions"), 2);
    let view = file(hukou, &id).await.unwrap();
    assert_eq!(view["record"]["benefits"][0]["benefit"], "dibao");
    assert_eq!(view["heads"].as_array().unwrap().len(), 1);
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

/// The same batch delivered four times at once (a sender's retry overtaking its first try, or a
/// version forwarded by two parties): every delivery gets a signed receipt accepting every
/// version, and each version is stored, viewed and audited once. On PostgreSQL the later
/// deliveries' inserts fail on rows the first committed, and are ingested again.
#[tokio::test]
async fn concurrent_deliveries_of_one_batch_are_each_acknowledged_and_stored_once() {
    let pair = spawn_pair().await;
    let hukou = &pair.hukou;
    let client = residence_client(&pair.pki);
    let key = residence_key(&pair.pki);
    let mut batch = Vec::new();
    for seq in 0..150 {
        let created = creation(&flowing_child(200 + seq), &key, ZHENGZHOU);
        let edit = residence_edit(&created, |b| b["risk_level"] = json!(1), &key, 1);
        batch.push(created);
        batch.push(edit);
    }
    let versions = hukou.count("versions");
    let heads = hukou.count("heads");
    let receipts = hukou.count("receipts");
    let ingested = |app: &TestApp| app.count("audit_events WHERE action = 'version.ingest'");
    let events = ingested(hukou);

    let (a, b, c, d) = tokio::join!(
        push(&client, hukou, ZHENGZHOU, batch.clone()),
        push(&client, hukou, ZHENGZHOU, batch.clone()),
        push(&client, hukou, ZHENGZHOU, batch.clone()),
        push(&client, hukou, ZHENGZHOU, batch.clone()),
    );
    let mut expected: Vec<String> = batch.iter().map(|v| v.id.to_string()).collect();
    expected.sort();
    for r in [a, b, c, d] {
        let r = receipt(r).await;
        assert!(r.receipt.rejected.is_empty(), "{:?}", r.receipt.rejected);
        let mut accepted: Vec<String> = r.receipt.accepted.iter().map(|v| v.to_string()).collect();
        accepted.sort();
        assert_eq!(accepted, expected);
    }
    assert_eq!(hukou.count("versions"), versions + 300);
    assert_eq!(hukou.count("heads"), heads + 150);
    assert_eq!(hukou.count("children WHERE risk_level = '1'"), 150);
    assert_eq!(ingested(hukou), events + 300);
    assert_eq!(hukou.count("receipts"), receipts + 4);
}

/// The sender's queue drains and the receiver holds `versions` versions, each ingested once in
/// effect: no refusal on either side, no duplicate row.
async fn delivered_once(sender: &TestApp, receiver: &TestApp, versions: usize) {
    eventually(20, "outbox drained", || async {
        sender.count("outbox") == 0
    })
    .await;
    assert_eq!(receiver.count("versions"), versions as i64);
    assert_eq!(sender.count("outbox_rejected"), 0);
    let rejected: Value = receiver
        .get("/api/v1/audit/events?action=version.reject")
        .await
        .json()
        .await
        .unwrap();
    assert!(rejected["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_receiver_that_was_down_gets_everything_in_order_exactly_once() {
    let pair = spawn_pair().await;
    let Pair {
        pki,
        residence,
        hukou,
        _root,
    } = pair;
    let (h_settings, h_db, h_dir) = hukou.shut_down().await;
    let child = flowing_child(9);
    let id = child["id_number"].as_str().unwrap().to_owned();
    residence.create_child(&child).await;
    for (i, risk) in ["红", "橙", "黄", "绿"].iter().enumerate() {
        let r = residence
            .patch_json(
                &format!("/api/v1/children/{id}"),
                &json!({"risk_level": risk, "notes": format!("visit {i}")}),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    eventually(10, "a failed delivery is recorded", || async {
        let p: Value = residence.get("/api/v1/peers").await.json().await.unwrap();
        p[0]["consecutive_failures"].as_i64().unwrap_or(0) > 0 && p[0]["outbox_depth"] == 5
    })
    .await;

    // The sender restarts with a full outbox too.
    let (r_settings, r_db, r_dir) = residence.shut_down().await;
    let residence = restart(r_settings, r_db, r_dir).await;
    let hukou = restart(h_settings, h_db, h_dir).await;
    let got = wait_for_versions(&hukou, &id, 5).await;
    assert_eq!(got["record"]["risk_level"], 4);
    assert_eq!(got["risk_label"], "绿");
    assert_eq!(got["heads"].as_array().unwrap().len(), 1);
    delivered_once(&residence, &hukou, 5).await;
    let _ = pki;
    residence.stop().await;
    hukou.stop().await;
}

/// A backlog drains with batches in flight side by side (batches of two here): creations of
/// different children go together, while edits of a child whose earlier version is still in
/// flight wait for it. Every version arrives, none is refused for unknown parents, each once.
#[tokio::test]
async fn a_backlog_drains_with_batches_in_flight_and_parents_first() {
    let pair = spawn_pair_with(|id, s| {
        if id == ZHENGZHOU {
            s.sync.batch_size = 2;
        }
    })
    .await;
    let Pair {
        pki,
        residence,
        hukou,
        _root,
    } = pair;
    let (h_settings, h_db, h_dir) = hukou.shut_down().await;
    let ids: Vec<String> = (20..26)
        .map(|seq| {
            let child = flowing_child(seq);
            child["id_number"].as_str().unwrap().to_owned()
        })
        .collect();
    for seq in 20..26 {
        residence.create_child(&flowing_child(seq)).await;
    }
    // Edits of the first child between edits of others: its versions spread over batches.
    let edits = [0usize, 1, 0, 2, 0, 3, 0];
    for (i, &which) in edits.iter().enumerate() {
        let r = residence
            .patch_json(
                &format!("/api/v1/children/{}", ids[which]),
                &json!({"notes": format!("visit {i}")}),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let total = ids.len() + edits.len();
    eventually(10, "the backlog is queued", || async {
        residence.count("outbox") == total as i64
    })
    .await;

    let hukou = restart(h_settings, h_db, h_dir).await;
    delivered_once(&residence, &hukou, total).await;
    // A verified receipt for every batch of two, each one kept by its issuer too (stored in the
    // transaction of the batch it answers).
    assert!(residence.count("receipts") >= total.div_ceil(2) as i64);
    let from_hukou = |app: &TestApp| -> std::collections::BTreeSet<String> {
        let mut conn = app.store.conn().unwrap();
        hukou_sync::storage::exchange::receipts_from(&mut conn, CHENGDU, 1000)
            .unwrap()
            .into_iter()
            .map(|r| r.id.to_string())
            .collect()
    };
    let (received, issued) = (from_hukou(&residence), from_hukou(&hukou));
    assert!(received.len() >= total.div_ceil(2), "{received:?}");
    assert!(received.is_subset(&issued), "{received:?} ⊄ {issued:?}");
    let first = wait_for_versions(&hukou, &ids[0], 5).await;
    assert_eq!(first["record"]["notes"], "visit 6");
    assert_eq!(first["heads"].as_array().unwrap().len(), 1);
    for (n, id) in ids.iter().enumerate() {
        let expect = 1 + edits.iter().filter(|&&w| w == n).count();
        let f = wait_for_versions(&hukou, id, expect).await;
        assert_eq!(f["heads"].as_array().unwrap().len(), 1, "{id}");
    }
    let _ = pki;
    residence.stop().await;
    hukou.stop().await;
}
