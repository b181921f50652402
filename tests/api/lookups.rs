//! Lookup and handover (issue 22 #3): three real nodes over mutual TLS. A child registered in
//! Chengdu lives there, moves to Zhengzhou, then to Hangzhou; each bureau the family arrives at
//! asks the hukou bureau whether a file exists (a signed statement), then asks for it (a
//! handover): one file throughout, the review queue empty, the bureau left behind read-only.
//! A second file created anyway is merged by the first-file rule, not queued for review.

use serde_json::{json, Value};

use crate::helpers::{eventually, id_number, peer_client, problem, spawn_network, TestApp};

const ZHENGZHOU: &str = "410100";
const CHENGDU: &str = "510100";
const HANGZHOU: &str = "330100";

async fn file(app: &TestApp, id: &str) -> Option<Value> {
    let r = app.get(&format!("/api/v1/children/{id}")).await;
    (r.status() == 200).then_some(())?;
    Some(r.json().await.unwrap())
}

async fn lookup(app: &TestApp, id: &str) -> Value {
    let r = app
        .post_json(
            "/api/v1/lookups",
            &json!({"id_number": id, "purpose": "迁入核查"}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

async fn handover(app: &TestApp, id: &str, region: &str) -> Value {
    let r = app
        .post_json(
            &format!("/api/v1/children/{id}/handover"),
            &json!({"residence_region": region, "purpose": "随父母迁入"}),
        )
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

async fn conflicts(app: &TestApp) -> usize {
    let page: Value = app.get("/api/v1/conflicts").await.json().await.unwrap();
    page["items"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn a_child_moves_twice_with_one_file_by_lookup_and_handover() {
    let net = spawn_network(&[(ZHENGZHOU, "4101"), (CHENGDU, "5101"), (HANGZHOU, "3301")]).await;
    let [zhengzhou, chengdu, hangzhou] = &net.nodes[..] else {
        panic!("three nodes")
    };
    // The child lives where it is registered: Chengdu holds the file alone.
    let id = id_number("510104", (2015, 3, 9), 31);
    chengdu
        .create_child(&json!({
            "id_number": id, "name": "刘小雨", "hukou_region": "510104",
            "residence_region": "510104", "categories": ["left_behind"],
            "father_situation": "working_away", "notes": "成都建档",
        }))
        .await;

    // The family arrives in Zhengzhou. Starting a file there is refused: Chengdu holds one
    // (the creation asks first), and nothing is stored.
    let p = problem(
        zhengzhou
            .post_json(
                "/api/v1/children",
                &json!({"id_number": id, "name": "刘小雨", "hukou_region": "510104",
                        "residence_region": "410105"}),
            )
            .await,
        409,
        "file_at_hukou_bureau",
    )
    .await;
    assert_eq!(p["hukou_node"], CHENGDU, "{p}");
    assert_eq!(zhengzhou.count("children"), 0);
    // Zhengzhou asks itself: a signed statement that the file exists.
    let answer = lookup(zhengzhou, &id).await;
    assert_eq!(answer["found"], true, "{answer}");
    assert_eq!(answer["hukou_node"], CHENGDU);
    assert_eq!(answer["held_here"], false);
    let statement = &answer["statement"]["statement"];
    assert_eq!(statement["asked_by"], ZHENGZHOU);
    assert_eq!(statement["answered_by"], CHENGDU);
    assert_eq!(statement["file"]["heads"].as_array().unwrap().len(), 1);
    // The statement verifies anywhere the directory is known; a doctored one does not.
    let r = hangzhou
        .post_json("/api/v1/lookups/verify", &answer["statement"])
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let mut forged = answer["statement"].clone();
    forged["statement"]["file"] = Value::Null;
    problem(
        hangzhou.post_json("/api/v1/lookups/verify", &forged).await,
        422,
        "statement_invalid",
    )
    .await;
    // Signed by a bureau that does not serve the region: not genuine either (Zhengzhou's own
    // statement about a Zhengzhou child, relabelled as Chengdu's answer).
    let own = lookup(zhengzhou, &id_number("410105", (2016, 1, 1), 5)).await;
    assert_eq!(own["found"], false);
    assert_eq!(own["hukou_node"], ZHENGZHOU);
    let mut relabelled = own["statement"].clone();
    relabelled["statement"]["hukou_region"] = json!("510104");
    problem(
        chengdu
            .post_json("/api/v1/lookups/verify", &relabelled)
            .await,
        422,
        "statement_invalid",
    )
    .await;
    // Both sides recorded the purpose.
    let purpose_audited = |app: &TestApp, action: &str| {
        let url = app.url(&format!("/api/v1/audit/events?action={action}&limit=10"));
        let http = app.http.clone();
        async move {
            let page: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["details"]["purpose"] == "迁入核查")
        }
    };
    assert!(purpose_audited(zhengzhou, "child.lookup").await);
    assert!(purpose_audited(chengdu, "peer.lookup").await);

    // Zhengzhou asks for the file: Chengdu writes the move; the whole file arrives.
    let granted = handover(zhengzhou, &id, "410105").await;
    assert_eq!(granted["from_region"], "510104");
    assert!(granted["version"].is_string(), "{granted}");
    eventually(30, "Zhengzhou holds the file", || async {
        file(zhengzhou, &id).await.is_some_and(|f| {
            f["record"]["residence_region"] == "410105" && f["served_here"] == true
        })
    })
    .await;
    let at_zz = file(zhengzhou, &id).await.unwrap();
    assert_eq!(at_zz["history"].as_array().unwrap().len(), 2);
    assert_eq!(at_zz["record"]["notes"], "成都建档");
    // Asked again: nothing to do (the file names that region already).
    let again = handover(zhengzhou, &id, "410105").await;
    assert_eq!(again["version"], Value::Null);
    // Zhengzhou now works the file as the residence bureau.
    let r = zhengzhou
        .patch_json(&format!("/api/v1/children/{id}"), &json!({"risk_level": 2}))
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    eventually(30, "Chengdu sees Zhengzhou's grading", || async {
        file(chengdu, &id)
            .await
            .is_some_and(|f| f["record"]["risk_level"] == 2)
    })
    .await;

    // Then to Hangzhou, the same way.
    let answer = lookup(hangzhou, &id).await;
    assert_eq!(answer["found"], true);
    handover(hangzhou, &id, "330106").await;
    eventually(30, "Hangzhou holds the whole file", || async {
        file(hangzhou, &id).await.is_some_and(|f| {
            f["record"]["residence_region"] == "330106"
                && f["history"].as_array().map_or(0, Vec::len) == 4
        })
    })
    .await;
    eventually(30, "Zhengzhou learns of the move", || async {
        file(zhengzhou, &id)
            .await
            .is_some_and(|f| f["served_here"] == false)
    })
    .await;
    // Zhengzhou keeps its copy read-only and receives nothing after the move.
    problem(
        zhengzhou
            .patch_json(&format!("/api/v1/children/{id}"), &json!({"risk_level": 1}))
            .await,
        403,
        "not_party",
    )
    .await;
    let r = hangzhou
        .patch_json(&format!("/api/v1/children/{id}"), &json!({"risk_level": 4}))
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    eventually(30, "Chengdu sees Hangzhou's grading", || async {
        file(chengdu, &id)
            .await
            .is_some_and(|f| f["record"]["risk_level"] == 4)
    })
    .await;
    let kept = file(zhengzhou, &id).await.unwrap();
    assert_eq!(kept["record"]["risk_level"], 2);
    assert_eq!(kept["history"].as_array().unwrap().len(), 4);
    // One file, one head, no review noise anywhere.
    for node in [zhengzhou, chengdu, hangzhou] {
        assert_eq!(conflicts(node).await, 0);
        assert_eq!(node.count("children"), 1);
    }
    assert_eq!(
        file(chengdu, &id).await.unwrap()["record"],
        file(hangzhou, &id).await.unwrap()["record"]
    );
}

#[tokio::test]
async fn a_second_file_created_anyway_is_merged_without_review() {
    let net = spawn_network(&[(ZHENGZHOU, "4101"), (CHENGDU, "5101")]).await;
    let [zhengzhou, chengdu] = &net.nodes[..] else {
        panic!("two nodes")
    };
    let id = id_number("510104", (2013, 8, 2), 77);
    // Chengdu created the file first; Zhengzhou, told not to ask (as when Chengdu is offline),
    // creates its own.
    chengdu
        .create_child(&json!({
            "id_number": id, "name": "王小兰", "hukou_region": "510104",
            "residence_region": "510104", "categories": ["left_behind"],
            "notes": "成都先建",
        }))
        .await;
    let r = zhengzhou
        .post_json(
            "/api/v1/children?lookup=false",
            &json!({
                "id_number": id, "name": "王晓兰", "hukou_region": "510104",
                "residence_region": "410105", "categories": ["flowing"],
                "notes": "郑州后建", "risk_level": 2,
            }),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    eventually(30, "both nodes hold both creations", || async {
        for node in [zhengzhou, chengdu] {
            let Some(f) = file(node, &id).await else {
                return false;
            };
            if f["history"].as_array().map_or(0, Vec::len) != 2 {
                return false;
            }
        }
        true
    })
    .await;
    let at_cd = file(chengdu, &id).await.unwrap();
    let at_zz = file(zhengzhou, &id).await.unwrap();
    assert_eq!(at_cd["record"], at_zz["record"]);
    let r = &at_cd["record"];
    // Hukou fields: the hukou bureau's; residence fields: the residence bureau's; a shared
    // field both set: the first file's. Nothing for review.
    assert_eq!(r["name"], "王小兰");
    assert_eq!(r["residence_region"], "410105");
    assert_eq!(r["risk_level"], 2);
    assert_eq!(r["notes"], "成都先建");
    assert_eq!(conflicts(chengdu).await, 0);
    assert_eq!(conflicts(zhengzhou).await, 0);
    // The next edit collapses the two heads.
    let r = zhengzhou
        .patch_json(&format!("/api/v1/children/{id}"), &json!({"risk_level": 3}))
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    eventually(30, "one head at Chengdu", || async {
        file(chengdu, &id)
            .await
            .is_some_and(|f| f["heads"].as_array().map_or(0, Vec::len) == 1)
    })
    .await;
}

#[tokio::test]
async fn lookups_and_handovers_refuse_what_they_must() {
    let net = spawn_network(&[(ZHENGZHOU, "4101"), (CHENGDU, "5101"), (HANGZHOU, "3301")]).await;
    let [zhengzhou, chengdu, hangzhou] = &net.nodes[..] else {
        panic!("three nodes")
    };
    let id = id_number("510104", (2014, 2, 2), 9);
    // A region no bureau of the directory serves.
    problem(
        zhengzhou
            .post_json(
                "/api/v1/lookups",
                &json!({"id_number": id_number("110101", (2014, 1, 1), 3), "purpose": "核查"}),
            )
            .await,
        422,
        "region_not_served",
    )
    .await;
    // No purpose; an unknown member.
    problem(
        zhengzhou
            .post_json("/api/v1/lookups", &json!({"id_number": id}))
            .await,
        422,
        "invalid_field",
    )
    .await;
    problem(
        zhengzhou
            .post_json(
                "/api/v1/lookups",
                &json!({"id_number": id, "purpose": "x", "nonce": "a"}),
            )
            .await,
        422,
        "invalid_field",
    )
    .await;
    // A handover of a child the hukou bureau has no file of.
    problem(
        zhengzhou
            .post_json(
                &format!("/api/v1/children/{id}/handover"),
                &json!({"residence_region": "410105", "purpose": "迁入"}),
            )
            .await,
        404,
        "no_file",
    )
    .await;
    // A handover to a region this node does not serve.
    problem(
        zhengzhou
            .post_json(
                &format!("/api/v1/children/{id}/handover"),
                &json!({"residence_region": "330106", "purpose": "迁入"}),
            )
            .await,
        422,
        "region_not_served",
    )
    .await;
    // Straight at the peer listener: a lookup for a region Chengdu does not serve, and a
    // handover asked by a bureau for a region it does not serve.
    chengdu
        .create_child(&json!({
            "id_number": id, "name": "赵小军", "hukou_region": "510104",
            "residence_region": "410105",
        }))
        .await;
    let peer = |app: &TestApp, path: &str| {
        format!(
            "https://127.0.0.1:{}{path}",
            app.settings.peer.as_ref().unwrap().listen.port()
        )
    };
    let hz = peer_client(&net.pki, HANGZHOU, CHENGDU);
    let r = hz
        .post(peer(chengdu, "/peer/v1/lookup"))
        .json(
            &json!({"id_number": id, "hukou_region": "410105", "purpose": "x",
                      "nonce": "0123456789abcdef"}),
        )
        .send()
        .await
        .unwrap();
    problem(r, 422, "region_not_served").await;
    let r = hz
        .post(peer(chengdu, "/peer/v1/handover"))
        .json(&json!({"id_number": id, "residence_region": "410105", "purpose": "抢档"}))
        .send()
        .await
        .unwrap();
    problem(r, 403, "not_serving_region").await;
    // Nothing moved: the file still names Zhengzhou; Hangzhou holds nothing.
    let f = file(chengdu, &id).await.unwrap();
    assert_eq!(f["record"]["residence_region"], "410105");
    assert_eq!(f["history"].as_array().unwrap().len(), 1);
    assert!(file(hangzhou, &id).await.is_none());

    // From the console, as the node: a bad ID number is a clear error; then the lookup and the
    // handover, which waits until the file has arrived.
    let cli = |args: &[&str]| {
        let out = crate::helpers::node_command(&net.pki, HANGZHOU, hangzhou)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = cli(&["child", "lookup", "51010420140202000X", "--purpose", "核查"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("id_number"), "{err}");
    let (code, out, err) = cli(&["child", "lookup", &id, "--purpose", "迁入核查"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("holds a file"), "{out}");
    assert!(
        !out.contains(&id),
        "the full ID number is not printed: {out}"
    );
    // The nodes' sender loops run on this test's runtime: the command waits off it.
    let mut handover = crate::helpers::node_command(&net.pki, HANGZHOU, hangzhou);
    handover.args([
        "child",
        "handover",
        &id,
        "--residence",
        "330106",
        "--purpose",
        "随父母迁入",
        "--wait",
        "30",
    ]);
    let out = tokio::task::spawn_blocking(move || handover.output().unwrap())
        .await
        .unwrap();
    let (code, out, err) = (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("the file is here"), "{out}");
    assert_eq!(
        file(hangzhou, &id).await.unwrap()["record"]["residence_region"],
        "330106"
    );
    // A lookup from the peer listener without a client certificate is refused first.
    let bare = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let r = bare
        .post(peer(chengdu, "/peer/v1/lookup"))
        .json(&json!({}))
        .send()
        .await;
    assert!(r.is_err() || r.unwrap().status().is_client_error());
}
