//! `Application::build(settings)`: opens the database, loads the node's key and clock, binds the
//! admin listener (port 0 picks a free port, as tests do), starts the jobs, and runs until stopped.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use anyhow::Context;

use crate::api::{self, AppState};
use crate::config::Settings;
use crate::crypto::hlc::{Hlc, HlcClock, SystemClock};
use crate::crypto::keys::PublicKey;
use crate::crypto::keys::SigningKey;
use crate::directory::{Directory, DirectoryHandle};
use crate::domain::NodeId;
use crate::eligibility::service::Deadlines;
use crate::jobs::{self, DirectoryWatch, ExchangeJobs, Jobs, JobsContext, Running};
use crate::storage::Store;
use crate::sync::sender::{ClientFactory, SenderConfig};
use crate::sync::LocalNode;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Listeners bound by the caller (tests and the demo bind port 0 first, so the directory can
/// name the ports before the nodes start). `None` binds the address from settings.
#[derive(Default)]
pub struct Listeners {
    pub admin: Option<TcpListener>,
    pub peer: Option<TcpListener>,
}

/// A built node, listening but not yet serving.
pub struct Application {
    admin_port: u16,
    peer_port: Option<u16>,
    servers: Vec<Server>,
    store: Store,
    node: Arc<LocalNode>,
    jobs: Jobs,
    /// On SQLite, the node's lock (`storage::backup::NodeLock`): held until the application is
    /// dropped, so a second `serve` and a `restore` see that this node runs.
    _lock: Option<crate::storage::backup::NodeLock>,
}

/// The TLS material of the peer side.
#[derive(Clone)]
struct PeerTls {
    ca: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: PeerTlsKey,
    policy: crate::tls::TlsPolicy,
}

/// The peer TLS private key (cloned with `clone_key`).
struct PeerTlsKey(PrivateKeyDer<'static>);

/// Installs ring as the process's rustls provider (HTTP clients that take the default need one).
/// Idempotent: a second call finds it installed.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, Listeners::default()).await
    }

    pub async fn build_with(settings: Settings, listeners: Listeners) -> anyhow::Result<Self> {
        install_crypto_provider();
        crate::sync::memory::limit_arenas();
        let settings = Arc::new(settings);
        let lock = node_lock(&settings.database.url).await?;
        let (store, node) = open_node(&settings).await?;
        self_check(&store, &node, settings.accept_restore).await?;
        let vault = evidence_vault(&settings, &store, &node)?;
        // The configuration in force, by digest (it holds paths and credentials), and the keys:
        // a change between two starts is visible in the audit trail.
        let config_digest =
            crate::crypto::hash::Digest::of(serde_json::to_string(&*settings)?.as_bytes());
        let details = serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "config_sha256": config_digest,
            "signing_key": node.key.public_key(),
            "directory_serial": node.directory.as_ref().map(|d| d.current().serial()),
        });
        {
            let (s2, n2) = (store.clone(), node.clone());
            tokio::task::spawn_blocking(move || {
                record_system_event(&s2, &n2, "node.start", details)
            })
            .await??;
        }
        let admin_listener = match listeners.admin {
            Some(l) => l,
            None => TcpListener::bind(settings.admin.listen)
                .with_context(|| format!("cannot listen on {}", settings.admin.listen))?,
        };
        let admin_port = admin_listener.local_addr()?.port();
        let deadlines = deadlines(&settings)?;
        {
            let (s2, d2) = (store.clone(), deadlines.clone());
            tokio::task::spawn_blocking(move || refresh_case_deadlines(&s2, &d2)).await??;
        }
        let receiver = Arc::new(crate::sync::receive::Receiver::new(
            store.clone(),
            node.clone(),
            Arc::new(crate::eligibility::service::Reactions {
                deadlines: deadlines.clone(),
            }),
            Arc::new(crate::visits::Reactions),
            crate::sync::receive::PushLimits {
                in_flight_per_peer: settings.sync.peer_batches_in_flight,
                at_once: settings.sync.peer_batches_at_once,
                max_versions: settings.sync.peer_max_versions,
                max_bytes: settings.sync.peer_body_limit,
            },
        ));
        let peer_tls = match (&settings.peer, &settings.directory) {
            (Some(peer), Some(_)) => Some(load_peer_tls(peer)?),
            _ => None,
        };
        let clients = peer_tls
            .as_ref()
            .map(|t| client_factory(t.clone(), node.directory.clone()));
        let state = web::Data::new(AppState {
            store: store.clone(),
            node: node.clone(),
            settings: settings.clone(),
            deadlines,
            receiver,
            peer_clients: clients.clone(),
            evidence: vault.clone(),
            http_metrics: Arc::new(api::metrics::HttpMetrics::new()),
            login_limiter: Arc::new(crate::accounts::ClientLimiter::new(
                settings.admin.login_attempts_per_client,
                Duration::from_secs(u64::from(settings.admin.login_window_minutes) * 60),
            )),
        });
        let fetcher = clients.as_ref().map(|c| {
            crate::eligibility::evidence::Fetcher::new(
                store.clone(),
                node.clone(),
                vault.clone(),
                c.clone(),
                Duration::from_secs(settings.evidence.retry_secs.max(1)),
            )
        });
        let reconciler = clients.as_ref().zip(fetcher.clone()).map(|(c, f)| {
            web::Data::new(reconciler_with(
                &settings,
                store.clone(),
                node.clone(),
                c.clone(),
                f,
            ))
        });
        let body_limit = settings.admin.body_limit;
        let secure_cookies = settings.admin.tls.is_some();
        let admin_state = state.clone();
        let admin_reconciler = reconciler.clone();
        let panic_route = settings.admin.panic_route_for_tests;
        let known = web::Data::new(api::manners::KnownRoutes::new(crate::ui::ROUTES));
        let admin = HttpServer::new(move || {
            let rec = admin_reconciler.clone();
            App::new()
                .wrap(actix_web::middleware::from_fn(api::manners::manners))
                .wrap(request_logger().log_target("hukou_sync::http"))
                .wrap(actix_web::middleware::from_fn(api::request_id::request_id))
                .wrap(actix_web::middleware::from_fn(api::metrics::observe_admin))
                .app_data(admin_state.clone())
                .app_data(known.clone())
                .configure(|cfg| crate::ui::configure(cfg, secure_cookies))
                .configure(move |cfg| {
                    if let Some(r) = rec {
                        cfg.app_data(r);
                    }
                    api::configure(cfg, body_limit, panic_route)
                })
        })
        .workers(2);
        let admin = match &settings.admin.tls {
            Some(t) => {
                let config = crate::tls::admin_server_config(
                    crate::tls::pki::load_certs(&t.cert)?,
                    crate::tls::pki::load_private_key(&t.key)?,
                )?;
                admin.listen_rustls_0_23(admin_listener, (*config).clone())?
            }
            None => admin.listen(admin_listener)?,
        }
        .run();
        let mut servers = vec![admin];
        let mut exchange = None;
        let mut peer_port = None;
        if let (Some(peer), Some(dirset), Some(tls), Some(clients)) =
            (&settings.peer, &settings.directory, peer_tls, clients)
        {
            let server_config = crate::tls::peer_server_config(
                &tls.ca,
                tls.chain.clone(),
                tls.key.0.clone_key(),
                &tls.policy,
            )?;
            let listener = match listeners.peer {
                Some(l) => l,
                None => TcpListener::bind(peer.listen)
                    .with_context(|| format!("cannot listen on {}", peer.listen))?,
            };
            peer_port = Some(listener.local_addr()?.port());
            let peer_limit = settings.sync.peer_body_limit;
            let peer_state = state.clone();
            let server = HttpServer::new(move || {
                App::new()
                    .wrap(request_logger().log_target("hukou_sync::peer"))
                    .wrap(actix_web::middleware::from_fn(api::request_id::request_id))
                    .wrap(actix_web::middleware::from_fn(api::metrics::observe_peer))
                    .app_data(peer_state.clone())
                    .configure(|cfg| api::peer::configure(cfg, peer_limit))
            })
            .on_connect(|conn, ext| {
                use actix_tls::accept::rustls_0_23::TlsStream;
                if let Some(tls) = conn.downcast_ref::<TlsStream<actix_web::rt::net::TcpStream>>() {
                    if let Some(cert) = tls.get_ref().1.peer_certificates().and_then(|c| c.first())
                    {
                        ext.insert(api::peer::PeerCertificate(cert.clone().into_owned()));
                    }
                }
            })
            .workers(2)
            .listen_rustls_0_23(listener, (*server_config).clone())?
            .run();
            servers.push(server);
            tracing::info!(node = %node.id, port = peer_port, "peer listener bound (mutual TLS)");
            let authority: PublicKey = dirset
                .authority_key
                .parse()
                .map_err(|e| anyhow::anyhow!("directory.authority_key: {e}"))?;
            let mut schedule = Vec::new();
            for entry in &settings.reconcile.schedule {
                match entry.schedule() {
                    Ok(s) => schedule.push((entry.peer.clone(), s)),
                    // Settings from `Settings::load` were checked; hand-built ones may not be.
                    Err(e) => {
                        tracing::warn!(peer = %entry.peer, error = %e, "scheduled reconciliation not started")
                    }
                }
            }
            let publication_point = publication(settings.peer.as_ref(), dirset)?;
            exchange = reconciler.zip(fetcher).map(|(rec, evidence)| ExchangeJobs {
                clients,
                evidence,
                evidence_retry: Duration::from_secs(settings.evidence.retry_secs.max(1)),
                sender: sender_config(&settings),
                reconciler: crate::reconcile::Reconciler::clone(&rec),
                schedule,
                directory: DirectoryWatch {
                    path: dirset.path.clone(),
                    authority,
                    interval: Duration::from_secs(dirset.reload_interval_secs.max(1)),
                    fetch_interval: Duration::from_secs(dirset.fetch_interval_secs.max(1)),
                    publication: publication_point.clone(),
                },
                witness: jobs::witness::WitnessTiming {
                    interval: Duration::from_secs(settings.audit.witness.interval_secs.max(1)),
                    idle: Duration::from_secs(settings.audit.witness.idle_secs.max(1)),
                },
            });
        }
        let jobs = jobs::start(JobsContext {
            store: store.clone(),
            node: node.clone(),
            tree_head_interval: Duration::from_secs(settings.audit.tree_head_interval_secs),
            version_check: (
                Duration::from_secs(settings.audit.version_check_interval_secs.max(1)),
                settings.audit.version_check_page.clamp(1, 100_000) as i64,
            ),
            exchange,
            evidence_unnamed: chrono::Duration::days(i64::from(settings.evidence.unnamed_days)),
            leases: jobs::lease::Leases {
                store: store.clone(),
                holder: jobs::lease::Leases::process_name().into(),
                ttl: Duration::from_secs(settings.database.lease_secs),
            },
        });
        tracing::info!(node = %node.id, port = admin_port, "admin listener bound");
        Ok(Self {
            admin_port,
            peer_port,
            servers,
            store,
            node,
            jobs,
            _lock: lock,
        })
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    pub fn peer_port(&self) -> Option<u16> {
        self.peer_port
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn node(&self) -> &Arc<LocalNode> {
        &self.node
    }

    /// Counts this node's running jobs (zero once `run_until_stopped` has returned).
    pub fn running_jobs(&self) -> Running {
        self.jobs.running()
    }

    /// Serves until the servers stop (Ctrl-C, or a handle's `stop`); then stops the jobs.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let results = futures_join_all(self.servers).await;
        self.jobs.shutdown().await;
        results.into_iter().collect()
    }

    /// Handles that stop the servers from elsewhere.
    pub fn handle(&self) -> StopHandle {
        StopHandle(self.servers.iter().map(Server::handle).collect())
    }
}

/// Stops every listener of one application.
#[derive(Clone)]
pub struct StopHandle(Vec<actix_web::dev::ServerHandle>);

impl StopHandle {
    pub async fn stop(&self, graceful: bool) {
        for h in &self.0 {
            h.stop(graceful).await;
        }
    }
}

async fn futures_join_all(servers: Vec<Server>) -> Vec<std::io::Result<()>> {
    let handles: Vec<_> = servers.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap_or_else(|e| Err(std::io::Error::other(e))));
    }
    out
}

/// The access log: method, path and query with ID numbers masked (`4101**********0012`), since
/// logs must never carry a child's full ID number; and the request id (`api::request_id`), read
/// from the request: the answer's `X-Request-Id` header is only set once the logger has seen the
/// answer (the id's middleware wraps the logger).
fn request_logger() -> actix_web::middleware::Logger {
    actix_web::middleware::Logger::new("%a \"%{request}xi\" %s %b %Dms id=%{request_id}xi")
        .custom_request_replace("request", |req| {
            let target = req.uri().path_and_query().map_or("", |p| p.as_str());
            format!("{} {}", req.method(), mask_id_numbers(target))
        })
        .custom_request_replace("request_id", |req| {
            use actix_web::HttpMessage;
            req.extensions()
                .get::<api::request_id::RequestId>()
                .map_or_else(|| "-".to_owned(), |id| id.0.clone())
        })
}

/// Replaces every run of 17 digits followed by a digit or X with its masked form
/// ([`crate::domain::IdNumber::mask_within`]).
pub fn mask_id_numbers(text: &str) -> String {
    crate::domain::IdNumber::mask_within(text)
}

impl Clone for PeerTlsKey {
    fn clone(&self) -> Self {
        Self(self.0.clone_key())
    }
}

/// The client of the authority's publication point (`[directory] publication_url`), verifying
/// its server against `publication_ca` or the exchange CA.
fn publication(
    peer: Option<&crate::config::PeerSettings>,
    dirset: &crate::config::DirectorySettings,
) -> anyhow::Result<Option<jobs::directory_fetch::Publication>> {
    let Some(url) = &dirset.publication_url else {
        return Ok(None);
    };
    let ca_path = match (&dirset.publication_ca, peer) {
        (Some(p), _) => p.clone(),
        (None, Some(peer)) => peer.ca.clone(),
        (None, None) => anyhow::bail!("directory.publication_ca: needed without [peer]"),
    };
    let roots = crate::tls::pki::load_certs(&ca_path)
        .map_err(|e| anyhow::anyhow!("directory.publication_ca {}: {e}", ca_path.display()))?;
    let cfg = crate::tls::publication_client_config(&roots)?;
    let client = reqwest::Client::builder()
        .use_preconfigured_tls((*cfg).clone())
        .timeout(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(10))
        .build()?;
    Ok(Some(jobs::directory_fetch::Publication {
        url: url.clone(),
        client,
    }))
}

fn load_peer_tls(peer: &crate::config::PeerSettings) -> anyhow::Result<PeerTls> {
    Ok(PeerTls {
        ca: crate::tls::pki::load_certs(&peer.ca)?,
        chain: crate::tls::pki::load_certs(&peer.cert)?,
        key: PeerTlsKey(crate::tls::pki::load_private_key(&peer.key)?),
        policy: crate::tls::TlsPolicy {
            allow_tls12: peer.allow_tls12,
        },
    })
}

fn sender_config(settings: &Settings) -> SenderConfig {
    SenderConfig {
        batch_size: settings.sync.batch_size,
        max_backoff: Duration::from_secs(settings.sync.max_backoff_secs.max(1)),
        idle_poll: Duration::from_secs(1),
    }
}

fn reconciler_with(
    settings: &Settings,
    store: Store,
    node: Arc<LocalNode>,
    clients: ClientFactory,
    evidence: crate::eligibility::evidence::Fetcher,
) -> crate::reconcile::Reconciler {
    crate::reconcile::Reconciler::new(
        store,
        node,
        clients,
        crate::reconcile::run::ReconcilerConfig {
            sender: sender_config(settings),
            pull_wait: Duration::from_secs(settings.reconcile.pull_wait_secs),
            lease: Duration::from_secs(settings.reconcile.lock_lease_secs),
            stale_after_days: settings.records.stale_after_days,
            peer_listener: settings.peer.as_ref().map(|p| p.listen),
        },
    )
    .also_repairing(Arc::new(EvidenceRepair(evidence)))
}

/// A reconciliation run also fetches the evidence files this node (the decider) lacks from the
/// peer (reconciliation imports no service: the two meet here).
struct EvidenceRepair(crate::eligibility::evidence::Fetcher);

impl crate::reconcile::run::AlsoRepair for EvidenceRepair {
    fn repair<'a>(&'a self, peer: &'a NodeId) -> crate::reconcile::run::RepairFuture<'a> {
        Box::pin(async move {
            let s = self.0.fetch_from(peer).await.map_err(|e| e.to_string())?;
            Ok((s.fetched, s.failed + s.mismatched))
        })
    }
}

/// The evidence vault of a node: its key file (`[evidence] key`, created with mode 0600 on
/// first use and audited `key.create`) and the size limit.
pub fn evidence_vault(
    settings: &Settings,
    store: &Store,
    node: &LocalNode,
) -> anyhow::Result<Arc<crate::eligibility::evidence::Vault>> {
    let path = settings.evidence.key_path(&settings.node);
    let (key, created) = crate::crypto::AtRestKey::load_or_create(&path)
        .with_context(|| format!("the evidence key {}", path.display()))?;
    if created {
        tracing::info!(path = %path.display(), "created a new evidence encryption key (AES-256-GCM); back it up apart from the database");
        record_system_event(
            store,
            node,
            "key.create",
            serde_json::json!({"evidence_key": path}),
        )?;
    }
    Ok(Arc::new(crate::eligibility::evidence::Vault::new(
        key,
        settings.evidence.max_bytes,
    )))
}

/// The reconciliation runner of a node, for the CLI and tests: its mutual-TLS clients from the
/// settings' peer material. `None` for a node that exchanges with nobody.
pub fn reconciler(
    settings: &Settings,
    store: Store,
    node: Arc<LocalNode>,
) -> anyhow::Result<Option<crate::reconcile::Reconciler>> {
    match (&settings.peer, &settings.directory) {
        (Some(peer), Some(_)) => {
            let clients = client_factory(load_peer_tls(peer)?, node.directory.clone());
            let vault = evidence_vault(settings, &store, &node)?;
            let fetcher = crate::eligibility::evidence::Fetcher::new(
                store.clone(),
                node.clone(),
                vault,
                clients.clone(),
                Duration::from_secs(settings.evidence.retry_secs.max(1)),
            );
            Ok(Some(reconciler_with(
                settings, store, node, clients, fetcher,
            )))
        }
        _ => Ok(None),
    }
}

/// The pinned mutual-TLS clients of a node with a peer listener and a directory (benchmarks and
/// tools that talk to peers as the node).
pub fn peer_clients(settings: &Settings) -> anyhow::Result<Option<ClientFactory>> {
    match (&settings.peer, &settings.directory) {
        (Some(peer), Some(_)) => Ok(Some(client_factory(load_peer_tls(peer)?, None))),
        _ => Ok(None),
    }
}

/// Builds a pinned mutual-TLS client per peer. With the node's `directory`, every handshake
/// also requires the server's certificate to be pinned for its node and not revoked in the
/// directory in use at that moment (as the peer listener requires of clients), so a new serial
/// revoking a node's certificate stops calls to it at the next connection (the sender dials
/// anew after each new serial: `sync::sender::Link`). Tools without a running node pass `None`.
fn client_factory(tls: PeerTls, directory: Option<DirectoryHandle>) -> ClientFactory {
    let tls = Arc::new(tls);
    let check: Option<crate::tls::ServerCheck> = directory.map(|handle| {
        let check: crate::tls::ServerCheck = Arc::new(move |node: &str, cert| {
            handle
                .current()
                .authenticate_peer(node, &crate::tls::fingerprint(cert), chrono::Utc::now())
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        check
    });
    Arc::new(move |peer: &NodeId| {
        let cfg = crate::tls::peer_client_config_checked(
            &tls.ca,
            tls.chain.clone(),
            tls.key.0.clone_key(),
            peer.as_str(),
            &tls.policy,
            check.clone(),
        )
        .map_err(|e| e.to_string())?;
        reqwest::Client::builder()
            .use_preconfigured_tls((*cfg).clone())
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())
    })
}

/// The deadlines of eligibility cases from `[eligibility]` (reading its calendar file, if set).
pub fn deadlines(settings: &Settings) -> anyhow::Result<Arc<Deadlines>> {
    settings
        .eligibility
        .deadlines()
        .map(Arc::new)
        .map_err(|e| anyhow::anyhow!("eligibility.calendar: {e}"))
}

/// At start: warns when this year or the next has no published holiday calendar (naming the
/// years computed by law), records once which evidence files open cases name
/// (`eligibility::evidence::backfill_named`, for cases stored before files travelled), and recomputes open cases' due dates when the calendar or the
/// deadlines changed since the last start (`eligibility::service::refresh_due_dates`).
fn refresh_case_deadlines(store: &Store, deadlines: &Deadlines) -> anyhow::Result<()> {
    let this_year = chrono::Datelike::year(&crate::sync::ledger::china_today(chrono::Utc::now()));
    let computed: Vec<String> = deadlines
        .calendar
        .computed_years()
        .filter(|y| (this_year..=this_year + 1).contains(y))
        .map(|y| y.to_string())
        .collect();
    if !computed.is_empty() {
        tracing::warn!(
            years = %computed.join(","),
            "no published holiday calendar for {}: deadlines counted into it use the holidays the \
             law fixes (no bridging, no make-up workdays) and are provisional (暂定); add the \
             year's calendar to the file [eligibility] calendar names",
            computed.join(", ")
        );
    }
    let mut conn = store.conn()?;
    if let Some(n) = crate::eligibility::evidence::backfill_named(&mut conn)? {
        if n > 0 {
            tracing::info!(cases = n, "recorded the evidence files open cases name");
        }
    }
    if let Some(moved) = crate::eligibility::service::refresh_due_dates(&mut conn, deadlines)? {
        tracing::info!(
            moved,
            "open cases' due dates recomputed on the current calendar and deadlines"
        );
    }
    Ok(())
}

/// On SQLite, takes the node's lock, waiting a while for a stopping node to let it go; a second
/// `serve` on one SQLite file would sign its own tree heads over the same log. None on
/// PostgreSQL, where several processes may serve one node.
async fn node_lock(url: &str) -> anyhow::Result<Option<crate::storage::backup::NodeLock>> {
    use crate::storage::backup::{sqlite_file, BackupError, NodeLock};
    let db = match sqlite_file(url) {
        Ok(db) => db,
        Err(BackupError::Postgres) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let lock = tokio::task::spawn_blocking(move || NodeLock::acquire(&db, Duration::from_secs(30)))
        .await
        .context("start-up task failed")??;
    Ok(Some(lock))
}

/// The start-up self check of the audit log (`audit::selfcheck`): a finding stops the start
/// with a message naming it, unless `accept_restore`, which records it and starts over.
async fn self_check(
    store: &Store,
    node: &Arc<LocalNode>,
    accept_restore: bool,
) -> anyhow::Result<()> {
    let (s, n) = (store.clone(), node.clone());
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut conn = s.conn()?;
        let started = std::time::Instant::now();
        let found = crate::audit::selfcheck::self_check(&mut conn, &mut |_, _| {})?;
        match found {
            Ok(c) => {
                tracing::info!(
                    events = c.size,
                    checked = c.size - c.from,
                    heads = c.heads,
                    witnesses = c.witnesses,
                    ms = started.elapsed().as_millis() as u64,
                    "audit log self check passed"
                );
                Ok(())
            }
            Err(finding) if accept_restore => {
                let size = crate::audit::selfcheck::accept_restore(
                    &mut conn,
                    &finding,
                    n.clock.now(),
                    chrono::Utc::now(),
                )?;
                tracing::warn!(
                    events = size,
                    "starting with --accept-restore: {finding}; recorded as audit.restore_accepted; reconcile with every peer to bring lost versions back"
                );
                Ok(())
            }
            Err(finding) => anyhow::bail!(
                "refusing to start: the audit log failed its self check: {finding}.\n\
                 If this database was restored from a backup on purpose, start with \
                 `hukou-sync serve --accept-restore` (what was lost is audited), ask each peer's \
                 administrator to acknowledge the evidence they keep (`hukou-sync audit evidence \
                 ack`), and reconcile with every peer. Otherwise keep the node stopped and \
                 investigate: `hukou-sync audit verify` names the first bad event."
            ),
        }
    })
    .await?
}

/// Opens the store (running migrations) and builds this node's identity from settings.
pub async fn open_node(settings: &Settings) -> anyhow::Result<(Store, Arc<LocalNode>)> {
    let s = settings.clone();
    tokio::task::spawn_blocking(move || open_node_blocking(&s))
        .await
        .context("start-up task failed")?
}

/// The same, for synchronous callers (CLI commands).
pub fn open_node_blocking(settings: &Settings) -> anyhow::Result<(Store, Arc<LocalNode>)> {
    let store = Store::open_with_cache(
        &settings.database.url,
        settings.database.pool_size,
        settings.database.durable_commits,
        settings.database.sqlite_cache_mib,
    )
    .with_context(|| {
        format!(
            "opening the database {}",
            redact_url(&settings.database.url)
        )
    })?;
    let (key, created) =
        load_or_create_key_in(&settings.node.signing_key, settings.node.signature_suite)?;
    if key.suite() != settings.node.signature_suite {
        anyhow::bail!(
            "node.signing_key {} is an {} key but node.signature_suite is {}: new signatures \
             must be of the configured suite",
            settings.node.signing_key.display(),
            key.suite(),
            settings.node.signature_suite
        );
    }
    let dual_key = match &settings.node.dual_signing_key {
        None => None,
        Some(path) => {
            let k = SigningKey::load(path)
                .with_context(|| format!("loading node.dual_signing_key {}", path.display()))?;
            if k.suite() == key.suite() {
                anyhow::bail!(
                    "node.dual_signing_key {} is of the same suite as node.signing_key ({}): a \
                     second signature is for the other suite during a migration",
                    path.display(),
                    k.suite()
                );
            }
            Some(k)
        }
    };
    let mut clock = HlcClock::new(
        SystemClock,
        Duration::from_secs(settings.sync.max_clock_skew_secs),
    );
    // Never stamp below what is stored, even if the wall clock stepped back across a restart.
    let latest = {
        let mut conn = store.conn()?;
        crate::sync::ledger::latest_hlc(&mut conn)?
    };
    if let Some(h) = latest.and_then(|h| Hlc::from_i64(h).ok()) {
        clock = clock.with_floor(h);
    }
    let directory = match &settings.directory {
        Some(d) => {
            let authority: PublicKey = d
                .authority_key
                .parse()
                .map_err(|e| anyhow::anyhow!("directory.authority_key: {e}"))?;
            let dir = Directory::load(&d.path, &authority, chrono::Utc::now())
                .with_context(|| format!("loading the directory {}", d.path.display()))?;
            if dir.node(&settings.node.id).is_none() {
                anyhow::bail!(
                    "node {} is not in the directory {}",
                    settings.node.id,
                    d.path.display()
                );
            }
            Some(DirectoryHandle::new(dir))
        }
        None => None,
    };
    // The network's content hash: declared by the directory, and the database's stored ids and
    // audit tree must have been made with it — never a mix.
    let hash = directory
        .as_ref()
        .map(|d| d.current().hash())
        .unwrap_or_default();
    {
        let mut conn = store.conn()?;
        let stored = crate::storage::transaction(&mut conn, |c| {
            crate::storage::audit::bind_content_hash(c, hash)
        })?;
        if stored != hash {
            anyhow::bail!(
                "the database {} holds version ids and an audit tree made with {stored}, but the \
                 directory declares the content hash {hash}: a network's hash cannot change and \
                 one node cannot mix two; start with the directory this data was made under, or \
                 with an empty database",
                redact_url(&settings.database.url)
            );
        }
    }
    let node = Arc::new(LocalNode {
        id: settings.node.id.clone(),
        serves: settings.node.serves.clone(),
        key,
        dual_key,
        clock,
        palette: settings.risk_palette()?,
        visits: settings.visit_schedule()?,
        benefits: settings.benefit_policy()?,
        directory,
        hash,
        outbox_changed: tokio::sync::watch::channel(0).0,
        evidence_wanted: tokio::sync::watch::channel(0).0,
        wire: Default::default(),
    });
    if created {
        record_system_event(
            &store,
            &node,
            "key.create",
            serde_json::json!({"public_key": node.key.public_key(), "path": settings.node.signing_key}),
        )?;
    }
    // Files stored before the view had a benefits column get it, once.
    {
        let mut conn = store.conn()?;
        let n = crate::sync::view::backfill_benefits(&mut conn, &mut |n| {
            if n % 100_000 == 0 {
                tracing::info!(files = n, "filling the benefits column of the view");
            }
        })?;
        if n > 0 {
            tracing::info!(files = n, "the view lists benefits held");
        }
    }
    // A changed visit schedule moves every file's due date: rewritten once, here.
    {
        let mut conn = store.conn()?;
        let n = crate::visits::refresh_due_dates(&mut conn, &node, &mut |n| {
            if n % 100_000 == 0 {
                tracing::info!(
                    files = n,
                    "rewriting due dates under the new visit schedule"
                );
            }
        })?;
        if n > 0 {
            tracing::info!(files = n, "due dates follow the visit schedule");
        }
    }
    Ok((store, node))
}

/// Appends one event by this node itself (start-up, key and configuration changes).
fn record_system_event(
    store: &Store,
    node: &LocalNode,
    action: &'static str,
    details: serde_json::Value,
) -> anyhow::Result<()> {
    use crate::audit::{self, Actor, ActorKind, Event, Outcome, Via};
    let actor = Actor {
        kind: ActorKind::System,
        id: format!("node:{}", node.id),
        via: Via::Job,
        scope: crate::domain::Scope::whole_node(),
    };
    let mut conn = store.conn()?;
    crate::storage::transaction(&mut conn, |c| {
        audit::append(
            c,
            node.clock.now(),
            chrono::Utc::now(),
            &Event::new(actor, action, Outcome::Ok).details(details),
        )
    })?;
    Ok(())
}

/// Loads the record-signing key, creating it (mode 0600) on first start.
/// Whether the key existed or was just created.
pub fn load_or_create_key(path: &std::path::Path) -> anyhow::Result<(SigningKey, bool)> {
    load_or_create_key_in(path, crate::crypto::keys::Suite::Ed25519)
}

/// Loads the record-signing key, creating it (mode 0600) in `suite` on first start.
pub fn load_or_create_key_in(
    path: &std::path::Path,
    suite: crate::crypto::keys::Suite,
) -> anyhow::Result<(SigningKey, bool)> {
    if path.exists() {
        return SigningKey::load(path)
            .map(|k| (k, false))
            .with_context(|| format!("loading the signing key {}", path.display()));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let key = SigningKey::write_new_in(path, suite)
        .with_context(|| format!("creating the signing key {}", path.display()))?;
    tracing::info!(path = %path.display(), key = %key.public_key().fingerprint(), "created a new record-signing key");
    Ok((key, true))
}

/// Hides a password in a database URL for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn access_log_masks_id_numbers() {
        assert_eq!(
            super::mask_id_numbers("/api/v1/children/11010519491231002X?after=510104201406010016"),
            "/api/v1/children/1101**********002X?after=5101**********0016"
        );
        assert_eq!(
            super::mask_id_numbers("/api/v1/audit/events/12"),
            "/api/v1/audit/events/12"
        );
    }
}
