//! Accounts scoped to regions (issue 23 #2): a token or user limited to a district (`410105`)
//! or a street (`410105001`) sees only the children served within it — in the list, a file,
//! its visits and reports, the due list, cases, the statistics and the pages — and its edits,
//! creations and actions outside it get 403 `outside_scope`; the scope is shown on every page.
//! `admin user add --scope` refuses a malformed scope with a non-zero exit.

use hukou_sync::accounts::Role;
use serde_json::{json, Value};

use crate::helpers::{
    add_scoped_user, client_with_token, create_scoped_token, flowing_child, problem, spawn_app,
    TestApp,
};
use crate::ui::Visitor;

const PASSWORD: &str = "correct horse battery staple";

/// Three files: A on street 410105001 of 金水区, B on street 410105002 of 金水区, C in 中原区
/// (410102). Each has a report and a case; B is due for a visit. Returns their ID numbers.
async fn three_children(app: &TestApp) -> [String; 3] {
    let mut a = flowing_child(801);
    a["residence_township"] = json!("410105001");
    let mut b = flowing_child(802);
    b["residence_township"] = json!("410105002");
    let mut c = flowing_child(803);
    c["residence_region"] = json!("410102");
    let mut ids = Vec::new();
    for child in [a, b, c] {
        let id = child["id_number"].as_str().unwrap().to_owned();
        app.create_child(&child).await;
        let r = app
            .post_json(
                &format!("/api/v1/children/{id}/reports"),
                &json!({"reported_on": "2026-11-30", "reporter": {"kind": "公众"},
                        "seen": "晚上常听到孩子哭", "urgency": "normal"}),
            )
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let r = app
            .post_json(
                "/api/v1/cases",
                &json!({"child_id": id, "benefit": "dibao",
                        "grounds": {"summary": "家庭收入低于低保标准"},
                        "officers": {"requester": "ZZ-1"}}),
            )
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        ids.push(id);
    }
    app.exec("UPDATE children SET visit_due_on = '2020-01-01'");
    [ids[0].clone(), ids[1].clone(), ids[2].clone()]
}

/// The session's CSRF token, from a page's logout form.
async fn csrf_of(v: &mut Visitor) -> String {
    v.get("/ui/stats").await.hidden("csrf")
}

async fn get(http: &reqwest::Client, app: &TestApp, path: &str) -> reqwest::Response {
    http.get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap()
}

async fn json_of(http: &reqwest::Client, app: &TestApp, path: &str) -> Value {
    let r = get(http, app, path).await;
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

/// The ID numbers a list answer names under `items[].{key}`, sorted.
fn ids(v: &Value, key: &str) -> Vec<String> {
    let mut out: Vec<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            key.split('.')
                .fold(i, |v, k| &v[k])
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_district_token_sees_and_edits_only_its_district() {
    let app = spawn_app().await;
    let [a, b, c] = three_children(&app).await;
    let district = client_with_token(&create_scoped_token(
        &app.store,
        &app.node,
        "jinshui",
        Role::Caseworker,
        "410105",
    ));
    let mut in_district = vec![a.clone(), b.clone()];
    in_district.sort();

    // Lists: files, reports, the due list, cases.
    let list = json_of(&district, &app, "/api/v1/children").await;
    assert_eq!(ids(&list, "id_number"), in_district);
    let reports = json_of(&district, &app, "/api/v1/reports").await;
    assert_eq!(ids(&reports, "report.child_id"), in_district);
    let due = json_of(&district, &app, "/api/v1/visits/due?overdue=true").await;
    assert_eq!(ids(&due, "id_number"), in_district);
    let cases = json_of(&district, &app, "/api/v1/cases").await;
    let mut case_children: Vec<String> = cases
        .as_array()
        .or_else(|| cases["items"].as_array())
        .unwrap()
        .iter()
        .map(|c| c["child_id"].as_str().unwrap().to_owned())
        .collect();
    case_children.sort();
    assert_eq!(case_children, in_district);

    // The stale list: everyone's refreshed_on is old; the district sees its two.
    app.exec("UPDATE children SET refreshed_on = '2020-01-01'");
    let stale = json_of(&district, &app, "/api/v1/stale").await;
    assert_eq!(stale["total"], 2, "{stale}");
    let mut stale_ids: Vec<String> = stale["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id_number"].as_str().unwrap().to_owned())
        .collect();
    stale_ids.sort();
    assert_eq!(stale_ids, in_district);
    assert_eq!(
        app.get("/api/v1/stale")
            .await
            .json::<Value>()
            .await
            .unwrap()["total"],
        3
    );

    // One file, its visits and reports: outside the district it is not there.
    assert_eq!(
        get(&district, &app, &format!("/api/v1/children/{a}"))
            .await
            .status(),
        200
    );
    for path in [
        format!("/api/v1/children/{c}"),
        format!("/api/v1/children/{c}/visits"),
        format!("/api/v1/children/{c}/reports"),
    ] {
        let r = get(&district, &app, &path).await;
        assert_eq!(r.status(), 404, "{path}");
    }

    // Edits outside: 403 outside_scope, nothing stored.
    let before = app
        .get(&format!("/api/v1/children/{c}"))
        .await
        .text()
        .await
        .unwrap();
    let r = district
        .patch(format!("{}/api/v1/children/{c}", app.base))
        .json(&json!({"name": "李四"}))
        .send()
        .await
        .unwrap();
    problem(r, 403, "outside_scope").await;
    let r = district
        .post(format!("{}/api/v1/children/{c}/visits", app.base))
        .json(&json!({"visited_on": "2026-12-01",
                      "visitor": {"name": "李娟", "role": "children_director"},
                      "kind": "home", "seen": ["child"]}))
        .send()
        .await
        .unwrap();
    problem(r, 403, "outside_scope").await;
    let r = district
        .post(format!("{}/api/v1/cases", app.base))
        .json(&json!({"child_id": c, "benefit": "tekun",
                      "grounds": {"summary": "无劳动能力"}, "officers": {"requester": "ZZ-1"}}))
        .send()
        .await
        .unwrap();
    problem(r, 403, "outside_scope").await;
    let after = app
        .get(&format!("/api/v1/children/{c}"))
        .await
        .text()
        .await
        .unwrap();
    let strip = |s: &str| {
        let mut v: Value = serde_json::from_str(s).unwrap();
        v.as_object_mut().unwrap().remove("updated_at");
        v
    };
    assert_eq!(strip(&before)["record"], strip(&after)["record"]);

    // A creation outside the district: 403, nothing stored; inside: 201.
    let mut d = flowing_child(804);
    d["residence_region"] = json!("410102");
    let d_id = d["id_number"].as_str().unwrap().to_owned();
    let r = district
        .post(format!("{}/api/v1/children?lookup=false", app.base))
        .json(&d)
        .send()
        .await
        .unwrap();
    problem(r, 403, "outside_scope").await;
    assert_eq!(
        app.get(&format!("/api/v1/children/{d_id}")).await.status(),
        404
    );
    d["residence_region"] = json!("410105");
    let r = district
        .post(format!("{}/api/v1/children?lookup=false", app.base))
        .json(&d)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    // An edit inside: 200.
    let r = district
        .patch(format!("{}/api/v1/children/{a}", app.base))
        .json(&json!({"name": "张晓明"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // Statistics: only the district's files, and the scope named.
    let s = json_of(&district, &app, "/api/v1/stats").await;
    assert_eq!(s["files"], 3, "{s}");
    assert_eq!(s["scope"], "410105");
    let whole = app
        .get("/api/v1/stats")
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(whole["files"], 4);
    assert_eq!(whole["scope"], "*");
}

#[tokio::test]
async fn a_street_account_sees_its_street_on_the_pages() {
    let app = spawn_app().await;
    let [a, b, c] = three_children(&app).await;
    let street = client_with_token(&create_scoped_token(
        &app.store,
        &app.node,
        "street-1",
        Role::Reviewer,
        "410105001",
    ));
    let list = json_of(&street, &app, "/api/v1/children").await;
    assert_eq!(ids(&list, "id_number"), vec![a.clone()]);
    let due = json_of(&street, &app, "/api/v1/visits/due?overdue=true").await;
    assert_eq!(ids(&due, "id_number"), vec![a.clone()]);
    assert_eq!(
        get(&street, &app, &format!("/api/v1/children/{b}"))
            .await
            .status(),
        404
    );

    // A person with the same scope: the scope is on every page; a file outside is not found.
    add_scoped_user(&app, "wang", Role::Reviewer, PASSWORD, "410105001");
    let mut v = Visitor::new(&app);
    v.login("wang", PASSWORD).await;
    for path in ["/ui/conflicts", "/ui/cases", "/ui/stats"] {
        let p = v.get(path).await;
        assert_eq!(p.status, 200, "{path}");
        assert!(
            p.body.contains("范围 (scope): 410105001"),
            "{path}: {}",
            p.body
        );
    }
    assert_eq!(v.get(&format!("/ui/children/{a}")).await.status, 200);
    for other in [&b, &c] {
        assert_eq!(v.get(&format!("/ui/children/{other}")).await.status, 404);
    }
    // The pages keep to the scope too: the due list and the files list name only A.
    for path in ["/ui/visits/due?overdue=1", "/ui/children"] {
        let p = v.get(path).await;
        assert_eq!(p.status, 200, "{path}");
        for (id, shown) in [(&a, true), (&b, false), (&c, false)] {
            let masked = hukou_sync::domain::IdNumber::mask_text(id);
            assert_eq!(p.body.contains(&masked), shown, "{path}: {masked}");
        }
    }
    // A resolution posted for a file outside the scope: not found, nothing shown.
    let csrf = csrf_of(&mut v).await;
    let p = v
        .post(
            &format!("/ui/conflicts/{c}"),
            &[("csrf", &csrf), ("choice.name", "c9")],
        )
        .await;
    assert_eq!(p.status, 404, "{}", p.body);
    assert!(!p.body.contains("张小明"));
    let cases = v.get("/ui/cases").await;
    assert!(!cases.body.contains(&c[..6]) || !cases.body.contains(&c[14..]));

    // A whole-node account's pages say so.
    add_scoped_user(&app, "li", Role::Reviewer, PASSWORD, "*");
    let mut w = Visitor::new(&app);
    w.login("li", PASSWORD).await;
    assert!(w
        .get("/ui/stats")
        .await
        .body
        .contains("范围 (scope): 全节点 (whole node)"));
}

#[tokio::test]
async fn a_malformed_scope_is_refused_at_the_console() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let app = spawn_app().await;
    let bin = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hukou-sync"));
        c.arg("--config")
            .arg(app.config_file())
            .env_remove("HUKOU_SYNC_CONFIG");
        c
    };
    let add = |scope: &str| {
        let mut child = bin()
            .args([
                "admin",
                "user",
                "add",
                "zhao",
                "--role",
                "caseworker",
                "--scope",
                scope,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = add("41x");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("41x"), "{err}");
    // Nothing stored: the name is still free, and a good scope is kept normalised.
    let out = add("410105，410102,41010500");
    assert!(!out.status.success(), "an 8-digit prefix is refused");
    let out = add("410105，410102");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bin()
        .args(["admin", "user", "list", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let users: Value = serde_json::from_slice(&out.stdout).unwrap();
    let zhao = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "zhao")
        .unwrap();
    assert_eq!(zhao["scope"], "410102,410105");
    // A new scope ends the user's sessions and applies at once.
    let out = bin()
        .args(["admin", "user", "scope", "zhao", "410105001"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bin()
        .args(["admin", "user", "scope", "nobody", "410105"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
