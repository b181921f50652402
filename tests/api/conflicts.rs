//! Conflicts between two real nodes: found alike on both, owned by the hukou side, resolved by
//! a signed resolution version that replicates; and every refusal on the way.

use chrono::Utc;
use hukou_sync::accounts::Role;
use hukou_sync::crypto::hlc::Hlc;
use hukou_sync::domain::NodeId;
use hukou_sync::sync::version::{DocKind, Version};
use serde_json::{json, Value};

use crate::helpers::{
    client_with_token, create_token, eventually, flowing_child, peer_client, problem, push,
    receipt, residence_key, spawn_pair, wait_for_versions, Pair, CHENGDU, ZHENGZHOU,
};

/// Two nodes holding one child's file with an open conflict on `health_status` (a shared field:
/// no authority decides it). The hukou node edits it through its API; concurrently (same parent)
/// the residence node's version changes it differently and reaches both nodes by push.
/// Returns the ID number.
pub async fn conflicted_pair() -> (Pair, String) {
    conflicted_pair_with(json!({}), json!({})).await
}

/// As [`conflicted_pair`], the hukou side's edit also setting `hukou_more` and the residence
/// side's concurrent version also setting `residence_more` (fields only that side changes, which
/// the merge takes without a conflict).
pub async fn conflicted_pair_with(hukou_more: Value, residence_more: Value) -> (Pair, String) {
    let pair = spawn_pair().await;
    let child = flowing_child(7);
    let id = child["id_number"].as_str().unwrap().to_owned();
    let created = pair.residence.create_child(&child).await;
    let creation = created["history"][0]["id"].as_str().unwrap().to_owned();
    wait_for_versions(&pair.hukou, &id, 1).await;

    let r = pair
        .hukou
        .patch_json(&format!("/api/v1/children/{id}"), &{
            let mut patch = json!({"health_status": "healthy"});
            for (k, v) in hukou_more.as_object().unwrap() {
                patch[k] = v.clone();
            }
            patch
        })
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    let mut body = created["record"].clone();
    body["health_status"] = json!("chronic_illness");
    for (k, v) in residence_more.as_object().unwrap() {
        body[k] = v.clone();
    }
    let concurrent = Version::new(
        DocKind::Child,
        id.clone(),
        vec![creation.parse().unwrap()],
        NodeId::parse(ZHENGZHOU).unwrap(),
        Hlc::new(Utc::now().timestamp_millis(), 0).unwrap(),
        body,
    )
    .sign(
        &residence_key(&pair.pki),
        hukou_sync::crypto::hash::HashAlg::Sha256,
    )
    .unwrap();
    // To the hukou node as its author would send it, and to the author's own node as the hukou
    // node would forward it: both end up with the same three versions.
    for (client, app, sender) in [
        (
            peer_client(&pair.pki, ZHENGZHOU, CHENGDU),
            &pair.hukou,
            ZHENGZHOU,
        ),
        (
            peer_client(&pair.pki, CHENGDU, ZHENGZHOU),
            &pair.residence,
            CHENGDU,
        ),
    ] {
        let rc = receipt(push(&client, app, sender, vec![concurrent.clone()]).await).await;
        assert_eq!(rc.receipt.accepted, vec![concurrent.id], "{rc:?}");
    }
    wait_for_versions(&pair.residence, &id, 3).await;
    wait_for_versions(&pair.hukou, &id, 3).await;
    (pair, id)
}

fn without_opened_at(conflicts: &Value) -> Value {
    let mut v = conflicts.clone();
    for c in v.as_array_mut().unwrap() {
        c.as_object_mut().unwrap().remove("opened_at");
    }
    v
}

async fn conflicts_of(app: &crate::helpers::TestApp, id: &str) -> Value {
    let r = app.get(&format!("/api/v1/children/{id}/conflicts")).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn both_nodes_find_the_same_conflict_and_the_hukou_side_resolves_it_for_both() {
    let (pair, id) = conflicted_pair().await;
    let (res, huk) = (&pair.residence, &pair.hukou);

    let at_hukou = conflicts_of(huk, &id).await;
    let at_residence = conflicts_of(res, &id).await;
    // The same conflicts, whatever order the versions arrived in (only the local time each
    // node first saw it differs).
    assert_eq!(
        without_opened_at(&at_hukou["conflicts"]),
        without_opened_at(&at_residence["conflicts"])
    );
    assert_eq!(at_hukou["heads"], at_residence["heads"]);
    let c = &at_hukou["conflicts"][0];
    assert_eq!(c["field"], "health_status");
    assert_eq!(c["owner"], CHENGDU);
    assert_eq!(c["base"], Value::Null);
    let values: Vec<&Value> = c["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["value"])
        .collect();
    assert!(values.contains(&&json!("healthy")) && values.contains(&&json!("chronic_illness")));
    assert_eq!(at_hukou["reviewable_here"], true);
    assert_eq!(at_residence["reviewable_here"], false);
    assert_eq!(at_residence["awaiting"], json!([CHENGDU]));

    // The queue: the hukou node's own; the residence node sees it only among all.
    let q: Value = huk.get("/api/v1/conflicts").await.json().await.unwrap();
    assert_eq!(q["items"].as_array().unwrap().len(), 1);
    let q: Value = res.get("/api/v1/conflicts").await.json().await.unwrap();
    assert!(q["items"].as_array().unwrap().is_empty());
    let q: Value = res
        .get("/api/v1/conflicts?owner=all")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(q["items"][0]["owner"], CHENGDU);

    // Operators see it in the metrics of both nodes.
    for app in [huk, res] {
        let m = app.get("/metrics").await.text().await.unwrap();
        assert!(
            m.contains(&format!(
                "hukou_sync_open_conflicts{{owner=\"{CHENGDU}\"}} 1"
            )),
            "{m}"
        );
    }

    // Nobody edits a field under review.
    let r = res
        .patch_json(
            &format!("/api/v1/children/{id}"),
            &json!({"health_status": "serious_illness"}),
        )
        .await;
    problem(r, 409, "field_under_review").await;

    // Bad resolutions: each refused, nothing stored.
    let heads = at_hukou["heads"].clone();
    let path = format!("/api/v1/children/{id}/conflicts/resolve");
    let versions_before = huk.count("versions");
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"heads": [heads[0]], "values": {"health_status": "healthy"}}),
            409,
            "stale_resolution",
        ),
        (json!({"heads": heads, "values": {}}), 422, "missing_choice"),
        (
            json!({"heads": heads, "values": {"health_status": "healthy", "name": "李四"}}),
            422,
            "not_in_conflict",
        ),
        (
            json!({"heads": heads, "values": {"health_status": 42}}),
            422,
            "invalid_field",
        ),
        (
            json!({"heads": heads, "values": {"shoe_size": 3}}),
            422,
            "unknown_field",
        ),
        (
            json!({"heads": ["nothex"], "values": {"health_status": "healthy"}}),
            422,
            "invalid_head",
        ),
        (
            json!({"heads": heads, "values": {"health_status": "healthy"}, "extra": 1}),
            422,
            "invalid_body",
        ),
    ];
    for (body, status, code) in cases {
        let p = problem(huk.post_json(&path, &body).await, status, code).await;
        if code == "stale_resolution" {
            // Only some of the heads were sent: the reason names the one left out.
            let left_out = &heads[1].as_str().unwrap()[..12];
            let reason = p["reason"].as_str().unwrap();
            assert!(reason.contains(left_out), "{reason}");
            assert!(reason.contains("not named"), "{reason}");
            assert_eq!(
                without_opened_at(&p["current"]["conflicts"]),
                without_opened_at(&at_hukou["conflicts"]),
                "{p}"
            );
        }
    }
    let r = huk
        .http
        .post(huk.url(&path))
        .header("content-type", "application/json")
        .body("{\"heads\": [")
        .send()
        .await
        .unwrap();
    problem(r, 400, "malformed_json").await;
    // A caseworker may not resolve; a reviewer on the other node does not own it.
    let caseworker =
        client_with_token(&create_token(&huk.store, &huk.node, "cw", Role::Caseworker));
    let r = caseworker
        .post(huk.url(&path))
        .json(&json!({"heads": heads, "values": {"health_status": "healthy"}}))
        .send()
        .await
        .unwrap();
    problem(r, 403, "forbidden").await;
    let reviewer = client_with_token(&create_token(&res.store, &res.node, "rv", Role::Reviewer));
    let r = reviewer
        .post(res.url(&path))
        .json(&json!({"heads": heads, "values": {"health_status": "healthy"}}))
        .send()
        .await
        .unwrap();
    problem(r, 403, "not_review_owner").await;
    assert_eq!(huk.count("versions"), versions_before);
    assert_eq!(res.count("versions"), versions_before);

    // The owner resolves: a signed resolution version that both nodes then hold.
    let r = huk
        .post_json(
            &path,
            &json!({"heads": heads, "values": {"health_status": "chronic_illness"}}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let after: Value = conflicts_of(huk, &id).await;
    assert!(after["conflicts"].as_array().unwrap().is_empty());
    let file = wait_for_versions(res, &id, 4).await;
    assert_eq!(file["record"]["health_status"], "chronic_illness");
    let last = file["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["resolution"], true);
    assert_eq!(last["author_node"], CHENGDU);
    assert_eq!(last["parents"].as_array().unwrap().len(), 2);
    eventually(10, "the residence node to close the conflict", || async {
        conflicts_of(res, &id).await["conflicts"]
            .as_array()
            .unwrap()
            .is_empty()
    })
    .await;
    // Now the residence node may edit the field again.
    let r = res
        .patch_json(
            &format!("/api/v1/children/{id}"),
            &json!({"health_status": "disabled"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let events: Value = huk
        .get("/api/v1/audit/events?action=conflict.resolve")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(events["items"].as_array().unwrap().len(), 1);
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

#[tokio::test]
async fn the_api_refuses_callers_without_a_valid_token() {
    let (pair, _) = (spawn_pair().await, ());
    let app = &pair.hukou;
    let anon = reqwest::Client::new();
    let r = anon.get(app.url("/api/v1/children")).send().await.unwrap();
    problem(r, 401, "unauthenticated").await;
    let r = anon
        .get(app.url("/api/v1/children"))
        .header("authorization", "Bearer hks_not-a-real-token")
        .send()
        .await
        .unwrap();
    problem(r, 401, "unauthenticated").await;
    let r = anon
        .get(app.url("/api/v1/children"))
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .unwrap();
    problem(r, 401, "unauthenticated").await;
    // An auditor reads the audit trail but no child's data.
    let auditor = client_with_token(&create_token(&app.store, &app.node, "aud", Role::Auditor));
    let r = auditor
        .get(app.url("/api/v1/children"))
        .send()
        .await
        .unwrap();
    problem(r, 403, "forbidden").await;
    let r = auditor
        .get(app.url("/api/v1/audit/events?action=access.denied"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let denied: Value = r.json().await.unwrap();
    assert_eq!(denied["items"][0]["event"]["actor"]["id"], "token:aud");
    // A revoked token stops working at once.
    let secret = create_token(&app.store, &app.node, "gone", Role::Administrator);
    let client = client_with_token(&secret);
    assert_eq!(
        client
            .get(app.url("/api/v1/peers"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    {
        let mut conn = app.store.conn().unwrap();
        hukou_sync::accounts::revoke_token(
            &mut conn,
            app.node.clock.now(),
            &hukou_sync::audit::Actor::console(),
            "gone",
            Utc::now(),
        )
        .unwrap();
    }
    let r = client.get(app.url("/api/v1/peers")).send().await.unwrap();
    problem(r, 401, "unauthenticated").await;
    // Tokens are stored hashed: the secret is nowhere in the database.
    let mut conn = app.store.conn().unwrap();
    let hit: i64 = {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query(format!(
            "SELECT COUNT(*) AS n FROM api_tokens WHERE token_hash = '{secret}' OR name = '{secret}'"
        ))
        .load::<N>(&mut *conn)
        .unwrap()[0]
            .n
    };
    assert_eq!(hit, 0);
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

/// The review queue from the console: `conflict list` shows it, `conflict show` prints the
/// competing values and the exact command to resolve, a resolution naming only some heads says
/// which are missing and stores nothing, and the printed command resolves it for both nodes.
#[tokio::test]
async fn the_console_lists_shows_and_resolves_a_conflict() {
    let (pair, id) = conflicted_pair().await;
    let cli = |args: &[&str]| {
        let out = crate::helpers::node_command(&pair.pki, CHENGDU, &pair.hukou)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (code, list, _) = cli(&["conflict", "list"]);
    assert_eq!(code, Some(0));
    assert!(
        list.contains(&id) && list.contains("健康状况 (health_status)") && list.contains("(here)"),
        "{list}"
    );
    let (_, json_list, _) = cli(&["conflict", "list", "--json"]);
    let page: Value = serde_json::from_str(&json_list).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert!(page["next_after"].is_null());

    // The file, shown for people, names its open conflict and where to look.
    let (code, file, _) = cli(&["child", "show", &id]);
    assert_eq!(code, Some(0), "{file}");
    assert!(
        file.contains("open conflict: 健康状况 (health_status), 2 competing values, reviewed here")
            && file.contains(&format!("hukou-sync conflict show {id}")),
        "{file}"
    );

    let (code, show, _) = cli(&["conflict", "show", &id]);
    assert_eq!(code, Some(0), "{show}");
    assert!(
        show.contains("healthy") && show.contains("chronic_illness"),
        "{show}"
    );
    let command = show
        .lines()
        .find(|l| l.trim_start().starts_with("hukou-sync conflict resolve"))
        .unwrap_or_else(|| panic!("no resolve command in {show}"));
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    let heads_at = args.iter().position(|a| *a == "--heads").unwrap() + 1;
    let heads: Vec<&str> = args[heads_at].split(',').collect();
    assert_eq!(heads.len(), 2, "{command}");

    // Only one of the two heads: refused, naming the one left out; nothing stored.
    let versions_before = pair.hukou.count("versions");
    let mut partial = args.clone();
    partial[heads_at] = heads[0];
    let (code, _, err) = cli(&partial);
    assert_eq!(code, Some(1), "{err}");
    let left_out: String = heads[1].chars().take(12).collect();
    assert!(
        err.contains("leaves out") && err.contains(&left_out),
        "{err}"
    );
    assert_eq!(pair.hukou.count("versions"), versions_before);

    // A side that matches no candidate is refused with the candidates named.
    let (code, _, err) = cli(&[
        "conflict",
        "resolve",
        &id,
        "--heads",
        args[heads_at],
        "--keep",
        "health_status=ffff",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no candidate"), "{err}");

    let (code, out, err) = cli(&args);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("resolved") && out.contains("0 conflict(s) left open"),
        "{out}"
    );
    eventually(20, "the resolution reaches the residence node", || async {
        conflicts_of(&pair.residence, &id).await["conflicts"]
            .as_array()
            .unwrap()
            .is_empty()
    })
    .await;
    let (_, list, _) = cli(&["conflict", "list"]);
    assert!(list.contains("0 open conflict(s)"), "{list}");
}

/// A resolution's history entry lists what the reviewer decided, measured against the merged
/// view of the versions it resolves — not against one of them, which would list what the merge
/// had already taken from the other side.
#[tokio::test]
async fn a_resolution_changes_only_what_the_reviewer_decided() {
    let (pair, id) = conflicted_pair_with(
        json!({"hukou_address": "成都市锦江区春熙路1号"}),
        json!({"residence_address": "郑州市金水区花园路2号"}),
    )
    .await;
    let huk = &pair.hukou;
    let heads = conflicts_of(huk, &id).await["heads"].clone();
    let r = huk
        .post_json(
            &format!("/api/v1/children/{id}/conflicts/resolve"),
            &json!({"heads": heads, "values": {"health_status": "chronic_illness"}}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let file: Value = huk
        .get(&format!("/api/v1/children/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(file["record"]["hukou_address"], "成都市锦江区春熙路1号");
    assert_eq!(file["record"]["residence_address"], "郑州市金水区花园路2号");
    let history = file["history"].as_array().unwrap();
    let resolution = history
        .iter()
        .find(|v| v["resolution"] == true)
        .expect("a resolution in the history");
    assert_eq!(resolution["changed"], json!(["health_status"]), "{file}");
    // Each side's own edit still lists what it changed.
    let edits: Vec<&Value> = history
        .iter()
        .filter(|v| v["parents"].as_array().unwrap().len() == 1)
        .map(|v| &v["changed"])
        .collect();
    assert!(
        edits.contains(&&json!(["hukou_address", "health_status"])),
        "{edits:?}"
    );
    assert!(
        edits.contains(&&json!(["residence_address", "health_status"])),
        "{edits:?}"
    );
}
