//! `hukou-sync demo`: a node on a temporary SQLite database with a real admin listener on
//! loopback; a flowing child's file is created, edited and read over HTTP, and the audit trail
//! is signed and verified. Every step is printed.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::{json, Value};

use crate::config::Settings;
use crate::domain::{IdNumber, RegionCode};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Keep the temporary directory (database, keys) and print its path.
    #[arg(long)]
    keep: bool,
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let mut settings = Settings::default();
    settings.database.url = format!("sqlite://{}", dir.path().join("node.db").display());
    settings.node.signing_key = dir.path().join("node-signing.key");
    settings.admin.listen = "127.0.0.1:0".parse()?;
    let rt = super::runtime()?;
    rt.block_on(demo(settings))?;
    if args.keep {
        let path = dir.keep();
        println!("kept {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

async fn demo(settings: Settings) -> anyhow::Result<()> {
    let app = crate::startup::Application::build(settings).await?;
    let base = format!("http://127.0.0.1:{}", app.admin_port());
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();
    println!("== node listening on {base}");

    let id = IdNumber::generate(
        &RegionCode::parse("510104")?,
        chrono::NaiveDate::from_ymd_opt(2015, 3, 8).unwrap_or_default(),
        37,
    );
    let created: Value = send(
        &http,
        http.post(format!("{base}/api/v1/children")).json(&json!({
            "id_number": id.as_str(),
            "name": "李小雨",
            "hukou_region": "510104",
            "residence_region": "410105",
            "categories": ["flowing", "left_behind"],
            "father_situation": "working_away",
            "mother_situation": "working_away",
            "legal_guardian": {"name": "李建国", "relation": "祖父"},
            "living_status": "with_grandparents",
            "risk_level": "黄",
        })),
    )
    .await?;
    println!(
        "== created the file of {} (born {}, {}), version {}",
        id.masked(),
        created["birth_date"],
        created["sex"],
        short(&created["heads"][0])
    );

    let updated: Value = send(
        &http,
        http.patch(format!("{base}/api/v1/children/{id}"))
            .json(&json!({
                "last_visit_on": "2026-11-20", "risk_level": "橙", "education_status": "primary"
            })),
    )
    .await?;
    let last = &updated["history"][1];
    println!(
        "== residence visit recorded: version {} with parent {}, changed {}",
        short(&last["id"]),
        short(&last["parents"][0]),
        last["changed"]
    );

    let refused = http
        .patch(format!("{base}/api/v1/children/{id}"))
        .json(&json!({"risk_level": "紫"}))
        .send()
        .await?;
    println!(
        "== an invalid risk level is refused: {} {}",
        refused.status(),
        refused.text().await?
    );

    let read: Value = send(
        &http,
        http.get(format!("{base}/api/v1/children/{id}"))
            .header("X-Purpose", "home-visit"),
    )
    .await?;
    println!(
        "== current view: risk {}, last visit {}, {} versions",
        read["record"]["risk_level"],
        read["record"]["last_visit_on"],
        read["history"].as_array().map_or(0, Vec::len)
    );

    let head: Value = send(&http, http.post(format!("{base}/api/v1/audit/tree-head"))).await?;
    println!(
        "== audit tree head signed: size {}, root {}",
        head["size"],
        short(&head["root"])
    );
    let ev: Value = send(&http, http.get(format!("{base}/api/v1/audit/events/0"))).await?;
    println!(
        "== event 0 ({}) with an inclusion proof of {} hashes",
        ev["entry"]["event"]["action"],
        ev["entry"]["inclusion"]["path"]
            .as_array()
            .map_or(0, Vec::len)
    );

    handle.stop(true).await;
    let _ = server.await;
    println!("== done");
    Ok(())
}

async fn send(http: &reqwest::Client, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let _ = http;
    let resp = req.send().await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    if !status.is_success() {
        anyhow::bail!("{status}: {body}");
    }
    Ok(body)
}

fn short(v: &Value) -> String {
    v.as_str()
        .map_or_else(|| v.to_string(), |s| s.chars().take(12).collect())
}
