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
use crate::crypto::keys::SigningKey;
use crate::storage::Store;
use crate::sync::LocalNode;

/// Clock skew tolerated on stamps from peers (DESIGN §3).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// A built node, listening but not yet serving.
pub struct Application {
    admin_port: u16,
    server: Server,
    store: Store,
    node: Arc<LocalNode>,
    jobs: Vec<tokio::task::JoinHandle<()>>,
}

/// Installs ring as the process's rustls provider (HTTP clients that take the default need one).
/// Idempotent: a second call finds it installed.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        install_crypto_provider();
        let settings = Arc::new(settings);
        let (store, node) = open_node(&settings).await?;
        let listener = TcpListener::bind(settings.admin.listen)
            .with_context(|| format!("cannot listen on {}", settings.admin.listen))?;
        let admin_port = listener.local_addr()?.port();
        let state = web::Data::new(AppState {
            store: store.clone(),
            node: node.clone(),
            settings: settings.clone(),
        });
        let body_limit = settings.admin.body_limit;
        let server = HttpServer::new(move || {
            App::new()
                .wrap(
                    actix_web::middleware::Logger::new("%a \"%r\" %s %b %Dms")
                        .log_target("hukou_sync::http"),
                )
                .app_data(state.clone())
                .configure(|cfg| api::configure(cfg, body_limit))
        })
        .workers(2)
        .listen(listener)?
        .run();
        tracing::info!(node = %node.id, port = admin_port, "admin listener bound");
        let jobs = vec![tokio::spawn(tree_head_job(
            store.clone(),
            node.clone(),
            Duration::from_secs(settings.audit.tree_head_interval_secs),
        ))];
        Ok(Self {
            admin_port,
            server,
            store,
            node,
            jobs,
        })
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn node(&self) -> &Arc<LocalNode> {
        &self.node
    }

    /// Serves until the server stops (Ctrl-C or a handle's `stop`); then stops the jobs.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        for j in self.jobs {
            j.abort();
        }
        result
    }

    /// A handle to stop the server from elsewhere.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
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
    let store =
        Store::open(&settings.database.url, settings.database.pool_size).with_context(|| {
            format!(
                "opening the database {}",
                redact_url(&settings.database.url)
            )
        })?;
    let key = load_or_create_key(&settings.node.signing_key)?;
    let mut clock = HlcClock::new(SystemClock, MAX_CLOCK_SKEW);
    // Never stamp below what is stored, even if the wall clock stepped back across a restart.
    let latest = {
        let mut conn = store.conn()?;
        crate::sync::ledger::latest_hlc(&mut conn)?
    };
    if let Some(h) = latest.and_then(|h| Hlc::from_i64(h).ok()) {
        clock = clock.with_floor(h);
    }
    let node = Arc::new(LocalNode {
        id: settings.node.id.clone(),
        serves: settings.node.serves.clone(),
        key,
        clock,
        palette: settings.risk_palette(),
    });
    Ok((store, node))
}

/// Loads the record-signing key, creating it (mode 0600) on first start.
pub fn load_or_create_key(path: &std::path::Path) -> anyhow::Result<SigningKey> {
    if path.exists() {
        return SigningKey::load(path)
            .with_context(|| format!("loading the signing key {}", path.display()));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let key = SigningKey::write_new(path)
        .with_context(|| format!("creating the signing key {}", path.display()))?;
    tracing::info!(path = %path.display(), key = %key.public_key().fingerprint(), "created a new record-signing key");
    Ok(key)
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

/// Signs a tree head on an interval when the log has grown.
async fn tree_head_job(store: Store, node: Arc<LocalNode>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let n = node.clone();
        let r = store
            .run(move |conn| crate::audit::log::sign_tree_head(conn, &n.key, chrono::Utc::now()))
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "could not sign a tree head");
        }
    }
}
