//! `hukou-sync demo`: three bureaus in one process on loopback — the residence bureau of
//! Zhengzhou (node 410100), the hukou bureau of Chengdu (node 510100) and the bureau of Hangzhou
//! (node 330100) — with a fresh dev PKI, a signed directory and temporary SQLite databases. A
//! flowing child is registered where she lives, both bureaus edit her file over real mutual TLS,
//! a case travels with its evidence and is decided, and the family moves on to Hangzhou, which
//! gets her file by lookup and handover rather than starting a second one. Every step is printed:
//! versions, signatures verified, receipts, and the identical views.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};

use crate::devnet::{admin_client, DevNet, NodeSpec};
use crate::domain::{IdNumber, RegionCode};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Keep the temporary directory (PKI, databases) and print its path.
    #[arg(long)]
    keep: bool,
    /// Signature suite of every key: `ed25519`, or `sm2-sm3` (SM2 over SM3 for the directory
    /// authority and the bureaus, and SM3 content ids: the directory declares `"hash": "sm3"`).
    #[arg(long, default_value_t = crate::crypto::Suite::Ed25519)]
    suite: crate::crypto::Suite,
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    super::runtime()?.block_on(demo(dir.path(), args.suite))?;
    if args.keep {
        println!("kept {}", dir.keep().display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Chengdu's risk palette in the demo (Zhengzhou keeps the default 红/橙/黄/绿).
const CHENGDU_PALETTE: [&str; 4] = ["红", "黄", "蓝", "绿"];

struct Node {
    name: &'static str,
    base: String,
    /// Sends the demo's administrator token to this node's admin API.
    http: reqwest::Client,
    stop: crate::startup::StopHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn demo(root: &std::path::Path, suite: crate::crypto::Suite) -> anyhow::Result<()> {
    let specs = [
        (
            NodeSpec::new("410100", "4101")?,
            "Zhengzhou residence bureau",
        ),
        (NodeSpec::new("510100", "5101")?, "Chengdu hukou bureau"),
        (NodeSpec::new("330100", "3301")?, "Hangzhou bureau"),
    ];
    let node_specs: Vec<NodeSpec> = specs.iter().map(|(s, _)| s.clone()).collect();
    let mut net = DevNet::create_in(&root.join("pki"), &node_specs, Vec::new(), suite)?;
    // The content hash as the signed directory declares it.
    let hash = crate::directory::Directory::load(
        &net.pki.directory,
        &net.pki.authority_public,
        chrono::Utc::now(),
    )?
    .hash();
    println!(
        "== dev PKI ({suite}): exchange CA, directory authority {}, directory signed (serial 1), \
         content hash {hash} (version ids, receipts, audit tree, reconciliation summary)",
        net.pki.authority_public.fingerprint()
    );
    for n in &net.pki.nodes {
        let key = crate::crypto::SigningKey::load(&n.signing_key)?.public_key();
        let text = key.to_string();
        println!(
            "   node {} signs with a {} key {}…",
            n.id,
            key.suite(),
            text.get(..24).unwrap_or(&text)
        );
    }
    let mut nodes = Vec::new();
    for (spec, name) in specs {
        let mut settings = net.settings(&spec.id)?;
        settings.database.url = format!(
            "sqlite://{}",
            root.join(format!("{}.db", spec.id)).display()
        );
        settings.log.filter = "warn".into();
        // Witnessing rounds every second, so the demo ends with each log cosigned.
        settings.audit.witness.interval_secs = 1;
        // Chengdu names the four risk levels 红黄蓝绿; Zhengzhou keeps the default 红橙黄绿.
        if spec.id.as_str() == "510100" {
            settings.records.risk_palette = CHENGDU_PALETTE.map(String::from).to_vec();
        }
        let app = net.start(&spec.id, settings).await?;
        let fingerprint = &net.node(&spec.id)?.fingerprint;
        println!("== {name} (node {}): admin http://127.0.0.1:{}, peer https://127.0.0.1:{} (mutual TLS, cert {})", spec.id, app.admin_port, app.peer_port.unwrap_or(0), &fingerprint[..16]);
        let http = admin_client(app.store.clone(), app.node.clone()).await?;
        nodes.push(Node {
            name,
            base: app.admin_base,
            http,
            stop: app.stop,
            task: app.task,
        });
    }
    let (zz, cd, hz) = (&nodes[0], &nodes[1], &nodes[2]);

    let id = IdNumber::generate(
        &RegionCode::parse("510104")?,
        chrono::NaiveDate::from_ymd_opt(2015, 3, 8).unwrap_or_default(),
        38,
    );
    let path = format!("/api/v1/children/{id}");
    println!("\n-- 1. {} registers a flowing child: hukou 510104 (成都市锦江区), living in 410105 (郑州市金水区)", zz.name);
    let t = Instant::now();
    let created = send(zz.http.post(format!("{}/api/v1/children", zz.base)).json(&json!({
        "id_number": id.as_str(), "name": "李小雨", "hukou_region": "510104", "residence_region": "410105",
        "categories": ["flowing", "left_behind"], "father_situation": "working_away", "mother_situation": "working_away",
        "actual_caregiver": {"name": "李建国", "relation": "祖父"}, "living_status": "with_grandparents", "risk_level": "黄",
    }))).await?;
    print_version(&created, "created and signed by 410100");
    let seen = wait_for(cd, &path, 1).await?;
    println!("   arrived at 510100 in {} ms: signature verified with 410100's directory key, stored, signed receipt returned", t.elapsed().as_millis());
    print_version(&seen, "at 510100");

    println!("\n-- 2. {} confirms 低保 (a hukou field)", cd.name);
    let t = Instant::now();
    let edited = send(
        cd.http
            .patch(format!("{}{path}", cd.base))
            .json(&json!({"benefits": [{"benefit": "dibao", "since": "2026-11"}]})),
    )
    .await?;
    print_version(&edited, "signed by 510100");
    wait_for(zz, &path, 2).await?;
    println!("   arrived at 410100 in {} ms", t.elapsed().as_millis());

    println!(
        "\n-- 3. {}: the children's director (儿童主任) visits her at home and grades her guardianship red",
        zz.name
    );
    let t = Instant::now();
    let today = crate::sync::ledger::china_today(chrono::Utc::now());
    let visit = send(zz.http.post(format!("{}{path}/visits", zz.base)).json(&json!({
        "visited_on": today, "visitor": {"name": "王秀兰", "role": "children_director"},
        "kind": "home", "seen": ["child", "caregiver"],
        "findings": {"guardianship": "父母均外出务工，半年未联系；祖父年迈多病", "education": "按时上学"},
        "assessment": {
            "indicators": {
                "guardianship": {"grade": 1, "note": "监护缺失"},
                "living": {"grade": 2},
                "psychological": {"grade": 3, "note": "想念父母"}
            },
            "assessor": "王秀兰"
        },
        "follow_up": ["报乡镇儿童督导员", "联系父母"],
        "next_due_on": today + chrono::Days::new(7),
    }))).await?;
    let visit_id = visit["visit"]["visit_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    println!(
        "   visit {} signed by 410100 (a document of its own): level {} = {} under 410100's palette 红/橙/黄/绿; the file's last visit and risk follow it",
        &visit_id[..8.min(visit_id.len())],
        visit["visit"]["assessment"]["level"],
        visit["risk_label"].as_str().unwrap_or("-")
    );
    let arrived = wait_for(cd, &path, 3).await?;
    let seen = poll(cd, &format!("{path}/visits"), "the visit's arrival", |v| {
        v["items"].as_array().is_some_and(|i| !i.is_empty())
    })
    .await?;
    let there = &seen["items"][0];
    let palette = crate::domain::RiskPalette::new(CHENGDU_PALETTE.map(String::from).to_vec())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let named = |area: &str| {
        there["visit"]["assessment"]["indicators"][area]["grade"]
            .as_u64()
            .and_then(|g| u8::try_from(g).ok())
            .and_then(|g| crate::domain::RiskLevel::new(g).ok())
            .map_or("-".to_owned(), |l| format!("{} = {}", l, palette.label(l)))
    };
    println!(
        "   510100 holds the visit and the file's new risk after {} ms; under its own palette 红/黄/蓝/绿 it reads level {} = {} (guardianship {}, living {}, psychological {})",
        t.elapsed().as_millis(),
        there["visit"]["assessment"]["level"],
        there["risk_label"].as_str().unwrap_or("-"),
        named("guardianship"),
        named("living"),
        named("psychological"),
    );
    println!(
        "   the file at 510100: risk level {} of the common scale, shown as {}; last visit {}",
        arrived["record"]["risk_level"],
        arrived["risk_label"].as_str().unwrap_or("-"),
        arrived["record"]["last_visit_on"].as_str().unwrap_or("-")
    );

    println!("\n-- 4. the residence bureau may not change a hukou field");
    let refused = zz
        .http
        .patch(format!("{}{path}", zz.base))
        .json(&json!({"benefits": []}))
        .send()
        .await?;
    println!("   {}: {}", refused.status(), refused.text().await?);

    println!(
        "\n-- 5. eligibility: {} asks {} to confirm 特困 (extreme-poverty support)",
        zz.name, cd.name
    );
    // The residence bureau's proof, uploaded first (a PDF; stored encrypted), named by its hash.
    let proof = b"%PDF-1.4\n% demo: \xe6\x9d\x91\xe5\xa7\x94\xe4\xbc\x9a\xe8\xaf\x81\xe6\x98\x8e JS-2026-0412\n%%EOF\n".to_vec();
    let uploaded = send(
        zz.http
            .post(format!("{}/api/v1/evidence", zz.base))
            .header("content-type", "application/pdf")
            .body(proof.clone()),
    )
    .await?;
    let sha = uploaded["sha256"].as_str().unwrap_or_default().to_owned();
    println!(
        "   {} uploads the 村委会证明 (a PDF, {} bytes): stored encrypted, sha256 {sha}",
        zz.name, uploaded["size"]
    );
    let t = Instant::now();
    let opened = send(zz.http.post(format!("{}/api/v1/cases", zz.base)).json(&json!({
        "child_id": id.as_str(), "benefit": "tekun",
        "grounds": {"father_situation": "working_away", "mother_situation": "working_away",
                    "summary": "父母长期外出务工且失去联系，由年迈祖父抚养，无稳定收入",
                    "evidence": [{"doc_type": "村委会证明", "issuer": "金水区某社区居委会", "number": "JS-2026-0412",
                                  "sha256": sha}]},
        "officers": {"requester": "ZZ-JS-017"},
    }))).await?;
    let case_id = opened["case"]["case_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let case_path = format!("/api/v1/cases/{case_id}");
    println!(
        "   case {case_id} submitted, due {} (30 working days)",
        opened["due_on"]
    );
    let c = wait_case(zz, &case_path, "received").await?;
    println!(
        "   {} received it automatically: its signed version came back in {} ms ({} steps)",
        cd.name,
        t.elapsed().as_millis(),
        c["case"]["history"].as_array().map_or(0, Vec::len)
    );
    poll(cd, &case_path, "the evidence file arriving", |v| {
        v["evidence"][0]["status"] == "present"
    })
    .await?;
    let file = cd
        .http
        .get(format!("{}{case_path}/evidence/{sha}", cd.base))
        .send()
        .await?;
    let same = file.status().is_success() && file.bytes().await?.as_ref() == proof.as_slice();
    println!(
        "   {} fetched the file from {} over mutual TLS and verified its sha256; its reviewer downloads it (audited evidence.download): {}",
        cd.name,
        zz.name,
        if same { "the same bytes" } else { "DIFFERENT BYTES" }
    );
    send(cd.http.post(format!("{}{case_path}/transitions", cd.base)).json(&json!({"transition": {"action": "request_info", "question": "请补充父母失联的派出所证明"}, "officer": "CD-JJ-003"}))).await?;
    wait_case(zz, &case_path, "info_requested").await?;
    println!("   510100 asked for information; 410100 sees info_requested");
    send(zz.http.post(format!("{}{case_path}/transitions", zz.base)).json(&json!({"transition": {"action": "provide_info", "answer": "已补充派出所出具的失联证明"}, "officer": "ZZ-JS-017"}))).await?;
    wait_case(cd, &case_path, "info_provided").await?;
    println!("   410100 provided it; 510100 sees info_provided");
    let approve = json!({"transition": {"action": "approve", "effective_month": "2026-12", "review_on": "2027-12-01"}, "officer": "CD-JJ-003"});
    let refused = cd
        .http
        .post(format!("{}{case_path}/transitions", cd.base))
        .json(&approve)
        .send()
        .await?;
    let status = refused.status();
    let problem: Value = refused.json().await?;
    println!(
        "   approving it is refused while she holds 低保 ({status} {}): {}",
        problem["code"].as_str().unwrap_or("-"),
        problem["reason"].as_str().unwrap_or("-")
    );
    let ended = send(
        cd.http
            .post(format!("{}{path}/benefits/dibao/end", cd.base))
            .json(
                &json!({"month": "2026-11", "reason": "changed", "note": "转为特困人员救助供养"}),
            ),
    )
    .await?;
    println!(
        "   510100 ends 低保 in 2026-11 by decision (情况变化): the grant stays in her file as history: {}",
        ended["record"]["benefits"][0]
    );
    send(
        cd.http
            .post(format!("{}{case_path}/transitions", cd.base))
            .json(&approve),
    )
    .await?;
    let c = wait_case(zz, &case_path, "approved").await?;
    println!(
        "   510100 approved from 2026-12; 410100 sees approved after {} signed steps",
        c["case"]["history"].as_array().map_or(0, Vec::len)
    );
    let file = wait_for(zz, &path, 5).await?;
    println!(
        "   the end of 低保 and the grant of 特困 (review 2027-12-01) reached 410100: {}",
        file["record"]["benefits"]
    );

    println!("\n-- 6. receipts and delivery state");
    for n in &nodes {
        let peers = wait_drained(n).await?;
        for p in peers.as_array().into_iter().flatten() {
            println!(
                "   {} → {}: delivered {}, queued {}, last receipt {}",
                n.name, p["peer"], p["delivered"], p["outbox_depth"], p["last_success_at"]
            );
        }
    }

    println!("\n-- 7. the two views");
    let a = send(
        zz.http
            .get(format!("{}{path}", zz.base))
            .header("X-Purpose", "demo"),
    )
    .await?;
    let b = send(
        cd.http
            .get(format!("{}{path}", cd.base))
            .header("X-Purpose", "demo"),
    )
    .await?;
    println!("   410100: {}", a["record"]);
    println!("   510100: {}", b["record"]);
    println!(
        "   identical: {}; heads {} = {}",
        a["record"] == b["record"] && a["heads"] == b["heads"],
        a["heads"],
        b["heads"]
    );

    println!("\n-- 8. reconciliation: the Merkle summaries of 410100 and 510100 are compared");
    let started = send(zz.http.post(format!("{}/api/v1/reconcile/510100", zz.base))).await?;
    let run_path = format!(
        "/api/v1/reconcile/runs/{}",
        started["id"].as_str().unwrap_or_default()
    );
    let run = poll(zz, &run_path, "the reconciliation run", |r| {
        r["status"] != "running"
    })
    .await?;
    let r = &run["report"];
    println!(
        "   {}: {} documents compared, {} equal, {} repaired; {} bytes sent, {} received, {} ms",
        run["status"],
        r["documents_compared"],
        r["documents_equal"],
        r["documents_differing"],
        r["bytes_sent"],
        r["bytes_received"],
        r["duration_ms"]
    );

    println!(
        "\n-- 9. the family moves on to 杭州市西湖区 (330106): {} gets her file, not a second one",
        hz.name
    );
    let t = Instant::now();
    let attempt = hz
        .http
        .post(format!("{}/api/v1/children", hz.base))
        .json(&json!({"id_number": id.as_str(), "name": "李小雨", "hukou_region": "510104", "residence_region": "330106"}))
        .send()
        .await?;
    let status = attempt.status();
    let problem: Value = attempt.json().await?;
    println!(
        "   starting a file is refused ({status} {}): the creation asked 510100 first",
        problem["code"].as_str().unwrap_or("-")
    );
    let found = send(
        hz.http
            .post(format!("{}/api/v1/lookups", hz.base))
            .json(&json!({"id_number": id.as_str(), "purpose": "随父母迁入杭州，核查是否已建档"})),
    )
    .await?;
    let statement = &found["statement"]["statement"];
    println!(
        "   330100 asks 510100 (purpose recorded on both sides): found {}, {} head(s) — a statement signed by {} and verified against the directory",
        found["found"],
        statement["file"]["heads"].as_array().map_or(0, Vec::len),
        statement["answered_by"]
    );
    let handed = send(
        hz.http
            .post(format!("{}{path}/handover", hz.base))
            .json(&json!({"residence_region": "330106", "purpose": "随父母迁入杭州"})),
    )
    .await?;
    let moved = poll(hz, &path, "the file's arrival", |f| {
        f["record"]["residence_region"] == "330106" && f["served_here"] == true
    })
    .await?;
    println!(
        "   510100 writes the move (version {}); the whole file — {} versions, her visit with it — reached 330100 in {} ms",
        handed["version"].as_str().and_then(|v| v.get(..12)).unwrap_or("-"),
        moved["history"].as_array().map_or(0, Vec::len),
        t.elapsed().as_millis()
    );
    let left = poll(zz, &path, "the move reaching 410100", |f| {
        f["served_here"] == false
    })
    .await?;
    let mut open_conflicts = 0;
    for n in &nodes {
        let queue = send(n.http.get(format!("{}/api/v1/conflicts", n.base))).await?;
        open_conflicts += queue["items"].as_array().map_or(0, Vec::len);
    }
    println!(
        "   410100 keeps its copy as of the move, read-only (served_here {}, now served by {}); open conflicts on the three nodes: {open_conflicts}",
        left["served_here"], left["now_served_by"]
    );

    println!("\n-- 10. audit trails");
    let mut sizes = Vec::new();
    for n in &nodes {
        let head = send(n.http.post(format!("{}/api/v1/audit/tree-head", n.base))).await?;
        sizes.push(head["size"].as_u64().unwrap_or(0));
        println!(
            "   {}: {} events, signed tree head root {}",
            n.name,
            head["size"],
            &head["root"].as_str().unwrap_or("")[..16]
        );
    }

    println!(
        "\n-- 11. witnessing: each node's checkpoint (C2SP signed note) cosigned by the other"
    );
    for ((n, witness), size) in [(zz, "510100"), (cd, "410100")].into_iter().zip(sizes) {
        let note = cosigned_checkpoint(n, witness, size).await?;
        println!("   {}:", n.name);
        for line in note.lines() {
            println!("     {line}");
        }
    }
    for n in nodes {
        n.stop.stop(true).await;
        let _ = n.task.await;
    }
    println!("\n== done");
    Ok(())
}

fn print_version(file: &Value, what: &str) {
    if let Some(v) = file["history"].as_array().and_then(|h| h.last()) {
        let parents: Vec<String> = v["parents"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str())
            .map(|p| p[..12].to_owned())
            .collect();
        println!(
            "   version {} ({what}), parents [{}], changed {}",
            &v["id"].as_str().unwrap_or("")[..12],
            parents.join(", "),
            v["changed"]
        );
    }
}

async fn send(req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let resp = req.send().await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    anyhow::ensure!(status.is_success(), "{status}: {body}");
    Ok(body)
}

/// Polls `path` on a node until `done` holds for its JSON (15 s at most).
async fn poll(
    node: &Node,
    path: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = node
            .http
            .get(format!("{}{path}", node.base))
            .header("X-Purpose", "demo")
            .send()
            .await?;
        if r.status().is_success() {
            let v: Value = r.json().await?;
            if done(&v) {
                return Ok(v);
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what} did not happen at {}",
            node.name
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until a checkpoint of at least `size` events of the node's log carries `witness`'s
/// cosignature; returns it.
async fn cosigned_checkpoint(node: &Node, witness: &str, size: u64) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let line = format!("\u{2014} hukou-sync/{witness} ");
    loop {
        let r = node
            .http
            .get(format!(
                "{}/api/v1/audit/checkpoint?cosigned=true",
                node.base
            ))
            .send()
            .await?;
        if r.status().is_success() {
            let note = r.text().await?;
            let cosigned_size = note.lines().nth(1).and_then(|l| l.parse::<u64>().ok());
            if note.contains(&line) && cosigned_size >= Some(size) {
                return Ok(note);
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{witness} did not cosign {}'s checkpoint",
            node.name
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the node holds `n` versions of the file.
async fn wait_for(node: &Node, path: &str, n: usize) -> anyhow::Result<Value> {
    poll(node, path, "the version's arrival", |v| {
        v["history"].as_array().is_some_and(|h| h.len() >= n)
    })
    .await
}

/// Waits until a case reaches a state at a node.
async fn wait_case(node: &Node, path: &str, state: &str) -> anyhow::Result<Value> {
    poll(node, path, &format!("the case becoming {state}"), |v| {
        v["case"]["state"] == state
    })
    .await
}

/// Waits until the node's outbox is empty; returns its peers' status.
async fn wait_drained(node: &Node) -> anyhow::Result<Value> {
    poll(node, "/api/v1/peers", "draining the outbox", |p| {
        p.as_array()
            .is_some_and(|a| a.iter().all(|p| p["outbox_depth"] == 0))
    })
    .await
}
