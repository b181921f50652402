//! Children's files through the admin API: create, read, update, list; bad input refused with
//! problem+json and nothing stored.

use serde_json::{json, Value};

use crate::helpers::{flowing_child, id_number, problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn create_read_update_keeps_history() {
    let app = spawn_app().await;
    let child = flowing_child(1);
    let id = child["id_number"].as_str().unwrap().to_owned();
    let created = app.create_child(&child).await;
    assert_eq!(created["sex"], "male");
    assert_eq!(created["birth_date"], "2014-06-01");
    assert_eq!(created["hukou_region_name"], "四川省 成都市 锦江区");
    assert_eq!(created["history"].as_array().unwrap().len(), 1);
    let first = created["heads"][0].as_str().unwrap().to_owned();
    // A new file's view row does not repeat its creation's body; reads take it from the version.
    assert_eq!(app.count("children WHERE record = ''"), 1);
    let r = app.get(&format!("/api/v1/children/{id}")).await;
    let read: Value = r.json().await.unwrap();
    assert_eq!(read["record"]["name"], child["name"]);
    assert_eq!(
        read["record"]["residence_region"],
        child["residence_region"]
    );

    let r = app
        .patch_json(
            &format!("/api/v1/children/{id}"),
            &json!({"risk_level": "红", "residence_address": "金水路 1 号"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    // The label typed is read with the node's palette: the record holds the level, the file
    // shows the label beside it.
    assert_eq!(updated["record"]["risk_level"], 1);
    assert_eq!(updated["risk_label"], "红");
    let history = updated["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["parents"], json!([first]));
    assert_eq!(
        history[1]["changed"],
        json!(["residence_address", "risk_level"])
    );
    assert_eq!(updated["heads"].as_array().unwrap().len(), 1);
    assert_ne!(updated["heads"][0], first);
    // After an edit the view row holds the merged record itself.
    assert_eq!(app.count("children WHERE record = ''"), 0);

    // A patch that changes nothing makes no version.
    let r = app
        .patch_json(
            &format!("/api/v1/children/{id}"),
            &json!({"risk_level": "红"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.count("versions"), 2);

    let r = app.get(&format!("/api/v1/children/{id}")).await;
    let read: Value = r.json().await.unwrap();
    assert_eq!(read["record"]["residence_address"], "金水路 1 号");
    app.stop().await;
}

#[tokio::test]
async fn invalid_id_numbers_and_regions_are_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let events = app.count("audit_events");
    let good = flowing_child(2);
    let id = good["id_number"].as_str().unwrap();
    let mut wrong_check = id.to_owned();
    let last = wrong_check.pop().unwrap();
    wrong_check.push(if last == '1' { '2' } else { '1' });
    // 2015-02-29 with a correct check digit, so only the date is wrong.
    let feb29 = {
        let first17 = "51010420150229001";
        let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
        let sum: u32 = first17
            .bytes()
            .zip(weights)
            .map(|(d, w)| u32::from(d - b'0') * w)
            .sum();
        format!(
            "{first17}{}",
            "10X98765432".as_bytes()[(sum % 11) as usize] as char
        )
    };
    let cases = [
        ("id_number", json!(wrong_check), "check digit"),
        ("id_number", json!(feb29), "date"),
        ("id_number", json!(&id[..17]), "18 characters"),
        ("id_number", json!(format!("{id}1")), "18 characters"),
        ("hukou_region", json!("519999"), "GB/T 2260"),
        ("residence_region", json!("41010"), "6 digits"),
    ];
    for (field, value, reason) in cases {
        let mut body = good.clone();
        body[field] = value;
        let p = problem(
            app.post_json("/api/v1/children", &body).await,
            422,
            "invalid_field",
        )
        .await;
        assert_eq!(p["field"], field);
        assert!(p["reason"].as_str().unwrap().contains(reason), "{p}");
    }
    // A path with a bad ID number.
    problem(
        app.get("/api/v1/children/123").await,
        400,
        "invalid_id_number",
    )
    .await;
    assert_eq!(app.count("children"), 0);
    assert_eq!(app.count("versions"), 0);
    assert_eq!(app.count("audit_events"), events);
    app.stop().await;
}

#[tokio::test]
async fn bad_update_bodies_are_refused_and_nothing_is_stored() {
    let app = spawn_app_with(|s| s.admin.body_limit = 4096).await;
    let child = flowing_child(3);
    let id = child["id_number"].as_str().unwrap().to_owned();
    app.create_child(&child).await;
    let path = format!("/api/v1/children/{id}");
    let versions = app.count("versions");
    let events = app.count("audit_events");

    let send_raw = |body: String| {
        app.http
            .patch(app.url(&path))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    problem(
        send_raw("{\"residence_address\": ".into()).await.unwrap(),
        400,
        "malformed_json",
    )
    .await;
    problem(
        send_raw("[1, 2]".into()).await.unwrap(),
        422,
        "invalid_body",
    )
    .await;
    let p = problem(
        app.patch_json(&path, &json!({"residence_address": 5}))
            .await,
        422,
        "invalid_field",
    )
    .await;
    assert_eq!(p["field"], "residence_address");
    let p = problem(
        app.patch_json(&path, &json!({"last_visit_on": "2026-13-01"}))
            .await,
        422,
        "invalid_field",
    )
    .await;
    assert_eq!(p["field"], "last_visit_on");
    let p = problem(
        app.patch_json(&path, &json!({"favourite_colour": "red"}))
            .await,
        422,
        "unknown_field",
    )
    .await;
    assert_eq!(p["field"], "favourite_colour");
    let p = problem(
        app.patch_json(&path, &json!({"risk_level": "紫"})).await,
        422,
        "invalid_field",
    )
    .await;
    assert_eq!(p["field"], "risk_level");
    let p = problem(
        app.patch_json(&path, &json!({"name": null})).await,
        422,
        "invalid_field",
    )
    .await;
    assert_eq!(p["field"], "name");
    let big = json!({"notes": "x".repeat(5000)});
    problem(app.patch_json(&path, &big).await, 413, "body_too_large").await;
    problem(
        app.http
            .patch(app.url(&path))
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    let other = id_number("510104", (2014, 6, 1), 99);
    problem(
        app.patch_json(
            &format!("/api/v1/children/{other}"),
            &json!({"risk_level": "红"}),
        )
        .await,
        404,
        "not_found",
    )
    .await;

    assert_eq!(app.count("versions"), versions);
    assert_eq!(app.count("audit_events"), events);
    app.stop().await;
}

#[tokio::test]
async fn field_authority_and_party_are_enforced() {
    // A node that serves only Chengdu: the hukou side of a Chengdu child living in Zhengzhou.
    let app = spawn_app_with(|s| {
        s.node.serves = vec![hukou_sync::domain::RegionPrefix::parse("5101").unwrap()]
    })
    .await;
    let child = flowing_child(4);
    let id = child["id_number"].as_str().unwrap().to_owned();
    app.create_child(&child).await;
    let path = format!("/api/v1/children/{id}");
    // Hukou and shared fields: allowed.
    let r = app
        .patch_json(
            &path,
            &json!({"benefits": [{"benefit": "dibao", "since": "2026-01"}], "notes": "来电核实"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    // A residence field: refused, nothing stored.
    let before = app.count("versions");
    let p = problem(
        app.patch_json(&path, &json!({"risk_level": "红"})).await,
        403,
        "field_not_owned",
    )
    .await;
    assert_eq!(p["field"], "risk_level");
    let p = problem(
        app.patch_json(
            &path,
            &json!({"id_number": id_number("510104", (2014, 6, 1), 77)}),
        )
        .await,
        422,
        "immutable_field",
    )
    .await;
    assert_eq!(p["field"], "id_number");
    assert_eq!(app.count("versions"), before);
    // A child in neither region this node serves.
    let mut stranger = flowing_child(5);
    stranger["hukou_region"] = json!("440305");
    stranger["id_number"] = json!(id_number("440305", (2013, 1, 1), 5));
    problem(
        app.post_json("/api/v1/children", &stranger).await,
        403,
        "not_party",
    )
    .await;
    // A duplicate.
    problem(
        app.post_json("/api/v1/children", &child).await,
        409,
        "already_exists",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn list_filters_and_pages() {
    let app = spawn_app().await;
    for seq in 0..7u16 {
        let mut c = flowing_child(10 + seq);
        if seq % 2 == 0 {
            c["risk_level"] = json!("红");
            c["categories"] = json!(["flowing", "in_difficulty"]);
        }
        if seq == 6 {
            c["residence_region"] = json!("410305");
            c["last_visit_on"] = json!("2024-01-05");
        }
        app.create_child(&c).await;
    }
    let page: Value = app
        .get("/api/v1/children?risk_level=%E7%BA%A2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 4);
    assert_eq!(page["items"][0]["risk_level"], 1);
    assert_eq!(page["items"][0]["risk_label"], "红");
    // The level's number finds the same files; anything else is refused.
    let by_level: Value = app
        .get("/api/v1/children?risk_level=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_level["items"], page["items"]);
    for bad in ["0", "5", "1.5", "%E8%93%9D"] {
        let p = problem(
            app.get(&format!("/api/v1/children?risk_level={bad}")).await,
            400,
            "invalid_query",
        )
        .await;
        assert_eq!(p["field"], "risk_level", "{bad}");
    }
    let page: Value = app
        .get("/api/v1/children?category=in_difficulty&residence_region=4101")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    let page: Value = app
        .get("/api/v1/children?region=4103")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    // Keyset paging visits everything once.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let q = match &after {
            Some(a) => format!("/api/v1/children?limit=3&after={a}"),
            None => "/api/v1/children?limit=3".to_owned(),
        };
        let page: Value = app.get(&q).await.json().await.unwrap();
        for i in page["items"].as_array().unwrap() {
            seen.push(i["id_number"].as_str().unwrap().to_owned());
        }
        match page["next_after"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen);
    // Stale: nothing was updated long ago, so only files never updated... all were created now.
    let page: Value = app
        .get("/api/v1/children?stale_days=183")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
    // The list is audited with the ids it returned.
    let events: Value = app
        .get("/api/v1/audit/events?action=child.list&limit=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        events["items"][0]["details"]["returned"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    // Bad queries.
    problem(
        app.get("/api/v1/children?region=4").await,
        400,
        "invalid_query",
    )
    .await;
    problem(
        app.get("/api/v1/children?category=purple").await,
        400,
        "invalid_query",
    )
    .await;
    problem(
        app.get("/api/v1/children?limit=0").await,
        400,
        "invalid_query",
    )
    .await;
    problem(
        app.get("/api/v1/children?limit=abc").await,
        400,
        "invalid_query",
    )
    .await;
    problem(
        app.get("/api/v1/children?colour=red").await,
        400,
        "invalid_query",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn stale_files_are_found() {
    // The six-month rule: a file is stale when neither a visit nor a confirmation of the
    // residence side's facts happened within 183 days. Storing a file, or an edit that leaves
    // those facts alone, does not refresh it.
    let app = spawn_app().await;
    let mut old = flowing_child(30);
    old["last_visit_on"] = json!("2025-01-01");
    old["info_updated_on"] = json!("2025-02-01");
    let id = old["id_number"].as_str().unwrap().to_owned();
    app.create_child(&old).await;
    let mut fresh = flowing_child(31);
    fresh["last_visit_on"] = Value::Null;
    let fresh_id = fresh["id_number"].as_str().unwrap().to_owned();
    let created = app.create_child(&fresh).await;
    // A file created by hand records its facts as confirmed today.
    assert_eq!(
        created["record"]["info_updated_on"],
        json!(hukou_sync::sync::ledger::china_today(chrono::Utc::now()).to_string())
    );
    let stale = || async {
        let page: Value = app
            .get("/api/v1/children?stale_days=183")
            .await
            .json()
            .await
            .unwrap();
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id_number"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(stale().await, vec![id.clone()]);
    // A note (a shared field) is not a visit nor the residence side's facts: still stale.
    let r = app
        .patch_json(
            &format!("/api/v1/children/{id}"),
            &json!({"notes": "电话联系未接通"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(stale().await, vec![id.clone()]);
    // The residence side confirming where the child lives refreshes it, dated today.
    let r = app
        .patch_json(
            &format!("/api/v1/children/{id}"),
            &json!({"residence_address": "金水区花园路2号"}),
        )
        .await;
    let file: Value = r.json().await.unwrap();
    assert_eq!(
        file["record"]["info_updated_on"],
        created["record"]["info_updated_on"]
    );
    assert!(stale().await.is_empty());
    // A visit date in the future, or an update date before birth, is refused.
    for bad in [
        json!({"last_visit_on": "2999-01-01"}),
        json!({"info_updated_on": "2999-01-01"}),
        json!({"info_updated_on": "2001-01-01"}),
    ] {
        problem(
            app.patch_json(&format!("/api/v1/children/{fresh_id}"), &bad)
                .await,
            422,
            "invalid_field",
        )
        .await;
    }
    app.stop().await;
}

#[tokio::test]
async fn health_and_openapi_describe_every_route() {
    let app = spawn_app().await;
    let h: Value = app.get("/healthz").await.json().await.unwrap();
    assert_eq!(h["status"], "ok");
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/healthz",
        "/openapi.json",
        "/api/v1/children",
        "/api/v1/children/{id_number}",
        "/api/v1/audit/events",
        "/api/v1/audit/events/{seq}",
        "/api/v1/audit/consistency",
        "/api/v1/audit/tree-head",
        "/metrics",
        "/api/v1/peers",
        "/api/v1/cases",
        "/api/v1/cases/{case_id}/transitions",
    ] {
        assert!(paths.contains_key(p), "{p} missing from openapi.json");
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    problem(app.get("/nowhere").await, 404, "not_found").await;
    app.stop().await;
}

/// Audit details are structured JSON, not Rust debug text: a listing records its filter as an
/// object with the parameters' names and values.
#[tokio::test]
async fn a_listing_is_audited_with_its_filter_as_json() {
    let app = crate::helpers::spawn_app().await;
    let r = app.get("/api/v1/children?region=5101&limit=5").await;
    assert_eq!(r.status(), 200);
    let mut conn = app.store.conn().unwrap();
    let filter: serde_json::Value = {
        use hukou_sync::storage::audit as repo;
        let events = repo::list_events(
            &mut conn,
            &repo::EventFilter {
                action: Some("child.list".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .unwrap();
        let details: serde_json::Value = serde_json::from_str(&events[0].details).unwrap();
        details["filter"].clone()
    };
    assert_eq!(filter["region_prefix"], "5101", "{filter}");
    assert_eq!(filter["limit"], 5, "{filter}");
}

/// The list's filters by benefit held, responsible worker and visits due (issue 23 #1), their
/// bad values refused; and the benefits table is filled once for files stored before it.
#[tokio::test]
async fn list_filters_by_benefit_worker_and_visits_due() {
    let app = spawn_app().await;
    let mut a = flowing_child(61);
    a["benefits"] = json!([{"benefit": "dibao", "since": "2026-01"},
                           {"benefit": "tekun", "since": "2025-03",
                            "ended": {"month": "2026-02", "reason": "other"}}]);
    a["responsible_worker"] = json!({"name": "王秀兰", "role": "儿童主任"});
    let a_id = a["id_number"].as_str().unwrap().to_owned();
    app.create_child(&a).await;
    let mut b = flowing_child(62);
    b["benefits"] = json!([{"benefit": "tekun", "since": "2026-01"}]);
    let b_id = b["id_number"].as_str().unwrap().to_owned();
    app.create_child(&b).await;
    app.create_child(&flowing_child(63)).await;
    app.exec(&format!(
        "UPDATE children SET visit_due_on = '2020-01-01' WHERE id_number = '{b_id}'"
    ));
    let listed = |page: Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id_number"].as_str().unwrap().to_owned())
            .collect()
    };
    let get = |q: &str| {
        let q = q.to_owned();
        let app = &app;
        async move {
            app.get(&format!("/api/v1/children?{q}"))
                .await
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(listed(get("benefit=dibao").await), vec![a_id.clone()]);
    // An ended grant is not held: only B holds 特困 now; the Chinese label works too.
    assert_eq!(listed(get("benefit=tekun").await), vec![b_id.clone()]);
    assert_eq!(
        listed(get("benefit=%E7%89%B9%E5%9B%B0").await),
        vec![b_id.clone()]
    );
    assert_eq!(
        listed(get("worker=%E7%8E%8B%E7%A7%80%E5%85%B0").await),
        vec![a_id.clone()]
    );
    assert_eq!(listed(get("visits_due_days=0").await), vec![b_id.clone()]);
    for (bad, field) in [
        ("benefit=gold", "benefit"),
        ("visits_due_days=367", "visits_due_days"),
        ("visits_due_days=-1", "visits_due_days"),
        (&*format!("worker={}", "王".repeat(51)), "worker"),
    ] {
        let p = problem(
            app.get(&format!("/api/v1/children?{bad}")).await,
            400,
            "invalid_query",
        )
        .await;
        assert_eq!(p["field"], field, "{bad}");
    }
    // A database from before the benefits table: filled once at the next start.
    app.exec("DELETE FROM child_benefits");
    app.exec("DELETE FROM recon_meta WHERE name = 'view_benefits_column'");
    let (settings, db, dir) = app.shut_down().await;
    let app = crate::helpers::start(settings, Default::default(), db, dir).await;
    let page: Value = app
        .get("/api/v1/children?benefit=dibao")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed(page), vec![a_id]);
    let s: Value = app.get("/api/v1/stats").await.json().await.unwrap();
    let held = |code: &str| {
        s["by_benefit"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["key"] == code)
            .map_or(0, |c| c["count"].as_i64().unwrap())
    };
    assert_eq!((held("dibao"), held("tekun")), (1, 1), "{s}");
}
