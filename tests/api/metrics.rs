//! Observability (issue 25 #7): `/metrics` in the OpenMetrics format through `prometheus-client`,
//! requests counted and timed per listener, method, route pattern and status (never a raw path);
//! the Grafana dashboard names only metrics the node serves; `promtool check metrics` finds
//! nothing to say about a scrape; and one delivery is followed by its request id across the JSON
//! logs of two real `serve` processes.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::helpers::{
    eventually, flowing_child, peer_url, residence_client, spawn_pair, TestApp, CHENGDU, ZHENGZHOU,
};

/// A scrape of `/metrics`, after checking its content type and its `# EOF`.
async fn scrape(app: &TestApp) -> String {
    let r = app.get("/metrics").await;
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let text = r.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    text
}

/// The families a scrape declares (`# TYPE name type`).
fn families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, t)| (n.to_owned(), t.to_owned()))
        .collect()
}

/// Whether a sample name is served by one of `families` (a counter's `_total`, a histogram's
/// `_bucket`, `_count` and `_sum`).
fn served(families: &BTreeMap<String, String>, name: &str) -> bool {
    if families.get(name).is_some_and(|t| t != "counter") {
        return true;
    }
    let of = |suffix: &str, kind: &str| {
        name.strip_suffix(suffix)
            .and_then(|base| families.get(base))
            .is_some_and(|t| t == kind)
    };
    of("_total", "counter")
        || of("_bucket", "histogram")
        || of("_count", "histogram")
        || of("_sum", "histogram")
}

/// The metric names a PromQL expression reads: what is left once string literals, label
/// matchers, range selectors and grouping lists are taken out, less functions and keywords.
fn promql_metrics(expr: &str) -> Vec<String> {
    // Strings, `{…}` and `[…]` out.
    let mut plain = String::new();
    let (mut depth, mut quote) = (0, None::<char>);
    for ch in expr.chars() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(ch),
            (None, '{' | '[') => depth += 1,
            (None, '}' | ']') => depth -= 1,
            (None, c) if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    const KEYWORDS: [&str; 23] = [
        // Aggregation operators (`sum by (l) (…)`: the grouping may stand before the brackets).
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
    ];
    let chars: Vec<char> = plain.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let mut skip_list = false;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if KEYWORDS.contains(&word.as_str()) {
                // `by (a, b)`: the list holds labels, not metrics.
                skip_list = [
                    "by",
                    "without",
                    "on",
                    "ignoring",
                    "group_left",
                    "group_right",
                ]
                .contains(&word.as_str());
            } else if next != Some(&'(') {
                names.push(word);
            }
            continue;
        }
        if c == '(' && skip_list {
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
            skip_list = false;
        }
        i += 1;
    }
    names
}

#[test]
fn promql_names_are_read_without_labels_functions_or_groupings() {
    assert_eq!(
        promql_metrics(
            r#"histogram_quantile(0.99, sum by (listener, route, le) (rate(a_bucket{x=~"$i", s="5.."}[$__rate_interval])))"#
        ),
        ["a_bucket"]
    );
    assert_eq!(promql_metrics("b{i=\"x\"} - c / 3600"), ["b", "c"]);
}

/// Every request on both listeners is counted and timed by route pattern; the raw path (a
/// child's ID number here) never becomes a label; an unmatched path is `unmatched`; the old
/// figures keep their names.
#[tokio::test]
async fn requests_are_counted_per_listener_route_pattern_and_status() {
    let pair = spawn_pair().await;
    let child = flowing_child(901);
    let id = child["id_number"].as_str().unwrap().to_owned();
    pair.residence.create_child(&child).await;
    assert_eq!(
        pair.residence
            .get(&format!("/api/v1/children/{id}"))
            .await
            .status(),
        200
    );
    assert_eq!(pair.residence.get("/no/such/page").await.status(), 404);
    let r = residence_client(&pair.pki)
        .post(peer_url(&pair.hukou))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let text = scrape(&pair.residence).await;
    let line = |labels: &str| format!("hukou_sync_http_requests_total{{{labels}}} 1");
    assert!(
        text.contains(&line(
            r#"listener="admin",method="GET",route="/api/v1/children/{id_number}",status="200""#
        )),
        "{text}"
    );
    assert!(
        text.contains(&line(
            r#"listener="admin",method="POST",route="/api/v1/children",status="201""#
        )),
        "{text}"
    );
    assert!(
        text.contains(r#"listener="admin",method="GET",route="unmatched",status="404""#),
        "{text}"
    );
    assert!(
        text.contains(r#"hukou_sync_http_request_duration_seconds_bucket{le="+Inf",listener="admin",method="GET",route="/api/v1/children/{id_number}",status="200"} 1"#),
        "{text}"
    );
    assert!(!text.contains(&id), "a child's ID number in the metrics");
    assert!(!text.contains("/no/such/page"), "a raw path in the metrics");
    let hukou = scrape(&pair.hukou).await;
    assert!(
        hukou.contains(&line(
            r#"listener="peer",method="POST",route="/peer/v1/versions",status="400""#
        )),
        "{hukou}"
    );
    // The figures served before the move to prometheus-client, by the same names and types
    // (those per reconciliation run and per stale region have no series, so no lines, until
    // there is one: tests/api/reconcile.rs and the dashboard test see them).
    let f = families(&text);
    for gauge in [
        "hukou_sync_outbox_depth",
        "hukou_sync_outbox_lag_seconds",
        "hukou_sync_witness_inconsistent",
        "hukou_sync_witness_cosigned_size",
        "hukou_visits_overdue",
        "hukou_reports_urgent_unassessed",
        "hukou_evidence_missing",
        "hukou_evidence_mismatch",
        "hukou_evidence_stored_bytes",
        "hukou_reports_recorded",
        "hukou_visits_recorded",
        "hukou_sync_versions_tampered",
        "hukou_sync_peer_last_success_age_seconds",
        "hukou_sync_peer_consecutive_failures",
        "hukou_sync_peer_refused_versions",
        "hukou_sync_cases_open",
        "hukou_sync_cases_overdue",
        "hukou_sync_cases_due_soon",
        "hukou_cases_due_provisional",
        "hukou_sync_directory_expires_in_seconds",
        "hukou_sync_directory_serial",
        "hukou_sync_files_with_concurrent_heads",
        "hukou_sync_open_conflicts",
        "hukou_children_risk",
        "hukou_sync_audit_events",
        "hukou_sync_stale_children",
        "process_resident_memory_bytes",
        "process_open_fds",
        "hukou_sync_db_pool_connections",
        "hukou_sync_db_pool_idle_connections",
        "hukou_sync_db_pool_max_connections",
    ] {
        assert_eq!(f.get(gauge).map(String::as_str), Some("gauge"), "{gauge}");
    }
    assert_eq!(f["process_cpu_seconds"], "counter");
    // What the senders put on the wire: the new file's version, delivered with its receipt.
    let total = |text: &str, name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}_total ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    eventually(30, "the delivery counted", || async {
        total(&scrape(&pair.residence).await, "hukou_sync_pushed_versions") >= 1
    })
    .await;
    let text = scrape(&pair.residence).await;
    let f = families(&text);
    for counter in [
        "hukou_sync_pushed_versions",
        "hukou_sync_pushed_bytes",
        "hukou_sync_receipt_bytes",
    ] {
        assert_eq!(
            f.get(counter).map(String::as_str),
            Some("counter"),
            "{counter}"
        );
    }
    let (versions, sent, received) = pair.residence.node.wire.totals();
    assert!(versions >= 1 && sent > 0 && received > 0);
    assert!(
        total(&text, "hukou_sync_pushed_bytes") >= 64 * total(&text, "hukou_sync_pushed_versions"),
        "each version takes at least its id's 64 characters: {text}"
    );
    assert!(total(&text, "hukou_sync_receipt_bytes") > 0, "{text}");
    assert!(text.contains("\nhukou_sync_outbox_depth{peer=\"510100\"} "));
    assert!(
        text.contains("\nhukou_children_risk{level=\"3\"} 1\n"),
        "{text}"
    );
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

/// The Grafana dashboard (`ops/grafana/hukou-sync.json`) reads only metrics a node serves, and
/// covers what the issue asks of it: it cannot rot silently when a metric is renamed.
#[tokio::test]
async fn the_dashboard_reads_only_metrics_the_node_serves() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ops/grafana/hukou-sync.json");
    let dashboard: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    let mut used: Vec<String> = exprs.iter().flat_map(|e| promql_metrics(e)).collect();
    // Template variables: `label_values(metric, label)`.
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = var["query"]["query"].as_str() {
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.split_once(','))
                .map(|(m, _)| m.trim().to_owned())
                .unwrap();
            used.push(inner);
        }
    }
    assert!(exprs.len() >= 20, "{exprs:?}");
    for e in &exprs {
        assert!(!promql_metrics(e).is_empty(), "no metric in {e}");
    }

    let pair = spawn_pair().await;
    // A reconciliation run, so its per-peer families have series; one request answered, so
    // the request families have too.
    crate::reconcile::run(&pair.residence, CHENGDU, false).await;
    assert_eq!(pair.residence.get("/healthz").await.status(), 200);
    let served_families = families(&scrape(&pair.residence).await);
    let missing: Vec<&String> = used
        .iter()
        .filter(|n| !served(&served_families, n))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard reads metrics /metrics does not serve: {missing:?}"
    );
    for wanted in [
        "hukou_sync_http_requests_total",
        "hukou_sync_http_request_duration_seconds_bucket",
        "hukou_sync_outbox_depth",
        "hukou_sync_outbox_lag_seconds",
        "hukou_sync_cases_overdue",
        "hukou_sync_witness_inconsistent",
        "hukou_sync_audit_events",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_cpu_seconds_total",
        "hukou_sync_db_pool_connections",
        "hukou_sync_directory_expires_in_seconds",
    ] {
        assert!(
            used.iter().any(|u| u == wanted),
            "the dashboard lacks {wanted}"
        );
    }
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

/// `promtool check metrics` (Prometheus's own linter) on a scrape of each node (requests on both
/// listeners recorded): any complaint fails. Skipped where promtool is absent unless `HUKOU_SYNC_REQUIRE_PROMTOOL` is
/// set (CI installs Debian's `prometheus` and sets it).
#[tokio::test]
async fn promtool_has_nothing_to_say_about_a_scrape() {
    let promtool = Command::new("promtool").arg("--version").output();
    if !promtool.is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var_os("HUKOU_SYNC_REQUIRE_PROMTOOL").is_none(),
            "promtool is required (HUKOU_SYNC_REQUIRE_PROMTOOL) but not found"
        );
        eprintln!("skipped: promtool not found (apt-get install prometheus)");
        return;
    }
    let pair = spawn_pair().await;
    pair.residence.create_child(&flowing_child(902)).await;
    eventually(30, "the child delivered", || async {
        pair.hukou.count("versions") == 1
    })
    .await;
    assert_eq!(pair.residence.get("/no/such/page").await.status(), 404);
    for app in [&pair.residence, &pair.hukou] {
        // promtool reads the Prometheus text format 0.0.4 (not OpenMetrics): asked for as a
        // scraper of that format asks.
        let r = app
            .http
            .get(app.url("/metrics"))
            .header("accept", "text/plain; version=0.0.4")
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let text = r.text().await.unwrap();
        assert!(!text.contains("# EOF"));
        assert!(
            text.contains("# TYPE hukou_sync_http_requests_total counter"),
            "{text}"
        );
        assert!(text.contains("hukou_sync_http_request_duration_seconds_bucket{"));
        assert!(text.contains("\nhukou_sync_audit_events "), "{text}");
        if app.node.id.as_str() == CHENGDU {
            assert!(text.contains("listener=\"peer\""), "{text}");
        }
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && said.trim().is_empty(),
            "promtool check metrics: {said}\n{text}"
        );
    }
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

/// A `serve` process whose stderr (its logs) is collected line by line; killed when dropped.
struct Served {
    child: Mutex<Child>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Served {
    fn start(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Served {
            child: Mutex::new(child),
            lines,
        }
    }

    /// Fails the test with the process's logs if it has ended.
    fn running(&self) {
        if let Some(status) = self.child.lock().unwrap().try_wait().unwrap() {
            panic!("serve ended ({status}):\n{}", self.text());
        }
    }

    /// The JSON log lines so far (every line must be JSON).
    fn json(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// One delivery followed across two nodes' logs: two real `serve` processes logging JSON; the
/// sender logs the request id it puts on the batch, and the receiver's lines for that
/// `POST /peer/v1/versions` (its handler's line, in the request's span, and the access log)
/// carry the same id. Neither log shows the child's name or full ID number.
#[tokio::test]
async fn one_delivery_is_followed_by_its_request_id_across_two_nodes_json_logs() {
    let pair = spawn_pair().await;
    let admin = pair.residence.http.clone();
    // The admin listeners' real addresses (the settings may name port 0).
    let admin_of = |app: &TestApp| app.base.trim_start_matches("http://").to_owned();
    let (residence_admin, hukou_admin) = (admin_of(&pair.residence), admin_of(&pair.hukou));
    let (residence, _residence_db, _residence_dir) = pair.residence.shut_down().await;
    let (hukou, _hukou_db, _hukou_dir) = pair.hukou.shut_down().await;
    let serve = |id: &str, settings: &hukou_sync::config::Settings, admin: &str| {
        let node = pair.pki.nodes.iter().find(|n| n.id.as_str() == id).unwrap();
        let mut c = Command::new(env!("CARGO_BIN_EXE_hukou-sync"));
        c.arg("--config")
            .arg(&node.config)
            .arg("serve")
            .env_remove("HUKOU_SYNC_CONFIG")
            .env_remove("RUST_LOG")
            .env("HUKOU_SYNC__DATABASE__URL", &settings.database.url)
            .env("HUKOU_SYNC__ADMIN__LISTEN", admin)
            .env(
                "HUKOU_SYNC__PEER__LISTEN",
                settings.peer.as_ref().unwrap().listen.to_string(),
            )
            .env("HUKOU_SYNC__SYNC__MAX_BACKOFF_SECS", "1")
            .env("HUKOU_SYNC__LOG__FORMAT", "json")
            .env("HUKOU_SYNC__LOG__FILTER", "info");
        Served::start(c)
    };
    let chengdu = serve(CHENGDU, &hukou, &hukou_admin);
    let zhengzhou = serve(ZHENGZHOU, &residence, &residence_admin);
    let base = format!("http://{residence_admin}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        chengdu.running();
        zhengzhou.running();
        let up = admin
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if up {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the residence node does not answer:\n{}\n{}",
            zhengzhou.text(),
            chengdu.text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let child = flowing_child(903);
    let r = admin
        .post(format!("{base}/api/v1/children"))
        .json(&child)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    // The sender's lines: the id it put on each batch it posted (an attempt made before the
    // hukou node listened failed and was posted again under a new id).
    let pushed = |lines: &[Value]| -> Vec<String> {
        lines
            .iter()
            .filter(|l| {
                l["fields"]["message"] == "pushing a batch" && l["fields"]["peer"] == CHENGDU
            })
            .filter_map(|l| l["fields"]["request_id"].as_str().map(str::to_owned))
            .collect()
    };
    eventually(60, "the residence node logs a pushed batch", || async {
        !pushed(&zhengzhou.json()).is_empty()
    })
    .await;
    // The receiver's lines with one of those ids: its handler's line inside the request's
    // span, and the access log of that request.
    let received = |lines: &[Value], id: &str| {
        let handler = lines.iter().any(|l| {
            l["fields"]["message"] == "batch received"
                && l["span"]["request_id"] == id
                && l["fields"]["peer"] == ZHENGZHOU
        });
        let access = lines.iter().any(|l| {
            l["target"] == "hukou_sync::peer"
                && l["fields"]["message"].as_str().is_some_and(|m| {
                    m.contains("POST /peer/v1/versions") && m.ends_with(&format!("id={id}"))
                })
        });
        handler && access
    };
    eventually(
        60,
        "the hukou node logs a pushed batch's request id",
        || async {
            let lines = chengdu.json();
            pushed(&zhengzhou.json())
                .iter()
                .any(|id| received(&lines, id))
        },
    )
    .await;
    // No child's name or full ID number in either log.
    let number = child["id_number"].as_str().unwrap();
    for node in [&zhengzhou, &chengdu] {
        let text = node.text();
        assert!(!text.contains(number), "{text}");
        assert!(!text.contains("张小明"), "{text}");
    }
    drop(zhengzhou);
    drop(chengdu);
}
