//! A child who moves to a third bureau (issue 19): three real nodes over mutual TLS. The bureau
//! the child moves to becomes a party with the move and receives the file's whole history with
//! it; it then edits as the residence bureau; the hukou bureau follows; nothing is refused
//! anywhere and reconciliation between the new pair finds nothing to repair.

use serde_json::{json, Value};

use crate::helpers::{eventually, flowing_child, problem, spawn_network, TestApp};

const ZHENGZHOU: &str = "410100";
const CHENGDU: &str = "510100";
const HANGZHOU: &str = "330100";

async fn record(app: &TestApp, id: &str) -> Option<Value> {
    let r = app.get(&format!("/api/v1/children/{id}")).await;
    if r.status() != 200 {
        return None;
    }
    let file: Value = r.json().await.unwrap();
    Some(file["record"].clone())
}

async fn history_len(app: &TestApp, id: &str) -> usize {
    let file: Value = app
        .get(&format!("/api/v1/children/{id}"))
        .await
        .json()
        .await
        .unwrap();
    file["history"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn a_child_who_moves_to_a_third_bureau_keeps_one_file_everywhere() {
    let net = spawn_network(&[(ZHENGZHOU, "4101"), (CHENGDU, "5101"), (HANGZHOU, "3301")]).await;
    let [zhengzhou, chengdu, hangzhou] = &net.nodes[..] else {
        panic!("three nodes")
    };
    let child = flowing_child(401);
    let id = child["id_number"].as_str().unwrap().to_owned();
    zhengzhou.create_child(&child).await;
    // Two more edits at the residence bureau before the move: a history of three versions.
    for risk in ["橙", "红"] {
        let r = zhengzhou
            .patch_json(
                &format!("/api/v1/children/{id}"),
                &json!({"risk_level": risk}),
            )
            .await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    // A visit before the move (the file's last visit follows it: a fourth version); the visit
    // travels with the file.
    let r = zhengzhou
        .post_json(
            &format!("/api/v1/children/{id}/visits"),
            &json!({"visited_on": hukou_sync::sync::ledger::china_today(chrono::Utc::now()),
                    "visitor": {"name": "李娟", "role": "children_director"},
                    "kind": "home", "seen": ["child"]}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    eventually(30, "Chengdu holds the four versions", || async {
        record(chengdu, &id).await.is_some() && history_len(chengdu, &id).await == 4
    })
    .await;
    assert!(record(hangzhou, &id).await.is_none(), "no party yet");

    // The family moves to Hangzhou (西湖区 330106).
    let r = zhengzhou
        .patch_json(
            &format!("/api/v1/children/{id}"),
            &json!({"residence_region": "330106"}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    eventually(30, "Hangzhou holds the whole file", || async {
        record(hangzhou, &id)
            .await
            .is_some_and(|r| r["residence_region"] == "330106")
            && history_len(hangzhou, &id).await == 5
    })
    .await;

    eventually(
        30,
        "Hangzhou holds the visit made before the move",
        || async { hangzhou.count("visits") == 1 },
    )
    .await;
    // Hangzhou is now the residence bureau: it grades the risk; the hukou bureau follows.
    let r = hangzhou
        .patch_json(
            &format!("/api/v1/children/{id}"),
            &json!({"risk_level": "黄"}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    eventually(30, "Chengdu sees Hangzhou's grading", || async {
        record(chengdu, &id)
            .await
            .is_some_and(|r| r["risk_level"] == 3)
    })
    .await;
    let at_hangzhou = record(hangzhou, &id).await.unwrap();
    assert_eq!(record(chengdu, &id).await.unwrap(), at_hangzhou);
    assert_eq!(history_len(chengdu, &id).await, 6);
    assert_eq!(history_len(hangzhou, &id).await, 6);

    // Zhengzhou no longer serves the child: it keeps its copy as of the move and refuses edits
    // as a bureau that is no party, not as a field's wrong authority.
    let kept = record(zhengzhou, &id).await.unwrap();
    assert_eq!(kept["residence_region"], "330106");
    assert_eq!(kept["risk_level"], 1);
    let file: Value = zhengzhou
        .get(&format!("/api/v1/children/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(file["served_here"], false);
    assert_eq!(file["now_served_by"], json!([HANGZHOU, CHENGDU]));
    let at_chengdu: Value = chengdu
        .get(&format!("/api/v1/children/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(at_chengdu["served_here"], true);
    assert_eq!(at_chengdu["now_served_by"], json!([]));
    // Its list leaves the file out; the hukou node lists it.
    let listed = |node: &TestApp| {
        let url = node.url("/api/v1/children?limit=50");
        let http = node.http.clone();
        async move {
            let page: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            page["items"].as_array().unwrap().len()
        }
    };
    assert_eq!(listed(zhengzhou).await, 0);
    assert_eq!(listed(chengdu).await, 1);
    // Its export leaves the file out and says so; --include-former exports it.
    let export = |extra: &[&str]| {
        let out = crate::helpers::node_command(&net.pki, ZHENGZHOU, zhengzhou)
            .args(["export", "--format", "jsonl", "--purpose", "年度核对"])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (rows, said) = export(&[]);
    assert!(!rows.contains(&id), "{rows}");
    assert!(
        said.contains("left out 1 files this node no longer serves"),
        "{said}"
    );
    let (rows, _) = export(&["--include-former"]);
    assert!(rows.contains(&id), "{rows}");
    // Its stale count leaves the file out, even once the file is old: it is no longer this
    // node's to refresh. (The hukou node, still serving the child, counts it.)
    for node in [zhengzhou, chengdu] {
        node.exec("UPDATE children SET refreshed_on = '2020-01-01'");
    }
    let metrics = |node: &TestApp| {
        let url = node.url("/metrics");
        let http = node.http.clone();
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    assert!(metrics(zhengzhou)
        .await
        .contains("hukou_sync_stale_children 0"));
    assert!(metrics(chengdu)
        .await
        .contains("hukou_sync_stale_children 1"));
    // Nor is it counted by risk level here: Zhengzhou's copy, graded 红 (1), is not its to
    // grade any more; Chengdu counts the level Hangzhou gave (黄, 3).
    let zz = metrics(zhengzhou).await;
    assert!(zz.contains("hukou_children_risk{level=\"1\"} 0"), "{zz}");
    let cd = metrics(chengdu).await;
    assert!(cd.contains("hukou_children_risk{level=\"3\"} 1"), "{cd}");
    // Nor in its statistics (the hukou node counts it, in Hangzhou's county).
    let stats = |node: &TestApp| {
        let url = node.url("/api/v1/stats");
        let http = node.http.clone();
        async move {
            let v: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            v
        }
    };
    assert_eq!(stats(zhengzhou).await["files"], 0);
    let at_cd = stats(chengdu).await;
    assert_eq!(at_cd["files"], 1);
    assert_eq!(at_cd["by_region"][0]["key"], "330106");
    assert!(cd.contains("hukou_children_risk{level=\"1\"} 0"), "{cd}");
    problem(
        zhengzhou
            .patch_json(
                &format!("/api/v1/children/{id}"),
                &json!({"notes": "still here?"}),
            )
            .await,
        403,
        "not_party",
    )
    .await;

    // Nothing was refused anywhere, and every queue drained.
    for node in [zhengzhou, chengdu, hangzhou] {
        assert_eq!(node.count("outbox_rejected"), 0);
        assert_eq!(
            node.count("audit_events WHERE action = 'version.reject'"),
            0
        );
        eventually(30, "the outbox drains", || async {
            node.count("outbox") == 0
        })
        .await;
    }

    // Reconciliation between the hukou bureau and the new residence bureau: nothing differs.
    let r = chengdu
        .http
        .post(chengdu.url(&format!("/api/v1/reconcile/{HANGZHOU}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    eventually(30, "the run finishes", || async {
        let v: Value = chengdu.get(&location).await.json().await.unwrap();
        v["status"] != "running"
    })
    .await;
    let v: Value = chengdu.get(&location).await.json().await.unwrap();
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(v["differences"], 0, "{v}");
    for node in net.nodes {
        node.stop().await;
    }
}
