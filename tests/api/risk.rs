//! Risk on one scale (issue 21 #4): the exchange carries a level 1–4, each node names the levels
//! with its own palette. Two bureaus with different palettes grade, see, edit and decide one
//! child; what people type (API bodies, the ledger CSV, `child update --set`, list filters) is read
//! with the local palette and anything else refused; the palette itself must name exactly four
//! distinct levels; `/metrics` counts the files served here per level; the `risk_scale` migration
//! maps the view column both ways.

use std::process::{Command, Output};

use serde_json::{json, Value};

use crate::helpers::{
    eventually, flowing_child, id_number, problem, spawn_app_with, spawn_pair_with, TestApp,
    CHENGDU,
};

fn palette(labels: [&str; 4]) -> Vec<String> {
    labels.map(String::from).to_vec()
}

/// The file at a node (`Null` while the node does not hold it).
async fn file_at(app: &TestApp, id: &str) -> Value {
    let r = app.get(&format!("/api/v1/children/{id}")).await;
    if r.status() != 200 {
        return Value::Null;
    }
    r.json().await.unwrap()
}

/// The value of a metric line (`name{labels}`), if the node reports it.
async fn metric(app: &TestApp, line_start: &str) -> Option<String> {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|rest| rest.strip_prefix(' '))
        .map(str::to_owned)
}

#[tokio::test]
async fn bureaus_with_different_palettes_grade_edit_and_decide_one_child() {
    // Zhengzhou (residence) names the levels 红黄蓝绿, Chengdu (hukou) 橙红黄绿: level 1 is 红 at
    // one and 橙 at the other.
    let pair = spawn_pair_with(|id, s| {
        s.records.risk_palette = if id == CHENGDU {
            palette(["橙", "红", "黄", "绿"])
        } else {
            palette(["红", "黄", "蓝", "绿"])
        };
    })
    .await;
    let mut child = flowing_child(601);
    child["risk_level"] = json!("蓝");
    let id = child["id_number"].as_str().unwrap().to_owned();
    let created = pair.residence.create_child(&child).await;
    assert_eq!(created["record"]["risk_level"], 3);
    assert_eq!(created["risk_label"], "蓝");
    eventually(20, "the file reaches Chengdu", || async {
        file_at(&pair.hukou, &id).await["record"]["risk_level"] == 3
    })
    .await;
    // Chengdu names level 3 黄, and edits what it owns while its palette has no 蓝.
    assert_eq!(file_at(&pair.hukou, &id).await["risk_label"], "黄");
    let r = pair
        .hukou
        .patch_json(
            &format!("/api/v1/children/{id}"),
            &json!({"hukou_address": "成都市锦江区春熙路1号"}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // The residence node grades 红: level 1.
    let graded: Value = pair
        .residence
        .patch_json(
            &format!("/api/v1/children/{id}"),
            &json!({"risk_level": "红"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(graded["record"]["risk_level"], 1);
    assert_eq!(graded["risk_label"], "红");
    // The version the exchange carries holds the number, not the label.
    assert_eq!(
        pair.residence
            .count("versions WHERE body LIKE '%\"risk_level\":1%' AND body NOT LIKE '%红%'"),
        1
    );
    // Chengdu sees level 1 under its own name, 橙, and lists it by either.
    eventually(20, "the grade reaches Chengdu", || async {
        file_at(&pair.hukou, &id).await["record"]["risk_level"] == 1
    })
    .await;
    assert_eq!(file_at(&pair.hukou, &id).await["risk_label"], "橙");
    for q in ["%E6%A9%99", "1"] {
        let page: Value = pair
            .hukou
            .get(&format!("/api/v1/children?risk_level={q}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(page["items"][0]["id_number"], id, "{q}: {page}");
        assert_eq!(page["items"][0]["risk_level"], 1);
        assert_eq!(page["items"][0]["risk_label"], "橙");
    }
    // 红 is level 2 at Chengdu: the red-risk list there is asked for by 橙 or 1.
    let page: Value = pair
        .hukou
        .get("/api/v1/children?risk_level=%E7%BA%A2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"], json!([]));
    assert_eq!(
        metric(&pair.hukou, "hukou_children_risk{level=\"1\"}").await,
        Some("1".into())
    );

    // Chengdu edits another field and decides a case for the child graded under another palette.
    let r = pair
        .hukou
        .patch_json(
            &format!("/api/v1/children/{id}"),
            &json!({"notes": "户籍地核实"}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let opened: Value = pair
        .residence
        .post_json(
            "/api/v1/cases",
            &json!({"child_id": id, "benefit": "dibao",
                    "grounds": {"summary": "家庭人均收入低于当地低保标准"},
                    "officers": {"requester": "ZZ-1"}}),
        )
        .await
        .json()
        .await
        .unwrap();
    let case_id = opened["case"]["case_id"].as_str().unwrap().to_owned();
    eventually(20, "the case is received", || async {
        let r = pair.hukou.get(&format!("/api/v1/cases/{case_id}")).await;
        r.status() == 200 && r.json::<Value>().await.unwrap()["case"]["state"] == "received"
    })
    .await;
    let r = pair
        .hukou
        .post_json(
            &format!("/api/v1/cases/{case_id}/transitions"),
            &json!({"transition": {"action": "approve", "effective_month": "2026-12"}}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    eventually(20, "the benefit and the note reach Zhengzhou", || async {
        let f = file_at(&pair.residence, &id).await;
        f["record"]["benefits"][0]["benefit"] == "dibao"
            && f["record"]["notes"] == "户籍地核实"
            && f["record"]["risk_level"] == 1
            && f["risk_label"] == "红"
    })
    .await;

    // Each node reads only its own labels: Zhengzhou has no 橙, Chengdu no 蓝.
    for (app, label) in [(&pair.residence, "橙"), (&pair.hukou, "蓝")] {
        let before = app.count("versions");
        let p = problem(
            app.patch_json(
                &format!("/api/v1/children/{id}"),
                &json!({"risk_level": label}),
            )
            .await,
            422,
            "invalid_field",
        )
        .await;
        assert_eq!(p["field"], "risk_level");
        assert_eq!(app.count("versions"), before);
    }
    problem(
        pair.hukou
            .get("/api/v1/children?risk_level=%E8%93%9D")
            .await,
        400,
        "invalid_query",
    )
    .await;
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

#[tokio::test]
async fn a_label_or_a_level_is_read_and_anything_else_refused_with_nothing_stored() {
    // 橙红黄绿: 橙 is level 1 here.
    let app = spawn_app_with(|s| s.records.risk_palette = palette(["橙", "红", "黄", "绿"])).await;
    let mut child = flowing_child(610);
    child["risk_level"] = json!("橙");
    let id = child["id_number"].as_str().unwrap().to_owned();
    let created = app.create_child(&child).await;
    assert_eq!(created["record"]["risk_level"], 1);
    assert_eq!(created["risk_label"], "橙");
    // The level's number, as a number or as text, is read as it is.
    let mut other = flowing_child(611);
    other["risk_level"] = json!("2");
    let other = app.create_child(&other).await;
    assert_eq!(other["record"]["risk_level"], 2);
    assert_eq!(other["risk_label"], "红");
    let path = format!("/api/v1/children/{id}");
    let r: Value = app
        .patch_json(&path, &json!({"risk_level": 4}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["record"]["risk_level"], 4);
    assert_eq!(r["risk_label"], "绿");

    let versions = app.count("versions");
    let events = app.count("audit_events");
    for bad in [
        json!("蓝"),
        json!("紫"),
        json!(0),
        json!(5),
        json!("0"),
        json!("5"),
        json!("1.5"),
        json!(1.5),
        json!(-1),
        json!(""),
        json!(true),
        json!(["橙"]),
        json!({"level": 1}),
    ] {
        let p = problem(
            app.patch_json(&path, &json!({"risk_level": bad})).await,
            422,
            "invalid_field",
        )
        .await;
        assert_eq!(p["field"], "risk_level", "{bad}");
        let mut c = flowing_child(612);
        c["risk_level"] = bad.clone();
        let p = problem(
            app.post_json("/api/v1/children", &c).await,
            422,
            "invalid_field",
        )
        .await;
        assert_eq!(p["field"], "risk_level", "{bad}");
    }
    let p = problem(
        app.patch_json(&path, &json!({"risk_level": "紫"})).await,
        422,
        "invalid_field",
    )
    .await;
    assert!(
        p["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("橙/红/黄/绿"),
        "{p}"
    );
    assert_eq!(app.count("versions"), versions);
    assert_eq!(app.count("audit_events"), events);
    // null clears the grade.
    let r: Value = app
        .patch_json(&path, &json!({"risk_level": null}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["record"]["risk_level"], Value::Null);
    assert_eq!(r["risk_label"], Value::Null);
    app.stop().await;
}

#[test]
fn a_palette_names_exactly_four_distinct_levels_most_severe_first() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    for (palette, says) in [
        (
            "[\"红\", \"黄\", \"绿\"]",
            "exactly four levels, most severe first",
        ),
        (
            "[\"红\", \"橙\", \"黄\", \"绿\", \"蓝\"]",
            "exactly four levels, most severe first",
        ),
        ("[\"红\", \"红\", \"黄\", \"绿\"]", "distinct"),
        ("[\"红\", \"2\", \"黄\", \"绿\"]", "not digits"),
        ("[\"红\", \" \", \"黄\", \"绿\"]", "non-empty"),
    ] {
        std::fs::write(&p, format!("[records]\nrisk_palette = {palette}\n")).unwrap();
        let e = hukou_sync::config::Settings::load(Some(&p))
            .unwrap_err()
            .to_string();
        assert!(e.contains("records.risk_palette"), "{palette}: {e}");
        assert!(e.contains(says), "{palette}: {e}");
    }
    std::fs::write(
        &p,
        "[records]\nrisk_palette = [\"橙\", \"红\", \"黄\", \"绿\"]\n",
    )
    .unwrap();
    let s = hukou_sync::config::Settings::load(Some(&p)).unwrap();
    let palette = s.risk_palette().unwrap();
    assert_eq!(
        palette.level_of("橙").unwrap(),
        hukou_sync::domain::RiskLevel::MOST_SEVERE
    );
}

/// Runs the binary against the app's database with a 橙红黄绿 palette.
fn bin(app: &TestApp, args: &[&str]) -> Output {
    let config = app.config_file();
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str("\n[records]\nrisk_palette = [\"橙\", \"红\", \"黄\", \"绿\"]\n");
    std::fs::write(&config, toml).unwrap();
    Command::new(env!("CARGO_BIN_EXE_hukou-sync"))
        .arg("--config")
        .arg(&config)
        .args(args)
        .env_remove("HUKOU_SYNC_CONFIG")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[tokio::test]
async fn a_ledger_grades_with_labels_or_digits_and_the_console_shows_labels() {
    let app = spawn_app_with(|s| s.records.risk_palette = palette(["橙", "红", "黄", "绿"])).await;
    let ids: Vec<String> = (0..5)
        .map(|i| id_number("510104", (2015, 3, 3), 620 + i))
        .collect();
    let mut csv = String::from("身份证号,姓名,户籍地区划代码,居住地区划代码,儿童类别,风险等级\n");
    for (id, grade) in ids.iter().zip(["橙", "1", "红", "4", "蓝"]) {
        csv.push_str(&format!("{id},王小,510104,410105,流动,{grade}\n"));
    }
    let path = app.dir.path().join("ledger.csv");
    std::fs::write(&path, csv).unwrap();
    // 蓝 is not a level here: the row is refused, naming the column's field.
    let out = bin(&app, &["import", path.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["errors"][0]["row"], 6);
    assert_eq!(summary["errors"][0]["field"], "risk_level");
    assert_eq!(app.count("children"), 0);
    ok(&bin(
        &app,
        &["import", path.to_str().unwrap(), "--skip-invalid"],
    ));
    let levels: Vec<Value> = {
        let mut out = Vec::new();
        for id in &ids[..4] {
            out.push(file_at(&app, id).await["record"]["risk_level"].clone());
        }
        out
    };
    assert_eq!(levels, vec![json!(1), json!(1), json!(2), json!(4)]);
    assert_eq!(app.count("children WHERE risk_level = '1'"), 2);

    // The console: list by label or digit, show the label, edit with a label.
    let listed = ok(&bin(&app, &["child", "list", "--risk", "橙"]));
    assert!(listed.contains("2 file(s)"), "{listed}");
    assert!(listed.contains("橙 (1)"), "{listed}");
    let listed = ok(&bin(&app, &["child", "list", "--risk-level", "2"]));
    assert!(
        listed.contains("1 file(s)") && listed.contains("红 (2)"),
        "{listed}"
    );
    let out = bin(&app, &["child", "list", "--risk", "蓝"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--risk-level"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(&bin(
        &app,
        &["child", "edit", &ids[3], "--set", "risk_level=黄"],
    ));
    let shown = ok(&bin(&app, &["child", "show", &ids[3], "--purpose", "核对"]));
    assert!(shown.contains("risk: 黄 (3)"), "{shown}");
    let out = bin(&app, &["child", "update", &ids[3], "--set", "risk_level=5"]);
    assert!(!out.status.success());

    // The export writes this node's labels in 风险等级, and reads back as it was.
    let export = ok(&bin(
        &app,
        &["export", "--purpose", "核对", "--format", "csv"],
    ));
    let header: Vec<&str> = export.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "risk_level").unwrap();
    let grades: Vec<String> = export
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(col).unwrap().to_owned())
        .collect();
    assert_eq!(grades, vec!["橙", "橙", "红", "黄"]);
    app.stop().await;
}

#[tokio::test]
async fn the_metric_counts_files_served_here_per_level() {
    let app = spawn_app_with(|s| s.records.risk_palette = palette(["红", "黄", "蓝", "绿"])).await;
    for (i, grade) in [json!("红"), json!(1), json!("蓝"), Value::Null]
        .into_iter()
        .enumerate()
    {
        let mut c = flowing_child(630 + i as u16);
        c["risk_level"] = grade;
        app.create_child(&c).await;
    }
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(text.contains("# TYPE hukou_children_risk gauge"), "{text}");
    for (level, n) in [("1", "2"), ("2", "0"), ("3", "1"), ("4", "0")] {
        assert!(
            text.contains(&format!("hukou_children_risk{{level=\"{level}\"}} {n}\n")),
            "level {level}: {text}"
        );
    }
    // Every line is a comment or `name{labels} value` (the exposition format).
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, value) = line.rsplit_once(' ').unwrap();
        value.parse::<f64>().unwrap();
    }
    app.stop().await;
}

/// The `risk_scale` migration on this backend: down maps the view column's levels back to the
/// default palette's labels, up maps those labels to levels and anything else to NULL.
#[tokio::test]
async fn the_migration_maps_the_default_labels_to_levels_and_back() {
    use diesel::RunQueryDsl;
    use diesel_migrations::MigrationHarness;
    use hukou_sync::storage::{self, DbConn, Store, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};

    let app = spawn_app_with(|_| {}).await;
    let mut ids = Vec::new();
    for (i, grade) in [json!(1), json!(2), json!(3), json!(4), Value::Null]
        .into_iter()
        .enumerate()
    {
        let mut c = flowing_child(640 + i as u16);
        c["risk_level"] = grade;
        ids.push(c["id_number"].as_str().unwrap().to_owned());
        app.create_child(&c).await;
    }
    let (settings, _db, _dir) = app.shut_down().await;
    let store = Store::open(&settings.database.url, 1).unwrap();
    let mut conn = store.conn().unwrap();
    let column = |conn: &mut DbConn| -> Vec<Option<String>> {
        #[derive(diesel::QueryableByName)]
        struct R {
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            risk_level: Option<String>,
        }
        let rows: Vec<R> = diesel::sql_query("SELECT risk_level FROM children ORDER BY id_number")
            .load(&mut *conn)
            .unwrap();
        rows.into_iter().map(|r| r.risk_level).collect()
    };
    let mut order = ids.clone();
    order.sort();
    let expect = |by_id: &dyn Fn(usize) -> Option<&'static str>| -> Vec<Option<String>> {
        order
            .iter()
            .map(|id| by_id(ids.iter().position(|i| i == id).unwrap()).map(String::from))
            .collect()
    };
    assert_eq!(
        column(&mut conn),
        expect(&|i| ["1", "2", "3", "4"].get(i).copied())
    );
    // Down, as far as risk_scale (later migrations first).
    loop {
        let reverted = match &mut *conn {
            DbConn::Sqlite(c) => c.revert_last_migration(SQLITE_MIGRATIONS),
            DbConn::Postgres(c) => c.revert_last_migration(POSTGRES_MIGRATIONS),
        }
        .unwrap()
        .to_string();
        if reverted.contains("100030") {
            break;
        }
    }
    assert_eq!(
        column(&mut conn),
        expect(&|i| ["红", "橙", "黄", "绿"].get(i).copied())
    );
    // A label of another palette in the old column cannot be read: up leaves it empty.
    diesel::sql_query(format!(
        "UPDATE children SET risk_level = '蓝' WHERE id_number = '{}'",
        ids[3]
    ))
    .execute(&mut *conn)
    .unwrap();
    storage::run_migrations(&mut conn).unwrap();
    assert_eq!(
        column(&mut conn),
        expect(&|i| ["1", "2", "3"].get(i).copied())
    );
}
