//! Statistics for superiors (issue 23 #5): the figures of `GET /api/v1/stats`, the statistics
//! page and `hukou-sync stats` — counts by region, township, category, risk level and worker,
//! visits overdue and per month, cases by state and timeliness, stale files — for the files this
//! node serves; the read audited; a role without access to children's files refused.

use chrono::Datelike;
use hukou_sync::accounts::Role;
use serde_json::{json, Value};

use crate::helpers::{add_user, client_with_token, create_token, flowing_child, spawn_app};
use crate::ui::Visitor;

const PASSWORD: &str = "correct horse battery staple";

fn count(list: &Value, key: &str) -> i64 {
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == key)
        .map_or(0, |c| c["count"].as_i64().unwrap())
}

/// A 低保 case asked for `child` and approved at once, on the node that decides it.
async fn approved_case(app: &crate::helpers::TestApp, child: &str) {
    let r = app
        .post_json(
            "/api/v1/cases",
            &json!({"child_id": child, "benefit": "dibao",
                    "grounds": {"summary": "家庭收入低于低保标准"},
                    "officers": {"requester": "ZZ-1"}}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let case: Value = r.json().await.unwrap();
    let case_id = case["case"]["case_id"].as_str().unwrap().to_owned();
    let r = app
        .post_json(
            &format!("/api/v1/cases/{case_id}/transitions"),
            &json!({"transition": {"action": "approve", "effective_month": "2026-12"}}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn the_figures_count_what_this_node_serves() {
    let app = spawn_app().await;
    // Three files: two in 金水区 (one naming its township and graded 红), one in 中原区.
    let mut a = flowing_child(901);
    a["residence_township"] = json!("410105001");
    let a_id = a["id_number"].as_str().unwrap().to_owned();
    app.create_child(&a).await;
    let mut b = flowing_child(902);
    b["categories"] = json!(["left_behind"]);
    b["risk_level"] = json!(1);
    b["responsible_worker"] = json!({"name": "王秀兰", "role": "儿童主任"});
    let b_id = b["id_number"].as_str().unwrap().to_owned();
    app.create_child(&b).await;
    let mut c = flowing_child(903);
    c["residence_region"] = json!("410102");
    let c_id = c["id_number"].as_str().unwrap().to_owned();
    app.create_child(&c).await;
    // A visit this month; B overdue; C stale.
    let today = hukou_sync::sync::ledger::china_today(chrono::Utc::now());
    let r = app
        .post_json(
            &format!("/api/v1/children/{a_id}/visits"),
            &json!({"visited_on": today, "visitor": {"name": "李娟", "role": "children_director"},
                    "kind": "home", "seen": ["child"]}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    app.exec(&format!(
        "UPDATE children SET visit_due_on = '2020-01-01' WHERE id_number = '{b_id}'"
    ));
    app.exec(&format!(
        "UPDATE children SET refreshed_on = '2020-01-01' WHERE id_number = '{c_id}'"
    ));
    // A case asked and decided here, on time.
    approved_case(&app, &a_id).await;

    let s: Value = app.get("/api/v1/stats").await.json().await.unwrap();
    assert_eq!(s["files"], 3, "{s}");
    assert_eq!(count(&s["by_region"], "410105"), 2);
    assert_eq!(count(&s["by_region"], "410102"), 1);
    assert!(s["by_region"][0]["label"]
        .as_str()
        .unwrap()
        .contains("金水区"));
    assert_eq!(count(&s["by_township"], "410105001"), 1);
    assert_eq!(count(&s["by_township"], "none"), 2);
    assert_eq!(count(&s["by_category"], "flowing"), 2);
    assert_eq!(count(&s["by_category"], "left_behind"), 3);
    assert_eq!(count(&s["by_risk"], "1"), 1);
    assert_eq!(count(&s["by_risk"], "3"), 2);
    let red = s["by_risk"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == "1")
        .unwrap();
    assert_eq!(red["label"], "红");
    assert_eq!(count(&s["by_worker"], "王秀兰"), 1);
    assert_eq!(count(&s["by_worker"], "none"), 2);
    assert_eq!(s["visits_overdue"], 1);
    assert_eq!(s["stale"], 1);
    let months = s["visits_per_month"].as_array().unwrap();
    assert_eq!(months.len(), 12);
    assert_eq!(months[11]["count"], 1, "{months:?}");
    assert_eq!(s["cases"]["decided_on_time"], 1);
    assert_eq!(s["cases"]["decided_late"], 0);
    assert_eq!(s["cases"]["mean_working_days_to_decision"], 0.0);
    assert_eq!(count(&s["cases"]["incoming"], "approved"), 1);
    // Audited, naming no child.
    let events: Value = app
        .get("/api/v1/audit/events?action=stats.read")
        .await
        .json()
        .await
        .unwrap();
    let e = &events["items"][0];
    assert_eq!(e["details"]["files"], 3);
    assert!(!e.to_string().contains(&a_id));

    // The page: the same figures, charts as SVG.
    add_user(&app, "zhang.min", Role::Reviewer, PASSWORD);
    let mut v = Visitor::new(&app);
    v.login("zhang.min", PASSWORD).await;
    let p = v.get("/ui/stats").await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(
        p.body.contains("<svg class=\"chart\" id=\"by-region\""),
        "{}",
        p.body
    );
    assert!(p.body.contains("金水区"));
    assert!(p.body.contains("id=\"trend\""));
    assert!(p.body.contains("data-figure=\"visits_overdue\">1<"));
    // A role without access to children's files: refused on both.
    let auditor = client_with_token(&create_token(&app.store, &app.node, "aud", Role::Auditor));
    let r = auditor.get(app.url("/api/v1/stats")).send().await.unwrap();
    assert_eq!(r.status(), 403);

    // The console: the same figures.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hukou-sync"))
        .arg("--config")
        .arg(app.config_file())
        .args(["stats", "--json"])
        .env_remove("HUKOU_SYNC_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["by_category"], s["by_category"]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hukou-sync"))
        .arg("--config")
        .arg(app.config_file())
        .args(["stats"])
        .env_remove("HUKOU_SYNC_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("by residence county"), "{text}");
}

/// The monthly report (月报): `stats --month M --out F` and the page's download write one sheet
/// per table; the month's figures count the cases decided within it; a month that has not begun
/// or is not YYYY-MM is refused everywhere, and nothing is written.
#[tokio::test]
async fn the_monthly_report_is_a_workbook_of_the_months_figures() {
    use calamine::{Data, Reader, Xlsx};
    let app = spawn_app().await;
    let a = flowing_child(911);
    let a_id = a["id_number"].as_str().unwrap().to_owned();
    app.create_child(&a).await;
    app.create_child(&flowing_child(912)).await;
    approved_case(&app, &a_id).await;
    let today = hukou_sync::sync::ledger::china_today(chrono::Utc::now());
    let this_month = today.format("%Y-%m").to_string();
    let last_month = (today.with_day(1).unwrap() - chrono::Days::new(1))
        .format("%Y-%m")
        .to_string();

    // The API: this month counts the decision, last month does not.
    let now: Value = app
        .get(&format!("/api/v1/stats?month={this_month}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(now["cases"]["decided_on_time"], 1, "{now}");
    assert_eq!(now["as_of"], today.to_string());
    let before: Value = app
        .get(&format!("/api/v1/stats?month={last_month}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(before["cases"]["decided_on_time"], 0, "{before}");
    assert!(before["as_of"].as_str().unwrap() < today.to_string().as_str());
    for bad in ["2999-01", "2026-13", "abc"] {
        let p = crate::helpers::problem(
            app.get(&format!("/api/v1/stats?month={bad}")).await,
            400,
            "invalid_query",
        )
        .await;
        assert_eq!(p["field"], "month", "{bad}");
    }

    // The console writes the workbook.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("月报.xlsx");
    let bin = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hukou-sync"))
            .arg("--config")
            .arg(app.config_file())
            .args(args)
            .env_remove("HUKOU_SYNC_CONFIG")
            .output()
            .unwrap()
    };
    let out = bin(&[
        "stats",
        "--month",
        &this_month,
        "--out",
        path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut book: Xlsx<_> = calamine::open_workbook(&path).unwrap();
    assert_eq!(
        book.sheet_names(),
        hukou_sync::stats::workbook::SHEETS
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    );
    let summary = book.worksheet_range("概况").unwrap();
    let value_of = |label: &str| {
        summary
            .rows()
            .find(|r| r[0].to_string().starts_with(label))
            .map(|r| r[1].clone())
            .unwrap()
    };
    assert_eq!(value_of("在管档案"), Data::Float(2.0));
    assert_eq!(value_of("本月按时办结"), Data::Float(1.0));
    let regions = book.worksheet_range("按区县").unwrap();
    assert!(regions
        .rows()
        .any(|r| r[1].to_string().contains("金水区") && r[2] == Data::Float(2.0)));
    let out = bin(&["stats", "--month", "2999-01", "--out", "never.xlsx"]);
    assert!(!out.status.success());
    assert!(!std::path::Path::new("never.xlsx").exists());

    // The page offers the same download, and refuses a malformed month.
    add_user(&app, "zhou.li", Role::Reviewer, PASSWORD);
    let mut v = Visitor::new(&app);
    v.login("zhou.li", PASSWORD).await;
    let page = v.get(&format!("/ui/stats?month={last_month}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("下载月报"), "{}", page.body);
    let (status, kind, bytes) = v
        .download(&format!("/ui/stats/report.xlsx?month={this_month}"))
        .await;
    assert_eq!(status, 200);
    assert!(kind.contains("spreadsheetml"), "{kind}");
    let mut book = Xlsx::new(std::io::Cursor::new(bytes)).unwrap();
    assert_eq!(book.sheet_names().len(), 9);
    assert!(book.worksheet_range("案件").unwrap().rows().count() >= 2);
    assert_eq!(v.get("/ui/stats?month=2026-1x").await.status, 400);
    assert_eq!(
        v.download("/ui/stats/report.xlsx?month=2999-01").await.0,
        400
    );
}
