//! Issue 18, the admin listener: what probing from outside found, each with the test that
//! failed before its fix — login answers, bounded parameters and permission first, CSV
//! injection and encodings, invisible characters, headers, time filters, masking for auditors,
//! duplicate JSON keys, HTTP manners, and a panicking handler.

use std::process::{Command, Output};

use hukou_sync::accounts::Role;
use serde_json::{json, Value};

use crate::helpers::{
    add_user, client_with_token, create_token, flowing_child, id_number, problem, spawn_app,
    spawn_app_with, TestApp,
};
use crate::ui::Visitor;

const PASSWORD: &str = "correct horse battery";
const WRONG: &str = "用户名或密码错误";

fn bin(app: &TestApp, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hukou-sync"))
        .arg("--config")
        .arg(app.config_file())
        .args(args)
        .env_remove("HUKOU_SYNC_CONFIG")
        .output()
        .unwrap()
}

fn token_client(app: &TestApp, role: Role) -> reqwest::Client {
    let name = format!("t-{}", uuid::Uuid::now_v7().simple());
    client_with_token(&create_token(&app.store, &app.node, &name, role))
}

async fn events(app: &TestApp, query: &str) -> Vec<Value> {
    let v: Value = app
        .get(&format!("/api/v1/audit/events?{query}"))
        .await
        .json()
        .await
        .unwrap();
    v["items"].as_array().unwrap().clone()
}

// ---------------------------------------------------------------------------------------------
// 1. Lockout and disabled accounts answer as a wrong password; attempts per client are limited.

#[tokio::test]
async fn a_locked_or_disabled_account_answers_exactly_as_a_wrong_password() {
    let app = spawn_app_with(|s| s.admin.login_attempts_per_client = 1000).await;
    add_user(&app, "li.wei", Role::Caseworker, PASSWORD);
    let mut v = Visitor::new(&app);
    let wrong = v.login("li.wei", "not the password").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains(WRONG));
    for _ in 0..4 {
        assert_eq!(v.login("li.wei", "not the password").await.status, 401);
    }
    assert_eq!(events(&app, "action=user.lockout").await.len(), 1);
    // Locked: the right password gets the wrong password's answer, nothing about a lock.
    let right = v.login("li.wei", PASSWORD).await;
    assert_eq!(right.status, 401);
    assert!(right.body.contains(WRONG), "{}", right.body);
    assert!(!right.body.contains("锁定"), "{}", right.body);
    assert_eq!(right.body.len(), wrong.body.len(), "the same page");
    // Wrong guesses during the lock still count: five more extend it.
    for _ in 0..5 {
        assert_eq!(v.login("li.wei", "still not it!!").await.status, 401);
    }
    assert_eq!(events(&app, "action=user.lockout").await.len(), 2);

    // A disabled account: the right password gets the same answer as a wrong one.
    add_user(&app, "zhao.min", Role::Caseworker, PASSWORD);
    {
        let mut conn = app.store.conn().unwrap();
        hukou_sync::accounts::set_disabled(
            &mut conn,
            app.node.clock.now(),
            &hukou_sync::audit::Actor::console(),
            "zhao.min",
            true,
            chrono::Utc::now(),
        )
        .unwrap();
    }
    let p = v.login("zhao.min", PASSWORD).await;
    assert_eq!(p.status, 401);
    assert!(p.body.contains(WRONG), "{}", p.body);
    assert!(!p.body.contains("停用"), "{}", p.body);
    app.stop().await;
}

#[tokio::test]
async fn login_attempts_per_client_address_are_limited() {
    let app = spawn_app_with(|s| s.admin.login_attempts_per_client = 3).await;
    add_user(&app, "wang.fang", Role::Caseworker, PASSWORD);
    let mut v = Visitor::new(&app);
    // Three failures under different names use up this address's attempts…
    for name in ["a1", "a2", "a3"] {
        assert_eq!(v.login(name, "not the password").await.status, 401);
    }
    // …so even a right password is refused with 429 until the window slides.
    let p = v.login("wang.fang", PASSWORD).await;
    assert_eq!(p.status, 429, "{}", p.body);
    assert!(p.body.contains("Too many failed logins"), "{}", p.body);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 2. Numeric parameters are bounded; permission is checked before anything is parsed.

#[tokio::test]
async fn numeric_parameters_are_bounded_and_permission_comes_first() {
    let app = spawn_app().await;
    let r = app.get("/api/v1/children?stale_days=2147483647").await;
    let p = problem(r, 400, "invalid_query").await;
    assert_eq!(p["field"], "stale_days");
    // The node still answers (a panic used to drop the connection).
    assert_eq!(app.get("/healthz").await.status(), 200);
    for (q, field) in [
        ("/api/v1/children?limit=0", "limit"),
        ("/api/v1/children?stale_days=0", "stale_days"),
        ("/api/v1/cases?limit=5000", "limit"),
        ("/api/v1/audit/events?after=-1", "after"),
        ("/api/v1/conflicts?limit=70000", "limit"),
        ("/api/v1/stale?days=36501", "days"),
        ("/api/v1/reconcile/runs?limit=201", "limit"),
    ] {
        let p = problem(app.get(q).await, 400, "invalid_query").await;
        assert_eq!(p["field"], field, "{q}: {p}");
    }

    let auditor = token_client(&app, Role::Auditor);
    let r = auditor
        .get(app.url("/api/v1/children?stale_days=2147483647"))
        .send()
        .await
        .unwrap();
    problem(r, 403, "forbidden").await;
    let r = auditor
        .post(app.url("/api/v1/cases"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    problem(r, 403, "forbidden").await;
    let r = auditor
        .post(app.url("/api/v1/children"))
        .header("content-type", "text/plain")
        .body("not even json")
        .send()
        .await
        .unwrap();
    problem(r, 403, "forbidden").await;
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 3. CSV injection: neutralised on export, a round trip through import.

#[tokio::test]
async fn csv_export_neutralises_formulas_and_import_round_trips() {
    let app = spawn_app().await;
    let texts = [
        "=HYPERLINK(\"http://x\",\"y\")",
        "+cmd|' /C calc'!A0",
        "@SUM(1)",
        "-2+3",
        "'=already quoted",
    ];
    for (i, t) in texts.iter().enumerate() {
        let mut c = flowing_child(100 + i as u16);
        c["notes"] = json!(t);
        c["hukou_address"] = json!(format!("={i}+1"));
        app.create_child(&c).await;
    }
    let export = app.dir.path().join("export.csv");
    let out = bin(
        &app,
        &[
            "export",
            "--out",
            export.to_str().unwrap(),
            "--purpose",
            "test",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&export).unwrap();
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    for rec in rdr.records() {
        for cell in rec.unwrap().iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a formula left live: {cell:?}"
            );
        }
    }
    assert!(text.contains("'=HYPERLINK"), "{text}");
    assert!(text.contains("''=already quoted"), "{text}");

    let other = spawn_app().await;
    let out = bin(&other, &["import", export.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (i, t) in texts.iter().enumerate() {
        let id = id_number("510104", (2014, 6, 1), 100 + i as u16);
        let file: Value = other
            .get(&format!("/api/v1/children/{id}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(file["record"]["notes"], json!(t), "{file}");
        assert_eq!(file["record"]["hukou_address"], json!(format!("={i}+1")));
    }
    app.stop().await;
    other.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 4. A nearly-UTF-8 ledger is refused with line and byte offset; the duplicate-ID message names
//    the first occurrence.

#[tokio::test]
async fn a_nearly_utf8_ledger_is_refused_with_line_and_offset() {
    let app = spawn_app().await;
    let header = "身份证号,姓名,户籍地区划代码,居住地区划代码\n";
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend(
        format!(
            "{},王小,510104,410105\n",
            id_number("510104", (2015, 3, 3), 1)
        )
        .bytes(),
    );
    let bad_at = bytes.len() + 18 + 1 + 3;
    bytes.extend(format!("{},caf", id_number("510104", (2015, 3, 3), 2)).bytes());
    bytes.push(0xE9);
    bytes.extend(",510104,410105\n".bytes());
    assert_eq!(bytes[bad_at], 0xE9);
    let path = app.dir.path().join("nearly.csv");
    std::fs::write(&path, &bytes).unwrap();
    let out = bin(&app, &["import", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("UTF-8")
            && err.contains("line 3")
            && err.contains(&format!("byte offset {bad_at}")),
        "{err}"
    );
    assert_eq!(app.count("children"), 0);
    app.stop().await;
}

#[tokio::test]
async fn the_duplicate_id_message_names_the_first_occurrence() {
    let app = spawn_app().await;
    let id = id_number("510104", (2015, 3, 3), 7);
    let text = format!(
        "身份证号,姓名,户籍地区划代码,居住地区划代码\n{id},王一,510104,410105\n{id},王二,510104,410105\n{id},王三,510104,410105\n"
    );
    let path = app.dir.path().join("dups.csv");
    std::fs::write(&path, text).unwrap();
    let out = bin(&app, &["import", path.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors = summary["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{summary}");
    assert_eq!(errors[0]["row"], 3);
    assert_eq!(errors[0]["reason"], "repeats row 2");
    assert_eq!(errors[1]["row"], 4);
    assert_eq!(errors[1]["reason"], "repeats row 2");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 5. Invisible and spoofing characters are refused (API and import).

#[tokio::test]
async fn invisible_and_spoofing_characters_are_refused() {
    let app = spawn_app().await;
    for (i, (field, value)) in [
        ("name", "王\u{202E}明小"),
        ("name", "\u{200B}\u{200B}"),
        ("name", "\u{FEFF}王小明"),
        ("name", "王\u{E0041}小明"),
        ("name", "王\u{FDD0}"),
        ("notes", "好\u{2066}"),
        ("hukou_address", "成都\u{200D}"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = flowing_child(200 + i as u16);
        c[field] = json!(value);
        let r = app.post_json("/api/v1/children", &c).await;
        let p = problem(r, 422, "invalid_field").await;
        assert_eq!(p["field"], field, "{value:?}: {p}");
    }
    assert_eq!(app.count("children"), 0);

    let text = format!(
        "身份证号,姓名,户籍地区划代码,居住地区划代码\n{},\u{200B},510104,410105\n",
        id_number("510104", (2015, 3, 3), 9)
    );
    let path = app.dir.path().join("zw.csv");
    std::fs::write(&path, text).unwrap();
    let out = bin(&app, &["import", path.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["errors"][0]["field"], "name", "{summary}");
    assert_eq!(app.count("children"), 0);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 6. X-Purpose with control characters.

#[tokio::test]
async fn a_purpose_with_control_characters_is_refused() {
    let app = spawn_app().await;
    let child = app.create_child(&flowing_child(1)).await;
    let id = child["record"]["id_number"].as_str().unwrap().to_owned();
    let events_before = app.count("audit_events");
    for purpose in ["a%0D%0Ab%00c", "x%E2%80%AEy", "%00"] {
        let r = app
            .http
            .get(app.url(&format!("/api/v1/children/{id}")))
            .header("x-purpose", purpose)
            .send()
            .await
            .unwrap();
        let p = problem(r, 400, "invalid_header").await;
        assert_eq!(p["field"], "X-Purpose");
    }
    assert_eq!(app.count("audit_events"), events_before);
    let r = app
        .http
        .get(app.url(&format!("/api/v1/children/{id}")))
        .header("x-purpose", "%E5%B9%B4%E5%BA%A6%E6%A0%B8%E6%9F%A5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 7. Audit time filters are RFC 3339 times.

#[tokio::test]
async fn audit_time_filters_are_parsed_and_compared_as_times() {
    let app = spawn_app().await;
    app.create_child(&flowing_child(1)).await;
    for (q, field) in [
        ("since=%2B262142-12-31T23:59:59Z", "since"),
        ("until=yesterday", "until"),
        ("since=2026-13-01T00:00:00Z", "since"),
    ] {
        let r = app.get(&format!("/api/v1/audit/events?{q}")).await;
        let p = problem(r, 422, "invalid_field").await;
        assert_eq!(p["field"], field, "{q}");
    }
    assert!(events(&app, "since=9999-12-31T23:59:59Z").await.is_empty());
    assert!(events(&app, "until=2000-01-01T00:00:00%2B08:00")
        .await
        .is_empty());
    assert!(!events(&app, "since=2000-01-01T00:00:00Z").await.is_empty());
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 8. Auditors see ID numbers masked, and land on the audit log.

#[tokio::test]
async fn auditors_see_id_numbers_masked_and_land_on_the_audit_log() {
    let app = spawn_app().await;
    let child = app.create_child(&flowing_child(1)).await;
    let id = child["record"]["id_number"].as_str().unwrap().to_owned();
    let masked = format!("{}**********{}", &id[..4], &id[14..]);

    let full = events(&app, "object_kind=child").await;
    assert!(full.iter().any(|e| e["event"]["object_id"] == id.as_str()));

    let auditor = token_client(&app, Role::Auditor);
    let page: Value = auditor
        .get(app.url("/api/v1/audit/events?object_kind=child"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = page.to_string();
    assert!(!text.contains(&id), "{text}");
    assert!(text.contains(&masked), "{text}");
    let seq = full[0]["event"]["seq"].as_i64().unwrap();
    let one = auditor
        .get(app.url(&format!("/api/v1/audit/events/{seq}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!one.contains(&id) && one.contains(&masked), "{one}");

    add_user(&app, "au", Role::Auditor, PASSWORD);
    let mut v = Visitor::new(&app);
    let login = v.login("au", PASSWORD).await;
    assert_eq!(login.status, 303);
    assert_eq!(login.location.as_deref(), Some("/ui/audit"));
    assert_eq!(v.get("/ui/audit").await.status, 200);
    let landing = v.get("/ui/").await;
    assert_eq!(landing.location.as_deref(), Some("/ui/audit"));
    let page = v.get(&format!("/ui/audit/{seq}")).await;
    assert_eq!(page.status, 200);
    assert!(
        !page.body.contains(&id) && page.body.contains(&masked),
        "{}",
        page.body
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 9. Duplicate JSON keys.

#[tokio::test]
async fn duplicate_json_keys_are_refused() {
    let app = spawn_app().await;
    let id = id_number("510104", (2014, 6, 1), 1);
    let body = format!(
        r#"{{"id_number":"{id}","name":"张小明","name":"李四","hukou_region":"510104","residence_region":"410105"}}"#
    );
    let r = app
        .http
        .post(app.url("/api/v1/children"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let p = problem(r, 400, "duplicate_key").await;
    assert_eq!(p["field"], "name");
    assert_eq!(app.count("children"), 0);
    app.create_child(&flowing_child(1)).await;
    let r = app
        .http
        .patch(app.url(&format!("/api/v1/children/{id}")))
        .header("content-type", "application/json")
        .body(r#"{"notes":"a","notes":"b"}"#)
        .send()
        .await
        .unwrap();
    let p = problem(r, 400, "duplicate_key").await;
    assert_eq!(p["field"], "notes");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 10. HTTP manners.

#[tokio::test]
async fn every_response_has_its_http_manners() {
    let app = spawn_app().await;
    let child = app.create_child(&flowing_child(1)).await;
    let id = child["record"]["id_number"].as_str().unwrap().to_owned();
    let anon = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // nosniff everywhere: data, errors, pages, open routes.
    for r in [
        app.get(&format!("/api/v1/children/{id}")).await,
        app.get("/api/v1/nothing-here").await,
        app.get("/api/v1/children/123").await,
        anon.get(app.url("/ui/login")).send().await.unwrap(),
        anon.get(app.url("/api/v1/children")).send().await.unwrap(),
        app.get("/healthz").await,
    ] {
        assert_eq!(
            r.headers()
                .get("x-content-type-options")
                .map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{}",
            r.url()
        );
    }
    // no-store on API responses with children's data.
    let r = app.get(&format!("/api/v1/children/{id}")).await;
    assert_eq!(r.headers().get("cache-control").unwrap(), "no-store");
    // 401 says how to authenticate.
    let r = anon.get(app.url("/api/v1/children")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    // 405 with Allow for a wrong method on a known route.
    let r = app
        .http
        .delete(app.url("/api/v1/children"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let allow = r
        .headers()
        .get("allow")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    for m in ["GET", "POST", "HEAD"] {
        assert!(allow.contains(m), "{allow}");
    }
    problem(r, 405, "method_not_allowed").await;
    let r = app
        .http
        .put(app.url(&format!("/api/v1/children/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let r = anon.get(app.url("/ui/logout")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers().get("allow").unwrap(), "POST");
    // HEAD on GET routes.
    let r = app
        .http
        .head(app.url(&format!("/api/v1/children/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().is_empty());
    let r = anon.head(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Two Authorization headers.
    let r = anon
        .get(app.url("/api/v1/children"))
        .header("authorization", "Bearer hks_a")
        .header("authorization", "Bearer hks_b")
        .send()
        .await
        .unwrap();
    let p = problem(r, 400, "invalid_header").await;
    assert_eq!(p["field"], "Authorization");
    // A login form without its csrf field gets the login page.
    let r = anon
        .post(app.url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=a&password=b")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(r.text().await.unwrap().contains("name=\"csrf\""));
    // The problem's field names the parameter, not its value.
    let r = app.get("/api/v1/cases?benefit=Dibao").await;
    let p = problem(r, 400, "invalid_query").await;
    assert_eq!(p["field"], "benefit");
    let r = app.get("/api/v1/cases?colour=red").await;
    let p = problem(r, 400, "invalid_query").await;
    assert_eq!(p["field"], "colour");
    app.stop().await;
}

#[tokio::test]
async fn the_pages_route_table_matches_what_is_served() {
    let app = spawn_app().await;
    let anon = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (path, methods) in hukou_sync::ui::ROUTES {
        let path = path.replace("{id}", "x").replace("{seq}", "1");
        for m in *methods {
            let r = anon
                .request(
                    reqwest::Method::from_bytes(m.as_bytes()).unwrap(),
                    app.url(&path),
                )
                .send()
                .await
                .unwrap();
            assert!(
                r.status() != 404 && r.status() != 405,
                "{m} {path}: {}",
                r.status()
            );
        }
    }
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// A panic inside a handler.

#[tokio::test]
async fn a_panicking_handler_answers_500_problem_json() {
    let app = spawn_app_with(|s| s.admin.panic_route_for_tests = true).await;
    let r = app.get("/api/v1/test/panic").await;
    let p = problem(r, 500, "internal").await;
    assert!(!p["reason"].as_str().unwrap().contains("panic route"));
    // The worker survives.
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/api/v1/test/panic").await.status(), 500);
    app.stop().await;
    // Off by default.
    let plain = spawn_app().await;
    assert_eq!(plain.get("/api/v1/test/panic").await.status(), 404);
    plain.stop().await;
}

/// The duplicate-key check is shared with the peer listener: a signed body has one meaning.
#[tokio::test]
async fn peer_bodies_with_duplicate_keys_are_refused() {
    let pair = crate::helpers::spawn_pair().await;
    let client = crate::helpers::residence_client(&pair.pki);
    let url = crate::helpers::peer_url(&pair.hukou);
    let r = client
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"sender":"410100","sender":"410100","versions":[]}"#)
        .send()
        .await
        .unwrap();
    let p = problem(r, 400, "duplicate_key").await;
    assert_eq!(p["field"], "sender");
    let r = client
        .post(url.replace("/versions", "/reconcile/root"))
        .header("content-type", "application/json")
        .body(r#"{"x":1,"x":2}"#)
        .send()
        .await
        .unwrap();
    problem(r, 400, "duplicate_key").await;
    pair.residence.stop().await;
    pair.hukou.stop().await;
}
