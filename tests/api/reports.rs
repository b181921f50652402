//! Mandatory reports and referrals (issue 22 #5): a school's urgent report recorded at the
//! residence bureau reaches the hukou bureau, heads the list, makes the child's risk red until a
//! visit assesses the child, and is counted until then; a report taken by the hukou bureau does
//! the same at the residence bureau; bad reports are refused with nothing stored.

use chrono::{Duration, Utc};
use serde_json::{json, Value};

use crate::helpers::{
    eventually, flowing_child, id_number, node_command, problem, spawn_pair, TestApp, ZHENGZHOU,
};

fn today() -> chrono::NaiveDate {
    hukou_sync::sync::ledger::china_today(Utc::now())
}

fn urgent_report() -> Value {
    json!({
        "reported_on": today(),
        "reporter": {"kind": "school", "name": "金水区第一小学"},
        "seen": "孩子身上多处淤青，自述被打",
        "urgency": "urgent",
        "police_called": true,
        "referral": {"target": "township_social_work", "name": "金水区未保站"},
    })
}

async fn risk_at(app: &TestApp, id: &str) -> Value {
    let r: Value = app
        .get(&format!("/api/v1/children/{id}"))
        .await
        .json()
        .await
        .unwrap();
    r["record"]["risk_level"].clone()
}

async fn metric(app: &TestApp, name: &str) -> String {
    let m = app.get("/metrics").await.text().await.unwrap();
    m.lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn an_urgent_report_reaches_both_bureaus_and_keeps_the_risk_red_until_a_visit() {
    let pair = spawn_pair().await;
    let (a, b) = (flowing_child(701), flowing_child(702));
    let (id, other) = (
        a["id_number"].as_str().unwrap().to_owned(),
        b["id_number"].as_str().unwrap().to_owned(),
    );
    pair.residence.create_child(&a).await;
    pair.residence.create_child(&b).await;
    for id in [&id, &other] {
        eventually(20, "the hukou node holds the file", || async {
            pair.hukou
                .get(&format!("/api/v1/children/{id}"))
                .await
                .status()
                == 200
        })
        .await;
    }
    // A neighbour's ordinary report about the other child, then the school's urgent one.
    let r = pair
        .residence
        .post_json(
            &format!("/api/v1/children/{other}/reports"),
            &json!({"reported_on": today(), "reporter": {"kind": "公众"},
                    "seen": "晚上常听到孩子哭", "urgency": "normal"}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = pair
        .residence
        .post_json(&format!("/api/v1/children/{id}/reports"), &urgent_report())
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let made: Value = r.json().await.unwrap();
    assert_eq!(made["file_updated"], true);
    assert_eq!(risk_at(&pair.residence, &id).await, 1, "red at once");
    for app in [&pair.residence, &pair.hukou] {
        eventually(
            20,
            "both reports and the red risk reach the node",
            || async {
                let page: Value = app.get("/api/v1/reports").await.json().await.unwrap();
                page["items"].as_array().unwrap().len() == 2 && risk_at(app, &id).await == 1
            },
        )
        .await;
        let page: Value = app.get("/api/v1/reports").await.json().await.unwrap();
        assert_eq!(
            page["items"][0]["report"]["child_id"],
            id.as_str(),
            "urgent first"
        );
        assert_eq!(page["items"][0]["report"]["urgency"], "urgent");
        let urgent: Value = app
            .get("/api/v1/reports?urgent=true")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(urgent["items"].as_array().unwrap().len(), 1);
        assert!(metric(app, "hukou_reports_urgent_unassessed")
            .await
            .ends_with(" 1"));
    }
    // A visit that assesses the child sets the risk it finds; the report is no longer counted.
    let r = pair
        .residence
        .post_json(
            &format!("/api/v1/children/{id}/visits"),
            &json!({"visited_on": today(), "visitor": {"name": "王秀兰", "role": "children_director"},
                    "kind": "home", "seen": ["child"],
                    "assessment": {"indicators": {"safety": {"grade": 2, "note": "已安置至祖母家"}},
                                   "assessor": "王秀兰"}}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    assert_eq!(risk_at(&pair.residence, &id).await, 2);
    eventually(20, "the hukou node sees the assessed risk", || async {
        risk_at(&pair.hukou, &id).await == 2
            && metric(&pair.hukou, "hukou_reports_urgent_unassessed")
                .await
                .ends_with(" 0")
    })
    .await;
    // Only the node that took it amends it: the referral's outcome.
    let rid = made["report"]["report_id"].as_str().unwrap();
    let mut amended = urgent_report();
    amended["referral"]["outcome"] = json!("未保站已介入，安排临时照护");
    let put = |app: &TestApp| {
        app.http
            .put(app.url(&format!("/api/v1/reports/{rid}")))
            .json(&amended)
            .send()
    };
    problem(put(&pair.hukou).await.unwrap(), 403, "not_author").await;
    let r = put(&pair.residence).await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    eventually(20, "the hukou node shows the outcome", || async {
        let one: Value = pair
            .hukou
            .get(&format!("/api/v1/reports/{rid}"))
            .await
            .json()
            .await
            .unwrap();
        one["report"]["referral"]["outcome"] == "未保站已介入，安排临时照护"
    })
    .await;
    assert!(
        pair.hukou
            .count("audit_events WHERE action = 'report.read'")
            >= 1
    );
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

#[tokio::test]
async fn a_report_taken_by_the_hukou_bureau_raises_the_risk_at_the_residence_bureau() {
    let pair = spawn_pair().await;
    let child = flowing_child(703);
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
    let r = pair
        .hukou
        .post_json(&format!("/api/v1/children/{id}/reports"), &urgent_report())
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    for app in [&pair.residence, &pair.hukou] {
        eventually(20, "the risk turns red at both", || async {
            risk_at(app, &id).await == 1
        })
        .await;
    }
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

#[tokio::test]
async fn bad_reports_are_refused_and_nothing_is_stored() {
    let pair = spawn_pair().await;
    let child = flowing_child(704);
    let id = child["id_number"].as_str().unwrap().to_owned();
    let app = &pair.residence;
    app.create_child(&child).await;
    let versions = app.count("versions");
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "reported_on",
            Box::new(|v| v["reported_on"] = json!(today() + Duration::days(1))),
        ),
        (
            "reporter.kind",
            Box::new(|v| v["reporter"]["kind"] = json!("neighbour")),
        ),
        ("urgency", Box::new(|v| v["urgency"] = json!("very"))),
        ("seen", Box::new(|v| v["seen"] = json!("  "))),
        (
            "referral.target",
            Box::new(|v| v["referral"]["target"] = json!("mayor")),
        ),
        (
            "referral.referred_on",
            Box::new(|v| v["referral"]["referred_on"] = json!("2020-01-01")),
        ),
        (
            "police_called",
            Box::new(|v| v["police_called"] = json!("yes")),
        ),
    ];
    for (field, edit) in cases {
        let mut body = urgent_report();
        edit(&mut body);
        let p = problem(
            app.post_json(&format!("/api/v1/children/{id}/reports"), &body)
                .await,
            422,
            "invalid_field",
        )
        .await;
        assert!(
            p["field"].as_str().unwrap().starts_with(field),
            "{field}: {p}"
        );
    }
    let unknown = id_number("510104", (2014, 6, 1), 705);
    problem(
        app.post_json(
            &format!("/api/v1/children/{unknown}/reports"),
            &urgent_report(),
        )
        .await,
        404,
        "child_not_found",
    )
    .await;
    problem(
        app.get("/api/v1/reports?after=x").await,
        400,
        "invalid_query",
    )
    .await;
    problem(
        app.get("/api/v1/reports?limit=501").await,
        400,
        "invalid_query",
    )
    .await;
    problem(app.get("/api/v1/reports/nope").await, 400, "invalid_path").await;
    assert_eq!(app.count("reports"), 0);
    assert_eq!(app.count("versions"), versions);
    // From the console: a report recorded and listed; a bad kind refused.
    let run = |args: &[&str]| {
        node_command(&pair.pki, ZHENGZHOU, app)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[
        "report",
        "add",
        &id,
        "--kind",
        "医疗机构",
        "--reporter",
        "金水区人民医院",
        "--seen",
        "营养不良就诊",
        "--refer-to",
        "township_social_work",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["report", "list", &id]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("医疗机构"));
    let out = run(&["report", "add", &id, "--kind", "mayor", "--seen", "x"]);
    assert!(!out.status.success());
    assert_eq!(app.count("reports"), 1);
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

#[tokio::test]
async fn the_childs_page_shows_its_visits_and_reports() {
    use hukou_sync::accounts::Role;
    let app = crate::helpers::spawn_app().await;
    let child = flowing_child(706);
    let id = child["id_number"].as_str().unwrap().to_owned();
    app.create_child(&child).await;
    let r = app
        .post_json(&format!("/api/v1/children/{id}/reports"), &urgent_report())
        .await;
    assert_eq!(r.status(), 201);
    let r = app
        .post_json(
            &format!("/api/v1/children/{id}/visits"),
            &json!({"visited_on": today(), "visitor": {"name": "王秀兰", "role": "儿童主任"},
                    "kind": "home", "seen": ["child"], "follow_up": ["联系学校"],
                    "assessment": {"indicators": {"safety": {"grade": "橙"}}, "assessor": "王秀兰"}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    crate::helpers::add_user(&app, "cw", Role::Caseworker, "correct horse battery");
    let mut v = crate::ui::Visitor::new(&app);
    assert_eq!(v.login("cw", "correct horse battery").await.status, 303);
    let page = v.get(&format!("/ui/children/{id}")).await;
    assert_eq!(page.status, 200);
    for text in [
        "走访记录 (Visits)",
        "入户走访",
        "王秀兰 (儿童主任)",
        "橙 (安全状况 橙; 王秀兰)",
        "联系学校",
        "报告与转介 (Reports and referrals)",
        "紧急",
        "学校及教育机构 金水区第一小学",
        "已报警",
    ] {
        assert!(page.body.contains(text), "{text}: {}", page.body);
    }
    app.stop().await;
}
