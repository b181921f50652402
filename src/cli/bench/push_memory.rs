//! `bench push-memory` (issue 18 #11): what a pinned peer can make a node hold. A hukou node runs
//! as its own process (`hukou-sync serve`, so its memory is measured alone); this process, as
//! its residence peer, pushes `pushes` maximum-size batches at once — each as many validly
//! signed versions with unknown parents as a batch may hold, padded to just under the body
//! limit — retrying those answered 503 `busy` as a sender does. The node's resident memory is
//! sampled throughout, and again after the pushes; its audit log is counted before and after.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::crypto::hlc::Hlc;
use crate::crypto::keys::SigningKey;
use crate::domain::NodeId;
use crate::sync::receipt::PushRequest;
use crate::sync::version::{DocKind, SignedVersion, Version};

use super::{bench_db, round, rss_mib, sample_records};

/// Stops the node process when the bench ends, however it ends.
struct NodeProcess(std::process::Child);

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One push body: `count` versions of new files whose parent nobody has, each padded so the
/// body is just under `limit` bytes.
fn push_body(
    key: &SigningKey,
    author: &NodeId,
    records: &[serde_json::Value],
    count: usize,
    limit: usize,
    salt: usize,
) -> anyhow::Result<Vec<u8>> {
    let stamp = Utc::now().timestamp_millis();
    let make = |i: usize, notes: &str| -> anyhow::Result<SignedVersion> {
        let mut body = records[i % records.len()].clone();
        body["notes"] = serde_json::json!(notes);
        let missing = crate::crypto::hash::Digest::of(format!("{salt}/{i}").as_bytes());
        Ok(Version::new(
            DocKind::Child,
            body["id_number"].as_str().unwrap_or_default().to_owned(),
            vec![crate::sync::version::VersionId(missing)],
            author.clone(),
            Hlc::new(stamp, (i % 60_000) as u16)?,
            body,
        )
        // The bench's network is Ed25519 on SHA-256 (the default directory).
        .sign(key, crate::crypto::hash::HashAlg::Sha256)?)
    };
    // Size one version without notes, then pad each to its share of the limit.
    let bare = serde_json::to_vec(&make(0, "")?)?.len();
    let share = (limit - 1024) / count;
    let pad_chars = share.saturating_sub(bare + 16) / 3;
    let notes: String = "访".repeat(pad_chars.min(2000));
    let versions = (0..count)
        .map(|i| make(i, &notes))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let body = serde_json::to_vec(&PushRequest {
        sender: author.clone(),
        versions,
        tree_head: None,
    })?;
    anyhow::ensure!(
        body.len() <= limit,
        "a push body of {} bytes exceeds the limit",
        body.len()
    );
    Ok(body)
}

pub(super) async fn bench_push_memory(
    pushes: usize,
    in_flight: usize,
    postgres: Option<String>,
) -> anyhow::Result<serde_json::Value> {
    use crate::devnet::{DevNet, NodeSpec};
    anyhow::ensure!((1..=64).contains(&pushes), "--pushes: between 1 and 64");
    let root = tempfile::tempdir()?;
    let specs = [
        NodeSpec::new("410100", "41")?,
        NodeSpec::new("510100", "51")?,
    ];
    let net = DevNet::create(&root.path().join("pki"), &specs, Vec::new())?;
    let pki = net.pki.clone();
    let hukou = net.node(&specs[1].id)?.clone();
    let residence = net.node(&specs[0].id)?.clone();
    let settings = net.settings(&specs[1].id)?;
    // The node process binds the ports the directory names: release this process's listeners.
    drop(net);
    let peer = settings
        .peer
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the hukou node has no peer listener"))?;
    let limits = settings.sync.clone();
    let db = bench_db(postgres.as_deref(), "push_memory")?;

    let node = std::process::Command::new(std::env::current_exe()?)
        .arg("--config")
        .arg(&hukou.config)
        .arg("serve")
        .env("HUKOU_SYNC__DATABASE__URL", &db.url)
        .env("HUKOU_SYNC__LOG__FILTER", "error")
        .env(
            "HUKOU_SYNC__SYNC__PEER_BATCHES_IN_FLIGHT",
            in_flight.to_string(),
        )
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let node = NodeProcess(node);
    let pid = node.0.id();

    let client = client(&pki.ca_cert, &residence.tls_cert, &residence.tls_key)?;
    let url = format!("https://127.0.0.1:{}/peer/v1/versions", peer.listen.port());
    let key = SigningKey::load(&residence.signing_key)?;
    let author = residence.id.clone();

    // The bodies, built before anything is measured.
    let records: Vec<serde_json::Value> =
        sample_records(1000, 17, &crate::domain::RiskPalette::default(), Utc::now())?
            .into_iter()
            .map(|(_, r)| serde_json::to_value(r))
            .collect::<Result<_, _>>()?;
    let bodies: Vec<Vec<u8>> = (0..pushes)
        .map(|p| {
            push_body(
                &key,
                &author,
                &records,
                limits.peer_max_versions,
                limits.peer_body_limit,
                p,
            )
        })
        .collect::<anyhow::Result<_>>()?;

    // Up, and warmed by one small push (its TLS, pools and first batch).
    let warm = push_body(&key, &author, &records, 10, 64 * 1024, 999)?;
    let started = Instant::now();
    loop {
        match client.post(&url).body(warm.clone()).send().await {
            Ok(r) if r.status().is_success() => break,
            _ if started.elapsed() < Duration::from_secs(60) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(r) => anyhow::bail!("the node answered the warm-up push {}", r.status()),
            Err(e) => anyhow::bail!("the node did not come up: {e}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let store = crate::storage::Store::open(&db.url, 1)?;
    let audit_size = |store: crate::storage::Store| async move {
        store
            .run(|c| crate::audit::log::size(c).map_err(anyhow::Error::from))
            .await
    };
    let events_before = audit_size(store.clone()).await?;
    let rss_before = rss_mib(pid);

    // The pushes, all at once; a 503 busy is retried after its Retry-After, as a sender does.
    let peak = std::sync::Arc::new(std::sync::Mutex::new(rss_before));
    let sampling = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                let now = rss_mib(pid);
                if let Ok(mut p) = peak.lock() {
                    *p = p.max(now);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for body in bodies {
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move {
            let mut busy = 0u32;
            loop {
                let r = client
                    .post(&url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
                    .send()
                    .await?;
                if r.status().as_u16() == 503 {
                    busy += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                anyhow::ensure!(r.status().is_success(), "push answered {}", r.status());
                let receipt = r.bytes().await?;
                return anyhow::Ok((busy, receipt.len()));
            }
        });
    }
    let (mut busy, mut receipt_bytes) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        let (b, n) = done??;
        busy += b;
        receipt_bytes = receipt_bytes.max(n);
    }
    let elapsed = start.elapsed();
    // Back to rest: the node's memory a few seconds after the last receipt.
    tokio::time::sleep(Duration::from_secs(3)).await;
    sampling.abort();
    let rss_after = rss_mib(pid);
    let peak = peak.lock().map(|p| *p).unwrap_or(0.0);
    let events_after = audit_size(store).await?;
    drop(node);
    let new_events = events_after - events_before;
    Ok(serde_json::json!({
        "backend": super::backend_name(postgres.as_deref()),
        "pushes": pushes,
        "versions_per_push": limits.peer_max_versions,
        "body_limit_bytes": limits.peer_body_limit,
        "batches_in_flight_per_peer": in_flight,
        "answered_busy_and_retried": busy,
        "seconds": round(elapsed.as_secs_f64()),
        "node_rss_before_mib": round(rss_before),
        "node_rss_peak_mib": round(peak),
        "node_rss_after_mib": round(rss_after),
        "largest_receipt_bytes": receipt_bytes,
        "audit_events_written": new_events,
        "audit_events_per_rejected_batch": round(new_events as f64 / pushes as f64),
    }))
}

/// A mutual-TLS client presenting `cert`/`key` to the hukou node (510100).
fn client(ca: &Path, cert: &Path, key: &Path) -> anyhow::Result<reqwest::Client> {
    let ca = crate::tls::pki::load_certs(ca)?;
    let chain = crate::tls::pki::load_certs(cert)?;
    let key = crate::tls::pki::load_private_key(key)?;
    let cfg = crate::tls::peer_client_config(&ca, chain, key, "510100", &Default::default())?;
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls((*cfg).clone())
        .timeout(Duration::from_secs(600))
        .build()?)
}
