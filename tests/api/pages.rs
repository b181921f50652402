//! The daily-work pages without a browser: the files list and its filters, a new file, the edit
//! form, a visit, a case opened with a document and decided with the action buttons — and each
//! form's refusals: bad input comes back (400/422) with the reason beside the field and nothing
//! stored, a form without its CSRF token is 403, a role without the right is 403.

use hukou_sync::accounts::Role;
use serde_json::Value;

use crate::helpers::{add_user, eventually, flowing_child, id_number, pdf, spawn_app, spawn_pair};
use crate::ui::{Page, Visitor};

const PASSWORD: &str = "correct horse battery";

async fn logged_in(app: &crate::helpers::TestApp, user: &str, role: Role) -> Visitor {
    add_user(app, user, role, PASSWORD);
    let mut v = Visitor::new(app);
    let p = v.login(user, PASSWORD).await;
    assert_eq!(p.status, 303, "{}", p.body);
    v
}

/// The text of the error shown beside `input` of form `form`.
fn error_beside(p: &Page, form: &str, input: &str) -> String {
    let marker = format!("id=\"error-{form}-{input}\">");
    let start = p
        .body
        .find(&marker)
        .unwrap_or_else(|| panic!("no error beside {form}.{input} in {}", p.body))
        + marker.len();
    let end = p.body[start..].find('<').unwrap();
    p.body[start..start + end].to_owned()
}

fn audit_count(app: &crate::helpers::TestApp, action: &str) -> i64 {
    app.count(&format!("audit_events WHERE action = '{action}'"))
}

#[tokio::test]
async fn the_files_list_filters_masks_and_pages() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for seq in 1..=3u16 {
        let mut child = flowing_child(seq);
        if seq == 3 {
            child["categories"] = serde_json::json!(["in_difficulty"]);
            child["risk_level"] = serde_json::json!(1);
            child["last_visit_on"] = serde_json::json!("2025-01-01");
            child["info_updated_on"] = serde_json::json!("2025-01-01");
            child["responsible_worker"] =
                serde_json::json!({"name": "李娜", "role": "children_director"});
        }
        app.create_child(&child).await;
        ids.push(child["id_number"].as_str().unwrap().to_owned());
    }
    ids.sort();
    let mut v = logged_in(&app, "wang.fang", Role::Caseworker).await;

    let before = audit_count(&app, "child.list");
    let p = v.get("/ui/children").await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(
        audit_count(&app, "child.list"),
        before + 1,
        "the list is audited"
    );
    for id in &ids {
        assert!(
            !p.body.contains(&format!(">{id}<")),
            "a full ID number in the list"
        );
        let masked = hukou_sync::domain::IdNumber::mask_text(id);
        assert!(p.body.contains(&masked), "{masked} not in {}", p.body);
    }
    // Values by their labels.
    assert!(p.body.contains("流动、留守"), "{}", p.body);
    assert!(p.body.contains("困境"));

    // Filters: the same reading as the API's.
    let p = v.get("/ui/children?category=in_difficulty").await;
    assert_eq!(p.status, 200);
    assert_eq!(
        p.body.matches("href=\"/ui/children/5").count(),
        1,
        "{}",
        p.body
    );
    let p = v.get("/ui/children?category=orphan").await;
    assert!(p.body.contains("id=\"no-files\""));
    let p = v.get("/ui/children?stale_days=183").await;
    assert_eq!(p.status, 200);
    assert!(p
        .body
        .contains(&hukou_sync::domain::IdNumber::mask_text(&id_number(
            "510104",
            (2014, 6, 1),
            3
        ))));
    let p = v.get("/ui/children?region=510104&risk_level=").await;
    assert_eq!(p.status, 200);
    assert_eq!(p.body.matches("<tr class=").count(), 3, "{}", p.body);
    // The responsible worker, and the visits due (overdue included).
    let third = hukou_sync::domain::IdNumber::mask_text(&id_number("510104", (2014, 6, 1), 3));
    let p = v.get("/ui/children?worker=%E6%9D%8E%E5%A8%9C").await;
    assert_eq!(p.status, 200);
    assert_eq!(p.body.matches("<tr class=").count(), 1, "{}", p.body);
    assert!(p.body.contains(&third));
    let p = v.get("/ui/children?visits_due_days=0").await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains(&third), "{}", p.body);
    let p = v.get("/ui/children?visits_due_days=999").await;
    assert_eq!(p.status, 400);
    // By benefit held: none holds 特困; an unknown benefit is refused beside the filter.
    let p = v.get("/ui/children?benefit=tekun").await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("id=\"no-files\""), "{}", p.body);
    assert!(p.body.contains("享受待遇 (Benefit held)"));
    let p = v.get("/ui/children?benefit=gold").await;
    assert_eq!(p.status, 400, "{}", p.body);
    // The API reads the same filters.
    let api: Value = app
        .get("/api/v1/children?worker=%E6%9D%8E%E5%A8%9C&visits_due_days=0")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(api["items"].as_array().unwrap().len(), 1, "{api}");
    // Keyset paging: after the first ID number, the other two.
    let p = v.get(&format!("/ui/children?after={}", ids[0])).await;
    assert_eq!(p.body.matches("<tr class=").count(), 2, "{}", p.body);

    // Bad filters: 400 with the reason beside the filter.
    let p = v.get("/ui/children?township=12x").await;
    assert_eq!(p.status, 400, "{}", p.body);
    assert!(p.body.contains("id=\"error-township\""), "{}", p.body);
    let p = v.get("/ui/children?stale_days=many").await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("id=\"error-stale_days\""));
    let p = v.get("/ui/children?region=5").await;
    assert_eq!(p.status, 400);

    // The header's search box still goes straight to a file.
    let p = v.get(&format!("/ui/children?id={}", ids[0])).await;
    assert_eq!(p.status, 303);
    assert_eq!(p.location.unwrap(), format!("/ui/children/{}", ids[0]));

    // An auditor may not read children's files.
    let mut auditor = logged_in(&app, "zhao.shen", Role::Auditor).await;
    assert_eq!(auditor.get("/ui/children").await.status, 403);
}

#[tokio::test]
async fn a_new_file_and_its_edit_form_refuse_bad_input_and_store_nothing() {
    let app = spawn_app().await;
    let mut v = logged_in(&app, "wang.fang", Role::Caseworker).await;
    let form = v.get("/ui/children/new").await;
    assert_eq!(form.status, 200, "{}", form.body);
    let csrf = form.hidden("csrf");
    let id = id_number("510104", (2015, 3, 3), 11);

    // No token: 403, nothing stored.
    let fields = [
        ("id_number", id.as_str()),
        ("name", "李小红"),
        ("hukou_region", "510104"),
        ("residence_region", "410105"),
        ("categories", "流动;留守"),
        ("risk_level", "3"),
        ("last_visit_on", "2026-10-01"),
    ];
    let p = v.post("/ui/children/new", &fields).await;
    assert_eq!(p.status, 403);
    // A bad ID number and a bad date: 422 beside the field.
    let mut bad: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
    bad.extend(fields.iter().map(|(k, v)| {
        (
            *k,
            if *k == "id_number" {
                "510104201503030010"
            } else {
                *v
            },
        )
    }));
    let p = v.post("/ui/children/new", &bad).await;
    assert_eq!(p.status, 422, "{}", p.body);
    assert!(!error_beside(&p, "new-file", "id_number").is_empty());
    assert!(p.body.contains("李小红"), "what was typed comes back");
    let mut bad: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
    bad.extend(fields.iter().map(|(k, v)| {
        (
            *k,
            if *k == "last_visit_on" {
                "2026-13-45"
            } else {
                *v
            },
        )
    }));
    let p = v.post("/ui/children/new", &bad).await;
    assert_eq!(p.status, 422);
    assert!(error_beside(&p, "new-file", "last_visit_on").contains("date"));
    assert_eq!(app.count("children"), 0, "nothing stored");
    // An auditor: 403.
    let mut auditor = logged_in(&app, "zhao.shen", Role::Auditor).await;
    assert_eq!(auditor.get("/ui/children/new").await.status, 403);
    let mut good: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
    good.extend(fields.iter().copied());
    assert_eq!(auditor.post("/ui/children/new", &good).await.status, 403);
    assert_eq!(app.count("children"), 0);

    // Created.
    let p = v.post("/ui/children/new", &good).await;
    assert_eq!(p.status, 303, "{}", p.body);
    let path = format!("/ui/children/{id}");
    assert_eq!(p.location.unwrap(), format!("{path}?saved=created"));
    let page = v.get(&format!("{path}?saved=created")).await;
    assert!(page.body.contains("档案已建立"));
    assert!(page.body.contains("流动、留守"), "labels, not codes");
    assert!(page.body.contains("2015年3月3日"), "a date in Chinese form");

    // The edit form: a bad date is refused beside the field, nothing stored.
    let versions = app.count("versions");
    let was = page.hidden("was.last_visit_on");
    assert_eq!(was, "2026-10-01");
    let p = v
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("was.last_visit_on", &was),
                ("last_visit_on", "yesterday"),
                ("was.notes", ""),
                ("notes", "新备注"),
            ],
        )
        .await;
    assert_eq!(p.status, 422, "{}", p.body);
    assert!(error_beside(&p, "edit-file", "last_visit_on").contains("date"));
    assert!(p.body.contains("yesterday"), "what was typed comes back");
    assert_eq!(app.count("versions"), versions);
    // A value the record refuses (a region that is not one): 422, nothing stored.
    let p = v
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("was.residence_region", "410105"),
                ("residence_region", "999999"),
            ],
        )
        .await;
    assert_eq!(p.status, 422, "{}", p.body);
    assert!(!error_beside(&p, "edit-file", "residence_region").is_empty());
    assert_eq!(app.count("versions"), versions);
    // Without the token: 403.
    let p = v
        .post(&path, &[("was.notes", ""), ("notes", "新备注")])
        .await;
    assert_eq!(p.status, 403);
    // Saved: only the changed field makes a version.
    let p = v
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("was.last_visit_on", &was),
                ("last_visit_on", &was),
                ("was.notes", ""),
                ("notes", "新备注"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(app.count("versions"), versions + 1);
    let file: Value = app
        .get(&format!("/api/v1/children/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(file["record"]["notes"], "新备注");
    let history = file["history"].as_array().unwrap();
    assert_eq!(
        history.last().unwrap()["changed"],
        serde_json::json!(["notes"])
    );
}

#[tokio::test]
async fn a_visit_from_the_file_page_and_the_due_list() {
    let app = spawn_app().await;
    let child = flowing_child(21);
    let id = child["id_number"].as_str().unwrap().to_owned();
    app.create_child(&child).await;
    let mut v = logged_in(&app, "wang.fang", Role::Caseworker).await;
    let path = format!("/ui/children/{id}");
    let page = v.get(&path).await;
    assert!(page.body.contains("id=\"visit\""), "{}", page.body);
    let csrf = page.hidden("csrf");
    let visits = app.count("visits");

    // Nobody seen: 422 beside the check boxes.
    let form = |seen: &'static str, date: &'static str| {
        vec![
            ("visited_on", date),
            ("kind", "home"),
            ("visitor_name", "王芳"),
            ("visitor_role", "children_director"),
            ("seen", seen),
            ("grade_living", "2"),
            ("assessor", "王芳"),
            ("follow_up", "联系学校\n补办低保材料"),
        ]
    };
    let mut f = form("", "2026-11-20");
    f.push(("csrf", &csrf));
    let p = v.post(&format!("{path}/visits"), &f).await;
    assert_eq!(p.status, 422, "{}", p.body);
    assert!(!error_beside(&p, "visit", "seen").is_empty(), "{}", p.body);
    // A date that is not one.
    let mut f = form("child", "2026-02-30");
    f.push(("csrf", &csrf));
    let p = v.post(&format!("{path}/visits"), &f).await;
    assert_eq!(p.status, 422);
    assert!(!error_beside(&p, "visit", "visited_on").is_empty());
    // No token.
    let p = v
        .post(&format!("{path}/visits"), &form("child", "2026-11-20"))
        .await;
    assert_eq!(p.status, 403);
    assert_eq!(app.count("visits"), visits, "nothing stored");
    // An auditor.
    let mut auditor = logged_in(&app, "zhao.shen", Role::Auditor).await;
    let mut f = form("child", "2026-11-20");
    f.push(("csrf", &csrf));
    assert_eq!(
        auditor.post(&format!("{path}/visits"), &f).await.status,
        403
    );

    // Recorded.
    let p = v.post(&format!("{path}/visits"), &f).await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(app.count("visits"), visits + 1);
    let page = v.get(&format!("{path}?saved=visit")).await;
    assert!(page.body.contains("走访已记录"));
    assert!(page.body.contains("入户走访"), "{}", page.body);
    assert!(page.body.contains("2026年11月20日"));

    // The due list (everything due within a year), audited.
    let before = audit_count(&app, "visit.due.read");
    let p = v.get("/ui/visits/due?within_days=366").await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p
        .body
        .contains(&hukou_sync::domain::IdNumber::mask_text(&id)));
    assert!(!p.body.contains(&format!(">{id}<")));
    assert_eq!(audit_count(&app, "visit.due.read"), before + 1);
    let p = v.get("/ui/visits/due?within_days=soon").await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("id=\"error-within_days\""));
}

/// A `multipart/form-data` body of text fields and one file.
fn multipart(fields: &[(&str, &str)], file: Option<(&str, &str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "----pagesTestBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    if let Some((name, media, bytes)) = file {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: {media}\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn a_case_opened_with_a_document_and_decided_with_the_buttons() {
    let pair = spawn_pair().await;
    let child = flowing_child(31);
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

    let mut worker = logged_in(&pair.residence, "wang.fang", Role::Caseworker).await;
    let page = worker.get(&format!("/ui/children/{id}")).await;
    assert!(page.body.contains("id=\"open-case\""), "{}", page.body);
    assert!(page.body.contains("enctype=\"multipart/form-data\""));
    let csrf = page.hidden("csrf");
    let cases = pair.residence.count("cases");
    let files = pair.residence.count("evidence_files");
    let action = format!("/ui/children/{id}/cases");
    let fields = |summary: &'static str, csrf: &str| {
        vec![
            ("csrf".to_owned(), csrf.to_owned()),
            ("benefit".into(), "dibao".into()),
            ("father_situation".into(), "imprisoned".into()),
            ("mother_situation".into(), "missing".into()),
            ("summary".into(), summary.into()),
            ("officer".into(), "ZZ-JS-017".into()),
            ("doc_type".into(), "服刑通知书".into()),
            ("issuer".into(), "四川省某监狱".into()),
            ("number".into(), "川监2025-118".into()),
        ]
    };
    let as_refs = |f: &[(String, String)]| -> Vec<(String, String)> { f.to_vec() };
    let send = |f: Vec<(String, String)>, file: Option<(&'static str, &'static str, Vec<u8>)>| {
        let refs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        multipart(&refs, file.as_ref().map(|(n, m, b)| (*n, *m, b.as_slice())))
    };
    let document = pdf("服刑通知书 川监2025-118");

    // Grounds left empty: 422 beside the field, nothing stored (not even the file).
    let (ct, body) = send(
        as_refs(&fields("", &csrf)),
        Some(("通知书.pdf", "application/pdf", document.clone())),
    );
    let p = worker.post_raw(&action, &ct, body).await;
    assert_eq!(p.status, 422, "{}", p.body);
    assert!(
        !error_beside(&p, "open-case", "summary").is_empty(),
        "{}",
        p.body
    );
    // A file that is not what it says: refused beside the file input.
    let (ct, body) = send(
        as_refs(&fields("父亲服刑在押，母亲失联", &csrf)),
        Some(("通知书.pdf", "application/pdf", b"not a pdf".to_vec())),
    );
    let p = worker.post_raw(&action, &ct, body).await;
    assert!(
        p.status == 415 || p.status == 422,
        "{} {}",
        p.status,
        p.body
    );
    assert!(!error_beside(&p, "open-case", "file").is_empty());
    // No token.
    let (ct, body) = send(
        as_refs(&fields("父亲服刑在押，母亲失联", "forged")),
        Some(("通知书.pdf", "application/pdf", document.clone())),
    );
    assert_eq!(worker.post_raw(&action, &ct, body).await.status, 403);
    assert_eq!(pair.residence.count("cases"), cases);
    assert_eq!(pair.residence.count("evidence_files"), files);

    // Opened, with its document.
    let (ct, body) = send(
        as_refs(&fields("父亲服刑在押，母亲失联", &csrf)),
        Some(("通知书.pdf", "application/pdf", document.clone())),
    );
    let p = worker.post_raw(&action, &ct, body).await;
    assert_eq!(p.status, 303, "{}", p.body);
    let location = p.location.unwrap();
    assert!(location.starts_with("/ui/cases/"), "{location}");
    let case_id = location
        .trim_start_matches("/ui/cases/")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(pair.residence.count("evidence_files"), files + 1);
    let page = worker.get(&location).await;
    assert!(page.body.contains("案件已提交"), "{}", page.body);
    assert!(page.body.contains("服刑通知书"));

    // The reviewer at the hukou node: receive, then approve with a month.
    let mut reviewer = logged_in(&pair.hukou, "chen.jing", Role::Reviewer).await;
    let case_path = format!("/ui/cases/{case_id}");
    eventually(
        20,
        "the case and its document at the hukou node",
        || async {
            let r = pair.hukou.get(&format!("/api/v1/cases/{case_id}")).await;
            if r.status() != 200 {
                return false;
            }
            let v: Value = r.json().await.unwrap();
            v["evidence"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["status"] == "present")
        },
    )
    .await;
    let page = reviewer.get("/ui/cases").await;
    assert!(page.body.contains(&case_id), "{}", page.body);
    let page = reviewer.get(&case_path).await;
    let csrf = page.hidden("csrf");
    // The hukou node receives an arriving case itself; a reviewer receives one only if not.
    if page.body.contains("id=\"receive\"") {
        let p = reviewer
            .post(
                &case_path,
                &[
                    ("csrf", &csrf),
                    ("action", "receive"),
                    ("officer", "CD-JJ-003"),
                ],
            )
            .await;
        assert_eq!(p.status, 303, "{}", p.body);
    }
    let page = reviewer.get(&case_path).await;
    assert!(page.body.contains("id=\"approve\""), "{}", page.body);
    assert!(page.body.contains("id=\"deny\""));
    assert!(page.body.contains("id=\"request_info\""));
    // The residence node is not the decider: the service's 403 is shown.
    let worker_csrf = page_csrf(&mut worker, &case_path).await;
    let p = worker
        .post(
            &case_path,
            &[
                ("csrf", &worker_csrf),
                ("action", "approve"),
                ("effective_month", "2026-11"),
            ],
        )
        .await;
    assert_eq!(p.status, 403, "{}", p.body);
    assert!(
        p.body.contains("id=\"error\""),
        "the refusal is shown: {}",
        p.body
    );
    // No token.
    let p = reviewer
        .post(
            &case_path,
            &[("action", "approve"), ("effective_month", "2026-11")],
        )
        .await;
    assert_eq!(p.status, 403);
    // A question and its answer: an empty question is refused beside it; the residence
    // caseworker answers from the case's page there.
    let p = reviewer
        .post(
            &case_path,
            &[
                ("csrf", &csrf),
                ("action", "request_info"),
                ("question", ""),
            ],
        )
        .await;
    assert_eq!(p.status, 422, "{}", p.body);
    assert!(
        !error_beside(&p, "request_info", "question").is_empty(),
        "{}",
        p.body
    );
    let p = reviewer
        .post(
            &case_path,
            &[
                ("csrf", &csrf),
                ("action", "request_info"),
                ("question", "请补充祖父的收入证明"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    eventually(20, "the question at the residence node", || async {
        let r = pair
            .residence
            .get(&format!("/api/v1/cases/{case_id}"))
            .await;
        let v: Value = r.json().await.unwrap();
        v["case"]["state"] == "info_requested"
    })
    .await;
    let page = worker.get(&case_path).await;
    assert!(page.body.contains("id=\"provide_info\""), "{}", page.body);
    let p = worker
        .post(
            &case_path,
            &[
                ("csrf", &worker_csrf),
                ("action", "provide_info"),
                ("answer", "祖父无固定收入，村委会已出具证明"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    eventually(20, "the answer at the hukou node", || async {
        let r = pair.hukou.get(&format!("/api/v1/cases/{case_id}")).await;
        let v: Value = r.json().await.unwrap();
        v["case"]["state"] == "info_provided"
    })
    .await;
    // A month that is not one: 422 beside it, the case unchanged.
    let p = reviewer
        .post(
            &case_path,
            &[
                ("csrf", &csrf),
                ("action", "approve"),
                ("effective_month", "2026-13"),
            ],
        )
        .await;
    assert_eq!(p.status, 422, "{}", p.body);
    assert!(
        !error_beside(&p, "approve", "effective_month").is_empty(),
        "{}",
        p.body
    );
    // Deny without a reason text.
    let p = reviewer
        .post(
            &case_path,
            &[
                ("csrf", &csrf),
                ("action", "deny"),
                ("reason_code", "other"),
                ("reason_text", ""),
            ],
        )
        .await;
    assert_eq!(p.status, 422, "{}", p.body);
    let state: Value = pair
        .hukou
        .get(&format!("/api/v1/cases/{case_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(state["case"]["state"], "info_provided");
    let p = reviewer
        .post(
            &case_path,
            &[
                ("csrf", &csrf),
                ("action", "approve"),
                ("effective_month", "2026-11"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let page = reviewer.get(&case_path).await;
    assert!(page.body.contains("2026年11月"), "{}", page.body);
    assert!(!page.body.contains("id=\"approve\""));

    // The hukou bureau ends the benefit from the file's page: a bad month is refused.
    let file_path = format!("/ui/children/{id}");
    eventually(20, "the grant in the file at the hukou node", || async {
        let f: Value = pair
            .hukou
            .get(&format!("/api/v1/children/{id}"))
            .await
            .json()
            .await
            .unwrap();
        f["record"]["benefits"]
            .as_array()
            .is_some_and(|b| !b.is_empty())
    })
    .await;
    assert!(reviewer
        .get(&file_path)
        .await
        .body
        .contains("id=\"end-benefit\""));
    let versions = pair.hukou.count("versions");
    let p = reviewer
        .post(
            &format!("{file_path}/benefits/end"),
            &[
                ("csrf", &csrf),
                ("benefit", "dibao"),
                ("month", "12/2026"),
                ("reason", "income_over"),
            ],
        )
        .await;
    assert_eq!(p.status, 422, "{}", p.body);
    assert!(
        !error_beside(&p, "end-benefit", "month").is_empty(),
        "{}",
        p.body
    );
    assert_eq!(pair.hukou.count("versions"), versions);
    let p = reviewer
        .post(
            &format!("{file_path}/benefits/end"),
            &[
                ("csrf", &csrf),
                ("benefit", "dibao"),
                ("month", "2026-12"),
                ("reason", "income_over"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let page = reviewer.get(&format!("{file_path}?saved=benefit")).await;
    assert!(page.body.contains("待遇已终止"), "{}", page.body);
}

async fn page_csrf(v: &mut Visitor, path: &str) -> String {
    v.get(path).await.hidden("csrf")
}

#[tokio::test]
async fn a_ledger_uploads_with_its_row_errors_and_ignored_columns_and_downloads() {
    let app = spawn_app().await;
    let mut v = logged_in(&app, "wang.fang", Role::Caseworker).await;
    let page = v.get("/ui/ledger").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = page.hidden("csrf");
    let good = id_number("510104", (2014, 6, 1), 41);
    let other = id_number("510104", (2014, 6, 1), 42);
    let ledger = format!(
        "序号,身份证号,姓名,户籍地,居住地,儿童类别,联系人\n\
         1,{good},张小明,510104,410105,流动,王\n\
         2,510104201406010000,李小红,510104,410105,流动,李\n\
         3,{other},赵小刚,510104,410105,留守,赵\n"
    );
    let upload = |csrf: &str, skip: bool, bytes: &[u8]| {
        let mut fields = vec![("csrf", csrf)];
        if skip {
            fields.push(("skip_invalid", "1"));
        }
        multipart(&fields, Some(("台账.csv", "text/csv", bytes)))
    };

    // A bad row: nothing imported, the row and the ignored columns shown.
    let (ct, body) = upload(&csrf, false, ledger.as_bytes());
    let p = v.post_raw("/ui/ledger", &ct, body).await;
    assert_eq!(p.status, 422, "{}", p.body);
    assert!(p.body.contains("id=\"row-errors\""), "{}", p.body);
    assert!(p.body.contains("身份证号 (id_number)"), "{}", p.body);
    assert!(
        p.body.contains("序号") && p.body.contains("联系人"),
        "{}",
        p.body
    );
    assert_eq!(app.count("children"), 0);
    // No token; an auditor; no file.
    let (ct, body) = upload("forged", true, ledger.as_bytes());
    assert_eq!(v.post_raw("/ui/ledger", &ct, body).await.status, 403);
    let mut auditor = logged_in(&app, "zhao.shen", Role::Auditor).await;
    let (ct, body) = upload(&csrf, true, ledger.as_bytes());
    assert_eq!(auditor.post_raw("/ui/ledger", &ct, body).await.status, 403);
    let (ct, body) = multipart(&[("csrf", &csrf)], None);
    let p = v.post_raw("/ui/ledger", &ct, body).await;
    assert_eq!(p.status, 422);
    assert!(!error_beside(&p, "upload", "file").is_empty());
    assert_eq!(app.count("children"), 0);

    // The other rows, as --skip-invalid.
    let (ct, body) = upload(&csrf, true, ledger.as_bytes());
    let p = v.post_raw("/ui/ledger", &ct, body).await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(
        p.body.contains("<span id=\"imported\">2</span>"),
        "{}",
        p.body
    );
    assert_eq!(app.count("children"), 2);

    // Downloads: a purpose is required; the export is audited.
    let p = v.get("/ui/ledger/export?format=csv&purpose=").await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("id=\"export-error\""));
    let before = audit_count(&app, "child.export");
    let p = v
        .get("/ui/ledger/export?format=csv&purpose=%E6%9C%88%E5%BA%A6%E6%A0%B8%E5%AF%B9")
        .await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains(&good) && p.body.contains(&other));
    assert_eq!(audit_count(&app, "child.export"), before + 1);
    let r = reqwest::Client::new()
        .get(format!(
            "{}/ui/ledger/export?format=xlsx&purpose=check",
            app.base
        ))
        .header("cookie", format!("hks_session={}", v.cookie("hks_session")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let workbook = r.bytes().await.unwrap().to_vec();
    assert!(workbook.starts_with(b"PK\x03\x04"));

    // The workbook imports at another node through the same page.
    let fresh = spawn_app().await;
    let mut w = logged_in(&fresh, "wang.fang", Role::Caseworker).await;
    let csrf = w.get("/ui/ledger").await.hidden("csrf");
    let (ct, body) = multipart(
        &[("csrf", &csrf)],
        Some((
            "台账.xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            &workbook,
        )),
    );
    let p = w.post_raw("/ui/ledger", &ct, body).await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(fresh.count("children"), 2);
}

#[tokio::test]
async fn a_report_from_the_file_page_and_the_reports_list() {
    let app = spawn_app().await;
    let child = flowing_child(61);
    let id = child["id_number"].as_str().unwrap().to_owned();
    app.create_child(&child).await;
    let mut v = logged_in(&app, "wang.fang", Role::Caseworker).await;
    let path = format!("/ui/children/{id}");
    let csrf = v.get(&path).await.hidden("csrf");
    let reports = app.count("reports");
    let form = |seen: &'static str| {
        vec![
            ("reported_on", "2026-11-21"),
            ("reporter_kind", "school"),
            ("reporter_name", "某小学"),
            ("seen", seen),
            ("urgency", "urgent"),
            ("police_called", "1"),
            ("referral_target", "township_social_work"),
        ]
    };
    let mut f = form("");
    f.push(("csrf", &csrf));
    let p = v.post(&format!("{path}/reports"), &f).await;
    assert_eq!(p.status, 422, "{}", p.body);
    assert!(!error_beside(&p, "report", "seen").is_empty(), "{}", p.body);
    assert_eq!(
        v.post(&format!("{path}/reports"), &form("多日未到校"))
            .await
            .status,
        403
    );
    assert_eq!(app.count("reports"), reports);
    let mut f = form("多日未到校，身上有伤");
    f.push(("csrf", &csrf));
    let p = v.post(&format!("{path}/reports"), &f).await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(app.count("reports"), reports + 1);
    let p = v.get("/ui/reports?urgent=1").await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("学校及教育机构 某小学"), "{}", p.body);
    assert!(p.body.contains("乡镇(街道)社工站"));
    assert!(p.body.contains("2026年11月21日"));
    assert!(!p.body.contains(&format!(">{id}<")));
}
