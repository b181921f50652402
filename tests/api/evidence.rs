//! Evidence files (issue 22 #4) between two real nodes over mutual TLS: uploaded at the
//! residence bureau, stored encrypted, fetched and verified by the hukou bureau, downloaded by its
//! reviewer; decisions wait for them; bad uploads and names are refused with nothing stored.

use serde_json::{json, Value};

use crate::exchange::absent_wuhan;
use crate::helpers::{
    eventually, flowing_child, pdf, peer_client, problem, spawn_app_with, spawn_pair,
    spawn_pair_among, spawn_pair_with, upload_evidence, Pair, TestApp, CHENGDU, WUHAN, ZHENGZHOU,
};

/// A flowing child known to both nodes; its ID number.
async fn with_child(pair: &Pair, seq: u16) -> String {
    let child = flowing_child(seq);
    let id = child["id_number"].as_str().unwrap().to_owned();
    pair.residence.create_child(&child).await;
    eventually(20, "the file reaches the hukou node", || async {
        pair.hukou
            .get(&format!("/api/v1/children/{id}"))
            .await
            .status()
            == 200
    })
    .await;
    id
}

fn request(child: &str, sha256: &str) -> Value {
    json!({
        "child_id": child,
        "benefit": "dibao",
        "grounds": {
            "mother_situation": "deceased",
            "summary": "母亲已故，父亲外出务工失联",
            "evidence": [{"doc_type": "死亡证明", "issuer": "成都市某医院", "number": "SW-2026-9", "sha256": sha256}],
        },
        "officers": {"requester": "ZZ-JS-017"},
    })
}

async fn submit(pair: &Pair, child: &str, sha256: &str) -> String {
    let r = pair
        .residence
        .post_json("/api/v1/cases", &request(child, sha256))
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let v: Value = r.json().await.unwrap();
    v["case"]["case_id"].as_str().unwrap().to_owned()
}

async fn case(app: &TestApp, id: &str) -> Value {
    let r = app.get(&format!("/api/v1/cases/{id}")).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Waits until the case is at `app` and its first document has `status` there.
async fn wait_status(app: &TestApp, id: &str, status: &str) -> Value {
    eventually(20, &format!("evidence {status}"), || async {
        let r = app.get(&format!("/api/v1/cases/{id}")).await;
        if r.status() != 200 {
            return false;
        }
        let v: Value = r.json().await.unwrap();
        v["case"]["state"] != "submitted" && v["evidence"][0]["status"] == status
    })
    .await;
    case(app, id).await
}

async fn act(app: &TestApp, id: &str, transition: Value) -> reqwest::Response {
    app.post_json(
        &format!("/api/v1/cases/{id}/transitions"),
        &json!({"transition": transition, "officer": "CD-JJ-003"}),
    )
    .await
}

fn approve() -> Value {
    json!({"action": "approve", "effective_month": "2026-12"})
}

/// One gauge's value in the metrics text.
async fn gauge(app: &TestApp, name: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} in {text}"))
        .parse()
        .unwrap()
}

/// The ciphertexts stored at a node.
fn ciphertexts(app: &TestApp) -> Vec<Vec<u8>> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Binary)]
        ciphertext: Vec<u8>,
    }
    let mut conn = app.store.conn().unwrap();
    diesel::sql_query("SELECT ciphertext FROM evidence_files")
        .load::<Row>(&mut *conn)
        .unwrap()
        .into_iter()
        .map(|r| r.ciphertext)
        .collect()
}

async fn audit_actions(app: &TestApp, action: &str) -> Vec<Value> {
    let r = app
        .get(&format!("/api/v1/audit/events?action={action}&limit=100"))
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_file_travels_with_its_case_is_verified_downloaded_and_decided_on() {
    let pair = spawn_pair().await;
    let child = with_child(&pair, 500).await;
    let marker = "DEATH-CERT-MARKER-7731";
    let file = pdf(marker);
    // Uploaded once: 201; the same file again: 200, one row.
    let r = pair
        .residence
        .http
        .post(pair.residence.url("/api/v1/evidence"))
        .header("content-type", "application/pdf")
        .body(file.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let stored: Value = r.json().await.unwrap();
    let sha = hukou_sync::crypto::hash::Digest::of(&file).to_string();
    assert_eq!(
        stored,
        json!({"sha256": sha, "media_type": "application/pdf", "size": file.len()})
    );
    assert_eq!(
        upload_evidence(&pair.residence, &file, "application/pdf").await,
        sha
    );
    assert_eq!(pair.residence.count("evidence_files"), 1);
    let uploads = audit_actions(&pair.residence, "evidence.upload").await;
    assert_eq!(uploads.len(), 2, "{uploads:?}");
    assert!(!uploads[0].to_string().contains(marker));

    let id = submit(&pair, &child, &sha).await;
    // The requester holds it; the decider fetches it over mutual TLS and verifies it.
    assert_eq!(
        case(&pair.residence, &id).await["evidence"][0]["status"],
        "present"
    );
    let at_hukou = wait_status(&pair.hukou, &id, "present").await;
    let e = &at_hukou["evidence"][0];
    assert_eq!(e["sha256"], sha);
    assert_eq!(e["doc_type"], "死亡证明");
    assert_eq!(e["media_type"], "application/pdf");
    assert_eq!(e["size"], file.len());
    assert!(!audit_actions(&pair.hukou, "evidence.receive")
        .await
        .is_empty());
    assert!(!audit_actions(&pair.residence, "evidence.serve")
        .await
        .is_empty());
    // The reviewer downloads the very bytes, as an attachment that is never sniffed.
    let r = pair
        .hukou
        .get(&format!("/api/v1/cases/{id}/evidence/{sha}"))
        .await;
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "application/pdf");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let disposition = h["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    assert_eq!(r.bytes().await.unwrap().as_ref(), file.as_slice());
    let downloads = audit_actions(&pair.hukou, "evidence.download").await;
    assert_eq!(downloads.len(), 1);
    assert!(downloads[0].to_string().contains(&id), "{}", downloads[0]);
    // A file the case does not name, and a hash that is not one.
    let other = "ab".repeat(32);
    problem(
        pair.hukou
            .get(&format!("/api/v1/cases/{id}/evidence/{other}"))
            .await,
        404,
        "not_found",
    )
    .await;
    problem(
        pair.hukou
            .get(&format!("/api/v1/cases/{id}/evidence/XYZ"))
            .await,
        400,
        "invalid_path",
    )
    .await;
    // Neither database holds the plaintext.
    for app in [&pair.residence, &pair.hukou] {
        let stored = ciphertexts(app);
        assert_eq!(stored.len(), 1);
        assert!(
            !stored[0]
                .windows(marker.len())
                .any(|w| w == marker.as_bytes()),
            "plaintext in the database"
        );
        assert!(!stored[0].starts_with(b"%PDF"));
    }
    assert_eq!(
        gauge(&pair.hukou, "hukou_evidence_stored_bytes").await,
        file.len() as f64
    );
    assert_eq!(gauge(&pair.hukou, "hukou_evidence_missing").await, 0.0);
    // The key file is 0600, outside the database.
    use std::os::unix::fs::PermissionsExt;
    let key = pair
        .hukou
        .settings
        .evidence
        .key_path(&pair.hukou.settings.node);
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The case page lists the document with its status and a download link that works with
    // the session.
    crate::helpers::add_user(
        &pair.hukou,
        "wang.fang",
        hukou_sync::accounts::Role::Caseworker,
        "correct horse battery",
    );
    let mut visitor = crate::ui::Visitor::new(&pair.hukou);
    visitor.login("wang.fang", "correct horse battery").await;
    let list = visitor.get("/ui/cases").await;
    assert!(
        list.body.contains(&format!("/ui/cases/{id}")),
        "{}",
        list.body
    );
    let page = visitor.get(&format!("/ui/cases/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("证明材料 (Evidence)"), "{}", page.body);
    assert!(page.body.contains("已收到 (present)"), "{}", page.body);
    assert!(page.body.contains("死亡证明"), "{}", page.body);
    let link = format!("/api/v1/cases/{id}/evidence/{sha}");
    assert!(page.body.contains(&link), "{}", page.body);
    let download = visitor.get(&link).await;
    assert_eq!(download.status, 200);
    assert_eq!(download.body.as_bytes(), file.as_slice());

    // The console: store a file (its type from its bytes), save one a case names.
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("note.txt");
    std::fs::write(&text, "not a document").unwrap();
    let out = crate::helpers::node_command(&pair.pki, ZHENGZHOU, &pair.residence)
        .args(["case", "evidence", "add", text.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a PDF, JPEG or PNG"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = dir.path().join("户口簿.png");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\nhousehold register").unwrap();
    let out = crate::helpers::node_command(&pair.pki, ZHENGZHOU, &pair.residence)
        .args(["case", "evidence", "add", png.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(added["media_type"], "image/png");
    assert_eq!(
        added["sha256"],
        hukou_sync::crypto::hash::Digest::of(b"\x89PNG\r\n\x1a\nhousehold register").to_string()
    );
    assert_eq!(pair.residence.count("evidence_files"), 2);
    let saved = dir.path().join("saved.pdf");
    let get = |extra: &[&str]| {
        let mut args = vec![
            "case",
            "evidence",
            "get",
            &id,
            &sha,
            "--out",
            saved.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        crate::helpers::node_command(&pair.pki, CHENGDU, &pair.hukou)
            .args(args)
            .output()
            .unwrap()
    };
    let out = get(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&saved).unwrap(), file);
    assert_eq!(
        std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!get(&[]).status.success(), "an existing file is kept");
    assert!(get(&["--force"]).status.success());
    let out = crate::helpers::node_command(&pair.pki, CHENGDU, &pair.hukou)
        .args(["case", "evidence", "get", &id, "XYZ", "--out", "/tmp/never"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a SHA-256"));

    // The decision is made on the file.
    let r = act(&pair.hukou, &id, approve()).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

#[tokio::test]
async fn a_decision_waits_for_a_missing_file_and_reconciliation_fetches_it() {
    // The job retries only after an hour: here the file comes back by reconciliation.
    let pair = spawn_pair_with(|_, s| s.evidence.retry_secs = 3600).await;
    let child = with_child(&pair, 501).await;
    let sha = upload_evidence(&pair.residence, &pdf("court decision"), "application/pdf").await;
    let id = submit(&pair, &child, &sha).await;
    wait_status(&pair.hukou, &id, "present").await;
    // Lost at the decider (a restored backup, say).
    pair.hukou.exec("DELETE FROM evidence_files");
    let c = case(&pair.hukou, &id).await;
    assert_eq!(c["evidence"][0]["status"], "missing");
    assert_eq!(gauge(&pair.hukou, "hukou_evidence_missing").await, 1.0);
    let before = pair.hukou.count("versions");
    let p = problem(
        act(&pair.hukou, &id, approve()).await,
        409,
        "evidence_not_verified",
    )
    .await;
    assert_eq!(p["missing"], json!([sha]), "{p}");
    let reason = p["reason"].as_str().unwrap();
    assert!(
        reason.contains(&sha) && reason.contains("request_info"),
        "{reason}"
    );
    problem(
        act(
            &pair.hukou,
            &id,
            json!({"action": "deny", "reason_code": "documents_insufficient", "reason_text": "材料不全"}),
        )
        .await,
        409,
        "evidence_not_verified",
    )
    .await;
    assert_eq!(pair.hukou.count("versions"), before);
    problem(
        pair.hukou
            .get(&format!("/api/v1/cases/{id}/evidence/{sha}"))
            .await,
        409,
        "evidence_not_present",
    )
    .await;
    // Asking for information stays allowed.
    let r = act(
        &pair.hukou,
        &id,
        json!({"action": "request_info", "question": "请重新上传死亡证明"}),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // A reconciliation run with the requester fetches the file again.
    let r = pair
        .hukou
        .http
        .post(pair.hukou.url(&format!("/api/v1/reconcile/{ZHENGZHOU}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let run: Value = r.json().await.unwrap();
    let run_id = run["id"].as_str().unwrap().to_owned();
    eventually(30, "the run finishing", || async {
        let v: Value = pair
            .hukou
            .get(&format!("/api/v1/reconcile/runs/{run_id}"))
            .await
            .json()
            .await
            .unwrap();
        v["status"] != "running"
    })
    .await;
    let v: Value = pair
        .hukou
        .get(&format!("/api/v1/reconcile/runs/{run_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["report"]["evidence_fetched"], 1, "{v}");
    assert_eq!(
        case(&pair.hukou, &id).await["evidence"][0]["status"],
        "present"
    );
    assert_eq!(gauge(&pair.hukou, "hukou_evidence_missing").await, 0.0);
    let r = pair
        .residence
        .post_json(
            &format!("/api/v1/cases/{id}/transitions"),
            &json!({"transition": {"action": "provide_info", "answer": "已重新上传"}}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    eventually(20, "info provided at the hukou node", || async {
        case(&pair.hukou, &id).await["case"]["state"] == "info_provided"
    })
    .await;
    let r = act(&pair.hukou, &id, approve()).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

/// Replaces the sealed bytes of `sha` at the residence node by a valid sealing (its own key, the
/// same associated data) of other bytes: what it serves then does not hash to the name.
fn tamper(app: &TestApp, sha: &str, other: &[u8]) {
    let key =
        hukou_sync::crypto::AtRestKey::load(&app.settings.evidence.key_path(&app.settings.node))
            .unwrap();
    let digest: hukou_sync::crypto::hash::Digest = sha.parse().unwrap();
    let (nonce, sealed) = key.seal(digest.as_bytes(), other).unwrap();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let blob = |b: &[u8]| match app.store.backend() {
        hukou_sync::storage::Backend::Sqlite => format!("X'{}'", hex(b)),
        hukou_sync::storage::Backend::Postgres => format!("'\\x{}'::bytea", hex(b)),
    };
    app.exec(&format!(
        "UPDATE evidence_files SET nonce = {}, ciphertext = {} WHERE sha256 = '{sha}'",
        blob(&nonce),
        blob(&sealed)
    ));
}

#[tokio::test]
async fn a_file_that_does_not_match_its_hash_is_kept_out_and_blocks_the_decision() {
    let pair = spawn_pair().await;
    let child = with_child(&pair, 502).await;
    let sha = upload_evidence(&pair.residence, &pdf("the real one"), "application/pdf").await;
    tamper(&pair.residence, &sha, &pdf("a forged one"));
    let id = submit(&pair, &child, &sha).await;
    let c = wait_status(&pair.hukou, &id, "mismatch").await;
    assert_eq!(c["evidence"][0]["status"], "mismatch");
    assert_eq!(pair.hukou.count("evidence_files"), 0);
    assert_eq!(gauge(&pair.hukou, "hukou_evidence_mismatch").await, 1.0);
    assert_eq!(
        audit_actions(&pair.hukou, "evidence.mismatch").await.len(),
        1
    );
    let p = problem(
        act(&pair.hukou, &id, approve()).await,
        409,
        "evidence_not_verified",
    )
    .await;
    assert_eq!(p["mismatching"], json!([sha]), "{p}");
    assert!(
        p["reason"].as_str().unwrap().contains("do not match"),
        "{p}"
    );
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

#[tokio::test]
async fn bad_uploads_and_unknown_names_are_refused_and_nothing_is_stored() {
    let app = spawn_app_with(|s| s.evidence.max_bytes = 2048).await;
    let post = |ct: Option<&str>, body: Vec<u8>| {
        let mut req = app.http.post(app.url("/api/v1/evidence")).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    let mut big = pdf("big");
    big.resize(3000, b' ');
    problem(
        post(Some("application/pdf"), big).await.unwrap(),
        413,
        "evidence_too_large",
    )
    .await;
    for (ct, body) in [
        (Some("text/html"), b"<html></html>".to_vec()),
        (Some("image/png"), pdf("not a png")),
        (Some("application/pdf"), b"\x89PNG\r\n\x1a\nrest".to_vec()),
        (Some("image/jpeg"), Vec::new()),
        (None, pdf("no type")),
    ] {
        problem(post(ct, body).await.unwrap(), 415, "evidence_type").await;
    }
    // An auditor may not upload (permission first).
    let token = crate::helpers::create_token(
        &app.store,
        &app.node,
        "auditor",
        hukou_sync::accounts::Role::Auditor,
    );
    let r = crate::helpers::client_with_token(&token)
        .post(app.url("/api/v1/evidence"))
        .header("content-type", "application/pdf")
        .body(pdf("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(app.count("evidence_files"), 0);

    // A case naming a file not stored here.
    let child = flowing_child(503);
    let id = child["id_number"].as_str().unwrap().to_owned();
    app.create_child(&child).await;
    let unknown = "cd".repeat(32);
    let p = problem(
        app.post_json("/api/v1/cases", &request(&id, &unknown))
            .await,
        422,
        "evidence_missing",
    )
    .await;
    assert_eq!(p["field"], "grounds.evidence[0].sha256");
    assert_eq!(app.count("cases"), 0);
    // An answer naming one: this node serves both sides.
    let sha = upload_evidence(&app, &pdf("known"), "application/pdf").await;
    let r = app.post_json("/api/v1/cases", &request(&id, &sha)).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let case_id = r.json::<Value>().await.unwrap()["case"]["case_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = act(
        &app,
        &case_id,
        json!({"action": "request_info", "question": "请补充"}),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let versions = app.count("versions");
    let p = problem(
        act(
            &app,
            &case_id,
            json!({"action": "provide_info", "answer": "见附件", "evidence": [
                {"doc_type": "收入证明", "issuer": "村委会", "number": "1", "sha256": unknown}]}),
        )
        .await,
        422,
        "evidence_missing",
    )
    .await;
    assert_eq!(p["field"], "transition.evidence[0].sha256");
    assert_eq!(app.count("versions"), versions);
    // Cases stored before files travelled get their named files recorded once, at start.
    assert_eq!(app.count("case_evidence"), 1);
    app.exec("DELETE FROM case_evidence");
    app.exec("DELETE FROM recon_meta WHERE name = 'case_evidence_backfill'");
    let (settings, db, dir) = app.shut_down().await;
    let app = crate::helpers::start(settings, Default::default(), db, dir).await;
    assert_eq!(app.count("case_evidence"), 1);
    app.stop().await;
}

#[tokio::test]
async fn only_a_party_of_a_case_naming_the_file_gets_it_from_the_peer_route() {
    let pair = spawn_pair_among(vec![absent_wuhan()], |_, _| {}).await;
    let child = with_child(&pair, 504).await;
    let sha = upload_evidence(&pair.residence, &pdf("for the parties"), "application/pdf").await;
    let unnamed =
        upload_evidence(&pair.residence, &pdf("named by no case"), "application/pdf").await;
    let id = submit(&pair, &child, &sha).await;
    wait_status(&pair.hukou, &id, "present").await;
    let url = |h: &str| {
        format!(
            "https://127.0.0.1:{}/peer/v1/evidence/{h}",
            pair.residence.settings.peer.as_ref().unwrap().listen.port()
        )
    };
    let hukou = peer_client(&pair.pki, CHENGDU, ZHENGZHOU);
    let r = hukou.get(url(&sha)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        pdf("for the parties").as_slice()
    );
    // A stored file no case names, a node that is not a party, a hash that does not exist:
    // the same 404.
    let stranger = peer_client(&pair.pki, WUHAN, ZHENGZHOU);
    for (client, h) in [
        (&hukou, unnamed.clone()),
        (&stranger, sha.clone()),
        (&hukou, "ef".repeat(32)),
        (&hukou, "nonsense".to_owned()),
    ] {
        let r = client.get(url(&h)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{h}");
    }
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

#[tokio::test]
async fn a_file_no_case_names_expires_after_its_days_and_a_named_one_stays() {
    use hukou_sync::audit::Actor;
    use hukou_sync::eligibility::evidence::expire_unnamed;
    let app = crate::helpers::spawn_app().await;
    let child = flowing_child(504);
    let id = child["id_number"].as_str().unwrap().to_owned();
    app.create_child(&child).await;
    let named = upload_evidence(&app, &pdf("named"), "application/pdf").await;
    let orphan = upload_evidence(&app, &pdf("orphan"), "application/pdf").await;
    let orphan2 = upload_evidence(&app, &pdf("orphan 2"), "application/pdf").await;
    let r = app.post_json("/api/v1/cases", &request(&id, &named)).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let expire = |days_later: i64| {
        let (store, node) = (app.store.clone(), app.node.clone());
        async move {
            store
                .run(move |c| {
                    expire_unnamed(
                        c,
                        &node,
                        chrono::Duration::days(7),
                        &Actor::job("evidence_expiry"),
                        chrono::Utc::now() + chrono::Duration::days(days_later),
                    )
                })
                .await
                .unwrap()
        }
    };
    // Within its days (and the job's own run at start) nothing goes.
    assert_eq!(expire(6).await, 0);
    assert_eq!(app.count("evidence_files"), 3);
    // After them the unnamed uploads go, each audited; the named one stays and still opens.
    assert_eq!(expire(8).await, 2);
    assert_eq!(app.count("evidence_files"), 1);
    assert_eq!(ciphertexts(&app).len(), 1);
    let events = audit_actions(&app, "evidence.expire").await;
    assert_eq!(events.len(), 2, "{events:?}");
    let mut expired: Vec<&str> = events
        .iter()
        .map(|e| e["event"]["object_id"].as_str().unwrap())
        .collect();
    expired.sort_unstable();
    let mut orphans = [orphan.as_str(), orphan2.as_str()];
    orphans.sort_unstable();
    assert_eq!(expired, orphans);
    assert!(events
        .iter()
        .all(|e| e["details"]["sha256"] == e["event"]["object_id"]
            && e["details"]["unnamed_days"] == 7));
    assert_eq!(expire(30).await, 0);
    // The expired file can no longer be named, and nothing of the refused case is stored.
    let cases = app.count("cases");
    let p = problem(
        app.post_json("/api/v1/cases", &request(&id, &orphan)).await,
        422,
        "evidence_missing",
    )
    .await;
    assert_eq!(p["field"], "grounds.evidence[0].sha256");
    assert_eq!(app.count("cases"), cases);
    // Uploaded again, it is stored anew and may be named.
    assert_eq!(
        upload_evidence(&app, &pdf("orphan"), "application/pdf").await,
        orphan
    );
    assert_eq!(app.count("evidence_files"), 2);
    app.stop().await;

    // The bound on the setting: a node does not start with an expiry of 0 days.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("node.toml");
    std::fs::write(&cfg, "[evidence]\nunnamed_days = 0\n").unwrap();
    let err = hukou_sync::config::Settings::load(Some(&cfg))
        .unwrap_err()
        .to_string();
    assert!(err.contains("evidence.unnamed_days"), "{err}");
}

/// A caseworker's submission has checked that its file is stored and not yet named it when the
/// expiry runs in another process: the expiry waits for the submission and then keeps the file.
#[tokio::test]
async fn on_postgresql_a_file_being_named_is_not_expired_under_the_naming() {
    use hukou_sync::audit::Actor;
    use hukou_sync::storage::{self, evidence as repo};
    let app = crate::helpers::spawn_app().await;
    if app.store.backend() != storage::Backend::Postgres {
        eprintln!("skipped: SQLite runs one writer at a time, so the two cannot interleave");
        app.stop().await;
        return;
    }
    let sha = upload_evidence(&app, &pdf("racing"), "application/pdf").await;
    let (checked_tx, checked_rx) = std::sync::mpsc::channel();
    let (name_tx, name_rx) = std::sync::mpsc::channel::<()>();
    let (store, sha2) = (app.store.clone(), sha.clone());
    let naming = std::thread::spawn(move || {
        let mut c = store.conn().unwrap();
        storage::transaction(&mut c, |c| {
            let present = repo::present_for_naming(c, std::slice::from_ref(&sha2))?;
            checked_tx.send(present.len()).unwrap();
            name_rx.recv().unwrap();
            repo::name_for_case(c, "case-racing", &[sha2.clone()].into())
        })
        .unwrap();
    });
    assert_eq!(checked_rx.recv().unwrap(), 1);
    let (store, node) = (app.store.clone(), app.node.clone());
    let expiry = tokio::spawn(async move {
        store
            .run(move |c| {
                hukou_sync::eligibility::evidence::expire_unnamed(
                    c,
                    &node,
                    chrono::Duration::days(7),
                    &Actor::job("evidence_expiry"),
                    chrono::Utc::now() + chrono::Duration::days(8),
                )
            })
            .await
            .unwrap()
    });
    eventually(20, "the expiry waits for the naming's row lock", || async {
        app.count(
            "pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%evidence_files%' \
             AND datname = current_database()",
        ) > 0
    })
    .await;
    name_tx.send(()).unwrap();
    naming.join().unwrap();
    assert_eq!(expiry.await.unwrap(), 0, "the file named meanwhile is kept");
    assert_eq!(app.count("evidence_files"), 1);
    app.stop().await;
}
