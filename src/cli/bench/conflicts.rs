//! `bench conflicts`: the merged view of a file with many concurrent heads, and the conflict
//! queue page with many open conflicts.

use std::time::Instant;

use chrono::Utc;

use crate::audit::Actor;
use crate::storage;
use crate::sync::ledger;

use super::{backend_name, bench_db, round, sample_records, settings_for};

/// A root version and `heads` concurrent edits of it, each by one of two authors: half change the
/// shared `notes` differently (so they dispute it); the residence side's also move the address.
fn merge_inputs(heads: usize) -> anyhow::Result<Vec<crate::sync::merge::MergeInput>> {
    use crate::domain::child::{ChildField, Roles};
    use crate::sync::merge::MergeInput;
    use crate::sync::version::VersionId;
    let now = Utc::now();
    let palette = crate::domain::RiskPalette::default();
    let (_, record) = sample_records(1, 11, &palette, now)?
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no sample"))?;
    let id = |i: usize| -> anyhow::Result<VersionId> {
        Ok(crate::crypto::hash::Digest::of(format!("v{i}").as_bytes())
            .to_string()
            .parse()?)
    };
    let hukou = Roles {
        hukou: true,
        residence: false,
    };
    let residence = Roles {
        hukou: false,
        residence: true,
    };
    let root = id(0)?;
    let mut out = vec![MergeInput {
        id: root,
        parents: vec![],
        author_roles: residence,
        resolution: false,
        hlc: 1,
        fields: record.to_fields(),
    }];
    for i in 1..=heads {
        let mut fields = record.to_fields();
        let roles = if i % 2 == 0 { hukou } else { residence };
        fields.insert(ChildField::Notes, serde_json::json!(format!("note {i}")));
        if i % 2 == 1 {
            fields.insert(
                ChildField::ResidenceAddress,
                serde_json::json!(format!("某街道 {i} 号")),
            );
        }
        out.push(MergeInput {
            id: id(i)?,
            parents: vec![root],
            author_roles: roles,
            resolution: false,
            hlc: 1 + i as i64,
            fields,
        });
    }
    Ok(out)
}

pub(super) async fn bench_conflicts(
    count: usize,
    postgres: Option<String>,
) -> anyhow::Result<serde_json::Value> {
    use crate::storage::conflicts::ConflictRow;
    let mut figures = serde_json::Map::new();
    // 1. Merged view: pure, then JSON parse of the bodies as a bare reference.
    for heads in [2usize, 10, 100] {
        let inputs = merge_inputs(heads)?;
        let rounds = if heads == 100 { 50 } else { 500 };
        let start = Instant::now();
        let mut conflicts = 0;
        for _ in 0..rounds {
            conflicts = crate::sync::merge::merged_view(&inputs)?.conflicts.len();
        }
        let per = start.elapsed().as_secs_f64() / rounds as f64;
        let bodies: Vec<String> = inputs
            .iter()
            .map(|i| {
                serde_json::to_string(
                    &i.fields
                        .iter()
                        .map(|(f, v)| (f.name(), v))
                        .collect::<std::collections::BTreeMap<_, _>>(),
                )
            })
            .collect::<Result<_, _>>()?;
        let start = Instant::now();
        for _ in 0..rounds {
            for b in &bodies {
                std::hint::black_box(serde_json::from_str::<serde_json::Value>(b)?);
            }
        }
        let parse = start.elapsed().as_secs_f64() / rounds as f64;
        figures.insert(
            format!("merge_{heads}_heads_ms"),
            round(per * 1000.0).into(),
        );
        figures.insert(
            format!("merge_{heads}_heads_open_conflicts"),
            conflicts.into(),
        );
        figures.insert(
            format!("bare_json_parse_{heads}_bodies_ms"),
            round(parse * 1000.0).into(),
        );
    }

    // 2. The queue page with `count` open conflicts, over HTTP, logged in.
    let db = bench_db(postgres.as_deref(), "conflicts")?;
    let mut settings = settings_for(&db);
    settings.admin.listen = "127.0.0.1:0".parse()?;
    settings.log.filter = "warn".into();
    let app = crate::startup::Application::build(settings).await?;
    let (store, node) = (app.store().clone(), app.node().clone());
    let base = format!("http://127.0.0.1:{}", app.admin_port());
    let stop = app.handle();
    let server = tokio::spawn(app.run_until_stopped());
    let now = Utc::now();
    let records = sample_records(count, 23, &node.palette, now)?;
    let (s2, n2) = (store.clone(), node.clone());
    let cookie = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        let mut conn = s2.conn()?;
        ledger::import_children(&mut conn, &n2, &records, &Actor::console(), now, &mut |_| {})?;
        let at = now.naive_utc();
        let rows: Vec<ConflictRow> = records
            .iter()
            .enumerate()
            .map(|(i, (_, r))| ConflictRow {
                doc_id: r.id_number.to_string(),
                field: "notes".into(),
                merge_point: String::new(),
                owner: n2.id.to_string(),
                base: "null".into(),
                candidates: serde_json::json!([
                    {"side": "a", "author": "410100", "hlc": null, "at": null, "value": format!("甲 {i}")},
                    {"side": "b", "author": "510100", "hlc": null, "at": null, "value": format!("乙 {i}")},
                ])
                .to_string(),
                opened_at: at + chrono::Duration::milliseconds(i as i64),
            })
            .collect();
        storage::conflicts::insert_many(&mut conn, &rows)?;
        crate::accounts::add_user(
            &mut conn,
            n2.clock.now(),
            &Actor::console(),
            &crate::accounts::NewUser {
                username: "bench",
                display_name: "bench",
                role: crate::accounts::Role::Reviewer,
                password: "bench password 1",
                scope: &crate::accounts::Scope::whole_node(),
            },
            now,
        )?;
        let policy = crate::accounts::Policy {
            session: chrono::Duration::hours(1),
            max_failures: 5,
            lockout: chrono::Duration::minutes(1),
        };
        Ok(crate::accounts::login(&mut conn, n2.clock.now(), "bench", "bench password 1", "bench", policy, now)?.cookie)
    })
    .await??;
    let http = reqwest::Client::new();
    let rounds = 50;
    let mut times = Vec::with_capacity(rounds);
    let mut bytes = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let r = http
            .get(format!("{base}/ui/conflicts"))
            .header(
                "cookie",
                format!("{}={cookie}", crate::accounts::SESSION_COOKIE),
            )
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "queue page answered {}", r.status());
        bytes = r.bytes().await?.len();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    // Bare: the page's query alone, on the database.
    let (s3, me) = (store.clone(), node.id.to_string());
    let bare = tokio::task::spawn_blocking(move || -> anyhow::Result<f64> {
        let mut conn = s3.conn()?;
        let t = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(crate::conflicts::queue(
                &mut conn,
                Some(&me),
                None,
                100,
                &crate::domain::Scope::whole_node(),
            )?);
        }
        Ok(t.elapsed().as_secs_f64() * 1000.0 / rounds as f64)
    })
    .await??;
    figures.insert("backend".into(), backend_name(postgres.as_deref()).into());
    figures.insert("queue_open_conflicts".into(), count.into());
    figures.insert("queue_page_p50_ms".into(), round(times[rounds / 2]).into());
    figures.insert(
        "queue_page_p99_ms".into(),
        round(times[rounds * 99 / 100]).into(),
    );
    figures.insert("queue_page_bytes".into(), bytes.into());
    figures.insert("bare_queue_query_ms".into(), round(bare).into());
    stop.stop(true).await;
    let _ = server.await;
    Ok(serde_json::Value::Object(figures))
}
