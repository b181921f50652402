//! `hukou-sync child lookup` and `child handover`: the lookup and handover of `sync::lookup`
//! from the console, as this node (its mutual-TLS identity), audited as the console's.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;

use crate::audit::Actor;
use crate::config::Settings;
use crate::domain::child::Text;
use crate::domain::{IdNumber, RegionCode};
use crate::storage::Store;
use crate::sync::lookup::{self, HandoverRequest, LookupRequest};
use crate::sync::LocalNode;

fn id_and_region(id: &str, hukou: Option<String>) -> anyhow::Result<(IdNumber, RegionCode)> {
    let id = IdNumber::parse(id).map_err(|e| anyhow::anyhow!("id_number: {e}"))?;
    let raw = hukou.unwrap_or_else(|| id.issuing_region_digits().to_owned());
    let region = RegionCode::parse(&raw)
        .map_err(|e| anyhow::anyhow!("hukou region {raw}: {e} (name it with --hukou-region)"))?;
    Ok((id, region))
}

fn purpose(p: &str) -> anyhow::Result<Text<200>> {
    Text::parse(p).map_err(|e| anyhow::anyhow!("--purpose: {e}"))
}

/// `child lookup`.
pub fn lookup(
    settings: &Settings,
    (store, node): (&Store, &Arc<LocalNode>),
    id: &str,
    why: &str,
    hukou: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (id, hukou_region) = id_and_region(id, hukou)?;
    let clients = crate::startup::peer_clients(settings)?;
    let request = LookupRequest {
        id_number: id.clone(),
        hukou_region,
        purpose: purpose(why)?,
        nonce: lookup::new_nonce()?,
    };
    let answer = super::runtime()?
        .block_on(lookup::ask(
            store,
            node,
            clients.as_ref(),
            request,
            &Actor::console(),
            Utc::now(),
        ))
        .context("lookup")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else if let Some(f) = &answer.statement.statement.file {
        println!(
            "{}: the hukou bureau {} holds a file (residence {}, {} head(s)){}",
            id.masked(),
            answer.hukou_node,
            f.residence_region,
            f.heads.len(),
            if answer.held_here {
                "; it is here too"
            } else {
                "; ask for it: hukou-sync child handover"
            }
        );
    } else {
        println!(
            "{}: the hukou bureau {} holds no file (statement signed {})",
            id.masked(),
            answer.hukou_node,
            answer.statement.statement.at
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What `child handover` was given.
pub struct HandoverArgs {
    pub id_number: String,
    pub residence: String,
    pub purpose: String,
    pub hukou_region: Option<String>,
    pub wait: u64,
    pub json: bool,
}

/// `child handover`.
pub fn handover(
    settings: &Settings,
    (store, node): (&Store, &Arc<LocalNode>),
    args: HandoverArgs,
) -> anyhow::Result<ExitCode> {
    let (id, hukou_region) = id_and_region(&args.id_number, args.hukou_region)?;
    let residence_region = RegionCode::parse(&args.residence)
        .map_err(|e| anyhow::anyhow!("--residence {}: {e}", args.residence))?;
    let clients = crate::startup::peer_clients(settings)?;
    let request = HandoverRequest {
        id_number: id.clone(),
        residence_region: residence_region.clone(),
        purpose: purpose(&args.purpose)?,
    };
    let rt = super::runtime()?;
    let answer = rt
        .block_on(lookup::request_handover(
            store,
            node,
            clients.as_ref(),
            request,
            &hukou_region,
            &Actor::console(),
            Utc::now(),
        ))
        .context("handover")?;
    // The file arrives by push at this node's server.
    let deadline = Instant::now() + Duration::from_secs(args.wait);
    let mut arrived = false;
    let pb = super::progress_bar(0, "waiting for the file", args.json || args.wait == 0);
    loop {
        let mut conn = store.conn()?;
        let here = crate::storage::records::get_child(&mut conn, id.as_str())?;
        if here.is_some_and(|f| f.residence_region == residence_region) {
            arrived = true;
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        pb.tick();
        std::thread::sleep(Duration::from_millis(250));
    }
    pb.finish_and_clear();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "handover": answer, "arrived": arrived,
            }))?
        );
    } else {
        match &answer.version {
            Some(v) => println!(
                "{}: the hukou bureau {} moved the file from {} to {} (version {})",
                id.masked(),
                answer.hukou_node,
                answer.from_region,
                residence_region,
                v.short()
            ),
            None => println!(
                "{}: the file already names {}; nothing to hand over",
                id.masked(),
                residence_region
            ),
        }
        println!(
            "{}",
            if arrived {
                "the file is here"
            } else if args.wait == 0 {
                "the file arrives by push at this node's server"
            } else {
                "the file has not arrived yet: is this node's server running? (it arrives by push)"
            }
        );
    }
    Ok(if arrived || args.wait == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
