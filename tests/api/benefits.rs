//! Benefits over time (issue 22 #1): ending a benefit as the hukou bureau, the exclusivity and
//! precedence rules an approval is checked against, the age-out job and the review due list.

use serde_json::{json, Value};

use crate::helpers::{flowing_child, id_number, problem, spawn_app, spawn_app_with, TestApp};

async fn file(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/v1/children/{id}"))
        .await
        .json()
        .await
        .unwrap()
}

async fn end(app: &TestApp, id: &str, benefit: &str, body: Value) -> reqwest::Response {
    app.post_json(
        &format!("/api/v1/children/{id}/benefits/{benefit}/end"),
        &body,
    )
    .await
}

/// A child holding `benefits`, on `app`; its ID number.
async fn child_with(app: &TestApp, seq: u16, benefits: Value) -> String {
    let mut child = flowing_child(seq);
    child["benefits"] = benefits;
    app.create_child(&child).await;
    child["id_number"].as_str().unwrap().to_owned()
}

async fn audited(app: &TestApp, action: &str) -> Vec<Value> {
    let page: Value = app
        .get(&format!("/api/v1/audit/events?action={action}"))
        .await
        .json()
        .await
        .unwrap();
    page["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn the_hukou_bureau_ends_a_benefit_and_the_grant_stays_as_history() {
    let app = spawn_app().await;
    let id = child_with(
        &app,
        1,
        json!([{"benefit": "dibao", "since": "2026-01", "review_on": "2027-01-15"}]),
    )
    .await;
    let versions = app.count("versions");

    // An end month before the start, a benefit the child does not hold, an unknown benefit,
    // an unknown reason: refused, nothing stored.
    let p = problem(
        end(
            &app,
            &id,
            "dibao",
            json!({"month": "2025-12", "reason": "income_over"}),
        )
        .await,
        422,
        "invalid_field",
    )
    .await;
    assert_eq!(p["field"], "month", "{p}");
    assert!(p["reason"].as_str().unwrap().contains("2026-01"), "{p}");
    let p = problem(
        end(
            &app,
            &id,
            "tekun",
            json!({"month": "2026-11", "reason": "changed"}),
        )
        .await,
        422,
        "invalid_field",
    )
    .await;
    assert_eq!(p["field"], "benefit", "{p}");
    assert!(
        p["reason"]
            .as_str()
            .unwrap()
            .contains("does not hold tekun"),
        "{p}"
    );
    let p = problem(
        end(
            &app,
            &id,
            "bonus",
            json!({"month": "2026-11", "reason": "changed"}),
        )
        .await,
        400,
        "invalid_path",
    )
    .await;
    assert_eq!(p["field"], "benefit");
    let p = problem(
        end(
            &app,
            &id,
            "dibao",
            json!({"month": "2026-11", "reason": "bored"}),
        )
        .await,
        422,
        "invalid_field",
    )
    .await;
    assert_eq!(p["field"], "reason");
    problem(
        end(
            &app,
            &id,
            "dibao",
            json!({"month": "2026-11", "reason": "other", "by": "x"}),
        )
        .await,
        422,
        "invalid_field",
    )
    .await;
    assert_eq!(app.count("versions"), versions);

    // The Chinese label names the benefit and the reason as well.
    let r = end(
        &app,
        &id,
        "%E4%BD%8E%E4%BF%9D",
        json!({"month": "2026-11", "reason": "收入超标", "note": "2026年复核：家庭人均收入超过标准"}),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let f: Value = r.json().await.unwrap();
    assert_eq!(
        f["record"]["benefits"],
        json!([{"benefit": "dibao", "since": "2026-01", "review_on": "2027-01-15",
                "ended": {"month": "2026-11", "reason": "income_over", "note": "2026年复核：家庭人均收入超过标准"}}])
    );
    assert_eq!(app.count("versions"), versions + 1);
    let events = audited(&app, "benefit.end").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event"]["object_id"], id.as_str(), "{events:?}");
    // Ended: ending again is refused; granting it again starts a second grant beside the first.
    let p = problem(
        end(
            &app,
            &id,
            "dibao",
            json!({"month": "2026-12", "reason": "other"}),
        )
        .await,
        422,
        "invalid_field",
    )
    .await;
    assert_eq!(p["field"], "benefit");
    let mut benefits = f["record"]["benefits"].clone();
    benefits
        .as_array_mut()
        .unwrap()
        .push(json!({"benefit": "dibao", "since": "2027-03"}));
    let r = app
        .patch_json(
            &format!("/api/v1/children/{id}"),
            &json!({"benefits": benefits}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // Two active grants of one benefit, or an end before the start, are refused in an edit too.
    benefits
        .as_array_mut()
        .unwrap()
        .push(json!({"benefit": "dibao", "since": "2027-04"}));
    let p = problem(
        app.patch_json(
            &format!("/api/v1/children/{id}"),
            &json!({"benefits": benefits}),
        )
        .await,
        422,
        "invalid_field",
    )
    .await;
    assert!(p["reason"].as_str().unwrap().contains("held twice"), "{p}");
    let p = problem(
        app.patch_json(
            &format!("/api/v1/children/{id}"),
            &json!({"benefits": [{"benefit": "tekun", "since": "2026-05",
                                  "ended": {"month": "2026-04", "reason": "changed"}}]}),
        )
        .await,
        422,
        "invalid_field",
    )
    .await;
    assert_eq!(p["field"], "benefits");
    app.stop().await;
}

#[tokio::test]
async fn only_the_hukou_bureau_ends_a_benefit() {
    // Serving Zhengzhou only: the residence bureau of a Chengdu child.
    let app = spawn_app_with(|s| {
        s.node.serves = vec![hukou_sync::domain::RegionPrefix::parse("41").unwrap()]
    })
    .await;
    let id = child_with(&app, 2, json!([{"benefit": "tekun", "since": "2026-01"}])).await;
    let p = problem(
        end(
            &app,
            &id,
            "tekun",
            json!({"month": "2026-11", "reason": "changed"}),
        )
        .await,
        403,
        "field_not_owned",
    )
    .await;
    assert_eq!(p["field"], "benefits");
    assert!(file(&app, &id).await["record"]["benefits"][0]["ended"].is_null());
    app.stop().await;
}

/// Opens a case for `benefit` and approves it (one node serves both regions); the case's id,
/// the number of stored versions before the approval and the approval's answer.
async fn open_and_approve(
    app: &TestApp,
    id: &str,
    benefit: &str,
) -> (String, i64, reqwest::Response) {
    let r = app
        .post_json(
            "/api/v1/cases",
            &json!({"child_id": id, "benefit": benefit,
                    "grounds": {"summary": "父母双亡，由祖母抚养"},
                    "officers": {"requester": "ZZ-1"}}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let case: Value = r.json().await.unwrap();
    let case_id = case["case"]["case_id"].as_str().unwrap().to_owned();
    assert_eq!(case["case"]["state"], "received", "{case}");
    let versions = app.count("versions");
    let r = app
        .post_json(
            &format!("/api/v1/cases/{case_id}/transitions"),
            &json!({"transition": {"action": "approve", "effective_month": "2026-12", "review_on": "2027-12-01"}}),
        )
        .await;
    (case_id, versions, r)
}

#[tokio::test]
async fn an_approval_that_would_stack_excluded_benefits_is_refused() {
    let app = spawn_app().await;
    let id = child_with(&app, 3, json!([{"benefit": "tekun", "since": "2026-01"}])).await;

    // 特困 and 低保 exclude each other: refused, naming the benefit held; nothing stored.
    let (case_id, versions, r) = open_and_approve(&app, &id, "dibao").await;
    let p = problem(r, 422, "benefit_excluded").await;
    assert_eq!(p["field"], "benefit", "{p}");
    assert_eq!(p["conflicting_benefit"], "tekun", "{p}");
    let reason = p["reason"].as_str().unwrap();
    assert!(
        reason.contains("tekun") && reason.contains("特困"),
        "{reason}"
    );
    let case: Value = app
        .get(&format!("/api/v1/cases/{case_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(case["case"]["state"], "received");
    assert_eq!(app.count("versions"), versions);
    assert_eq!(
        file(&app, &id).await["record"]["benefits"],
        json!([{"benefit": "tekun", "since": "2026-01"}])
    );

    // 孤儿基本生活费 takes precedence over 特困: approved, and 特困 ends in the same month.
    let (_, _, r) = open_and_approve(&app, &id, "orphan_allowance").await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let f = file(&app, &id).await;
    let benefits = f["record"]["benefits"].as_array().unwrap();
    assert_eq!(benefits.len(), 2, "{f}");
    assert_eq!(benefits[0]["benefit"], "tekun");
    assert_eq!(benefits[0]["ended"]["month"], "2026-12");
    assert_eq!(benefits[0]["ended"]["reason"], "changed");
    assert!(benefits[0]["ended"]["note"]
        .as_str()
        .unwrap()
        .contains("孤儿基本生活费"));
    assert_eq!(
        benefits[1],
        json!({"benefit": "orphan_allowance", "since": "2026-12", "review_on": "2027-12-01"})
    );
    assert_eq!(audited(&app, "benefit.end").await.len(), 1);
    // The approval is the recognition (认定): 孤儿 is in the file, shown apart.
    assert_eq!(f["recognised_categories"], json!(["orphan"]), "{f}");
    assert!(f["record"]["categories"]
        .as_array()
        .unwrap()
        .contains(&json!("orphan")));

    // Now 特困 and 事实无人抚养儿童生活补贴 are refused, each naming the orphan allowance.
    for benefit in ["tekun", "de_facto_unsupported_subsidy"] {
        let (_, _, r) = open_and_approve(&app, &id, benefit).await;
        let p = problem(r, 422, "benefit_excluded").await;
        assert_eq!(p["conflicting_benefit"], "orphan_allowance", "{p}");
    }
    // 低保 is compatible with the orphan allowance.
    let (_, _, r) = open_and_approve(&app, &id, "dibao").await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    app.stop().await;
}

#[tokio::test]
async fn exclusivity_is_configurable() {
    // A bureau that lets 特困 and 低保 stack.
    let app = spawn_app_with(|s| {
        s.eligibility.exclusive = vec![];
    })
    .await;
    let id = child_with(&app, 4, json!([{"benefit": "tekun", "since": "2026-01"}])).await;
    let (_, _, r) = open_and_approve(&app, &id, "dibao").await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    app.stop().await;
}

/// Today in China, and the day `years` before it.
fn china_today() -> chrono::NaiveDate {
    hukou_sync::sync::ledger::china_today(chrono::Utc::now())
}

fn years_ago(years: u32) -> (i32, u32, u32) {
    use chrono::Datelike;
    let d = china_today()
        .checked_sub_months(chrono::Months::new(12 * years))
        .unwrap();
    (d.year(), d.month(), d.day())
}

/// A child with its hukou and residence in Chengdu born on `birth`, not visited for long.
async fn person(
    app: &TestApp,
    birth: (i32, u32, u32),
    seq: u16,
    education: Option<&str>,
    benefits: Value,
) -> String {
    let id = id_number("510104", birth, seq);
    app.create_child(&json!({
        "id_number": id, "name": "李小红", "hukou_region": "510104", "residence_region": "510104",
        "categories": ["orphan"], "education_status": education, "benefits": benefits,
        "last_visit_on": format!("{}-01-02", birth.0 + 1), "info_updated_on": format!("{}-01-02", birth.0 + 1),
    }))
    .await;
    id
}

#[tokio::test]
async fn at_18_the_age_limited_benefits_end_and_the_file_leaves_the_work_lists() {
    let app = spawn_app().await;
    let month = china_today().format("%Y-%m").to_string();
    let orphan = json!([{"benefit": "orphan_allowance", "since": "2020-01"}, {"benefit": "dibao", "since": "2021-03"}]);
    // 18 today, not in school: the orphan allowance ends; 低保 is not age-limited.
    let adult = person(&app, years_ago(18), 11, None, orphan.clone()).await;
    // 19 and at a vocational school: kept; 23 and still at school: past the limit (22).
    let student = person(
        &app,
        years_ago(19),
        12,
        Some("vocational"),
        json!([{"benefit": "de_facto_unsupported_subsidy", "since": "2019-01"}]),
    )
    .await;
    let too_old = person(
        &app,
        years_ago(23),
        13,
        Some("senior_secondary"),
        json!([{"benefit": "orphan_allowance", "since": "2015-01"}]),
    )
    .await;
    let minor = person(&app, years_ago(17), 14, None, orphan.clone()).await;

    let run = || {
        let mut conn = app.store.conn().unwrap();
        hukou_sync::eligibility::benefits::age_out(&mut conn, &app.node, chrono::Utc::now())
            .unwrap()
    };
    // The node's own age-out job runs once at start, when its lease is taken, which may fall
    // after some of these files were written: the two together end exactly two (the audited
    // events below), and a further run ends nothing.
    assert!(run() <= 2);
    let f = file(&app, &adult).await;
    assert_eq!(
        f["record"]["benefits"][0]["ended"],
        json!({"month": month, "reason": "age_18", "note": "18 or older and not in school"}),
        "{f}"
    );
    assert!(f["record"]["benefits"][1]["ended"].is_null(), "{f}");
    assert!(file(&app, &student).await["record"]["benefits"][0]["ended"].is_null());
    let f = file(&app, &too_old).await;
    assert_eq!(
        f["record"]["benefits"][0]["ended"]["reason"], "age_18",
        "{f}"
    );
    assert!(file(&app, &minor).await["record"]["benefits"][0]["ended"].is_null());
    let events = audited(&app, "benefit.end").await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["event"]["actor"]["id"], "job:age-out");
    // Run again: nothing more to end.
    assert_eq!(run(), 0);

    // Adults leave the visit due list and the stale lists; the minor stays on them.
    let due: Value = app
        .get("/api/v1/visits/due?within_days=366")
        .await
        .json()
        .await
        .unwrap();
    let listed: Vec<&str> = due["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id_number"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![minor.as_str()], "{due}");
    let stale: Value = app
        .get("/api/v1/children?stale_days=183")
        .await
        .json()
        .await
        .unwrap();
    let listed: Vec<&str> = stale["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id_number"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![minor.as_str()], "{stale}");
    let stale: Value = app
        .get("/api/v1/stale?days=183")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stale["total"], 1, "{stale}");
    // Still readable, and in the plain list.
    let all: Value = app.get("/api/v1/children").await.json().await.unwrap();
    assert_eq!(all["items"].as_array().unwrap().len(), 4);
    app.stop().await;
}

#[tokio::test]
async fn review_dates_make_a_due_list() {
    let app = spawn_app().await;
    let today = china_today();
    let soon = (today + chrono::Days::new(10)).to_string();
    let late = (today + chrono::Days::new(100)).to_string();
    let past = (today - chrono::Days::new(3)).to_string();
    let a = child_with(
        &app,
        21,
        json!([{"benefit": "dibao", "since": "2026-01", "review_on": soon}]),
    )
    .await;
    let b = child_with(
        &app,
        22,
        json!([{"benefit": "tekun", "since": "2025-01", "review_on": past},
        {"benefit": "orphan_allowance", "since": "2024-01", "review_on": past,
         "ended": {"month": "2024-12", "reason": "changed"}}]),
    )
    .await;
    child_with(
        &app,
        23,
        json!([{"benefit": "dibao", "since": "2026-01", "review_on": late}]),
    )
    .await;
    let page: Value = app
        .get("/api/v1/benefits/review-due?within_days=30")
        .await
        .json()
        .await
        .unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{page}");
    assert_eq!(items[0]["id_number"], b.as_str());
    assert_eq!(items[0]["benefit"], "tekun");
    assert_eq!(items[0]["overdue"], true);
    assert_eq!(items[1]["id_number"], a.as_str());
    assert_eq!(items[1]["overdue"], false);
    assert!(page["next_after"].is_null());
    let page: Value = app
        .get("/api/v1/benefits/review-due?within_days=0")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    // Paging scans `limit` files at a time.
    let page: Value = app
        .get("/api/v1/benefits/review-due?within_days=366&limit=2")
        .await
        .json()
        .await
        .unwrap();
    let next = page["next_after"].as_str().unwrap().to_owned();
    let rest: Value = app
        .get(&format!(
            "/api/v1/benefits/review-due?within_days=366&limit=2&after={next}"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        page["items"].as_array().unwrap().len() + rest["items"].as_array().unwrap().len(),
        3
    );
    for bad in ["within_days=400", "limit=0", "after=123", "colour=red"] {
        let p = problem(
            app.get(&format!("/api/v1/benefits/review-due?{bad}")).await,
            400,
            "invalid_query",
        )
        .await;
        assert!(p["field"].is_string() || bad.starts_with("colour"), "{p}");
    }
    assert_eq!(audited(&app, "benefit.review_due").await.len(), 4);
    app.stop().await;
}

#[tokio::test]
async fn the_command_line_ends_a_benefit_and_lists_reviews() {
    let app = spawn_app().await;
    let review = (china_today() + chrono::Days::new(5)).to_string();
    let id = child_with(
        &app,
        31,
        json!([{"benefit": "tekun", "since": "2026-01", "review_on": review}]),
    )
    .await;
    let bin = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hukou-sync"))
            .arg("--config")
            .arg(app.config_file())
            .args(args)
            .env_remove("HUKOU_SYNC_CONFIG")
            .output()
            .unwrap()
    };
    let out = bin(&["benefit", "review-due", "--within-days", "7"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(&id) && text.contains("特困"),
        "{text}"
    );
    let out = bin(&[
        "child",
        "end-benefit",
        &id,
        "特困",
        "--month",
        "2025-12",
        "--reason",
        "changed",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("before the benefit started"));
    let out = bin(&[
        "child",
        "end-benefit",
        &id,
        "tekun",
        "--month",
        "2026-12",
        "--reason",
        "死亡",
        "--note",
        "死亡证明 2026-120",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ended tekun"));
    let f = file(&app, &id).await;
    assert_eq!(
        f["record"]["benefits"][0]["ended"]["reason"], "deceased",
        "{f}"
    );
    let out = bin(&["benefit", "review-due", "--within-days", "7"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no benefit due"));
    // The ledger's 享受待遇 column lists what the child holds; the JSON Lines keep the history.
    let out = bin(&["export", "--purpose", "测试"]);
    let csv = String::from_utf8_lossy(&out.stdout);
    let line = csv.lines().find(|l| l.contains(&id)).unwrap();
    assert!(!line.contains("tekun") && !line.contains("特困"), "{line}");
    let out = bin(&["export", "--format", "jsonl", "--purpose", "测试"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"deceased\""));
    let out = bin(&["benefit", "age-out"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 file(s)"));
    app.stop().await;
}

/// Ending is a signed version like any edit: it reaches the residence bureau, which may not end
/// a benefit itself.
#[tokio::test]
async fn an_ended_benefit_reaches_the_residence_bureau() {
    let pair = crate::helpers::spawn_pair().await;
    let child = flowing_child(41);
    let id = child["id_number"].as_str().unwrap().to_owned();
    pair.residence.create_child(&child).await;
    crate::helpers::eventually(20, "the file reaches the hukou node", || async {
        pair.hukou
            .get(&format!("/api/v1/children/{id}"))
            .await
            .status()
            == 200
    })
    .await;
    let r = pair
        .hukou
        .patch_json(
            &format!("/api/v1/children/{id}"),
            &json!({"benefits": [{"benefit": "dibao", "since": "2026-01"}]}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    crate::helpers::eventually(20, "the grant reaches the residence node", || async {
        file(&pair.residence, &id).await["record"]["benefits"][0]["benefit"] == "dibao"
    })
    .await;
    problem(
        end(
            &pair.residence,
            &id,
            "dibao",
            json!({"month": "2026-11", "reason": "moved_out"}),
        )
        .await,
        403,
        "field_not_owned",
    )
    .await;
    let r = end(
        &pair.hukou,
        &id,
        "dibao",
        json!({"month": "2026-11", "reason": "迁出"}),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    crate::helpers::eventually(20, "the end reaches the residence node", || async {
        file(&pair.residence, &id).await["record"]["benefits"][0]["ended"]
            == json!({"month": "2026-11", "reason": "moved_out"})
    })
    .await;
}

/// 孤儿 and 事实无人抚养 are the hukou bureau's recognitions (认定): the residence bureau can
/// neither create a file saying so nor add or remove them; the hukou bureau can, and the
/// residence bureau shows them as recognised.
#[tokio::test]
async fn only_the_hukou_bureau_recognises_an_orphan() {
    let pair = crate::helpers::spawn_pair().await;
    let (residence, hukou) = (&pair.residence, &pair.hukou);
    let mut child = flowing_child(61);
    let id = child["id_number"].as_str().unwrap().to_owned();
    child["categories"] = json!(["flowing", "orphan"]);
    let p = problem(
        residence.post_json("/api/v1/children", &child).await,
        403,
        "recognition_not_owned",
    )
    .await;
    assert_eq!(p["field"], "categories");
    assert!(p["reason"].as_str().unwrap().contains("孤儿"), "{p}");
    assert_eq!(residence.count("children"), 0);
    child["categories"] = json!(["flowing"]);
    residence.create_child(&child).await;
    let versions = residence.count("versions");
    let p = problem(
        residence
            .patch_json(
                &format!("/api/v1/children/{id}"),
                &json!({"categories": ["flowing", "de_facto_unsupported"]}),
            )
            .await,
        403,
        "recognition_not_owned",
    )
    .await;
    assert_eq!(p["field"], "categories");
    assert_eq!(residence.count("versions"), versions);
    // An observation is the residence bureau's to make.
    let r = residence
        .patch_json(
            &format!("/api/v1/children/{id}"),
            &json!({"categories": ["flowing", "in_difficulty"]}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    crate::helpers::eventually(30, "the hukou bureau holds the file", || async {
        hukou.get(&format!("/api/v1/children/{id}")).await.status() == 200
            && file(hukou, &id).await["record"]["categories"] == json!(["flowing", "in_difficulty"])
    })
    .await;
    // The hukou bureau recognises the child as de-facto unsupported.
    let r = hukou
        .patch_json(
            &format!("/api/v1/children/{id}"),
            &json!({"categories": ["de_facto_unsupported", "flowing", "in_difficulty"]}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    crate::helpers::eventually(30, "the residence bureau shows the recognition", || async {
        file(residence, &id).await["recognised_categories"] == json!(["de_facto_unsupported"])
    })
    .await;
    // And the residence bureau cannot take it away.
    problem(
        residence
            .patch_json(
                &format!("/api/v1/children/{id}"),
                &json!({"categories": ["flowing"]}),
            )
            .await,
        403,
        "recognition_not_owned",
    )
    .await;
}
