//! Visits (issue 21 #1, #2, #9): a children's director's visit recorded at the residence bureau,
//! signed and exchanged to the hukou bureau, raising the file's risk; amended only by its node;
//! refused when wrong, with nothing stored; the due list by schedule, township and worker, and
//! its metric; a peer's visit by a node that is no party of the child refused.

use chrono::{Duration, Utc};
use serde_json::{json, Value};

use crate::helpers::{
    eventually, flowing_child, id_number, node_command, problem, push, receipt, residence_client,
    residence_key, spawn_app, spawn_app_with, spawn_pair, TestApp, ZHENGZHOU,
};
use hukou_sync::crypto::hlc::Hlc;
use hukou_sync::domain::{DocKind, NodeId};
use hukou_sync::sync::version::Version;

fn today() -> chrono::NaiveDate {
    hukou_sync::sync::ledger::china_today(Utc::now())
}

/// A home visit by a children's director that grades guardianship red.
fn red_visit(on: chrono::NaiveDate) -> Value {
    json!({
        "visited_on": on,
        "visitor": {"name": "李娟", "role": "儿童主任"},
        "kind": "home",
        "seen": ["child", "caregiver"],
        "findings": {"guardianship": "父亲外出务工失联，祖母年迈", "living": "住房安全"},
        "assessment": {
            "indicators": {
                "guardianship": {"grade": "红", "note": "父母均无法履行监护"},
                "living": {"grade": 3}
            },
            "assessor": "李娟"
        },
        "follow_up": ["报乡镇儿童督导员", "联系派出所查找父亲"],
        "next_due_on": on + Duration::days(7),
    })
}

async fn visits_at(app: &TestApp, id: &str) -> Vec<Value> {
    let r = app.get(&format!("/api/v1/children/{id}/visits")).await;
    if r.status() != 200 {
        return Vec::new();
    }
    r.json::<Value>().await.unwrap()["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn record_of(app: &TestApp, id: &str) -> Value {
    let r: Value = app
        .get(&format!("/api/v1/children/{id}"))
        .await
        .json()
        .await
        .unwrap();
    r["record"].clone()
}

#[tokio::test]
async fn a_visit_is_recorded_exchanged_and_raises_the_risk_on_both_sides() {
    let pair = spawn_pair().await;
    let child = flowing_child(601);
    let id = child["id_number"].as_str().unwrap().to_owned();
    pair.residence.create_child(&child).await;
    eventually(20, "the hukou node holds the file", || async {
        pair.hukou
            .get(&format!("/api/v1/children/{id}"))
            .await
            .status()
            == 200
    })
    .await;

    let day = today() - Duration::days(1);
    let r = pair
        .residence
        .post_json(&format!("/api/v1/children/{id}/visits"), &red_visit(day))
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let made: Value = r.json().await.unwrap();
    assert_eq!(made["file_updated"], true);
    assert_eq!(made["risk_label"], "红");
    assert_eq!(
        made["visit"]["assessment"]["level"], 1,
        "the most severe grade"
    );
    assert_eq!(made["visit"]["recorded_by"], ZHENGZHOU);
    let visit_id = made["visit"]["visit_id"].as_str().unwrap().to_owned();

    // The residence file shows the visit and the risk it assessed.
    let rec = record_of(&pair.residence, &id).await;
    assert_eq!(rec["last_visit_on"], json!(day));
    assert_eq!(rec["risk_level"], 1);

    // The hukou bureau receives the visit, signed, and the file's new risk with it.
    eventually(20, "the hukou node holds the visit", || async {
        visits_at(&pair.hukou, &id).await.len() == 1
    })
    .await;
    let there = &visits_at(&pair.hukou, &id).await[0];
    assert_eq!(there["visit"], made["visit"]);
    assert_eq!(there["version"], made["version"]);
    eventually(20, "the hukou node sees the new risk", || async {
        record_of(&pair.hukou, &id).await["risk_level"] == 1
    })
    .await;
    assert_eq!(
        pair.residence
            .count("audit_events WHERE action = 'visit.create'"),
        1
    );
    assert_eq!(
        pair.hukou
            .count("audit_events WHERE action = 'version.ingest' AND object_kind = 'visit'"),
        1
    );

    // Only the node that recorded it amends it; the amendment replaces it at both.
    let mut amended = red_visit(day);
    amended["follow_up"] = json!(["报乡镇儿童督导员", "已联系派出所"]);
    let r = pair
        .hukou
        .http
        .put(pair.hukou.url(&format!("/api/v1/visits/{visit_id}")))
        .json(&amended)
        .send()
        .await
        .unwrap();
    problem(r, 403, "not_author").await;
    let r = pair
        .residence
        .http
        .put(pair.residence.url(&format!("/api/v1/visits/{visit_id}")))
        .json(&amended)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    eventually(20, "the hukou node shows the amendment", || async {
        visits_at(&pair.hukou, &id).await[0]["visit"]["follow_up"][1] == "已联系派出所"
    })
    .await;
    let one: Value = pair
        .hukou
        .get(&format!("/api/v1/visits/{visit_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["visit"]["follow_up"][1], "已联系派出所");
    assert_eq!(pair.hukou.count("visits"), 1);
    assert_eq!(
        pair.hukou.count("audit_events WHERE action = 'visit.read'"),
        1,
        "reading a visit is audited"
    );
    let m = pair.residence.get("/metrics").await.text().await.unwrap();
    assert!(m.contains("hukou_visits_recorded 1"), "{m}");
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

#[tokio::test]
async fn bad_visits_are_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let child = flowing_child(602);
    let id = child["id_number"].as_str().unwrap().to_owned();
    app.create_child(&child).await;
    let versions = app.count("versions");
    let path = format!("/api/v1/children/{id}/visits");
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "visited_on",
            Box::new(|v| v["visited_on"] = json!(today() + Duration::days(1))),
        ),
        (
            "visited_on",
            Box::new(|v| v["visited_on"] = json!("2014-05-31")),
        ),
        (
            "assessment.indicators",
            Box::new(|v| v["assessment"]["indicators"] = json!({})),
        ),
        (
            "assessment.indicators",
            Box::new(|v| v["assessment"]["indicators"]["mood"] = json!({"grade": 2})),
        ),
        (
            "assessment.indicators.guardianship.grade",
            Box::new(|v| v["assessment"]["indicators"]["guardianship"]["grade"] = json!("紫")),
        ),
        (
            "assessment.indicators.guardianship.grade",
            Box::new(|v| v["assessment"]["indicators"]["guardianship"]["grade"] = json!(5)),
        ),
        ("seen", Box::new(|v| v["seen"] = json!([]))),
        (
            "seen",
            Box::new(|v| v["seen"] = json!(["child", "儿童本人"])),
        ),
        ("kind", Box::new(|v| v["kind"] = json!("letter"))),
        (
            "visitor.role",
            Box::new(|v| v["visitor"]["role"] = json!("mayor")),
        ),
        (
            "next_due_on",
            Box::new(|v| v["next_due_on"] = json!("2020-01-01")),
        ),
        (
            "follow_up",
            Box::new(|v| v["follow_up"] = json!(vec!["跟进"; 11])),
        ),
        (
            "findings.living",
            Box::new(|v| v["findings"]["living"] = json!("住房\u{202E}安全")),
        ),
        (
            "child_id",
            Box::new(|v| v["child_id"] = json!(id_number("510104", (2014, 6, 1), 9))),
        ),
    ];
    for (field, edit) in cases {
        let mut body = red_visit(today());
        edit(&mut body);
        let p = problem(app.post_json(&path, &body).await, 422, "invalid_field").await;
        assert!(
            p["field"].as_str().unwrap().starts_with(field),
            "{field}: {p}"
        );
    }
    // A child not held here; a malformed ID; a visit id that is not one.
    let other = id_number("510104", (2014, 6, 1), 603);
    problem(
        app.post_json(
            &format!("/api/v1/children/{other}/visits"),
            &red_visit(today()),
        )
        .await,
        404,
        "child_not_found",
    )
    .await;
    problem(
        app.post_json("/api/v1/children/123/visits", &red_visit(today()))
            .await,
        400,
        "invalid_id_number",
    )
    .await;
    problem(
        app.get("/api/v1/visits/not-a-uuid").await,
        400,
        "invalid_path",
    )
    .await;
    problem(
        app.get(&format!("/api/v1/children/{id}/visits?after=yesterday"))
            .await,
        400,
        "invalid_query",
    )
    .await;
    assert_eq!(app.count("visits"), 0);
    assert_eq!(app.count("versions"), versions, "nothing half-stored");
    app.stop().await;
}

#[tokio::test]
async fn a_visit_by_a_node_that_is_no_party_of_the_child_is_refused() {
    let pair = spawn_pair().await;
    // A Chengdu child living in Chengdu: Zhengzhou is no party of it.
    let id = id_number("510104", (2015, 3, 2), 604);
    pair.hukou
        .create_child(&json!({
            "id_number": id, "name": "王小", "hukou_region": "510104",
            "residence_region": "510104", "categories": ["in_difficulty"],
        }))
        .await;
    let body = json!({
        "visit_id": uuid::Uuid::now_v7(),
        "child_id": id,
        "recorded_by": ZHENGZHOU,
        "visited_on": today(),
        "visitor": {"name": "李娟", "role": "children_director"},
        "kind": "home",
        "seen": ["child"],
    });
    let key = residence_key(&pair.pki);
    let v = Version::new(
        DocKind::Visit,
        body["visit_id"].as_str().unwrap().to_owned(),
        vec![],
        NodeId::parse(ZHENGZHOU).unwrap(),
        Hlc::new(Utc::now().timestamp_millis(), 0).unwrap(),
        body,
    )
    .sign(&key, hukou_sync::crypto::hash::HashAlg::Sha256)
    .unwrap();
    let r = receipt(
        push(
            &residence_client(&pair.pki),
            &pair.hukou,
            ZHENGZHOU,
            vec![v],
        )
        .await,
    )
    .await;
    assert_eq!(r.receipt.rejected.len(), 1);
    assert_eq!(
        serde_json::to_value(r.receipt.rejected[0].code).unwrap(),
        "author_not_party"
    );
    assert_eq!(pair.hukou.count("visits"), 0);
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

/// A file for the due list: `categories`, last visited `days_ago`, in `township`, with a worker.
fn due_child(
    seq: u16,
    categories: &[&str],
    days_ago: i64,
    risk: Option<&str>,
    worker: &str,
) -> Value {
    let mut c = json!({
        "id_number": id_number("410105", (2016, 1, 1), seq),
        "name": "测试",
        "hukou_region": "410105",
        "residence_region": "410105",
        "residence_township": "410105001",
        "categories": categories,
        "last_visit_on": today() - Duration::days(days_ago),
        "responsible_worker": {"name": worker, "role": "儿童主任"},
    });
    if let Some(r) = risk {
        c["risk_level"] = json!(r);
    }
    c
}

fn due_ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id_number"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_due_list_follows_the_schedule_by_township_and_worker() {
    let app = spawn_app().await;
    let orphan = due_child(611, &["orphan"], 40, None, "李娟"); // monthly: 10 days overdue
    let red = due_child(612, &["flowing"], 10, Some("红"), "王芳"); // weekly: 3 days overdue
    let soon = due_child(613, &["in_difficulty"], 25, None, "李娟"); // monthly: due in 5 days
    let fine = due_child(614, &["flowing"], 100, None, "李娟"); // six-monthly: due in 83 days
                                                                // Eighteen last month: no child's visit is due any more.
    let mut adult = due_child(615, &["orphan"], 40, None, "李娟");
    adult["id_number"] = json!(id_number("410105", (2008, 11, 1), 615));
    for c in [&orphan, &red, &soon, &fine, &adult] {
        app.create_child(c).await;
    }
    assert_eq!(
        app.count("children WHERE visit_due_on IS NULL"),
        1,
        "the adult's file has no due date"
    );
    // One stored before the cap (or overdue at 18) is cleared by the daily run.
    let adult_id = adult["id_number"].as_str().unwrap().to_owned();
    app.exec(&format!(
        "UPDATE children SET visit_due_on = '2026-01-01' WHERE id_number = '{adult_id}'"
    ));
    let mut conn = app.store.conn().unwrap();
    assert_eq!(
        hukou_sync::visits::clear_adults_due(&mut conn, Utc::now()).unwrap(),
        1
    );
    assert_eq!(app.count("children WHERE visit_due_on IS NULL"), 1);
    let id = |c: &Value| c["id_number"].as_str().unwrap().to_owned();
    let page: Value = app.get("/api/v1/visits/due").await.json().await.unwrap();
    assert_eq!(
        due_ids(&page),
        vec![id(&orphan), id(&red), id(&soon)],
        "{page}"
    );
    assert_eq!(page["items"][0]["overdue_days"], 10);
    assert_eq!(page["items"][1]["overdue_days"], 3);
    assert_eq!(page["items"][2]["overdue_days"], 0);
    let overdue: Value = app
        .get("/api/v1/visits/due?overdue=true")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(due_ids(&overdue), vec![id(&orphan), id(&red)]);
    let worker: Value = app
        .get("/api/v1/visits/due?worker=%E7%8E%8B%E8%8A%B3")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(due_ids(&worker), vec![id(&red)]);
    let far: Value = app
        .get("/api/v1/visits/due?within_days=90&township=410105001")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(due_ids(&far).len(), 4);
    let elsewhere: Value = app
        .get("/api/v1/visits/due?township=410105002")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(due_ids(&elsewhere).len(), 0);
    let paged: Value = app
        .get("/api/v1/visits/due?limit=2")
        .await
        .json()
        .await
        .unwrap();
    let next = paged["next_after"].as_str().unwrap().to_owned();
    let rest: Value = app
        .get(&format!("/api/v1/visits/due?limit=2&after={next}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(due_ids(&rest), vec![id(&soon)]);
    let m = app.get("/metrics").await.text().await.unwrap();
    assert!(m.contains("hukou_visits_overdue 2"), "{m}");

    // A visit today takes the orphan off the list.
    let r = app
        .post_json(
            &format!("/api/v1/children/{}/visits", id(&orphan)),
            &json!({"visited_on": today(), "visitor": {"name": "李娟", "role": "children_director"},
                    "kind": "phone", "seen": ["caregiver"]}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let overdue: Value = app
        .get("/api/v1/visits/due?overdue=true")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(due_ids(&overdue), vec![id(&red)]);

    for (q, field) in [
        ("within_days=400", "within_days"),
        ("limit=0", "limit"),
        ("township=4101050", "township"),
        ("region=4", "region"),
        ("after=soon", "after"),
        ("worker=%E2%80%AE", "worker"),
        ("colour=red", ""),
    ] {
        let p = problem(
            app.get(&format!("/api/v1/visits/due?{q}")).await,
            400,
            "invalid_query",
        )
        .await;
        if !field.is_empty() {
            assert_eq!(p["field"], field, "{q}: {p}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_jurisdiction_sets_its_own_visit_frequency() {
    // Henan visits flowing children every 90 days.
    let app = spawn_app_with(|s| {
        s.visits
            .jurisdictions
            .insert("41".into(), [("flowing".to_owned(), 90)].into());
    })
    .await;
    let c = due_child(621, &["flowing"], 100, None, "李娟");
    app.create_child(&c).await;
    let overdue: Value = app
        .get("/api/v1/visits/due?overdue=true")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(due_ids(&overdue).len(), 1, "{overdue}");
    assert_eq!(overdue["items"][0]["overdue_days"], 10);
    app.stop().await;
}

#[tokio::test]
async fn a_childrens_director_records_and_lists_visits_from_the_console() {
    let pair = spawn_pair().await;
    let child = flowing_child(631);
    let id = child["id_number"].as_str().unwrap().to_owned();
    pair.residence.create_child(&child).await;
    let run = |args: &[&str]| {
        node_command(&pair.pki, ZHENGZHOU, &pair.residence)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[
        "visit",
        "add",
        &id,
        "--visitor",
        "李娟",
        "--kind",
        "入户走访",
        "--seen",
        "child",
        "--seen",
        "guardian",
        "--finding",
        "psychological=情绪低落",
        "--grade",
        "psychological=橙:需心理疏导",
        "--follow-up",
        "转介心理咨询",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["visit"]["assessment"]["level"], 2);
    assert_eq!(v["risk_label"], "橙");
    let out = run(&["visit", "list", &id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("入户走访") && text.contains("情绪低落") && text.contains("橙"),
        "{text}"
    );
    let out = run(&["visit", "due", "--within", "366", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let due: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(due["items"][0]["id_number"], id.as_str());
    // Bad input: an area no assessment grades; a day in the future. Nothing is stored.
    let out = run(&[
        "visit",
        "add",
        &id,
        "--visitor",
        "李娟",
        "--seen",
        "child",
        "--grade",
        "mood=1",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("mood"));
    let tomorrow = (today() + Duration::days(1)).to_string();
    let out = run(&[
        "visit",
        "add",
        &id,
        "--visitor",
        "李娟",
        "--seen",
        "child",
        "--on",
        &tomorrow,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("future"));
    assert_eq!(pair.residence.count("visits"), 1);

    // The visit ledger: exported with Chinese headers and labels, imported back all or nothing.
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("visits.csv");
    let out = run(&[
        "export",
        "--visits",
        "--purpose",
        "核对",
        "--out",
        ledger.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(&ledger).unwrap();
    assert!(csv.starts_with("走访编号,身份证号,走访日期"), "{csv}");
    assert!(
        csv.contains("入户走访") && csv.contains("心理状况:橙（需心理疏导）"),
        "{csv}"
    );
    assert_eq!(
        pair.residence
            .count("audit_events WHERE action = 'visit.export'"),
        1
    );
    let mut bad = csv.clone();
    bad.push_str(
        &csv.lines()
            .nth(1)
            .unwrap()
            .replace(&today().to_string(), &tomorrow),
    );
    bad.push('\n');
    let bad_file = dir.path().join("bad.csv");
    std::fs::write(&bad_file, bad).unwrap();
    let out = run(&["import", "--visits", bad_file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 3") && err.contains("nothing imported"),
        "{err}"
    );
    assert_eq!(pair.residence.count("visits"), 1, "all or nothing");
    let out = run(&["import", "--visits", ledger.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(pair.residence.count("visits"), 2);
    assert_eq!(
        pair.residence
            .count("audit_events WHERE action = 'visit.import'"),
        1
    );
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

#[tokio::test]
async fn a_visit_made_by_the_hukou_bureau_updates_the_file_at_the_residence_bureau() {
    let pair = spawn_pair().await;
    let child = flowing_child(641);
    let id = child["id_number"].as_str().unwrap().to_owned();
    pair.residence.create_child(&child).await;
    eventually(20, "the hukou node holds the file", || async {
        pair.hukou
            .get(&format!("/api/v1/children/{id}"))
            .await
            .status()
            == 200
    })
    .await;
    // Chengdu's caseworker calls the family: the hukou side records the visit, but the file's
    // last visit and risk are the residence side's — Zhengzhou brings them in line on receipt.
    let day = today();
    let mut call = red_visit(day);
    call["kind"] = json!("phone");
    call["visitor"] = json!({"name": "王芳", "role": "caseworker"});
    let r = pair
        .hukou
        .post_json(&format!("/api/v1/children/{id}/visits"), &call)
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let made: Value = r.json().await.unwrap();
    assert_eq!(
        made["file_updated"], false,
        "the hukou side does not edit residence fields"
    );
    for app in [&pair.residence, &pair.hukou] {
        eventually(20, "the file follows the hukou bureau's visit", || async {
            let rec = record_of(app, &id).await;
            rec["risk_level"] == 1 && rec["last_visit_on"] == json!(day)
        })
        .await;
    }
    assert_eq!(
        pair.residence
            .count("audit_events WHERE action = 'child.update' AND actor_kind = 'system'"),
        1
    );
    pair.residence.stop().await;
    pair.hukou.stop().await;
}
