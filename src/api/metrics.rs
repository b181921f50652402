//! `GET /metrics` and the HTTP metrics of both listeners, all through `prometheus-client`'s
//! registries and its OpenMetrics text encoder (no hand-written exposition).
//!
//! Two registries make one scrape:
//! - [`HttpMetrics`], one per node for its life: requests and their latency per listener
//!   (`admin`|`peer`), method, route *pattern* and status, recorded by the [`observe_admin`] and
//!   [`observe_peer`] middlewares. Labels are bounded: the route is actix's `match_pattern()`
//!   (`/api/v1/children/{id}`, never a child's id or a hash; `unmatched` when no route matched)
//!   and an unusual method is `other`.
//! - A registry built per scrape for what is read from the database and `/proc` at that moment:
//!   outbox depth and delivery age per peer, overdue and due-soon eligibility cases, files with
//!   concurrent heads, witnessing (sizes cosigned, evidence against peers), visits overdue and
//!   recorded, the size of the audit log, children's files served here per risk level, the last
//!   reconciliation run per peer, stale files, evidence files (missing at the decider,
//!   mismatching, bytes stored), the signed directory's serial and seconds to its expiry, the
//!   process's memory, descriptors and CPU, and the database pool's use. Built per scrape rather
//!   than kept as long-lived gauges refreshed by a collector: each scrape is one consistent
//!   snapshot, a peer or region that is gone leaves no stale series behind, and concurrent
//!   scrapes share no mutable state.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{get, web, HttpResponse};
use chrono::Utc;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::error::ApiError;
use super::AppState;
use crate::domain::RiskLevel;
use crate::eligibility::service::Deadlines;
use crate::reconcile::RunStatus;
use crate::storage;
use crate::sync::sender::{peer_statuses, PeerStatus};
use crate::sync::{LedgerError, LocalNode};

/// The content type of the OpenMetrics text format, as `prometheus-client` writes it.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of the Prometheus text format 0.0.4, for a client that asks for it only.
pub const CONTENT_TYPE_0_0_4: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether an `Accept` header asks for the older Prometheus text format and not OpenMetrics
/// (a scraper or a linter such as `promtool check metrics` that reads only 0.0.4). Anything
/// else — no header, `*/*`, OpenMetrics among others — gets OpenMetrics.
fn wants_text_0_0_4(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        let a = a.to_ascii_lowercase();
        a.contains("text/plain") && !a.contains("application/openmetrics-text")
    })
}

/// Upper bounds (seconds) of the request latency buckets: 1 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The labels of a request: each of bounded cardinality (see the module documentation).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    listener: &'static str,
    method: &'static str,
    route: String,
    status: u16,
}

/// Requests and their latency on both listeners, for the node's life.
pub struct HttpMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RequestLabels, Histogram>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<RequestLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(LATENCY_BUCKETS)) as fn() -> Histogram,
        );
        registry.register(
            "hukou_sync_http_requests",
            "HTTP requests answered, by listener, method, route pattern and status",
            requests.clone(),
        );
        registry.register_with_unit(
            "hukou_sync_http_request_duration",
            "Time from a request's arrival to its answer's head, by listener, method, route pattern and status",
            Unit::Seconds,
            duration.clone(),
        );
        Self {
            registry,
            requests,
            duration,
        }
    }

    fn record(&self, labels: &RequestLabels, seconds: f64) {
        self.requests.get_or_create(labels).inc();
        self.duration.get_or_create(labels).observe(seconds);
    }
}

/// The method as a label: the standard ones by name, any other `other` (a client may send any
/// token as a method; labels must stay bounded).
fn method_label(m: &Method) -> &'static str {
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::HEAD, "HEAD"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::PATCH, "PATCH"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    KNOWN
        .iter()
        .find(|(k, _)| k == m)
        .map_or("other", |(_, name)| name)
}

/// Middleware of the admin listener: counts and times each request (see the module doc).
pub async fn observe_admin<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    observe("admin", req, next).await
}

/// Middleware of the peer listener: counts and times each request (see the module doc).
pub async fn observe_peer<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    observe("peer", req, next).await
}

async fn observe<B: MessageBody>(
    listener: &'static str,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let started = Instant::now();
    let recorder = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.http_metrics.clone());
    let method = method_label(req.method());
    // The pattern of the route the path matches (the app's whole route map), never the path.
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let res = next.call(req).await;
    if let Some(recorder) = recorder {
        let status = match &res {
            Ok(r) => r.status(),
            Err(e) => e.as_response_error().status_code(),
        };
        let labels = RequestLabels {
            listener,
            method,
            route,
            status: status.as_u16(),
        };
        recorder.record(&labels, started.elapsed().as_secs_f64());
    }
    res
}

/// Metrics in the OpenMetrics text format (`prometheus-client`'s encoder); the Prometheus text
/// format 0.0.4 (the same crate's encoder) for a client asking for that alone.
#[utoipa::path(get, path = "/metrics", tag = "ops", operation_id = "metrics", responses((status = 200, description = "OpenMetrics text format (the Prometheus text format 0.0.4 for a client whose Accept names text/plain and not OpenMetrics)", content_type = "application/openmetrics-text")))]
#[get("/metrics")]
pub async fn metrics(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let classic = wants_text_0_0_4(
        req.headers()
            .get(actix_web::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    let node = state.node.clone();
    let deadlines = state.deadlines.clone();
    let stale_days = state.settings.records.stale_after_days;
    // Read before a connection is taken for the figures below, so it shows the pool as the
    // node's work left it.
    let pool = state.store.pool_use();
    let scrape = state
        .store
        .run(move |c| {
            let now = Utc::now();
            let mut scrape = Scrape::default();
            node_gauges(&mut scrape, c, &node, &deadlines)?;
            process_gauges(&mut scrape, pool);
            reconcile_gauges(
                &mut scrape,
                crate::reconcile::figures(c, &node, stale_days, now)?,
                now,
            );
            Ok::<_, ApiError>(scrape)
        })
        .await?;
    let mut text = String::new();
    let (encoded, content_type) = if classic {
        (
            prometheus_text::encode(&mut text, &state.http_metrics.registry)
                .and_then(|()| prometheus_text::encode(&mut text, &scrape.registry)),
            CONTENT_TYPE_0_0_4,
        )
    } else {
        (
            encode_registry(&mut text, &state.http_metrics.registry)
                .and_then(|()| encode_registry(&mut text, &scrape.registry))
                .and_then(|()| encode_eof(&mut text)),
            CONTENT_TYPE,
        )
    };
    encoded.map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type(content_type).body(text))
}

/// A registry built for one scrape (see the module documentation).
#[derive(Default)]
struct Scrape {
    registry: Registry,
}

impl Scrape {
    /// `help` is written as the existing texts read; the encoder adds the final full stop.
    fn help(help: &str) -> &str {
        help.strip_suffix('.').unwrap_or(help)
    }

    /// A gauge without labels.
    fn gauge(&mut self, name: &str, help: &str, value: i64) {
        let g = Gauge::<i64>::default();
        g.set(value);
        self.registry.register(name, Self::help(help), g);
    }

    /// A counter without labels, read from a running total (the encoder adds `_total`).
    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.registry
            .register(name, Self::help(help), ConstCounter::new(value));
    }

    /// A gauge with one label, one series per row.
    fn family(
        &mut self,
        name: &str,
        help: &str,
        label: &'static str,
        rows: impl IntoIterator<Item = (String, i64)>,
    ) {
        let family = Family::<Vec<(&'static str, String)>, Gauge<i64>>::default();
        for (value_of_label, v) in rows {
            family.get_or_create(&vec![(label, value_of_label)]).set(v);
        }
        self.registry.register(name, Self::help(help), family);
    }

    /// A per-peer gauge.
    fn per_peer(
        &mut self,
        name: &str,
        help: &str,
        peers: &[PeerStatus],
        value: impl Fn(&PeerStatus) -> i64,
    ) {
        self.family(
            name,
            help,
            "peer",
            peers.iter().map(|p| (p.peer.clone(), value(p))),
        );
    }
}

/// The process's resident memory, open descriptors and CPU time (Linux `/proc/self`), and the
/// database pool's use — what an operator watches for a leak or an exhausted pool.
fn process_gauges(scrape: &mut Scrape, pool: storage::PoolUse) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok());
    if let Some(kib) = rss_kib {
        scrape.gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            kib * 1024,
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        scrape.gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            i64::try_from(fds.count()).unwrap_or(i64::MAX),
        );
    }
    // Fields 14 and 15 of /proc/self/stat (after the command name in parentheses): user and
    // system time in clock ticks.
    // SAFETY: `sysconf` only reads a configuration value.
    let hz = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as f64,
        _ => 100.0,
    };
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let ticks: Option<f64> = stat.rsplit_once(") ").and_then(|(_, rest)| {
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let user: f64 = fields.get(11)?.parse().ok()?;
        let system: f64 = fields.get(12)?.parse().ok()?;
        Some(user + system)
    });
    if let Some(t) = ticks {
        // A counter read from the kernel at each scrape: a constant in this scrape's registry.
        // OpenMetrics names its sample `process_cpu_seconds_total`.
        scrape.registry.register(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            ConstCounter::new(t / hz),
        );
    }
    scrape.gauge(
        "hukou_sync_db_pool_connections",
        "Database connections the pool holds open.",
        i64::from(pool.open),
    );
    scrape.gauge(
        "hukou_sync_db_pool_idle_connections",
        "Open database connections not in use.",
        i64::from(pool.idle),
    );
    scrape.gauge(
        "hukou_sync_db_pool_max_connections",
        "The most connections the pool opens (database.pool_size).",
        i64::from(pool.max),
    );
}

/// Reconciliation: per peer, the last finished run's age, differences and result; and the
/// stale files of this node.
fn reconcile_gauges(
    scrape: &mut Scrape,
    figures: crate::reconcile::Figures,
    now: chrono::DateTime<Utc>,
) {
    let runs = &figures.runs;
    scrape.family(
        "hukou_sync_reconcile_last_run_age_seconds",
        "Seconds since the last reconciliation run with a peer finished.",
        "peer",
        runs.iter().map(|r| {
            let at = r.finished_at.unwrap_or(r.started_at);
            (r.peer.to_string(), (now - at).num_seconds().max(0))
        }),
    );
    scrape.family(
        "hukou_sync_reconcile_last_run_differences",
        "Documents that differed in the last reconciliation run with a peer.",
        "peer",
        runs.iter()
            .map(|r| (r.peer.to_string(), saturating(r.differences))),
    );
    scrape.family(
        "hukou_sync_reconcile_last_run_ok",
        "1 if the last reconciliation run with a peer completed without errors, else 0.",
        "peer",
        runs.iter()
            .map(|r| (r.peer.to_string(), i64::from(r.status == RunStatus::Ok))),
    );
    scrape.gauge(
        "hukou_sync_stale_children",
        "Children's files neither updated nor visited within records.stale_after_days.",
        saturating(figures.stale.total),
    );
    scrape.family(
        "hukou_sync_stale_children_by_region",
        "Stale children's files per region this node serves them for.",
        "region",
        figures
            .stale
            .per_region
            .iter()
            .map(|(region, n)| (region.clone(), saturating(*n))),
    );
}

fn saturating(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The node's gauges: delivery per peer, eligibility cases by deadline, concurrent heads, open
/// conflicts, files per risk level and the audit log's size.
fn node_gauges(
    scrape: &mut Scrape,
    conn: &mut storage::DbConn,
    node: &LocalNode,
    deadlines: &Deadlines,
) -> Result<(), LedgerError> {
    let now = Utc::now();
    let peers = peer_statuses(conn, node)?;
    scrape.per_peer(
        "hukou_sync_outbox_depth",
        "Versions waiting to be sent to a peer.",
        &peers,
        |p| saturating(p.outbox_depth),
    );
    scrape.per_peer(
        "hukou_sync_witness_inconsistent",
        "Evidence against a peer's audit log (equivocation, rollback, failing proof) not yet acknowledged; while above 0 this node cosigns nothing for it.",
        &peers,
        |p| saturating(p.witness_inconsistent),
    );
    let overdue: i64 =
        crate::storage::visits::overdue_by_region(conn, crate::sync::ledger::china_today(now))?
            .into_iter()
            .filter(|(region, _)| {
                crate::domain::RegionCode::parse(region).is_ok_and(|r| node.serves(&r))
            })
            .map(|(_, n)| n)
            .sum();
    scrape.gauge(
        "hukou_visits_overdue",
        "Files this node serves as the residence bureau whose next visit is past due under the visit schedule.",
        overdue,
    );
    scrape.gauge(
        "hukou_reports_urgent_unassessed",
        "Urgent reports no visit of the child has assessed since (the child's risk stays red at the residence bureau).",
        crate::storage::reports::urgent_unassessed(conn)?,
    );
    scrape.gauge(
        "hukou_evidence_missing",
        "Open cases this node decides that name an evidence file not present and verified here (fetched from the requesting bureau; a decision waits for it).",
        crate::storage::evidence::cases_missing(conn, node.id.as_str())?,
    );
    scrape.gauge(
        "hukou_evidence_mismatch",
        "Evidence files a requesting bureau served with another SHA-256 than the case names (kept out; the decision stays blocked).",
        crate::storage::evidence::mismatching(conn)?,
    );
    scrape.gauge(
        "hukou_evidence_stored_bytes",
        "Bytes of the evidence files stored here (plaintext sizes; stored encrypted).",
        crate::storage::evidence::stored_bytes(conn)?,
    );
    scrape.gauge(
        "hukou_reports_recorded",
        "Reports and referrals held here.",
        crate::storage::reports::count(conn)?,
    );
    scrape.gauge(
        "hukou_visits_recorded",
        "Visits held here (recorded here or received from the child's other bureau).",
        crate::storage::visits::count(conn)?,
    );
    scrape.gauge(
        "hukou_sync_versions_tampered",
        "Stored versions whose content no longer hashes to their id (changed in the database).",
        crate::storage::records::count_tampered(conn)?,
    );
    scrape.per_peer(
        "hukou_sync_witness_cosigned_size",
        "The largest size of this node's audit log the peer cosigned (-1: never).",
        &peers,
        |p| p.cosigned_size.map_or(-1, saturating),
    );
    scrape.per_peer(
        "hukou_sync_outbox_lag_seconds",
        "Age of the oldest version waiting for a peer.",
        &peers,
        |p| p.lag_seconds.unwrap_or(0),
    );
    scrape.per_peer(
        "hukou_sync_peer_last_success_age_seconds",
        "Seconds since the last delivery a peer acknowledged with a receipt (-1: never).",
        &peers,
        |p| p.last_success_at.map_or(-1, |t| (now - t).num_seconds()),
    );
    scrape.per_peer(
        "hukou_sync_peer_consecutive_failures",
        "Failed deliveries to a peer since the last success.",
        &peers,
        |p| i64::from(p.consecutive_failures),
    );
    scrape.per_peer(
        "hukou_sync_peer_refused_versions",
        "Versions a peer refused and has not accepted since.",
        &peers,
        |p| saturating(p.rejected),
    );
    let cases = crate::eligibility::service::list(
        conn,
        node,
        deadlines,
        &crate::eligibility::service::CaseQuery {
            limit: 1_000_000,
            ..Default::default()
        },
        now,
    )
    .map_err(|e| LedgerError::Internal(e.to_string()))?;
    let (mut overdue, mut due_soon, mut open, mut provisional) = (0, 0, 0, 0);
    for c in &cases {
        if c.deadline.is_some() && c.due_provisional {
            provisional += 1;
        }
        match c.deadline {
            Some(crate::eligibility::calendar::DeadlineStatus::Overdue { .. }) => overdue += 1,
            Some(crate::eligibility::calendar::DeadlineStatus::DueSoon { .. }) => due_soon += 1,
            _ => {}
        }
        if c.deadline.is_some() {
            open += 1;
        }
    }
    scrape.gauge(
        "hukou_sync_cases_open",
        "Eligibility cases not yet decided or withdrawn.",
        open,
    );
    scrape.gauge(
        "hukou_sync_cases_overdue",
        "Open cases past their deadline in working days.",
        overdue,
    );
    scrape.gauge(
        "hukou_sync_cases_due_soon",
        "Open cases close to their deadline.",
        due_soon,
    );
    scrape.gauge(
        "hukou_cases_due_provisional",
        "Open cases whose due date counts into a year without a published holiday calendar (statutory holidays only, 暂定).",
        provisional,
    );
    if let Some(dir) = node.directory.as_ref().map(|d| d.current()) {
        scrape.gauge(
            "hukou_sync_directory_expires_in_seconds",
            "Seconds until the signed directory in use expires (a node refuses an expired one: publish a new serial before this reaches zero).",
            (dir.expires_at() - now).num_seconds(),
        );
        scrape.gauge(
            "hukou_sync_directory_serial",
            "Serial of the signed directory in use.",
            i64::try_from(dir.serial()).unwrap_or(i64::MAX),
        );
    }
    // What this process's senders put on the wire (the topology benchmark's bytes per version,
    // for a running node: rate(bytes) / rate(versions)).
    let (versions, sent, received) = node.wire.totals();
    scrape.counter(
        "hukou_sync_pushed_versions",
        "Versions this process delivered to peers, counted at each verified receipt.",
        versions,
    );
    scrape.counter(
        "hukou_sync_pushed_bytes",
        "Bytes of the batches this process delivered to peers (the request bodies as sent).",
        sent,
    );
    scrape.counter(
        "hukou_sync_receipt_bytes",
        "Bytes of the receipts peers answered this process's delivered batches with.",
        received,
    );
    scrape.gauge(
        "hukou_sync_files_with_concurrent_heads",
        "Children's files whose versions have several heads (merged on read).",
        storage::records::count_children_with_heads_over(conn, 1)?,
    );
    // This node's own count is always shown (0 when none), so an alert sees 0, not nothing.
    let mut open_conflicts: std::collections::BTreeMap<String, i64> =
        std::iter::once((node.id.to_string(), 0)).collect();
    for (owner, n) in storage::conflicts::count_by_owner(conn, &crate::domain::Scope::whole_node())?
    {
        *open_conflicts.entry(owner.to_string()).or_default() += n;
    }
    scrape.family(
        "hukou_sync_open_conflicts",
        "Open conflicts of children's files, by the node whose reviewers resolve them.",
        "owner",
        open_conflicts,
    );
    // Files served here only: a file kept read-only after the child moved away is not this
    // node's to grade (as in lists and the stale files).
    let mut per_level = [0i64; crate::domain::risk::LEVELS];
    for (level, hukou, residence, n) in storage::records::count_risk_by_regions(conn)? {
        if node.roles(&hukou, &residence).is_party() {
            per_level[usize::from(level.get() - 1)] += n;
        }
    }
    scrape.family(
        "hukou_children_risk",
        "Children's files served here by risk level on the common scale (1 the most severe; the label is each node's own).",
        "level",
        RiskLevel::ALL
            .iter()
            .zip(per_level)
            .map(|(l, n)| (l.to_string(), n)),
    );
    scrape.gauge(
        "hukou_sync_audit_events",
        "Events in the audit log.",
        storage::audit::size(conn)?,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_client_asking_for_text_alone_gets_the_0_0_4_format() {
        assert!(!wants_text_0_0_4(None));
        assert!(!wants_text_0_0_4(Some("*/*")));
        // Prometheus's own scrape header.
        assert!(!wants_text_0_0_4(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        )));
        assert!(wants_text_0_0_4(Some("text/plain; version=0.0.4")));
    }

    #[test]
    fn methods_outside_the_standard_ones_share_one_label() {
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(
            method_label(&Method::from_bytes(b"PROPFIND").unwrap()),
            "other"
        );
    }

    #[test]
    fn requests_are_counted_and_timed_per_labels() {
        let m = HttpMetrics::new();
        let labels = RequestLabels {
            listener: "peer",
            method: "POST",
            route: "/peer/v1/versions".into(),
            status: 200,
        };
        m.record(&labels, 0.003);
        m.record(&labels, 0.3);
        let mut text = String::new();
        encode_registry(&mut text, &m.registry).unwrap();
        let series = r#"{listener="peer",method="POST",route="/peer/v1/versions",status="200"}"#;
        assert!(
            text.contains(&format!("hukou_sync_http_requests_total{series} 2")),
            "{text}"
        );
        assert!(
            text.contains("# TYPE hukou_sync_http_request_duration_seconds histogram"),
            "{text}"
        );
        assert!(text.contains("# UNIT hukou_sync_http_request_duration_seconds seconds"));
        assert!(
            text.contains(&format!(
                "hukou_sync_http_request_duration_seconds_count{series} 2"
            )),
            "{text}"
        );
    }
}
