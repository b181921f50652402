//! The child's file as the bureaus keep it (issue 21, first part): the six-month rule counted
//! from visits and the residence side's confirmations only — an old ledger imported today is as
//! stale as it was, and replication does not refresh it — and the township and village a file
//! names. (Bureaus with different risk palettes editing one child: `risk.rs`.)

use chrono::{Duration, Utc};
use serde_json::{json, Value};

use crate::helpers::{eventually, id_number, node_command, spawn_pair, CHENGDU, ZHENGZHOU};

fn stale_ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id_number"].as_str().unwrap().to_owned())
        .collect()
}

/// The record of a file at a node (`Null` while the node does not hold it).
async fn record_at(app: &crate::helpers::TestApp, id: &str) -> Value {
    let r = app.get(&format!("/api/v1/children/{id}")).await;
    if r.status() != 200 {
        return Value::Null;
    }
    r.json::<Value>().await.unwrap()["record"].clone()
}

/// Waits until the file's record at `app` satisfies `ok`.
async fn await_record(
    app: &crate::helpers::TestApp,
    id: &str,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) {
    eventually(20, what, || async { ok(&record_at(app, id).await) }).await;
}

#[tokio::test]
async fn an_old_ledger_imported_today_is_as_stale_as_it_was_on_both_nodes() {
    let pair = spawn_pair().await;
    let today = hukou_sync::sync::ledger::china_today(Utc::now());
    let eleven_months_ago = today - Duration::days(335);
    let last_month = today - Duration::days(30);
    let (old, updated, visited) = (
        id_number("510104", (2014, 6, 1), 501),
        id_number("510104", (2014, 6, 1), 502),
        id_number("510104", (2014, 6, 1), 503),
    );
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.csv");
    std::fs::write(
        &ledger,
        format!(
            "身份证号,姓名,户籍地区划代码,居住地区划代码,儿童类别,最近走访日期,信息更新日期\n\
             {old},王小,510104,410105,流动,{eleven_months_ago},\n\
             {updated},李小,510104,410105,流动,{eleven_months_ago},{last_month}\n\
             {visited},赵小,510104,410105,流动,{last_month},\n"
        ),
    )
    .unwrap();
    let out = node_command(&pair.pki, ZHENGZHOU, &pair.residence)
        .arg("import")
        .arg(&ledger)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // At the residence node, which imported it, and at the hukou node once it has the files:
    // only the file neither visited nor confirmed in six months.
    for app in [&pair.residence, &pair.hukou] {
        eventually(20, "the files reach the node", || async {
            let page: Value = app.get("/api/v1/children").await.json().await.unwrap();
            page["items"].as_array().unwrap().len() == 3
        })
        .await;
        let page: Value = app
            .get("/api/v1/children?stale_days=183")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(stale_ids(&page), vec![old.clone()], "{page}");
        let m = app.get("/metrics").await.text().await.unwrap();
        assert!(m.contains("hukou_sync_stale_children 1"), "{m}");
    }
    // The export carries the date, so an export → import round trip keeps the rule.
    let out = node_command(&pair.pki, ZHENGZHOU, &pair.residence)
        .args(["export", "--purpose", "核对", "--format", "csv"])
        .output()
        .unwrap();
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(csv.contains(&last_month.to_string()), "{csv}");
    assert!(
        csv.lines().next().unwrap().contains("info_updated_on"),
        "{csv}"
    );
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

#[tokio::test]
async fn a_file_names_its_township_and_village_and_lists_filter_by_township() {
    let pair = spawn_pair().await;
    let mut child = crate::helpers::flowing_child(505);
    child["residence_township"] = json!("410105001");
    child["residence_village"] = json!("410105001003");
    child["hukou_township"] = json!("510104017");
    let id = child["id_number"].as_str().unwrap().to_owned();
    let created = pair.residence.create_child(&child).await;
    assert_eq!(created["record"]["residence_village"], "410105001003");
    pair.residence
        .create_child(&crate::helpers::flowing_child(506))
        .await;
    // Bad codes: each refused with its field, nothing stored.
    let mut bad_cases = Vec::new();
    for (field, value, blamed) in [
        (
            "residence_township",
            json!("410104001"),
            "residence_township",
        ),
        (
            "residence_township",
            json!("410105999"),
            "residence_township",
        ),
        (
            "residence_township",
            json!("41010500"),
            "residence_township",
        ),
        (
            "residence_village",
            json!("410105002001"),
            "residence_village",
        ),
        ("hukou_village", json!("510104017001"), "hukou_village"),
        ("hukou_township", json!("410105001"), "hukou_township"),
    ] {
        let mut c = crate::helpers::flowing_child(507);
        c["residence_township"] = json!("410105001");
        c[field] = value;
        bad_cases.push((c, blamed));
    }
    // A village without its township.
    let mut c = crate::helpers::flowing_child(507);
    c["residence_village"] = json!("410105001003");
    bad_cases.push((c, "residence_village"));
    let versions = pair.residence.count("versions");
    for (c, blamed) in bad_cases {
        let p = crate::helpers::problem(
            pair.residence.post_json("/api/v1/children", &c).await,
            422,
            "invalid_field",
        )
        .await;
        assert_eq!(p["field"], blamed, "{c} → {p}");
    }
    assert_eq!(pair.residence.count("versions"), versions);
    // Lists filter by township, at both bureaus (the hukou one by the hukou township).
    for (app, township) in [(&pair.residence, "410105001"), (&pair.hukou, "510104017")] {
        eventually(20, "both files at the node", || async {
            let page: Value = app.get("/api/v1/children").await.json().await.unwrap();
            page["items"].as_array().unwrap().len() == 2
        })
        .await;
        let page: Value = app
            .get(&format!("/api/v1/children?township={township}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(stale_ids(&page), vec![id.clone()], "{page}");
    }
    crate::helpers::problem(
        pair.residence
            .get("/api/v1/children?township=4101050")
            .await,
        400,
        "invalid_query",
    )
    .await;
    // The console shows the names, and lists by township.
    let out = node_command(&pair.pki, ZHENGZHOU, &pair.residence)
        .args(["child", "show", &id])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("410105001 经八路街道 · 410105001003 体育社区居民居委会"),
        "{text}"
    );
    let out = node_command(&pair.pki, ZHENGZHOU, &pair.residence)
        .args(["child", "list", "--township", "410105999"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--township"));
    // A ledger's 乡镇（街道） and 村（社区） columns import.
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.csv");
    let imported = id_number("510104", (2015, 3, 1), 508);
    std::fs::write(
        &ledger,
        format!(
            "身份证号,姓名,户籍地区划代码,居住地区划代码,乡镇（街道）,村（社区）,儿童类别\n\
             {imported},刘小,510104,410105,410105002,,流动\n"
        ),
    )
    .unwrap();
    let out = node_command(&pair.pki, ZHENGZHOU, &pair.residence)
        .arg("import")
        .arg(&ledger)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page: Value = pair
        .residence
        .get("/api/v1/children?township=410105002")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stale_ids(&page), vec![imported], "{page}");
    // The six-month list by township: the imported file gave no dates, the other was confirmed
    // today.
    for (township, total) in [("410105002", 1), ("410105001", 0)] {
        let list: Value = pair
            .residence
            .get(&format!("/api/v1/stale?region={township}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(list["total"], total, "{township}: {list}");
    }
    crate::helpers::problem(
        pair.residence.get("/api/v1/stale?region=410105999").await,
        400,
        "invalid_query",
    )
    .await;
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

#[tokio::test]
async fn a_file_carries_its_responsible_worker_key_care_disability_and_psychological_state() {
    let pair = spawn_pair().await;
    let mut child = crate::helpers::flowing_child(509);
    child["responsible_worker"] = json!({"name": "李芳", "role": "儿童主任",
        "phone": "13800000000", "township": "410105001"});
    child["key_care"] = json!(["family_hardship", "监护缺失"]);
    child["disability"] = json!({"kind": "肢体残疾", "grade": "二级"});
    child["psychological_state"] = json!("需关注");
    let id = child["id_number"].as_str().unwrap().to_owned();
    let created = pair.residence.create_child(&child).await;
    assert_eq!(
        created["record"]["responsible_worker"]["role"],
        "children_director"
    );
    assert_eq!(
        created["record"]["key_care"],
        json!(["family_hardship", "guardianship_missing"])
    );
    assert_eq!(
        created["record"]["disability"],
        json!({"kind": "physical", "grade": "grade_2"})
    );
    // Bad inputs: each refused naming its field, nothing stored.
    let versions = pair.residence.count("versions");
    for (field, value) in [
        (
            "responsible_worker",
            json!({"name": "李芳", "role": "儿童主任", "township": "410104001"}),
        ),
        (
            "responsible_worker",
            json!({"name": "李芳", "role": "队长"}),
        ),
        ("responsible_worker", json!({"role": "儿童主任"})),
        ("key_care", json!(["rich"])),
        ("disability", json!({"kind": "physical", "grade": "五级"})),
        ("disability", json!({"kind": "physical"})),
        ("psychological_state", json!("excellent")),
    ] {
        let mut c = crate::helpers::flowing_child(510);
        c[field] = value.clone();
        let p = crate::helpers::problem(
            pair.residence.post_json("/api/v1/children", &c).await,
            422,
            "invalid_field",
        )
        .await;
        assert_eq!(p["field"], field, "{value} → {p}");
    }
    assert_eq!(pair.residence.count("versions"), versions);
    // The hukou bureau may not change the residence side's worker or key-care ledger.
    await_record(&pair.hukou, &id, "the file reaches Chengdu", |r| {
        !r.is_null()
    })
    .await;
    crate::helpers::problem(
        pair.hukou
            .patch_json(&format!("/api/v1/children/{id}"), &json!({"key_care": []}))
            .await,
        403,
        "field_not_owned",
    )
    .await;
    // Export → import keeps them; the console shows them by their labels.
    let out = node_command(&pair.pki, ZHENGZHOU, &pair.residence)
        .args(["export", "--purpose", "核对", "--format", "csv"])
        .output()
        .unwrap();
    let csv = String::from_utf8(out.stdout).unwrap();
    let header = csv.lines().next().unwrap();
    for column in [
        "responsible_worker_name",
        "key_care",
        "disability_grade",
        "psychological_state",
    ] {
        assert!(header.contains(column), "{header}");
    }
    let row = csv.lines().find(|l| l.starts_with(&id)).unwrap();
    assert!(
        row.contains("李芳")
            && row.contains("children_director")
            && row.contains("family_hardship;guardianship_missing"),
        "{row}"
    );
    let out = node_command(&pair.pki, CHENGDU, &pair.hukou)
        .args(["child", "show", &id])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(
            "responsible worker (包保人): 李芳 (儿童主任) 13800000000 · 410105001 经八路街道"
        ),
        "{text}"
    );
    assert!(
        text.contains("key care (重点关爱): 家庭困难、监护缺失"),
        "{text}"
    );
    assert!(
        text.contains("disability: 肢体残疾 二级") && text.contains("psychological state: 需关注"),
        "{text}"
    );
    // A ledger's Chinese columns import.
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.csv");
    let imported = id_number("510104", (2015, 3, 1), 511);
    std::fs::write(
        &ledger,
        format!(
            "身份证号,姓名,户籍地区划代码,居住地区划代码,儿童类别,包保人姓名,包保人身份,重点关爱原因,残疾类别,残疾等级,心理状况\n\
             {imported},刘小,510104,410105,流动,王强,社工,流浪;心理行为问题,听力残疾,三级,需干预\n"
        ),
    )
    .unwrap();
    let out = node_command(&pair.pki, ZHENGZHOU, &pair.residence)
        .arg("import")
        .arg(&ledger)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f = json!({"record": record_at(&pair.residence, &imported).await});
    assert_eq!(
        f["record"]["responsible_worker"],
        json!({"name": "王强", "role": "social_worker"})
    );
    assert_eq!(
        f["record"]["key_care"],
        json!(["street_roaming", "psychological_behavioural"])
    );
    assert_eq!(
        f["record"]["disability"],
        json!({"kind": "hearing", "grade": "grade_3"})
    );
    assert_eq!(f["record"]["psychological_state"], "needs_intervention");
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

#[tokio::test]
async fn the_guardianship_arrangement_is_the_hukou_sides_with_its_dates_and_reference() {
    let pair = spawn_pair().await;
    let mut child = crate::helpers::flowing_child(512);
    child["guardianship"] = json!({"kind": "委托照护", "since": "2025-03-01",
        "reference": "WT-2025-031", "decided_on": "2025-02-20"});
    let id = child["id_number"].as_str().unwrap().to_owned();
    let created = pair.residence.create_child(&child).await;
    assert_eq!(created["record"]["guardianship"]["kind"], "entrusted_care");
    let versions = pair.residence.count("versions");
    for g in [
        json!({"kind": "entrusted_care", "since": "2025-03-01"}),
        json!({"kind": "temporary_guardianship", "since": "2999-01-01"}),
        json!({"kind": "adopted", "since": "2025-03-01"}),
        json!({"kind": "parents"}),
    ] {
        let mut c = crate::helpers::flowing_child(513);
        c["guardianship"] = g.clone();
        let p = crate::helpers::problem(
            pair.residence.post_json("/api/v1/children", &c).await,
            422,
            "invalid_field",
        )
        .await;
        assert_eq!(p["field"], "guardianship", "{g} → {p}");
    }
    assert_eq!(pair.residence.count("versions"), versions);
    // Once the file exists, the hukou bureau records a change of guardianship; the residence
    // bureau may not.
    crate::helpers::problem(
        pair.residence
            .patch_json(
                &format!("/api/v1/children/{id}"),
                &json!({"guardianship": {"kind": "parents", "since": "2026-01-01"}}),
            )
            .await,
        403,
        "field_not_owned",
    )
    .await;
    await_record(&pair.hukou, &id, "the file reaches Chengdu", |r| {
        !r.is_null()
    })
    .await;
    let r = pair
        .hukou
        .patch_json(
            &format!("/api/v1/children/{id}"),
            &json!({"guardianship": {"kind": "temporary_guardianship", "since": "2026-11-30"}}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    await_record(&pair.residence, &id, "the change reaches Zhengzhou", |r| {
        r["guardianship"]["kind"] == "temporary_guardianship"
    })
    .await;
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

/// A ledger imported a chunk at a time is one transaction: an ID number that a later chunk
/// repeats (stored by an earlier chunk a moment before) refuses the whole import, naming its
/// row, and nothing is stored; the same rows without the repeat are all stored.
#[tokio::test]
async fn a_chunked_import_refused_in_a_later_chunk_stores_nothing() {
    use hukou_sync::audit::Actor;
    use hukou_sync::domain::child::ChildRecord;
    use hukou_sync::domain::RecordRules;
    use hukou_sync::ledger_file::csv::LedgerReader;
    use hukou_sync::sync::ledger::{self, ImportError};

    let app = crate::helpers::spawn_app().await;
    let (files, versions, events) = (
        app.count("children"),
        app.count("versions"),
        app.count("audit_events"),
    );
    let mut csv = Vec::new();
    hukou_sync::ledger_file::sample::write_ledger(&mut csv, 30, 5, "5101", "4101").unwrap();
    let rules = RecordRules {
        today: ledger::china_today(Utc::now()),
        palette: &app.node.palette,
    };
    let mut reader = LedgerReader::new(String::from_utf8(csv).unwrap()).unwrap();
    let rows: Vec<(usize, ChildRecord)> = reader
        .validate_next(&rules, 1000)
        .into_iter()
        .map(|(line, r)| (line, r.unwrap()))
        .collect();
    assert_eq!(rows.len(), 30);
    assert!(reader.validate_next(&rules, 1000).is_empty());
    let mut repeated = rows.clone();
    repeated.push((99, rows[3].1.clone()));
    let chunked = |rows: Vec<(usize, ChildRecord)>| {
        rows.chunks(10)
            .map(|c| Ok(c.to_vec()))
            .collect::<Vec<Result<_, ImportError>>>()
    };
    let import = |rows: Vec<(usize, ChildRecord)>| {
        let (store, node) = (app.store.clone(), app.node.clone());
        let chunks = chunked(rows);
        tokio::task::spawn_blocking(move || {
            let mut conn = store.conn().unwrap();
            ledger::import_children_chunked(
                &mut conn,
                &node,
                &mut chunks.into_iter(),
                &Actor::console(),
                Utc::now(),
                &mut |_| {},
            )
            .map(|s| s.imported)
        })
    };
    let refused = import(repeated).await.unwrap();
    assert!(
        matches!(&refused, Err(ImportError::Duplicates(r)) if r == &vec![99]),
        "{refused:?}"
    );
    assert_eq!(app.count("children"), files);
    assert_eq!(app.count("versions"), versions);
    assert_eq!(app.count("audit_events"), events);
    assert_eq!(import(rows).await.unwrap().unwrap(), 30);
    assert_eq!(app.count("children"), files + 30);
}
