//! `GET /metrics`: Prometheus text exposition of what an operator watches — outbox depth and
//! delivery age per peer, overdue and due-soon eligibility cases, files with concurrent heads,
//! witnessing (sizes cosigned, evidence against peers), visits overdue and recorded, the size of
//! the audit log, children's files served here per risk level, the last reconciliation run per peer, stale files, evidence files (missing at the decider, mismatching, bytes stored), and the
//! signed directory's serial and seconds to its expiry.

use actix_web::{get, web, HttpResponse};
use chrono::Utc;

use super::error::ApiError;
use super::AppState;
use crate::domain::RiskLevel;
use crate::eligibility::service::Deadlines;
use crate::storage;
use crate::sync::sender::{peer_statuses, PeerStatus};
use crate::sync::{LedgerError, LocalNode};

/// Metrics in the Prometheus text format (version 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "ops", operation_id = "metrics", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let node = state.node.clone();
    let deadlines = state.deadlines.clone();
    let stale_days = state.settings.records.stale_after_days;
    // Read before a connection is taken for the figures below, so it shows the pool as the
    // node's work left it.
    let pool = state.store.pool_use();
    let text = state
        .store
        .run(move |c| {
            let mut text = metrics_text(c, &node, &deadlines)?;
            text.push_str(&process_text(pool));
            text.push_str(&crate::reconcile::metrics_text(
                c,
                &node,
                stale_days,
                chrono::Utc::now(),
            )?);
            Ok::<_, ApiError>(text)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}

/// The process's resident memory, open descriptors and CPU time (Linux `/proc/self`), and the
/// database pool's use — what an operator watches for a leak or an exhausted pool.
fn process_text(pool: storage::PoolUse) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
    if let Some(kib) = rss_kib {
        metric(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            kib * 1024.0,
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        metric(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            fds.count() as f64,
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
        metric(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            t / hz,
        );
    }
    metric(
        "hukou_sync_db_pool_connections",
        "gauge",
        "Database connections the pool holds open.",
        f64::from(pool.open),
    );
    metric(
        "hukou_sync_db_pool_idle_connections",
        "gauge",
        "Open database connections not in use.",
        f64::from(pool.idle),
    );
    metric(
        "hukou_sync_db_pool_max_connections",
        "gauge",
        "The most connections the pool opens (database.pool_size).",
        f64::from(pool.max),
    );
    out
}

/// The node's gauges in Prometheus text format: delivery per peer, eligibility cases by
/// deadline, concurrent heads, open conflicts, files per risk level and the audit log's size.
fn metrics_text(
    conn: &mut storage::DbConn,
    node: &LocalNode,
    deadlines: &Deadlines,
) -> Result<String, LedgerError> {
    use std::fmt::Write as _;
    let now = Utc::now();
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, rows: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let peers = peer_statuses(conn, node)?;
    let label = |p: &PeerStatus| format!("{{peer=\"{}\"}}", p.peer);
    gauge(
        "hukou_sync_outbox_depth",
        "Versions waiting to be sent to a peer.",
        peers
            .iter()
            .map(|p| (label(p), p.outbox_depth as f64))
            .collect(),
    );
    gauge(
        "hukou_sync_witness_inconsistent",
        "Evidence against a peer's audit log (equivocation, rollback, failing proof) not yet acknowledged; while above 0 this node cosigns nothing for it.",
        peers
            .iter()
            .map(|p| (label(p), p.witness_inconsistent as f64))
            .collect(),
    );
    let overdue: i64 =
        crate::storage::visits::overdue_by_region(conn, crate::sync::ledger::china_today(now))?
            .into_iter()
            .filter(|(region, _)| {
                crate::domain::RegionCode::parse(region).is_ok_and(|r| node.serves(&r))
            })
            .map(|(_, n)| n)
            .sum();
    gauge(
        "hukou_visits_overdue",
        "Files this node serves as the residence bureau whose next visit is past due under the visit schedule.",
        vec![(String::new(), overdue as f64)],
    );
    gauge(
        "hukou_reports_urgent_unassessed",
        "Urgent reports no visit of the child has assessed since (the child's risk stays red at the residence bureau).",
        vec![(
            String::new(),
            crate::storage::reports::urgent_unassessed(conn)? as f64,
        )],
    );
    gauge(
        "hukou_evidence_missing",
        "Open cases this node decides that name an evidence file not present and verified here (fetched from the requesting bureau; a decision waits for it).",
        vec![(
            String::new(),
            crate::storage::evidence::cases_missing(conn, node.id.as_str())? as f64,
        )],
    );
    gauge(
        "hukou_evidence_mismatch",
        "Evidence files a requesting bureau served with another SHA-256 than the case names (kept out; the decision stays blocked).",
        vec![(
            String::new(),
            crate::storage::evidence::mismatching(conn)? as f64,
        )],
    );
    gauge(
        "hukou_evidence_stored_bytes",
        "Bytes of the evidence files stored here (plaintext sizes; stored encrypted).",
        vec![(
            String::new(),
            crate::storage::evidence::stored_bytes(conn)? as f64,
        )],
    );
    gauge(
        "hukou_reports_recorded",
        "Reports and referrals held here.",
        vec![(String::new(), crate::storage::reports::count(conn)? as f64)],
    );
    gauge(
        "hukou_visits_recorded",
        "Visits held here (recorded here or received from the child's other bureau).",
        vec![(String::new(), crate::storage::visits::count(conn)? as f64)],
    );
    gauge(
        "hukou_sync_versions_tampered",
        "Stored versions whose content no longer hashes to their id (changed in the database).",
        vec![(
            String::new(),
            crate::storage::records::count_tampered(conn)? as f64,
        )],
    );
    gauge(
        "hukou_sync_witness_cosigned_size",
        "The largest size of this node's audit log the peer cosigned (-1: never).",
        peers
            .iter()
            .map(|p| (label(p), p.cosigned_size.map_or(-1.0, |n| n as f64)))
            .collect(),
    );
    gauge(
        "hukou_sync_outbox_lag_seconds",
        "Age of the oldest version waiting for a peer.",
        peers
            .iter()
            .map(|p| (label(p), p.lag_seconds.unwrap_or(0) as f64))
            .collect(),
    );
    gauge(
        "hukou_sync_peer_last_success_age_seconds",
        "Seconds since the last delivery a peer acknowledged with a receipt (-1: never).",
        peers
            .iter()
            .map(|p| {
                (
                    label(p),
                    p.last_success_at
                        .map_or(-1.0, |t| (now - t).num_seconds() as f64),
                )
            })
            .collect(),
    );
    gauge(
        "hukou_sync_peer_consecutive_failures",
        "Failed deliveries to a peer since the last success.",
        peers
            .iter()
            .map(|p| (label(p), p.consecutive_failures as f64))
            .collect(),
    );
    gauge(
        "hukou_sync_peer_refused_versions",
        "Versions a peer refused and has not accepted since.",
        peers
            .iter()
            .map(|p| (label(p), p.rejected as f64))
            .collect(),
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
    gauge(
        "hukou_sync_cases_open",
        "Eligibility cases not yet decided or withdrawn.",
        vec![(String::new(), f64::from(open))],
    );
    gauge(
        "hukou_sync_cases_overdue",
        "Open cases past their deadline in working days.",
        vec![(String::new(), f64::from(overdue))],
    );
    gauge(
        "hukou_sync_cases_due_soon",
        "Open cases close to their deadline.",
        vec![(String::new(), f64::from(due_soon))],
    );
    gauge(
        "hukou_cases_due_provisional",
        "Open cases whose due date counts into a year without a published holiday calendar (statutory holidays only, 暂定).",
        vec![(String::new(), f64::from(provisional))],
    );
    if let Some(dir) = node.directory.as_ref().map(|d| d.current()) {
        gauge(
            "hukou_sync_directory_expires_in_seconds",
            "Seconds until the signed directory in use expires (a node refuses an expired one: publish a new serial before this reaches zero).",
            vec![(
                String::new(),
                (dir.expires_at() - now).num_seconds() as f64,
            )],
        );
        gauge(
            "hukou_sync_directory_serial",
            "Serial of the signed directory in use.",
            vec![(String::new(), dir.serial() as f64)],
        );
    }
    let concurrent = storage::records::count_children_with_heads_over(conn, 1)?;
    gauge(
        "hukou_sync_files_with_concurrent_heads",
        "Children's files whose versions have several heads (merged on read).",
        vec![(String::new(), concurrent as f64)],
    );
    let open_conflicts: Vec<(String, f64)> =
        storage::conflicts::count_by_owner(conn, &crate::domain::Scope::whole_node())?
            .into_iter()
            .map(|(owner, n)| (format!("{{owner=\"{owner}\"}}"), n as f64))
            .collect();
    gauge(
        "hukou_sync_open_conflicts",
        "Open conflicts of children's files, by the node whose reviewers resolve them.",
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
    gauge(
        "hukou_children_risk",
        "Children's files served here by risk level on the common scale (1 the most severe; the label is each node's own).",
        RiskLevel::ALL
            .iter()
            .zip(per_level)
            .map(|(l, n)| (format!("{{level=\"{l}\"}}"), n as f64))
            .collect(),
    );
    let audit_size = storage::audit::size(conn)?;
    gauge(
        "hukou_sync_audit_events",
        "Events in the audit log.",
        vec![(String::new(), audit_size as f64)],
    );
    Ok(out)
}
