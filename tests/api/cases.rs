//! Eligibility confirmation between the two bureaus over real mutual TLS.

use serde_json::{json, Value};

use crate::helpers::{
    eventually, flowing_child, problem, restart, spawn_pair, TestApp, CHENGDU, ZHENGZHOU,
};

/// A case request naming `sha256` (a file stored at the residence node) as its evidence.
fn request_with(child_id: &str, sha256: &str) -> Value {
    json!({
        "child_id": child_id,
        "benefit": "dibao",
        "grounds": {
            "father_situation": "imprisoned",
            "mother_situation": "missing",
            "summary": "父亲服刑在押，母亲失联，由祖父抚养，家庭无稳定收入",
            "evidence": [{"doc_type": "服刑通知书", "issuer": "四川省某监狱", "number": "川监2025-118", "sha256": sha256}],
        },
        "officers": {"requester": "ZZ-JS-017"},
    })
}

/// The request of the tests: its evidence file is uploaded at the residence node first.
async fn request(pair: &crate::helpers::Pair, child_id: &str) -> Value {
    let sha = crate::helpers::upload_evidence(
        &pair.residence,
        &crate::helpers::pdf("服刑通知书 川监2025-118"),
        "application/pdf",
    )
    .await;
    request_with(child_id, &sha)
}

async fn case(app: &TestApp, id: &str) -> Option<Value> {
    let r = app.get(&format!("/api/v1/cases/{id}")).await;
    (r.status() == 200).then_some(())?;
    r.json().await.ok()
}

async fn wait_state(app: &TestApp, id: &str, state: &str) -> Value {
    eventually(20, &format!("case {state}"), || async {
        case(app, id)
            .await
            .is_some_and(|c| c["case"]["state"] == state)
    })
    .await;
    case(app, id).await.unwrap()
}

/// Waits until every document the case names is present (fetched and verified) at `app`.
async fn evidence_present(app: &TestApp, id: &str) {
    eventually(20, "the case's evidence files present", || async {
        case(app, id).await.is_some_and(|c| {
            c["evidence"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["status"] == "present")
        })
    })
    .await;
}

async fn act(app: &TestApp, id: &str, transition: Value) -> reqwest::Response {
    app.post_json(
        &format!("/api/v1/cases/{id}/transitions"),
        &json!({"transition": transition, "officer": "CD-JJ-003"}),
    )
    .await
}

/// A pair with a flowing child known to both nodes; returns its ID number.
async fn with_child(pair: &crate::helpers::Pair, seq: u16) -> String {
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

/// Opens a case for `child` at the residence node; the answer's body and the case's id.
async fn open_case(pair: &crate::helpers::Pair, child: &str) -> (Value, String) {
    let r = pair
        .residence
        .post_json("/api/v1/cases", &request(pair, child).await)
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let created: Value = r.json().await.unwrap();
    let id = created["case"]["case_id"].as_str().unwrap().to_owned();
    (created, id)
}

#[tokio::test]
async fn request_information_and_approval_round_trip() {
    let pair = spawn_pair().await;
    let child = with_child(&pair, 60).await;
    let (created, id) = open_case(&pair, &child).await;
    assert_eq!(created["case"]["decider"], CHENGDU);
    assert!(created["due_on"].as_str().is_some());
    assert!(
        matches!(
            created["deadline"]["status"].as_str(),
            Some("on_time" | "due_soon")
        ),
        "{created}"
    );
    // The hukou node receives it automatically; the residence node sees the receipt.
    wait_state(&pair.hukou, &id, "received").await;
    wait_state(&pair.residence, &id, "received").await;
    let r = act(
        &pair.hukou,
        &id,
        json!({"action": "request_info", "question": "请补充祖父收入证明"}),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    wait_state(&pair.residence, &id, "info_requested").await;
    // An answer attaches documents (type, issuer, number, SHA-256), at most 20.
    let income = crate::helpers::upload_evidence(
        &pair.residence,
        &crate::helpers::pdf("收入证明 SR-2026-77"),
        "application/pdf",
    )
    .await;
    let document = json!({"doc_type": "收入证明", "issuer": "金水区某村委会",
        "number": "SR-2026-77", "sha256": income});
    let too_many = vec![document.clone(); 21];
    let r = act(
        &pair.residence,
        &id,
        json!({"action": "provide_info", "answer": "已上传", "evidence": too_many}),
    )
    .await;
    assert!(r.status().is_client_error(), "{}", r.status());
    let r = act(
        &pair.residence,
        &id,
        json!({"action": "provide_info", "answer": "已上传村委会出具的收入证明",
               "evidence": [document.clone()]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let provided = wait_state(&pair.hukou, &id, "info_provided").await;
    let step = &provided["case"]["history"][3]["transition"];
    assert_eq!(step["action"], "provide_info", "{provided}");
    assert_eq!(step["evidence"], json!([document]), "{provided}");
    evidence_present(&pair.hukou, &id).await;
    let r = act(
        &pair.hukou,
        &id,
        json!({"action": "approve", "effective_month": "2026-12"}),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let at_residence = wait_state(&pair.residence, &id, "approved").await;
    assert_eq!(at_residence["case"]["history"].as_array().unwrap().len(), 5);
    // The approval added the benefit to the child's file at the hukou node, and it replicated.
    eventually(20, "benefit in the residence node's file", || async {
        let f: Value = pair
            .residence
            .get(&format!("/api/v1/children/{child}"))
            .await
            .json()
            .await
            .unwrap();
        f["record"]["benefits"] == json!([{"benefit": "dibao", "since": "2026-12"}])
    })
    .await;
    // Lists, and audit on both nodes.
    // Metrics: nothing queued once delivered, no open case left.
    eventually(10, "outbox drained, as the metrics say", || async {
        let metrics = pair.residence.get("/metrics").await.text().await.unwrap();
        pair.residence.count("outbox") == 0
            && metrics.contains("hukou_sync_outbox_depth{peer=\"510100\"} 0")
    })
    .await;
    let metrics = pair.residence.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("hukou_sync_cases_open 0"), "{metrics}");
    assert!(metrics.contains("# TYPE hukou_sync_audit_events gauge"));
    let incoming: Value = pair
        .hukou
        .get("/api/v1/cases?direction=incoming")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(incoming["items"].as_array().unwrap().len(), 1);
    assert!(incoming["next_after"].is_null());
    let outgoing: Value = pair
        .residence
        .get("/api/v1/cases?direction=outgoing&state=approved")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(outgoing["items"].as_array().unwrap().len(), 1);
    for (app, action) in [
        (&pair.hukou, "case.approve"),
        (&pair.residence, "case.submit"),
        (&pair.hukou, "case.receive"),
    ] {
        assert_eq!(audit_events(app, action).await.len(), 1, "{action}");
    }
    // Listing cases is a read of children's data: audited, with the cases returned.
    let items = audit_events(&pair.hukou, "case.list").await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(
        items[0]["details"]["returned"],
        json!([incoming["items"][0]["case_id"]]),
        "{items:?}"
    );
    // The cases page shows the case as incoming at the deciding node, and audits that read too.
    crate::helpers::add_user(
        &pair.hukou,
        "li.na",
        hukou_sync::accounts::Role::Caseworker,
        "correct horse battery",
    );
    let mut visitor = crate::ui::Visitor::new(&pair.hukou);
    visitor.login("li.na", "correct horse battery").await;
    let page = visitor.get("/ui/cases").await;
    assert_eq!(page.status, 200);
    let case_id = incoming["items"][0]["case_id"].as_str().unwrap();
    let (incoming_table, outgoing_table) = page
        .body
        .split_once("Outgoing: this node asked")
        .expect("an outgoing section");
    assert!(incoming_table.contains(case_id), "{}", page.body);
    assert!(!outgoing_table.contains(case_id), "{}", page.body);
    let items = audit_events(&pair.hukou, "case.list").await;
    assert_eq!(items.len(), 2, "{items:?}");
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

#[tokio::test]
async fn illegal_requests_and_transitions_are_refused_and_nothing_is_stored() {
    let pair = spawn_pair().await;
    let child = with_child(&pair, 61).await;
    // The hukou side cannot submit (it does not serve the residence).
    problem(
        pair.hukou
            .post_json("/api/v1/cases", &request(&pair, &child).await)
            .await,
        403,
        "not_residence",
    )
    .await;
    // An unknown benefit, a bad evidence digest, a decider that does not serve the hukou region.
    let mut bad = request(&pair, &child).await;
    bad["benefit"] = json!("housing");
    let p = problem(
        pair.residence.post_json("/api/v1/cases", &bad).await,
        422,
        "invalid_field",
    )
    .await;
    assert_eq!(p["field"], "benefit");
    let mut bad = request(&pair, &child).await;
    bad["grounds"]["evidence"][0]["sha256"] = json!("abc123");
    let p = problem(
        pair.residence.post_json("/api/v1/cases", &bad).await,
        422,
        "invalid_field",
    )
    .await;
    assert_eq!(p["field"], "grounds.evidence[0].sha256");
    let mut bad = request(&pair, &child).await;
    bad["decider"] = json!(ZHENGZHOU);
    problem(
        pair.residence.post_json("/api/v1/cases", &bad).await,
        422,
        "decider_not_party",
    )
    .await;
    assert_eq!(pair.residence.count("cases"), 0);

    let created: Value = pair
        .residence
        .post_json("/api/v1/cases", &request(&pair, &child).await)
        .await
        .json()
        .await
        .unwrap();
    let id = created["case"]["case_id"].as_str().unwrap().to_owned();
    wait_state(&pair.residence, &id, "received").await;
    let before = pair.residence.count("versions");
    // A decision from the requesting side.
    problem(
        act(
            &pair.residence,
            &id,
            json!({"action": "approve", "effective_month": "2026-12"}),
        )
        .await,
        403,
        "wrong_party",
    )
    .await;
    // A denial without a reason.
    problem(
        act(
            &pair.hukou,
            &id,
            json!({"action": "deny", "reason_code": "income_above_threshold", "reason_text": "  "}),
        )
        .await,
        422,
        "missing_reason",
    )
    .await;
    problem(
        act(
            &pair.hukou,
            &id,
            json!({"action": "deny", "reason_code": "income_above_threshold"}),
        )
        .await,
        422,
        "invalid_field",
    )
    .await;
    assert_eq!(pair.residence.count("versions"), before);
    // A transition from a terminal state.
    evidence_present(&pair.hukou, &id).await;
    assert_eq!(act(&pair.hukou, &id, json!({"action": "deny", "reason_code": "income_above_threshold", "reason_text": "家庭人均收入高于当地低保标准"})).await.status(), 200);
    wait_state(&pair.residence, &id, "denied").await;
    problem(
        act(&pair.residence, &id, json!({"action": "withdraw"})).await,
        409,
        "terminal_state",
    )
    .await;
    problem(
        pair.residence.get("/api/v1/cases/not-a-uuid").await,
        400,
        "invalid_path",
    )
    .await;
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

#[tokio::test]
async fn withdrawal_and_approval_at_the_same_moment_end_alike_on_both_nodes() {
    let pair = spawn_pair().await;
    let child = with_child(&pair, 62).await;
    let created: Value = pair
        .residence
        .post_json("/api/v1/cases", &request(&pair, &child).await)
        .await
        .json()
        .await
        .unwrap();
    let id = created["case"]["case_id"].as_str().unwrap().to_owned();
    wait_state(&pair.residence, &id, "received").await;
    evidence_present(&pair.hukou, &id).await;
    let crate::helpers::Pair {
        residence,
        hukou,
        pki,
        ..
    } = pair;
    // Cut them apart: the hukou node stops; each side acts without seeing the other.
    let (h_store, h_node) = (hukou.store.clone(), hukou.node.clone());
    let (h_settings, h_db, h_dir) = hukou.shut_down().await;
    assert_eq!(
        act(
            &residence,
            &id,
            json!({"action": "withdraw", "reason": "家庭已迁回户籍地"})
        )
        .await
        .status(),
        200
    );
    let t: hukou_sync::domain::case::state::Transition =
        serde_json::from_value(json!({"action": "approve", "effective_month": "2026-12"})).unwrap();
    let mut conn = h_store.conn().unwrap();
    let (id2, actor) = (id.clone(), hukou_sync::audit::Actor::console());
    let deadlines = hukou_sync::startup::deadlines(&h_settings).unwrap();
    hukou_sync::eligibility::service::transition(
        &mut conn,
        &h_node,
        &deadlines,
        &id2,
        t,
        None,
        &actor,
        chrono::Utc::now(),
    )
    .unwrap();
    drop(conn);
    drop((h_store, h_node));
    let hukou = restart(h_settings, h_db, h_dir).await;
    // Both end approved (a decision beats a concurrent withdrawal), from two heads.
    for app in [&residence, &hukou] {
        eventually(20, "both heads everywhere", || async {
            case(app, &id)
                .await
                .is_some_and(|c| c["heads"].as_array().unwrap().len() == 2)
        })
        .await;
        let c = case(app, &id).await.unwrap();
        assert_eq!(c["case"]["state"], "approved");
    }
    let a = case(&residence, &id).await.unwrap();
    let b = case(&hukou, &id).await.unwrap();
    assert_eq!(a["case"], b["case"]);
    let _ = pki;
    residence.stop().await;
    hukou.stop().await;
}

/// The audit events of one action at a node, as the audit API lists them.
async fn audit_events(app: &TestApp, action: &str) -> Vec<Value> {
    let ev: Value = app
        .get(&format!("/api/v1/audit/events?action={action}"))
        .await
        .json()
        .await
        .unwrap();
    ev["items"].as_array().unwrap().clone()
}

/// `case show` prints the case for a person by default (labels, history, what this node may do
/// now) and JSON with `--json`; `case act --help` documents every transition's body.
#[tokio::test]
async fn the_console_shows_a_case_for_people_and_documents_the_transitions() {
    let pair = spawn_pair().await;
    let child = with_child(&pair, 64).await;
    let (_, id) = open_case(&pair, &child).await;
    wait_state(&pair.hukou, &id, "received").await;
    let run = |args: &[&str]| {
        crate::helpers::node_command(&pair.pki, CHENGDU, &pair.hukou)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["case", "show", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("低保") && text.contains("已接收"), "{text}");
    assert!(
        text.contains(" UTC+8  submit") && text.contains(" UTC+8  receive"),
        "{text}"
    );
    assert!(
        text.contains("this node may now: request_info, approve, deny"),
        "{text}"
    );
    let out = run(&["case", "show", &id, "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["case"]["state"], "received");
    // A due date that counts into a year without a published calendar (any case opened from
    // mid-November 2026 on) is marked 暂定 by `case show` and `case list`, and only then.
    let provisional = v["due_provisional"].as_bool().unwrap();
    assert_eq!(text.contains("暂定 (provisional"), provisional, "{text}");
    let out = run(&["case", "list"]);
    let list = String::from_utf8(out.stdout).unwrap();
    assert!(list.contains(&id), "{list}");
    assert_eq!(list.contains("暂定 (provisional)"), provisional, "{list}");
    let out = run(&["case", "list", "--json"]);
    let l: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(l["items"][0]["due_provisional"], json!(provisional));

    // The requester answers from its console with a document: the file is hashed there, and
    // the decider's console lists the document with that hash.
    let out = run(&[
        "case",
        "act",
        &id,
        r#"{"action":"request_info","question":"请提供诊断证明"}"#,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_state(&pair.residence, &id, "info_requested").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("诊断证明.pdf");
    std::fs::write(&file, b"%PDF-1.4 diagnosis").unwrap();
    let hash = hukou_sync::crypto::hash::Digest::of(b"%PDF-1.4 diagnosis").to_string();
    let residence_run = |args: &[&str]| {
        crate::helpers::node_command(&pair.pki, ZHENGZHOU, &pair.residence)
            .args(args)
            .output()
            .unwrap()
    };
    let answer = r#"{"action":"provide_info","answer":"已补交诊断证明"}"#;
    for bad in [
        vec!["--evidence", "诊断证明:某医院"],
        vec!["--evidence", "诊断证明:某医院:ZD-1:/no/such/file.pdf"],
    ] {
        let mut args = vec!["case", "act", &id, answer];
        args.extend(bad.iter().copied());
        let out = residence_run(&args);
        assert!(!out.status.success(), "{bad:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--evidence"),
            "{bad:?}"
        );
    }
    let spec = format!("诊断证明:成都市第一人民医院:ZD-2026-118:{}", file.display());
    let out = residence_run(&[
        "case",
        "act",
        &id,
        r#"{"action":"withdraw"}"#,
        "--evidence",
        &spec,
    ]);
    assert!(!out.status.success(), "--evidence with a withdrawal");
    let out = residence_run(&["case", "act", &id, answer, "--evidence", &spec]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_state(&pair.hukou, &id, "info_provided").await;
    let text = String::from_utf8(run(&["case", "show", &id]).stdout).unwrap();
    assert!(
        text.contains(&format!(
            "document 诊断证明 (成都市第一人民医院 ZD-2026-118)  sha256 {hash}"
        )),
        "{text}"
    );
    let help = String::from_utf8(run(&["case", "act", "--help"]).stdout).unwrap();
    for needle in [
        "provide_info",
        "request_info",
        "effective_month",
        "reason_code",
        "reason_text",
        "income_above_threshold",
    ] {
        assert!(help.contains(needle), "{needle} in {help}");
    }
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

/// Every list pages the same way: `after` (the previous page's `next_after`) and `limit`, an
/// answer `{items, next_after}` whose `next_after` is absent on the last page; the old names
/// (`after_seq`, `before`) are refused rather than ignored.
#[tokio::test]
async fn every_list_pages_with_after_and_next_after() {
    let pair = spawn_pair().await;
    let mut cases = Vec::new();
    for seq in 61..64 {
        let child = with_child(&pair, seq).await;
        cases.push(open_case(&pair, &child).await.1);
    }
    for route in ["/api/v1/cases", "/api/v1/children", "/api/v1/audit/events"] {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let url = match &after {
                Some(a) => format!("{route}?limit=2&after={a}"),
                None => format!("{route}?limit=2"),
            };
            let page: Value = pair.residence.get(&url).await.json().await.unwrap();
            let items = page["items"].as_array().unwrap();
            assert!(items.len() <= 2, "{route}: {page}");
            seen.extend(items.iter().cloned());
            match &page["next_after"] {
                Value::Null => break,
                Value::String(s) => after = Some(s.clone()),
                Value::Number(n) => after = Some(n.to_string()),
                other => panic!("{route}: next_after {other}"),
            }
            assert!(seen.len() < 10_000, "{route} never ends");
        }
        let all: Value = pair
            .residence
            .get(&format!("{route}?limit=100"))
            .await
            .json()
            .await
            .unwrap();
        if route != "/api/v1/audit/events" {
            // The audit log grows with every read; the others must page to exactly the whole.
            // A case's state moves on as its decider receives it, so cases compare by id.
            let key = |items: &[Value]| -> Vec<Value> {
                items
                    .iter()
                    .map(|i| match route {
                        "/api/v1/cases" => i["case_id"].clone(),
                        _ => i.clone(),
                    })
                    .collect()
            };
            assert_eq!(key(&seen), key(all["items"].as_array().unwrap()), "{route}");
        } else {
            let seqs: Vec<i64> = seen
                .iter()
                .map(|e| e["event"]["seq"].as_i64().unwrap())
                .collect();
            assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
        }
    }
    let page: Value = pair
        .residence
        .get("/api/v1/cases?limit=3")
        .await
        .json()
        .await
        .unwrap();
    let listed: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["case_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, cases.iter().map(String::as_str).collect::<Vec<_>>());
    for bad in [
        "/api/v1/audit/events?after_seq=1",
        "/api/v1/reconcile/runs?before=x",
        "/api/v1/cases?after=nope",
        "/api/v1/cases?limit=0",
    ] {
        problem(pair.residence.get(bad).await, 400, "invalid_query").await;
    }
}

/// Whether the cases page marks case `id`'s due date 暂定, as seen by the user `wang.fang`.
async fn page_marks_provisional(app: &TestApp, id: &str) -> bool {
    let mut visitor = crate::ui::Visitor::new(app);
    visitor.login("wang.fang", "correct horse battery").await;
    let page = visitor.get("/ui/cases").await;
    assert_eq!(page.status, 200);
    let row = page
        .body
        .lines()
        .find(|l| l.contains(id))
        .unwrap_or_else(|| panic!("{}", page.body));
    row.contains("暂定 (provisional)")
}

/// Issue 22 #6. Cases take "now": a case submitted now (December 2026) with 30 working days
/// counts into 2027, which no calendar publishes — its due date counts the holidays the law
/// fixes (元旦 off) and is provisional in the answer, the list and the metric. An administrator
/// then configures the year's published calendar (one file, `[eligibility] calendar`) and
/// restarts: the flag clears and the stored due date is recomputed on the new calendar. A file
/// that contradicts the shipped calendar keeps the node from starting, naming the file.
#[tokio::test]
async fn a_due_date_past_the_published_calendar_is_provisional_until_the_year_is_configured() {
    use chrono::{Datelike, NaiveDate};
    let pair = spawn_pair().await;
    let child = with_child(&pair, 65).await;
    let (created, id) = open_case(&pair, &child).await;
    let at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(created["case"]["history"][0]["at"].clone()).unwrap();
    let start = hukou_sync::sync::ledger::china_today(at);
    let due: NaiveDate = serde_json::from_value(created["due_on"].clone()).unwrap();
    let deadlines = hukou_sync::startup::deadlines(&pair.residence.settings).unwrap();
    assert_eq!(due, deadlines.calendar.add_working_days(start, 30));
    // Only 2026 is published: a span in 2026 alone is firm, anything else provisional (in
    // December 2026, when this was written, the deadline reaches into 2027).
    let provisional = start.year() != 2026 || due.year() != 2026;
    if start.year() == 2026 && start.month() == 12 {
        assert!(provisional && due.year() == 2027, "{start} → {due}");
    }
    assert_eq!(created["due_provisional"], json!(provisional), "{created}");
    let listed: Value = pair
        .residence
        .get("/api/v1/cases")
        .await
        .json()
        .await
        .unwrap();
    let row = |list: &Value| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["case_id"] == id.as_str())
            .cloned()
            .unwrap()
    };
    assert_eq!(row(&listed)["due_provisional"], json!(provisional));
    assert_eq!(row(&listed)["due_on"], json!(due));
    let metrics = pair.residence.get("/metrics").await.text().await.unwrap();
    let gauge = |n: u8| format!("hukou_cases_due_provisional {n}");
    assert!(metrics.contains(&gauge(u8::from(provisional))), "{metrics}");
    // The cases page marks the due date 暂定.
    crate::helpers::add_user(
        &pair.residence,
        "wang.fang",
        hukou_sync::accounts::Role::Caseworker,
        "correct horse battery",
    );
    assert_eq!(
        page_marks_provisional(&pair.residence, &id).await,
        provisional
    );

    // The published calendar for the years the deadline spans (a holiday in each makes the year
    // published), with one extra day off on the first working day after submission so the due
    // date moves whatever today is.
    let mut days: Vec<String> = (start.year()..=due.year() + 1)
        .filter(|y| *y != 2026)
        .map(|y| format!("{y}-01-01"))
        .collect();
    let extra = deadlines.calendar.add_working_days(start, 1);
    days.push(extra.to_string());
    let crate::helpers::Pair {
        residence,
        hukou,
        pki,
        ..
    } = pair;
    let (mut settings, db, dir) = residence.shut_down().await;
    let path = dir.path().join("calendar-published.toml");
    // Bad input first: a make-up workday on a weekday, and one that contradicts the shipped
    // 2026 calendar, are refused with the file's name.
    for bad in [
        "workdays = [\"2026-12-16\"]\n",
        "holidays = [\"2026-02-28\"]\n",
        "holidays = [\"2027-1-1\"]\n",
    ] {
        std::fs::write(&path, bad).unwrap();
        settings.eligibility.calendar = Some(path.clone());
        let e = hukou_sync::startup::deadlines(&settings).unwrap_err();
        assert!(format!("{e:#}").contains("eligibility.calendar"), "{e:#}");
    }
    std::fs::write(
        &path,
        format!(
            "holidays = [{}]\n",
            days.iter()
                .map(|d| format!("\"{d}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
    .unwrap();
    let new_deadlines = hukou_sync::startup::deadlines(&settings).unwrap();
    let new_due = new_deadlines.calendar.add_working_days(start, 30);
    assert_ne!(new_due, due);
    let residence = restart(settings, db, dir).await;
    let shown = case(&residence, &id).await.unwrap();
    assert_eq!(shown["due_provisional"], json!(false), "{shown}");
    assert_eq!(shown["due_on"], json!(new_due));
    // The stored row was recomputed at start: the list (read from it) agrees.
    let listed: Value = residence.get("/api/v1/cases").await.json().await.unwrap();
    assert_eq!(row(&listed)["due_on"], json!(new_due), "{listed}");
    assert_eq!(row(&listed)["due_provisional"], json!(false));
    let metrics = residence.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(&gauge(0)), "{metrics}");
    assert!(!page_marks_provisional(&residence, &id).await);
    let _ = pki;
    residence.stop().await;
    hukou.stop().await;
}

/// Case versions a peer pushes are checked against their parents, stored ones and those earlier
/// in the same batch (read together, not one query each): in one batch, a new request and its
/// withdrawal are both taken (the hukou node then does not receive it), another new request is
/// received at once, a version on a parent nobody has is refused `unknown_parents`, and one made
/// on a child's version accepted in the same batch is refused `invalid_record`.
#[tokio::test]
async fn pushed_case_versions_are_checked_against_parents_stored_and_earlier_in_the_batch() {
    use hukou_sync::crypto::hash::HashAlg;
    use hukou_sync::crypto::hlc::Hlc;
    use hukou_sync::domain::case::state::Transition;
    use hukou_sync::domain::case::{CaseBody, Step};
    use hukou_sync::domain::NodeId;
    use hukou_sync::sync::version::{DocKind, SignedVersion, Version};

    let pair = spawn_pair().await;
    let child = with_child(&pair, 71).await;
    // A real request's submitted body is the model of the forged ones.
    let (_, model_id) = open_case(&pair, &child).await;
    wait_state(&pair.hukou, &model_id, "received").await;
    let model: CaseBody = {
        let mut conn = pair.residence.store.conn().unwrap();
        let stored = hukou_sync::storage::records::versions_of(&mut conn, "case", &model_id)
            .unwrap()
            .into_iter()
            .find(|v| v.parents.is_empty())
            .unwrap();
        serde_json::from_value(SignedVersion::from_stored(&stored).unwrap().version.body).unwrap()
    };
    let key = crate::helpers::residence_key(&pair.pki);
    let zz = NodeId::parse(ZHENGZHOU).unwrap();
    let now = chrono::Utc::now();
    let mut logical = 0u16;
    let mut sign = |body: &CaseBody, parents: Vec<_>| {
        logical += 1;
        Version::new(
            DocKind::Case,
            body.case_id.to_string(),
            parents,
            zz.clone(),
            Hlc::new(now.timestamp_millis(), logical).unwrap(),
            serde_json::to_value(body).unwrap(),
        )
        .sign(&key, HashAlg::Sha256)
        .unwrap()
    };
    let new_case = || CaseBody {
        case_id: uuid::Uuid::now_v7(),
        ..model.clone()
    };
    let withdrawn = |body: &CaseBody| {
        body.next(Step {
            transition: Transition::Withdraw { reason: None },
            by: zz.clone(),
            at: now,
            officer: None,
        })
        .unwrap()
    };
    // A request and its withdrawal, one after the other in the batch.
    let a = new_case();
    let a1 = sign(&a, vec![]);
    let a2 = sign(&withdrawn(&a), vec![a1.id]);
    // A request alone: received at once.
    let b = new_case();
    let b1 = sign(&b, vec![]);
    // A withdrawal of a request the hukou node never got.
    let c = new_case();
    let c1 = sign(&c, vec![]);
    let c2 = sign(&withdrawn(&c), vec![c1.id]);
    // A withdrawal "made on" a child's file accepted in the same batch.
    let file = crate::exchange::creation(&flowing_child(72), &key, ZHENGZHOU);
    let d = new_case();
    let d2 = sign(&withdrawn(&d), vec![file.id]);
    let r = crate::helpers::receipt(
        crate::helpers::push(
            &crate::helpers::residence_client(&pair.pki),
            &pair.hukou,
            ZHENGZHOU,
            vec![
                file.clone(),
                a1.clone(),
                a2.clone(),
                b1.clone(),
                c2.clone(),
                d2.clone(),
            ],
        )
        .await,
    )
    .await;
    let mut accepted = r.receipt.accepted.clone();
    accepted.sort();
    let mut expected = vec![file.id, a1.id, a2.id, b1.id];
    expected.sort();
    assert_eq!(accepted, expected);
    let refused: std::collections::BTreeMap<_, _> = r
        .receipt
        .rejected
        .iter()
        .map(|x| (x.id, x.code.as_str()))
        .collect();
    assert_eq!(
        refused,
        [(c2.id, "unknown_parents"), (d2.id, "invalid_record")].into()
    );
    let a_view = case(&pair.hukou, &a.case_id.to_string()).await.unwrap();
    assert_eq!(a_view["case"]["state"], "withdrawn");
    wait_state(&pair.hukou, &b.case_id.to_string(), "received").await;
    assert!(case(&pair.hukou, &c.case_id.to_string()).await.is_none());
    assert!(case(&pair.hukou, &d.case_id.to_string()).await.is_none());
    pair.residence.stop().await;
    pair.hukou.stop().await;
}
