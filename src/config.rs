//! Settings: read once from an optional TOML file and `HUKOU_SYNC__SECTION__KEY` environment
//! variables, unknown keys refused, validated into typed values, and passed explicitly.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, Offset as _, Utc};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::accounts::Policy;
use crate::domain::benefit::BenefitPolicy;
use crate::domain::child::{Benefit, EducationStatus};
use crate::domain::visit::{RuleTarget, VisitSchedule};
use crate::domain::{NodeId, RegionPrefix, RiskPalette};
use crate::eligibility::calendar::WorkCalendar;
use crate::eligibility::service::Deadlines;

/// Everything a node needs to start.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub node: NodeSettings,
    pub database: DatabaseSettings,
    pub admin: AdminSettings,
    pub records: RecordSettings,
    pub log: LogSettings,
    pub audit: AuditSettings,
    /// The peer listener and TLS material; absent for a node that exchanges with nobody.
    pub peer: Option<PeerSettings>,
    /// The signed directory; required when `peer` is set.
    pub directory: Option<DirectorySettings>,
    pub sync: SyncSettings,
    pub eligibility: EligibilitySettings,
    pub reconcile: ReconcileSettings,
    pub visits: VisitSettings,
    pub evidence: EvidenceSettings,
    /// Set by `serve --accept-restore`, never from a file: start although the self check of the
    /// audit log failed (`audit::selfcheck`).
    #[serde(skip)]
    pub accept_restore: bool,
}

/// How often children must be visited (issue 21 #2), over the defaults of
/// [`VisitSchedule::default`]: a key is a category code or Chinese label (`flowing`, `困境`, …)
/// or a risk level `risk_1` … `risk_4`; a value is days between visits (1–366).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VisitSettings {
    /// E.g. `every_days = { left_behind = 90, risk_2 = 14 }`.
    pub every_days: std::collections::BTreeMap<String, u32>,
    /// Overrides per residence-region prefix, e.g. `[visits.jurisdictions.41] flowing = 90`.
    pub jurisdictions: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u32>>,
}

impl VisitSettings {
    /// The schedule these settings give.
    pub fn schedule(&self) -> Result<VisitSchedule, String> {
        let target = |key: &str| -> Result<RuleTarget, String> {
            if let Some(n) = key.strip_prefix("risk_") {
                return n
                    .parse::<u8>()
                    .ok()
                    .and_then(|n| crate::domain::RiskLevel::new(n).ok())
                    .map(RuleTarget::Risk)
                    .ok_or_else(|| format!("{key:?}: risk levels are risk_1 to risk_4"));
            }
            crate::domain::child::Category::ALL
                .iter()
                .find(|c| c.code() == key || c.label_zh() == key)
                .map(|c| RuleTarget::Category(*c))
                .ok_or_else(|| format!("{key:?} is neither a category nor risk_1 to risk_4"))
        };
        let mut rules = Vec::new();
        for (key, days) in &self.every_days {
            rules.push((RegionPrefix::everywhere(), target(key)?, *days));
        }
        for (prefix, over) in &self.jurisdictions {
            let p = RegionPrefix::parse(prefix)
                .map_err(|_| format!("jurisdictions: {prefix:?} is not a region prefix"))?;
            for (key, days) in over {
                rules.push((p.clone(), target(key)?, *days));
            }
        }
        VisitSchedule::with(rules)
    }
}

/// Reconciliation with peers (DESIGN §7). Stale files use `records.stale_after_days`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconcileSettings {
    /// Scheduled runs (`[[reconcile.schedule]]`), each a peer and a cron expression in China
    /// Standard Time: 5 fields (`30 2 * * *`) or 6-7 with seconds first (`0 30 2 * * *`).
    pub schedule: Vec<ReconcileSchedule>,
    /// Longest wait, in seconds, for versions asked of a peer to arrive by its push.
    pub pull_wait_secs: u64,
    /// Seconds a run's lock lasts unless renewed; a killed run's lock is taken over after it.
    pub lock_lease_secs: u64,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self {
            schedule: Vec::new(),
            pull_wait_secs: 30,
            lock_lease_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileSchedule {
    /// The peer's node id, as in the directory.
    pub peer: NodeId,
    pub cron: String,
}

impl ReconcileSchedule {
    /// The parsed expression (settings from [`Settings::load`] were checked to parse).
    pub fn schedule(&self) -> Result<CronSchedule, CronError> {
        CronSchedule::parse(&self.cron)
    }
}

/// A parsed cron expression of a scheduled reconciliation, read in China Standard Time
/// (UTC+8, the bureaus' wall clock).
#[derive(Debug, Clone)]
pub struct CronSchedule(cron::Schedule);

/// Why a cron expression was refused.
#[derive(Debug, thiserror::Error)]
#[error("{expr:?} is not a cron expression ({reason}); use 5 fields (min hour day month weekday) or 6-7 with seconds (and year), e.g. \"0 30 2 * * *\"")]
pub struct CronError {
    expr: String,
    reason: String,
}

/// China Standard Time: schedules are in the bureaus' wall time.
fn cst() -> FixedOffset {
    // +8 h is within the ±24 h an offset may have, so the fallback is never taken.
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix())
}

impl CronSchedule {
    /// Parses a cron expression: 5 fields (standard, minute first) or 6–7 (seconds first,
    /// optional year).
    pub fn parse(expr: &str) -> Result<Self, CronError> {
        let fields = expr.split_whitespace().count();
        let full = match fields {
            5 => format!("0 {}", expr.trim()),
            6 | 7 => expr.trim().to_owned(),
            n => {
                return Err(CronError {
                    expr: expr.to_owned(),
                    reason: format!("{n} fields"),
                })
            }
        };
        let s = cron::Schedule::from_str(&full).map_err(|e| CronError {
            expr: expr.to_owned(),
            reason: e.to_string(),
        })?;
        if s.after(&Utc::now().with_timezone(&cst())).next().is_none() {
            return Err(CronError {
                expr: expr.to_owned(),
                reason: "it never fires again".into(),
            });
        }
        Ok(Self(s))
    }

    /// The next firing strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0
            .after(&t.with_timezone(&cst()))
            .next()
            .map(|n| n.with_timezone(&Utc))
    }
}

/// Deadlines of eligibility cases (DESIGN §5).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EligibilitySettings {
    /// Working days the hukou bureau has to decide, per benefit code.
    pub deadlines: std::collections::BTreeMap<String, u32>,
    /// Overrides per deciding-region prefix, e.g. `[eligibility.jurisdictions.51] dibao = 20`.
    pub jurisdictions: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u32>>,
    /// A case this many working days or fewer from its deadline is "due soon".
    pub due_soon_days: u32,
    /// Extra holidays and make-up workdays (TOML: `holidays = [...]`, `workdays = [...]`),
    /// merged with the shipped 2026 calendar of the State Council: a year's published calendar
    /// (any year it lists a holiday of is published), and local days off.
    pub calendar: Option<PathBuf>,
    /// Pairs of benefits never held together (codes or Chinese labels): approving either while
    /// the other is held is refused (`benefit_excluded`).
    pub exclusive: Vec<[Benefit; 2]>,
    /// `[preferred, other]`: approving `preferred` ends `other` (reason `changed`) in the same
    /// transaction; approving `other` while `preferred` is held is refused.
    pub precedence: Vec<[Benefit; 2]>,
    /// Benefits the age-out job ends at 18.
    pub age_limited: Vec<Benefit>,
    /// Schooling that keeps them past 18 (education_status codes or labels).
    pub in_school: Vec<EducationStatus>,
    /// The age at which they end even in school (policy: "until graduation"; 19 to 30).
    pub school_age_limit: u32,
}

impl EligibilitySettings {
    /// The deadlines of eligibility cases: these settings on the shipped 2026 calendar of the
    /// State Council, merged with the extra calendar file if one is set (read here), and the
    /// days off the law fixes for every year from 2025 to 2100 neither lists a holiday of.
    pub fn deadlines(&self) -> Result<Deadlines, String> {
        let mut calendar = WorkCalendar::china_2026();
        if let Some(p) = &self.calendar {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let extra =
                WorkCalendar::from_toml_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
            calendar = calendar.merge(extra).map_err(|e| e.to_string())?;
        }
        let calendar = calendar.with_statutory_holidays(
            crate::eligibility::statutory::FIRST_YEAR..=crate::eligibility::statutory::LAST_YEAR,
        );
        Ok(Deadlines::new(
            calendar,
            self.deadlines.clone(),
            self.jurisdictions.clone(),
            self.due_soon_days,
        ))
    }

    /// The rules between benefits and the age-out bounds of these settings.
    pub fn benefit_policy(&self) -> Result<BenefitPolicy, String> {
        if !(19..=30).contains(&self.school_age_limit) {
            return Err("eligibility.school_age_limit: between 19 and 30".into());
        }
        for [a, b] in self.exclusive.iter().chain(&self.precedence) {
            if a == b {
                return Err(format!(
                    "eligibility.exclusive/precedence: {a} is paired with itself"
                ));
            }
        }
        for [a, b] in &self.precedence {
            if self.precedence.contains(&[*b, *a]) {
                return Err(format!(
                    "eligibility.precedence: {a} and {b} each take precedence over the other"
                ));
            }
        }
        Ok(BenefitPolicy {
            exclusive: self.exclusive.iter().map(|[a, b]| (*a, *b)).collect(),
            precedence: self.precedence.iter().map(|[a, b]| (*a, *b)).collect(),
            age_limited: self.age_limited.iter().copied().collect(),
            in_school: self.in_school.iter().copied().collect(),
            school_age_limit: self.school_age_limit,
        })
    }
}

impl Default for EligibilitySettings {
    fn default() -> Self {
        let policy = BenefitPolicy::default();
        let deadlines = [
            ("dibao", 30),
            ("tekun", 30),
            ("orphan_allowance", 30),
            ("de_facto_unsupported_subsidy", 30),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Self {
            deadlines,
            jurisdictions: Default::default(),
            due_soon_days: 5,
            calendar: None,
            exclusive: policy.exclusive.iter().map(|&(a, b)| [a, b]).collect(),
            precedence: policy.precedence.iter().map(|&(a, b)| [a, b]).collect(),
            age_limited: policy.age_limited.iter().copied().collect(),
            in_school: policy.in_school.iter().copied().collect(),
            school_age_limit: policy.school_age_limit,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSettings {
    /// Address of the peer (mutual TLS) listener.
    pub listen: SocketAddr,
    /// The exchange CA certificate(s), PEM.
    pub ca: PathBuf,
    /// This node's TLS certificate chain, PEM (SAN URI `urn:hukou-sync:node:<id>`).
    pub cert: PathBuf,
    /// Its private key, PEM, mode 0600.
    pub key: PathBuf,
    /// Accept TLS 1.2 as well as 1.3 (off by default).
    #[serde(default)]
    pub allow_tls12: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorySettings {
    /// The signed directory file.
    pub path: PathBuf,
    /// The directory authority's Ed25519 public key (base64url): the only key trusted to sign it.
    pub authority_key: String,
    /// Seconds between checks of the file for changes (SIGHUP also reloads).
    #[serde(default = "default_reload_secs")]
    pub reload_interval_secs: u64,
    /// Seconds between rounds asking the peers for a newer signed directory (at least 1): a
    /// new serial published to any one node reaches every node within about this long.
    #[serde(default = "default_fetch_secs")]
    pub fetch_interval_secs: u64,
    /// The authority's publication point: an `https://` URL serving the signed directory file,
    /// asked before the peers each round. Optional: without it the directory spreads from peer
    /// to peer.
    #[serde(default)]
    pub publication_url: Option<String>,
    /// CA certificate(s), PEM, that the publication point's server certificate must chain to;
    /// default the exchange CA (`[peer] ca`).
    #[serde(default)]
    pub publication_ca: Option<PathBuf>,
}

fn default_reload_secs() -> u64 {
    10
}

fn default_fetch_secs() -> u64 {
    600
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncSettings {
    /// Versions per push request.
    pub batch_size: usize,
    /// Largest request body on the peer listener, in bytes (a larger push gets 413
    /// `body_too_large` before its body is read past the limit).
    pub peer_body_limit: usize,
    /// Most versions one pushed batch may hold (a larger one gets 413 `too_many_versions`
    /// before any version is parsed). At least `batch_size`, which a sender uses.
    pub peer_max_versions: usize,
    /// Batches one peer may have in flight at once on the peer listener; the next gets 503
    /// `busy` with `Retry-After`, before its body is read.
    pub peer_batches_in_flight: usize,
    /// Largest batches (of `peer_body_limit`) of all peers read, parsed and stored at once;
    /// other admitted batches wait with their bodies unread. Smaller batches share the same
    /// budget by their declared length, so several ordinary ones are received at once. Bounds
    /// the memory pushes can take (about six times `peer_body_limit` per unit).
    pub peer_batches_at_once: usize,
    /// Seconds a peer's stamp may run ahead of this node's clock.
    pub max_clock_skew_secs: u64,
    /// Longest wait between retries of a failing peer, in seconds.
    pub max_backoff_secs: u64,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            batch_size: 2000,
            peer_body_limit: 16 * 1024 * 1024,
            peer_max_versions: 5000,
            peer_batches_in_flight: 4,
            peer_batches_at_once: 1,
            max_clock_skew_secs: 300,
            max_backoff_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// Seconds between signed tree heads (a head is signed only if the log grew).
    pub tree_head_interval_secs: u64,
    /// Seconds between pages of the version integrity check (re-hashing stored versions).
    pub version_check_interval_secs: u64,
    /// Versions re-hashed per page (1 to 100,000).
    pub version_check_page: u64,
    /// Peers witnessing this node's log (`[audit.witness]`).
    pub witness: WitnessSettings,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            tree_head_interval_secs: 60,
            version_check_interval_secs: 10,
            version_check_page: 2000,
            witness: WitnessSettings::default(),
        }
    }
}

/// `[audit.witness]`: how this node asks its peers to cosign its checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WitnessSettings {
    /// Seconds between rounds: each peer is asked to cosign when the log grew since its last
    /// cosignature (pushes and receipts grow it).
    pub interval_secs: u64,
    /// Seconds after which a peer is asked again even if the log did not grow (a fresh
    /// timestamp shows the witness still sees this log as it was).
    pub idle_secs: u64,
    /// How many peers must cosign a checkpoint for it to be *witnessed* (k of n).
    pub quorum: usize,
}

impl Default for WitnessSettings {
    fn default() -> Self {
        Self {
            interval_secs: 10,
            idle_secs: 300,
            quorum: 1,
        }
    }
}

/// Evidence files that travel with cases (issue 22 #4; README "Evidence files").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvidenceSettings {
    /// The AES-256-GCM key the files are stored under (32 random bytes, mode 0600), created on
    /// first start. Default: `evidence.key` next to `node.signing_key`. Never in the database:
    /// a database backup without this file holds no readable evidence.
    pub key: Option<PathBuf>,
    /// The largest file accepted, uploaded or fetched from a peer (1 KiB to 100 MiB; default
    /// 10 MiB).
    pub max_bytes: usize,
    /// Seconds before a file the decider could not fetch is asked for again (1 to 86400).
    pub retry_secs: u64,
    /// Days a file uploaded here is kept while no case names it (1 to 3650; default 7: an
    /// upload on Friday named in a case on Monday is kept). A submission refused or never made
    /// leaves its files behind; a child's documents are not kept without a purpose.
    pub unnamed_days: u32,
}

impl Default for EvidenceSettings {
    fn default() -> Self {
        Self {
            key: None,
            max_bytes: 10 * 1024 * 1024,
            retry_secs: 60,
            unnamed_days: 7,
        }
    }
}

impl EvidenceSettings {
    /// The key file: `key`, or `evidence.key` beside the record-signing key.
    pub fn key_path(&self, node: &NodeSettings) -> PathBuf {
        match &self.key {
            Some(p) => p.clone(),
            None => node
                .signing_key
                .parent()
                .map_or_else(|| PathBuf::from("evidence.key"), |d| d.join("evidence.key")),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSettings {
    /// This node's id in the directory and in its TLS certificate.
    pub id: NodeId,
    /// Region prefixes this node serves: `41` (a province), `4101` (a city), `410105`, or `*`.
    pub serves: Vec<RegionPrefix>,
    /// PKCS#8 record-signing key (mode 0600): the key of every new signature (versions,
    /// receipts, tree heads, checkpoints, lookup statements). Created on first start if
    /// missing, in `signature_suite`.
    pub signing_key: PathBuf,
    /// The suite of new signatures, `ed25519` or `sm2-sm3`: `signing_key` must be of it.
    pub signature_suite: crate::crypto::keys::Suite,
    /// A second record-signing key, of the other suite, for a migration window: every new
    /// version then carries a second signature by it (both are checked). Never created; the
    /// directory must publish its public key before peers accept versions signed with it.
    pub dual_signing_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` (embedded) or `postgres://USER@HOST/DB`.
    pub url: String,
    pub pool_size: u32,
    /// SQLite only: the page cache of all the pool's connections together, MiB (each connection
    /// gets `sqlite_cache_mib / pool_size`, from 2 to 64 MiB). Resident memory grows to it as
    /// the connections read the database, then stays.
    pub sqlite_cache_mib: u32,
    /// Seconds a process holds a lease — sending to a peer, a singleton job (tree heads,
    /// scheduled reconciliation, witnessing, age-out, integrity, evidence fetch) — after its
    /// last renewal; renewed every quarter of it. With several `serve` processes on one
    /// PostgreSQL database, another process takes the work over at most this long after its
    /// holder dies (at once after a clean shutdown).
    pub lease_secs: u64,
    /// Which commits wait for the disk (and synchronous standbys): `every` (the default;
    /// PostgreSQL's own) or `receipts` (only those that sign or answer for something to a peer —
    /// a received batch with its receipt, a tree head — as on SQLite; faster, but a server crash
    /// or failover may lose the last acknowledged edits). Only PostgreSQL differs: SQLite syncs
    /// exactly the receipts' commits either way.
    pub durable_commits: crate::storage::CommitDurability,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// Address of the admin listener (people and local systems).
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// A browser session ends this many hours after login.
    pub session_hours: u32,
    /// Consecutive failed logins that lock an account.
    pub max_failed_logins: u32,
    /// How long a locked account stays locked, in minutes.
    pub lockout_minutes: u32,
    /// Failed logins one client address may make within `login_window_minutes` (whatever user
    /// names it tries); more are refused with 429 until the window slides.
    pub login_attempts_per_client: u32,
    /// The sliding window of `login_attempts_per_client`, in minutes.
    pub login_window_minutes: u32,
    /// Test-only: registers `GET /api/v1/test/panic`, which panics, so the tests can prove a
    /// panicking handler becomes a 500. Never set it in production.
    pub panic_route_for_tests: bool,
    /// Serve the admin listener over TLS (server certificate only; cookies then get `Secure`).
    pub tls: Option<AdminTls>,
}

impl AdminSettings {
    /// The login policy of the accounts service.
    pub fn account_policy(&self) -> Policy {
        Policy {
            session: chrono::Duration::hours(i64::from(self.session_hours)),
            max_failures: self.max_failed_logins,
            lockout: chrono::Duration::minutes(i64::from(self.lockout_minutes)),
        }
    }
}

/// The admin listener's own server certificate (not the exchange's client certificates).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordSettings {
    /// This node's names of the four levels of the common risk scale, most severe first:
    /// exactly four distinct labels (红橙黄绿 by default; 红黄蓝绿, 橙红黄绿 elsewhere). The
    /// exchange carries the level (1–4); the label is local.
    pub risk_palette: Vec<String>,
    /// A file not updated or visited for this many days is stale (policy: six months).
    pub stale_after_days: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `hukou_sync=debug`.
    pub filter: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for NodeSettings {
    fn default() -> Self {
        Self {
            id: NodeId::local(),
            serves: vec![RegionPrefix::everywhere()],
            signing_key: PathBuf::from("data/node-signing.key"),
            signature_suite: crate::crypto::keys::Suite::Ed25519,
            dual_signing_key: None,
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://data/hukou-sync.db".into(),
            pool_size: 8,
            sqlite_cache_mib: crate::storage::DEFAULT_SQLITE_CACHE_MIB,
            lease_secs: 15,
            durable_commits: crate::storage::CommitDurability::Every,
        }
    }
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit: 64 * 1024,
            session_hours: 8,
            max_failed_logins: 5,
            lockout_minutes: 15,
            login_attempts_per_client: 20,
            login_window_minutes: 15,
            panic_route_for_tests: false,
            tls: None,
        }
    }
}

impl Default for RecordSettings {
    fn default() -> Self {
        Self {
            risk_palette: RiskPalette::default().levels().to_vec(),
            stale_after_days: 183,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".into(),
        }
    }
}

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    Missing(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Settings {
    /// Defaults, then the file (if given), then `HUKOU_SYNC__...` variables; then validation.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Missing(path.to_owned()));
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        fig = fig.merge(Env::prefixed("HUKOU_SYNC__").split("__"));
        let settings: Settings = fig
            .extract()
            .map_err(|e| ConfigError::Invalid(flatten_figment(e)))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if let Some(url) = self
            .directory
            .as_ref()
            .and_then(|d| d.publication_url.as_ref())
        {
            let host = url.strip_prefix("https://").unwrap_or("");
            if host.is_empty()
                || url.len() > 2048
                || url.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return bad(format!(
                    "directory.publication_url: an https:// URL of at most 2048 characters, got {url:?}"
                ));
            }
        }
        if self.node.serves.is_empty() {
            return bad("node.serves: list at least one region prefix".into());
        }
        if let Err(e) = RiskPalette::new(self.records.risk_palette.clone()) {
            return bad(format!("records.risk_palette: {e}"));
        }
        if self.records.stale_after_days == 0 {
            return bad("records.stale_after_days: must be at least 1".into());
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.admin.body_limit) {
            return bad("admin.body_limit: between 1024 and 67108864 bytes".into());
        }
        if !(1..=24 * 30).contains(&self.admin.session_hours) {
            return bad("admin.session_hours: between 1 and 720".into());
        }
        if !(1..=100).contains(&self.admin.max_failed_logins) {
            return bad("admin.max_failed_logins: between 1 and 100".into());
        }
        if !(1..=10_000).contains(&self.admin.login_attempts_per_client) {
            return bad("admin.login_attempts_per_client: between 1 and 10000".into());
        }
        if !(1..=24 * 60).contains(&self.admin.login_window_minutes) {
            return bad("admin.login_window_minutes: between 1 and 1440".into());
        }
        if self.admin.lockout_minutes == 0 {
            return bad("admin.lockout_minutes: must be at least 1".into());
        }
        if self.audit.witness.interval_secs == 0 || self.audit.witness.idle_secs == 0 {
            return bad("audit.witness: interval_secs and idle_secs must be at least 1".into());
        }
        if self.audit.version_check_interval_secs == 0
            || !(1..=100_000).contains(&self.audit.version_check_page)
        {
            return bad(
                "audit: version_check_interval_secs at least 1, version_check_page 1 to 100000"
                    .into(),
            );
        }
        if self.audit.witness.quorum > 64 {
            return bad("audit.witness.quorum: at most 64".into());
        }
        if self.audit.tree_head_interval_secs == 0 {
            return bad("audit.tree_head_interval_secs: must be at least 1".into());
        }
        if !(1024..=100 * 1024 * 1024).contains(&self.evidence.max_bytes) {
            return bad("evidence.max_bytes: between 1024 and 104857600 bytes".into());
        }
        if !(1..=86_400).contains(&self.evidence.retry_secs) {
            return bad("evidence.retry_secs: between 1 and 86400".into());
        }
        if !(1..=3650).contains(&self.evidence.unnamed_days) {
            return bad("evidence.unnamed_days: between 1 and 3650".into());
        }
        if self.node.dual_signing_key.as_ref() == Some(&self.node.signing_key) {
            return bad("node.dual_signing_key: must not be the signing_key's file".into());
        }
        if self.evidence.key_path(&self.node) == self.node.signing_key {
            return bad("evidence.key: must not be the record-signing key's file".into());
        }
        if !(1..=128).contains(&self.database.pool_size) {
            return bad("database.pool_size: between 1 and 128".into());
        }
        if !(2..=65_536).contains(&self.database.sqlite_cache_mib) {
            return bad("database.sqlite_cache_mib: between 2 and 65536".into());
        }
        if !(2..=600).contains(&self.database.lease_secs) {
            return bad("database.lease_secs: between 2 and 600".into());
        }
        if self.peer.is_some() != self.directory.is_some() {
            return bad(
                "peer and directory: configure both (to exchange with peers) or neither".into(),
            );
        }
        if let Some(d) = &self.directory {
            if d.authority_key
                .parse::<crate::crypto::keys::PublicKey>()
                .is_err()
            {
                return bad(
                    "directory.authority_key: not a public key (base64url Ed25519, or sm2:…)"
                        .into(),
                );
            }
        }
        for (code, _) in self
            .eligibility
            .deadlines
            .iter()
            .chain(self.eligibility.jurisdictions.values().flatten())
        {
            if !crate::domain::child::Benefit::ALL
                .iter()
                .any(|b| b.code() == code)
            {
                return bad(format!("eligibility.deadlines: unknown benefit {code:?}"));
            }
        }
        if let Err(e) = self.visits.schedule() {
            return bad(format!("visits: {e}"));
        }
        if let Err(e) = self.eligibility.benefit_policy() {
            return bad(e);
        }
        for prefix in self.eligibility.jurisdictions.keys() {
            if RegionPrefix::parse(prefix).is_err() {
                return bad(format!(
                    "eligibility.jurisdictions: {prefix:?} is not a region prefix"
                ));
            }
        }
        if !(1..=5000).contains(&self.sync.batch_size) {
            return bad("sync.batch_size: between 1 and 5000".into());
        }
        if !(self.sync.batch_size..=50_000).contains(&self.sync.peer_max_versions) {
            return bad("sync.peer_max_versions: between sync.batch_size and 50000".into());
        }
        if !(1..=64).contains(&self.sync.peer_batches_in_flight) {
            return bad("sync.peer_batches_in_flight: between 1 and 64".into());
        }
        if !(1..=16).contains(&self.sync.peer_batches_at_once) {
            return bad("sync.peer_batches_at_once: between 1 and 16".into());
        }
        if !(64 * 1024..=256 * 1024 * 1024).contains(&self.sync.peer_body_limit) {
            return bad("sync.peer_body_limit: between 65536 and 268435456 bytes".into());
        }
        for (i, s) in self.reconcile.schedule.iter().enumerate() {
            if let Err(e) = CronSchedule::parse(&s.cron) {
                return bad(format!("reconcile.schedule[{i}].cron: {e}"));
            }
            if s.peer == self.node.id {
                return bad(format!(
                    "reconcile.schedule[{i}].peer: {} is this node itself",
                    s.peer
                ));
            }
        }
        if !self.reconcile.schedule.is_empty() && self.peer.is_none() {
            return bad("reconcile.schedule: needs [peer] and [directory] to reach peers".into());
        }
        if self.reconcile.pull_wait_secs > 600 {
            return bad("reconcile.pull_wait_secs: at most 600".into());
        }
        if !(5..=3600).contains(&self.reconcile.lock_lease_secs) {
            return bad("reconcile.lock_lease_secs: between 5 and 3600".into());
        }
        crate::storage::DatabaseUrl::parse(&self.database.url)
            .map_err(|e| ConfigError::Invalid(format!("database.url: {e}")))?;
        Ok(())
    }

    /// The visit schedule of `[visits]` (checked by [`Settings::load`]).
    pub fn visit_schedule(&self) -> Result<VisitSchedule, ConfigError> {
        self.visits
            .schedule()
            .map_err(|e| ConfigError::Invalid(format!("visits: {e}")))
    }

    /// The benefit rules of `[eligibility]` (checked by [`Settings::load`]).
    pub fn benefit_policy(&self) -> Result<BenefitPolicy, ConfigError> {
        self.eligibility
            .benefit_policy()
            .map_err(ConfigError::Invalid)
    }

    /// The risk palette of `records.risk_palette` (checked by [`Settings::load`]; hand-built
    /// settings may hold a bad one, refused here).
    pub fn risk_palette(&self) -> Result<RiskPalette, ConfigError> {
        RiskPalette::new(self.records.risk_palette.clone())
            .map_err(|e| ConfigError::Invalid(format!("records.risk_palette: {e}")))
    }
}

fn flatten_figment(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| {
            let path = e.path.join(".");
            if path.is_empty() {
                e.kind.to_string()
            } else {
                format!("{path}: {}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let s = Settings::default();
        s.validate().unwrap();
        assert_eq!(s.node.id.as_str(), "local");
    }

    #[test]
    fn unknown_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[admin]\nlisten = \"127.0.0.1:9000\"\nlisen = 1\n").unwrap();
        let e = Settings::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("lisen"), "{e}");
        std::fs::write(&p, "[nodes]\nid = \"x\"\n").unwrap();
        let e = Settings::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("nodes"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[node]\nserves = [\"410\"]\n").unwrap();
        let e = Settings::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("serves"), "{e}");
        std::fs::write(&p, "[database]\nurl = \"mysql://x\"\n").unwrap();
        let e = Settings::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("database.url"), "{e}");
        for bad in [
            "http://authority.example/d.json",
            "https://",
            "https://a b/d.json",
        ] {
            std::fs::write(
                &p,
                format!("[directory]\npath = \"d.json\"\nauthority_key = \"k\"\npublication_url = \"{bad}\"\n"),
            )
            .unwrap();
            let e = Settings::load(Some(&p)).unwrap_err().to_string();
            assert!(e.contains("directory.publication_url"), "{bad}: {e}");
        }
        for bad in ["lease_secs = 1", "lease_secs = 601"] {
            std::fs::write(&p, format!("[database]\n{bad}\n")).unwrap();
            let e = Settings::load(Some(&p)).unwrap_err().to_string();
            assert!(e.contains("database.lease_secs"), "{bad}: {e}");
        }
        for bad in ["sqlite_cache_mib = 1", "sqlite_cache_mib = 65537"] {
            std::fs::write(&p, format!("[database]\n{bad}\n")).unwrap();
            let e = Settings::load(Some(&p)).unwrap_err().to_string();
            assert!(e.contains("database.sqlite_cache_mib"), "{bad}: {e}");
        }
    }

    #[test]
    fn bad_reconcile_schedules_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "[[reconcile.schedule]]\npeer = \"510100\"\ncron = \"every night\"\n",
        )
        .unwrap();
        let e = Settings::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("reconcile.schedule[0].cron"), "{e}");
        assert!(e.contains("not a cron expression"), "{e}");
        std::fs::write(
            &p,
            "[[reconcile.schedule]]\npeer = \"510100\"\ncron = \"0 61 2 * * *\"\n",
        )
        .unwrap();
        let e = Settings::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("reconcile.schedule[0].cron"), "{e}");
        // A valid expression still needs a way to reach the peer.
        std::fs::write(
            &p,
            "[[reconcile.schedule]]\npeer = \"510100\"\ncron = \"30 2 * * *\"\n",
        )
        .unwrap();
        let e = Settings::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("needs [peer]"), "{e}");
        std::fs::write(&p, "[reconcile]\nschedules = []\n").unwrap();
        let e = Settings::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("schedules"), "{e}");
    }
}

#[cfg(test)]
mod cron_tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn five_and_six_field_expressions_parse() {
        let s = CronSchedule::parse("30 2 * * *").unwrap();
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap();
        // 02:30 CST is 18:30 UTC the day before; next after 00:00 UTC is 18:30 UTC.
        assert_eq!(
            s.next_after(t).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 23, 18, 30, 0).unwrap()
        );
        assert!(CronSchedule::parse("0 30 2 * * *").is_ok());
        assert!(CronSchedule::parse("0 0 3 * * Sun 2099").is_ok());
    }

    #[test]
    fn bad_expressions_are_refused_with_the_reason() {
        for bad in ["", "every night", "61 * * * *", "* * *", "0 0 0 1 1 * 2020"] {
            let e = CronSchedule::parse(bad).unwrap_err().to_string();
            assert!(e.contains("not a cron expression"), "{bad}: {e}");
        }
    }
}

#[cfg(test)]
mod deadline_tests {
    use super::*;
    use crate::domain::child::Benefit;
    use crate::domain::RegionCode;
    use crate::eligibility::calendar::{deadline_status, DeadlineStatus};
    use chrono::NaiveDate;

    #[test]
    fn deadlines_follow_benefit_and_jurisdiction() {
        let mut s = EligibilitySettings::default();
        s.jurisdictions.insert(
            "51".into(),
            [("dibao".to_owned(), 20)].into_iter().collect(),
        );
        s.jurisdictions.insert(
            "5101".into(),
            [("dibao".to_owned(), 15)].into_iter().collect(),
        );
        let d = s.deadlines().unwrap();
        let chengdu = RegionCode::parse("510104").unwrap();
        let mianyang = RegionCode::parse("510703").unwrap();
        let zhengzhou = RegionCode::parse("410105").unwrap();
        assert_eq!(d.days(Benefit::Dibao, &chengdu), 15);
        assert_eq!(d.days(Benefit::Dibao, &mianyang), 20);
        assert_eq!(d.days(Benefit::Dibao, &zhengzhou), 30);
        assert_eq!(d.days(Benefit::Tekun, &chengdu), 30);
        // 30 working days from 2026-09-10 is 2026-10-28 (National Day week skipped).
        let start = NaiveDate::from_ymd_opt(2026, 9, 10).unwrap();
        assert_eq!(
            d.calendar.add_working_days(start, 30),
            NaiveDate::from_ymd_opt(2026, 10, 28).unwrap()
        );
        let status = deadline_status(
            &d.calendar,
            NaiveDate::from_ymd_opt(2026, 10, 28).unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(),
            5,
        );
        assert!(matches!(status, DeadlineStatus::Overdue { .. }));
    }
}

#[cfg(test)]
mod computed_year_tests {
    use super::*;
    use chrono::NaiveDate;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    /// Issue 22 #6: a case submitted on 2026-12-20 with 30 working days is due on 1 February
    /// 2027 (元旦 off by law), provisionally; with 2027's calendar configured (here a made-up
    /// one: 元旦 and 4 January off) it is due 2 February and firm; the fingerprint moves.
    #[test]
    fn deadlines_past_the_shipped_calendar() {
        let s = EligibilitySettings::default();
        let d0 = s.deadlines().unwrap();
        let start = d(2026, 12, 20);
        let due = d0.calendar.add_working_days(start, 30);
        assert_eq!(due, d(2027, 2, 1));
        assert!(d0.provisional(start, due));
        assert!(!d0.provisional(d(2026, 9, 10), d(2026, 10, 28)));
        assert_eq!(d0.fingerprint(), s.deadlines().unwrap().fingerprint());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calendar.toml");
        std::fs::write(&path, "holidays = [\"2027-01-01\", \"2027-01-04\"]\n").unwrap();
        let s2 = EligibilitySettings {
            calendar: Some(path.clone()),
            ..EligibilitySettings::default()
        };
        let d2 = s2.deadlines().unwrap();
        let due2 = d2.calendar.add_working_days(start, 30);
        assert_eq!(due2, d(2027, 2, 2));
        assert!(!d2.provisional(start, due2));
        assert_ne!(d0.fingerprint(), d2.fingerprint());
        // Another number of days moves the fingerprint too.
        let mut s3 = EligibilitySettings::default();
        s3.deadlines.insert("dibao".into(), 20);
        assert_ne!(d0.fingerprint(), s3.deadlines().unwrap().fingerprint());

        // Bad files name themselves.
        std::fs::write(&path, "holidays = [\"2027-02-30\"]\n").unwrap();
        let e = s2.deadlines().unwrap_err();
        assert!(
            e.contains("calendar.toml") && e.contains("2027-02-30"),
            "{e}"
        );
        let missing = EligibilitySettings {
            calendar: Some(dir.path().join("none.toml")),
            ..EligibilitySettings::default()
        };
        assert!(missing.deadlines().unwrap_err().contains("none.toml"));
    }
}

#[cfg(test)]
mod example_file {
    use super::*;

    #[test]
    fn the_documented_example_loads() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("hukou-sync.example.toml");
        let s = Settings::load(Some(&path)).unwrap();
        assert_eq!(s.records.stale_after_days, 183);
        assert!(s.peer.is_none());
    }

    /// The benefit rules read codes or Chinese labels, and refuse what cannot be meant.
    #[test]
    fn benefit_rules_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "[eligibility]\nexclusive = [[\"低保\", \"tekun\"]]\nprecedence = []\nin_school = [\"高中\"]\nschool_age_limit = 24\n",
        )
        .unwrap();
        let s = Settings::load(Some(&p)).unwrap();
        let policy = s.benefit_policy().unwrap();
        assert_eq!(policy.exclusive, vec![(Benefit::Dibao, Benefit::Tekun)]);
        assert!(policy.precedence.is_empty());
        assert_eq!(policy.school_age_limit, 24);
        for (text, expect) in [
            ("exclusive = [[\"dibao\", \"bonus\"]]", "exclusive"),
            ("exclusive = [[\"dibao\", \"dibao\"]]", "paired with itself"),
            (
                "precedence = [[\"tekun\", \"dibao\"], [\"dibao\", \"tekun\"]]",
                "each take precedence",
            ),
            ("school_age_limit = 17", "school_age_limit"),
        ] {
            std::fs::write(&p, format!("[eligibility]\n{text}\n")).unwrap();
            let e = Settings::load(Some(&p)).unwrap_err().to_string();
            assert!(e.contains(expect), "{text}: {e}");
        }
        assert_eq!(
            EligibilitySettings::default().benefit_policy().unwrap(),
            BenefitPolicy::default()
        );
    }
}
