//! The directory reaches every node (issue 25 #8): a new serial published to one node's file
//! spreads to the others through `GET /peer/v1/directory`, each node writing it to its own
//! file; a forged directory offered by a peer is refused and changes nothing; no serial goes
//! back; the route answers only nodes of the directory.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chrono::Utc;
use hukou_sync::crypto::SigningKey;
use hukou_sync::devnet::pki::resign_directory;
use hukou_sync::directory::{replace_with_bytes, sign, write_signed, Directory, SignedDirectory};
use serde_json::Value;

const CHANGSHA: &str = "430100";

use crate::helpers::{
    client_as, eventually, peer_client, problem, spawn_network_with, TestApp, CHENGDU, WUHAN,
    ZHENGZHOU,
};

/// Each node's own copy of the directory file, beside the shared one the dev PKI wrote.
fn own_file(shared: &Path, id: &str) -> PathBuf {
    shared.with_file_name(format!("directory-{id}.json"))
}

fn serial(app: &TestApp) -> u64 {
    app.node.directory.as_ref().unwrap().current().serial()
}

fn file_serial(path: &Path) -> u64 {
    let signed: SignedDirectory = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    signed.directory.serial
}

async fn events(app: &TestApp, action: &str) -> Vec<Value> {
    let v: Value = app
        .get(&format!("/api/v1/audit/events?action={action}&limit=1000"))
        .await
        .json()
        .await
        .unwrap();
    v["items"].as_array().unwrap().clone()
}

fn directory_url(app: &TestApp) -> String {
    format!(
        "https://127.0.0.1:{}/peer/v1/directory",
        app.settings.peer.as_ref().unwrap().listen.port()
    )
}

/// Four nodes on serial 1, Zhengzhou and Chengdu trusting the real authority; Changsha too, but
/// it does not fetch within the test (it keeps serving serial 1); Wuhan is made to trust a
/// forger's key and runs a forged serial 3, which it serves to the others. The authority's
/// serial 2 is written to Zhengzhou's file only: Chengdu fetches it, both files end on serial 2,
/// Changsha's lower serial is ignored, Wuhan's forgeries are refused (audited once per serial)
/// and never installed.
#[tokio::test]
async fn a_new_serial_published_to_one_node_reaches_the_others_and_forgeries_do_not() {
    let forger = SigningKey::generate().unwrap().0;
    let net = spawn_network_with(
        // The directory's order is the order peers are asked in: Changsha before Wuhan.
        &[
            (ZHENGZHOU, "4101"),
            (CHENGDU, "5101"),
            (CHANGSHA, "4301"),
            (WUHAN, "4201"),
        ],
        |id, s| {
            let d = s.directory.as_mut().unwrap();
            let own = own_file(&d.path, id);
            if id == WUHAN {
                let shared: SignedDirectory =
                    serde_json::from_slice(&std::fs::read(&d.path).unwrap()).unwrap();
                let mut doc = shared.directory;
                doc.serial = 3;
                write_signed(&own, &sign(&doc, &forger).unwrap()).unwrap();
                d.authority_key = forger.public_key().to_string();
            } else {
                std::fs::copy(&d.path, &own).unwrap();
            }
            d.path = own;
            d.fetch_interval_secs = if id == CHANGSHA { 3600 } else { 1 };
            d.reload_interval_secs = 1;
        },
    )
    .await;
    let (zhengzhou, chengdu, changsha, wuhan) =
        (&net.nodes[0], &net.nodes[1], &net.nodes[2], &net.nodes[3]);
    let shared = net.pki.directory.clone();
    let (zz_file, cd_file) = (own_file(&shared, ZHENGZHOU), own_file(&shared, CHENGDU));
    assert_eq!(
        (serial(zhengzhou), serial(chengdu), serial(wuhan)),
        (1, 1, 3)
    );

    // The route answers a node of the directory with the signed file, byte for byte.
    let r = peer_client(&net.pki, ZHENGZHOU, CHENGDU)
        .get(directory_url(chengdu))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-directory-serial"], "1");
    assert_eq!(r.bytes().await.unwrap(), std::fs::read(&cd_file).unwrap());

    // ... and refuses a valid certificate of the exchange CA for a node not in the directory.
    let ca = hukou_sync::tls::pki::load_ca(&net.pki.ca_cert, &net.pki.ca_key).unwrap();
    let stranger =
        hukou_sync::tls::pki::issue_node_cert(&ca, "440100", &["localhost", "127.0.0.1"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    hukou_sync::tls::pki::write_public_pem(&c, &stranger.cert_pem).unwrap();
    hukou_sync::tls::pki::write_private_pem(&k, &stranger.key_pem).unwrap();
    let r = client_as(&net.pki, &c, &k)
        .get(directory_url(chengdu))
        .send()
        .await
        .unwrap();
    problem(r, 403, "unknown_node").await;

    // The forged serial 3 Wuhan serves is refused by both others, audited once each.
    for app in [zhengzhou, chengdu] {
        eventually(30, "the forged directory refused", || async {
            !events(app, "directory.refuse").await.is_empty()
        })
        .await;
    }

    // The authority signs serial 2; it is published to Zhengzhou's file only.
    resign_directory(&net.pki, |doc| {
        doc.revoked_certificates.push("ab".repeat(32));
    })
    .unwrap();
    replace_with_bytes(&zz_file, &std::fs::read(&shared).unwrap()).unwrap();
    eventually(
        60,
        "serial 2 installed and written on both nodes",
        || async {
            serial(zhengzhou) == 2
                && serial(chengdu) == 2
                && file_serial(&zz_file) == 2
                && file_serial(&cd_file) == 2
        },
    )
    .await;
    // Chengdu's file verifies as a start-up load would.
    let loaded = Directory::load(&cd_file, &net.pki.authority_public, Utc::now()).unwrap();
    assert_eq!(loaded.serial(), 2);
    assert_eq!(
        std::fs::metadata(&cd_file).unwrap().permissions().mode() & 0o777,
        0o644
    );

    // Chengdu took it from Zhengzhou, the only node that had it (audited just after the file
    // is written: awaited).
    eventually(30, "Chengdu's install audited", || async {
        events(chengdu, "directory.install")
            .await
            .iter()
            .any(|e| e["details"]["from"].is_string())
    })
    .await;
    let installs = events(chengdu, "directory.install").await;
    let fetched: Vec<&Value> = installs
        .iter()
        .filter(|e| e["details"]["from"].is_string())
        .collect();
    assert_eq!(fetched.len(), 1, "{installs:?}");
    assert_eq!(fetched[0]["details"]["from"], ZHENGZHOU);
    assert_eq!(fetched[0]["details"]["old_serial"], 1);
    assert_eq!(fetched[0]["details"]["new_serial"], 2);
    assert_eq!(fetched[0]["details"]["file_written"], true);

    // Further rounds change nothing. Wuhan's forgery moves to serial 4: once both others have
    // refused it, each has asked Changsha (before Wuhan in the directory) with serial 2 in use,
    // and ignored its serial 1.
    let refusals = events(chengdu, "directory.refuse").await;
    assert!(refusals
        .iter()
        .all(|e| e["details"]["from"] == WUHAN && e["details"]["serial"] == 3));
    let wuhan_file = own_file(&shared, WUHAN);
    let forged: SignedDirectory =
        serde_json::from_slice(&std::fs::read(&wuhan_file).unwrap()).unwrap();
    let mut doc = forged.directory;
    doc.serial = 4;
    write_signed(&wuhan_file, &sign(&doc, &forger).unwrap()).unwrap();
    for app in [zhengzhou, chengdu] {
        eventually(30, "the forged serial 4 refused", || async {
            events(app, "directory.refuse")
                .await
                .iter()
                .any(|e| e["details"]["serial"] == 4)
        })
        .await;
        // Once per peer, serial and kind: serial 3, then serial 4.
        assert_eq!(events(app, "directory.refuse").await.len(), 2);
    }
    assert_eq!(
        (
            serial(zhengzhou),
            serial(chengdu),
            serial(changsha),
            serial(wuhan)
        ),
        (2, 2, 1, 4)
    );
    assert_eq!(file_serial(&own_file(&shared, CHANGSHA)), 1);
    for app in [zhengzhou, chengdu] {
        for e in events(app, "directory.install").await {
            let d = &e["details"];
            assert!(d["new_serial"].as_u64() > d["old_serial"].as_u64(), "{e:?}");
        }
    }
    for app in net.nodes {
        app.stop().await;
    }
}

/// A node with `[directory] publication_url` takes a new serial from the authority's
/// publication point (verified as on load), and refuses what does not verify there — audited
/// with `from: "publication"`; its peer gets the serial from it in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_serial_at_the_publication_point_reaches_the_network() {
    let root = tempfile::tempdir().unwrap();
    let served = root.path().join("published.json");
    std::fs::write(&served, b"not a directory").unwrap();
    // The point's certificate comes from the network's CA, made with the network: its port is
    // chosen when the node is configured and served once the network runs.
    let url = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let net = spawn_network_with(&[(ZHENGZHOU, "4101"), (CHENGDU, "5101")], |id, s| {
        let d = s.directory.as_mut().unwrap();
        let own = own_file(&d.path, id);
        std::fs::copy(&d.path, &own).unwrap();
        d.path = own;
        d.fetch_interval_secs = 1;
        d.reload_interval_secs = 1;
        if id == ZHENGZHOU {
            let mut u = url.lock().unwrap();
            if u.is_none() {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                *u = Some(format!(
                    "https://127.0.0.1:{}/directory.json",
                    l.local_addr().unwrap().port()
                ));
            }
            d.publication_url = u.clone();
        }
    })
    .await;
    let (zhengzhou, chengdu) = (&net.nodes[0], &net.nodes[1]);
    let configured = zhengzhou
        .settings
        .directory
        .as_ref()
        .unwrap()
        .publication_url
        .clone()
        .unwrap();
    // Until it serves, the node finds nothing there (and asks again next round).
    let served_url = publication_point_on(&net.pki, served.clone(), &configured).await;
    assert_eq!(served_url, configured);

    // What it serves first does not verify: refused, audited once, nothing changes.
    eventually(30, "the publication point's garbage refused", || async {
        events(zhengzhou, "directory.refuse")
            .await
            .iter()
            .any(|e| e["details"]["from"] == "publication" && e["details"]["url"] == configured)
    })
    .await;
    assert_eq!(serial(zhengzhou), 1);

    // The authority publishes serial 2 there only.
    resign_directory(&net.pki, |doc| {
        doc.revoked_certificates.push("cd".repeat(32));
    })
    .unwrap();
    std::fs::copy(&net.pki.directory, &served).unwrap();
    eventually(
        60,
        "serial 2 from the publication point, then on the peer",
        || async { serial(zhengzhou) == 2 && serial(chengdu) == 2 },
    )
    .await;
    eventually(30, "the install audited with its source", || async {
        events(zhengzhou, "directory.install")
            .await
            .iter()
            .any(|e| e["details"]["from"] == "publication" && e["details"]["new_serial"] == 2)
    })
    .await;
    assert_eq!(file_serial(&own_file(&net.pki.directory, ZHENGZHOU)), 2);
}

/// The authority's publication point on the port of `url`: an HTTPS server (its certificate
/// from the exchange CA) serving whatever `file` holds at each request.
async fn publication_point_on(
    pki: &hukou_sync::devnet::pki::DevPki,
    file: PathBuf,
    url: &str,
) -> String {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let port: u16 = url
        .trim_start_matches("https://127.0.0.1:")
        .trim_end_matches("/directory.json")
        .parse()
        .unwrap();
    let ca = hukou_sync::tls::pki::load_ca(&pki.ca_cert, &pki.ca_key).unwrap();
    let cert =
        hukou_sync::tls::pki::issue_node_cert(&ca, "990000", &["localhost", "127.0.0.1"]).unwrap();
    let chain = hukou_sync::tls::pki::load_certs_from_pem(&cert.cert_pem).unwrap();
    let key = hukou_sync::tls::pki::load_private_key_from_pem(&cert.key_pem).unwrap();
    let config = hukou_sync::tls::admin_server_config(chain, key).unwrap();
    let server = HttpServer::new(move || {
        let file = file.clone();
        App::new().route(
            "/directory.json",
            web::get().to(move || {
                let bytes = std::fs::read(&file).unwrap();
                async move { HttpResponse::Ok().body(bytes) }
            }),
        )
    })
    .workers(1)
    .bind_rustls_0_23(("127.0.0.1", port), (*config).clone())
    .unwrap()
    .run();
    tokio::spawn(server);
    url.to_owned()
}
