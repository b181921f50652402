//! Starting real nodes for tests through `hukou_sync::devnet` (the same seam as the demo and
//! production: `Application::build`), and the two-node fixtures the exchange, case, conflict,
//! reconciliation and UI tests share.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use diesel::connection::SimpleConnection;
use diesel::Connection;
use hukou_sync::accounts::Role;
use hukou_sync::config::Settings;
use hukou_sync::crypto::keys::SigningKey;
use hukou_sync::devnet::pki::{DevPki, NodePlan};
use hukou_sync::devnet::{DevNet, NodeSpec, RunningNode};
use hukou_sync::domain::NodeId;
use hukou_sync::startup::Listeners;
use hukou_sync::storage::Store;
use hukou_sync::sync::receipt::{PushRequest, SignedReceipt};
use hukou_sync::sync::version::SignedVersion;
use hukou_sync::sync::LocalNode;
use serde_json::{json, Value};

/// A fresh database for one test: a SQLite file in a temporary directory, or a new schema in the
/// PostgreSQL database named by `TEST_DATABASE_URL`, dropped at the end.
pub struct TestDb {
    pub url: String,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub fn new(dir: &std::path::Path) -> Self {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(base) if !base.is_empty() => {
                let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
                let mut c =
                    diesel::PgConnection::establish(&base).expect("connect to TEST_DATABASE_URL");
                c.batch_execute(&format!("CREATE SCHEMA {schema}"))
                    .expect("create schema");
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
                Self {
                    url,
                    pg: Some((base, schema)),
                }
            }
            _ => Self {
                url: format!("sqlite://{}", dir.join("node.db").display()),
                pg: None,
            },
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((base, schema)) = &self.pg {
            if let Ok(mut c) = diesel::PgConnection::establish(base) {
                let _ = c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
            }
        }
    }
}

/// Settings for a test node: admin on port 0, its own key and database.
pub fn test_settings(dir: &std::path::Path, db: &TestDb) -> Settings {
    let mut s = Settings::default();
    s.database.url = db.url.clone();
    s.database.pool_size = 4;
    s.node.signing_key = dir.join("node-signing.key");
    s.admin.listen = "127.0.0.1:0".parse().unwrap();
    s
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub store: Store,
    pub node: Arc<LocalNode>,
    pub settings: Settings,
    handle: hukou_sync::startup::StopHandle,
    pub db: TestDb,
    pub dir: tempfile::TempDir,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(dir.path());
    let mut settings = test_settings(dir.path(), &db);
    configure(&mut settings);
    start(settings, Listeners::default(), db, dir).await
}

/// Starts a node from settings on the given listeners; the database and directory live as long
/// as the returned app.
pub async fn start(
    settings: Settings,
    listeners: Listeners,
    db: TestDb,
    dir: tempfile::TempDir,
) -> TestApp {
    let running = hukou_sync::devnet::run(settings.clone(), listeners)
        .await
        .expect("build app");
    TestApp::new(running, settings, db, dir)
}

impl TestApp {
    /// A started node as a test app, with a fresh administrator token.
    pub fn new(
        running: RunningNode,
        settings: Settings,
        db: TestDb,
        dir: tempfile::TempDir,
    ) -> Self {
        let token = create_token(
            &running.store,
            &running.node,
            &format!("test-admin-{}", uuid::Uuid::now_v7().simple()),
            Role::Administrator,
        );
        TestApp {
            base: running.admin_base,
            http: client_with_token(&token),
            store: running.store,
            node: running.node,
            settings,
            handle: running.stop,
            db,
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn patch_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .patch(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    /// Creates a child and returns its file.
    pub async fn create_child(&self, body: &Value) -> Value {
        let r = self.post_json("/api/v1/children", body).await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        r.json().await.unwrap()
    }

    /// Counts rows of a table, for "nothing was stored" checks.
    pub fn count(&self, table: &str) -> i64 {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.store.conn().unwrap();
        let rows: Vec<N> = diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
            .load(&mut *conn)
            .unwrap();
        rows[0].n
    }

    /// Runs raw SQL against the node's database (tampering tests).
    pub fn exec(&self, sql: &str) {
        let mut conn = self.store.conn().unwrap();
        conn.batch_execute(sql).unwrap();
    }

    /// Writes a config file for CLI runs against this node's database.
    pub fn config_file(&self) -> PathBuf {
        let p = self.dir.path().join("hukou-sync.toml");
        let toml = format!(
            "[node]\nid = \"{}\"\nserves = [{}]\nsigning_key = \"{}\"\n\n[database]\nurl = \"{}\"\npool_size = 2\n",
            self.settings.node.id,
            self.settings.node.serves.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", "),
            self.settings.node.signing_key.display(),
            self.settings.database.url,
        );
        std::fs::write(&p, toml).unwrap();
        p
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
    }

    /// Stops the servers but keeps the database and files, to start the node again.
    pub async fn shut_down(self) -> (Settings, TestDb, tempfile::TempDir) {
        self.handle.stop(true).await;
        (self.settings, self.db, self.dir)
    }
}

/// Creates a bearer token on a node's database, as `hukou-sync admin token create` does.
pub fn create_token(store: &Store, node: &LocalNode, name: &str, role: Role) -> String {
    create_scoped_token(store, node, name, role, "*")
}

/// Creates a bearer token limited to `scope` (`410105,410105001`; `*` the whole node).
pub fn create_scoped_token(
    store: &Store,
    node: &LocalNode,
    name: &str,
    role: Role,
    scope: &str,
) -> String {
    let mut conn = store.conn().unwrap();
    hukou_sync::accounts::create_token(
        &mut conn,
        node.clock.now(),
        &hukou_sync::audit::Actor::console(),
        name,
        role,
        &scope.parse().unwrap(),
        chrono::Utc::now(),
    )
    .unwrap()
}

/// An HTTP client sending `Authorization: Bearer <token>` (the crypto provider was installed by
/// `Application::build`).
pub fn client_with_token(token: &str) -> reqwest::Client {
    token_client_builder(token).build().unwrap()
}

/// [`client_with_token`]'s builder, for a client with further settings.
pub fn token_client_builder(token: &str) -> reqwest::ClientBuilder {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder().default_headers(headers)
}

/// Adds a user with a password, as `hukou-sync admin user add` does.
pub fn add_user(app: &TestApp, username: &str, role: Role, password: &str) {
    add_scoped_user(app, username, role, password, "*")
}

/// Adds a user limited to `scope` (`410105,410105001`; `*` the whole node).
pub fn add_scoped_user(app: &TestApp, username: &str, role: Role, password: &str, scope: &str) {
    let mut conn = app.store.conn().unwrap();
    hukou_sync::accounts::add_user(
        &mut conn,
        app.node.clock.now(),
        &hukou_sync::audit::Actor::console(),
        &hukou_sync::accounts::NewUser {
            username,
            display_name: username,
            role,
            password,
            scope: &scope.parse().unwrap(),
        },
        chrono::Utc::now(),
    )
    .unwrap();
}

/// A valid ID number for a child born on `birth` in `region`.
pub fn id_number(region: &str, birth: (i32, u32, u32), seq: u16) -> String {
    hukou_sync::domain::IdNumber::generate(
        &hukou_sync::domain::RegionCode::parse(region).unwrap(),
        chrono::NaiveDate::from_ymd_opt(birth.0, birth.1, birth.2).unwrap(),
        seq,
    )
    .to_string()
}

/// A flowing child: hukou in Chengdu (510104), living in Zhengzhou (410105).
pub fn flowing_child(seq: u16) -> Value {
    json!({
        "id_number": id_number("510104", (2014, 6, 1), seq),
        "name": "张小明",
        "hukou_region": "510104",
        "residence_region": "410105",
        "categories": ["flowing", "left_behind"],
        "father_situation": "working_away",
        "risk_level": 3,
        "last_visit_on": "2026-10-01",
    })
}

/// Asserts a problem+json response and returns it.
pub async fn problem(r: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status().as_u16(), status);
    assert_eq!(
        r.headers().get("content-type").unwrap().to_str().unwrap(),
        "application/problem+json"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["reason"].as_str().is_some_and(|s| !s.is_empty()),
        "{body}"
    );
    body
}

/// Waits until `check` holds, polling; fails the test after `secs` seconds.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if check().await {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

// ---- Two real nodes over mutual TLS on 127.0.0.1: a residence bureau in Zhengzhou (410100) and a
// hukou bureau in Chengdu (510100), with a fresh dev PKI and signed directory per pair.

pub const ZHENGZHOU: &str = "410100";
pub const CHENGDU: &str = "510100";
pub const WUHAN: &str = "420100";

pub struct Pair {
    pub pki: DevPki,
    pub residence: TestApp,
    pub hukou: TestApp,
    pub _root: tempfile::TempDir,
}

pub fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

/// Settings of a node from its generated config, on a fresh test database.
pub fn node_settings(pki: &DevPki, id: &str, db: &TestDb) -> Settings {
    let node = pki.nodes.iter().find(|n| n.id.as_str() == id).unwrap();
    let mut s = Settings::load(Some(&node.config)).unwrap();
    s.database.url = db.url.clone();
    s.database.pool_size = 4;
    s.sync.max_backoff_secs = 1;
    s
}

pub async fn spawn_pair() -> Pair {
    spawn_pair_with(|_, _| {}).await
}

/// The pair, with each node's settings adjusted by `configure(node_id, settings)` first.
pub async fn spawn_pair_with(configure: impl Fn(&str, &mut Settings)) -> Pair {
    spawn_pair_among(Vec::new(), configure).await
}

/// The pair in a directory that also lists the nodes of `others` (which do not run).
pub async fn spawn_pair_among(
    others: Vec<NodePlan>,
    configure: impl Fn(&str, &mut Settings),
) -> Pair {
    let root = tempfile::tempdir().unwrap();
    let specs = [
        NodeSpec::new(ZHENGZHOU, "4101").unwrap(),
        NodeSpec::new(CHENGDU, "5101").unwrap(),
    ];
    let mut net = DevNet::create(&root.path().join("pki"), &specs, others).unwrap();
    let mut apps = Vec::new();
    for spec in &specs {
        let id = spec.id.as_str();
        let dir = tempfile::tempdir().unwrap();
        let db = TestDb::new(dir.path());
        let mut settings = node_settings(&net.pki, id, &db);
        configure(id, &mut settings);
        let running = net
            .start(&spec.id, settings.clone())
            .await
            .expect("start node");
        apps.push(TestApp::new(running, settings, db, dir));
    }
    let hukou = apps.pop().unwrap();
    let residence = apps.pop().unwrap();
    Pair {
        pki: net.pki,
        residence,
        hukou,
        _root: root,
    }
}

/// Running nodes, each serving one prefix (`(id, prefix)`), all in one signed directory.
pub struct Network {
    pub nodes: Vec<TestApp>,
    /// The network's PKI (for [`node_command`]).
    pub pki: DevPki,
    _root: tempfile::TempDir,
}

/// Starts every node of `specs` on 127.0.0.1, each with its own fresh database.
pub async fn spawn_network(specs: &[(&str, &str)]) -> Network {
    spawn_network_with(specs, |_, _| {}).await
}

/// [`spawn_network`], with each node's settings adjusted by `configure(node_id, settings)` first.
pub async fn spawn_network_with(
    specs: &[(&str, &str)],
    configure: impl Fn(&str, &mut Settings),
) -> Network {
    let root = tempfile::tempdir().unwrap();
    let specs: Vec<NodeSpec> = specs
        .iter()
        .map(|(id, prefix)| NodeSpec::new(id, prefix).unwrap())
        .collect();
    let mut net = DevNet::create(&root.path().join("pki"), &specs, vec![]).unwrap();
    let mut nodes = Vec::new();
    for spec in &specs {
        let dir = tempfile::tempdir().unwrap();
        let db = TestDb::new(dir.path());
        let mut settings = node_settings(&net.pki, spec.id.as_str(), &db);
        configure(spec.id.as_str(), &mut settings);
        let running = net
            .start(&spec.id, settings.clone())
            .await
            .expect("start node");
        nodes.push(TestApp::new(running, settings, db, dir));
    }
    Network {
        nodes,
        pki: net.pki,
        _root: root,
    }
}

/// The `hukou-sync` binary as node `id` of a network runs it: that node's generated
/// configuration (with its directory and peer material), on the test's database `app` uses. The
/// caller adds the command's arguments.
pub fn node_command(pki: &DevPki, id: &str, app: &TestApp) -> std::process::Command {
    let node = pki.nodes.iter().find(|n| n.id.as_str() == id).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hukou-sync"));
    command
        .arg("--config")
        .arg(&node.config)
        .env_remove("HUKOU_SYNC_CONFIG")
        .env("HUKOU_SYNC__DATABASE__URL", &app.settings.database.url);
    command
}

/// Restarts a stopped node on its old ports with its old database.
pub async fn restart(settings: Settings, db: TestDb, dir: tempfile::TempDir) -> TestApp {
    let admin = TcpListener::bind(settings.admin.listen).unwrap();
    let peer = TcpListener::bind(settings.peer.as_ref().unwrap().listen).unwrap();
    start(
        settings,
        Listeners {
            admin: Some(admin),
            peer: Some(peer),
        },
        db,
        dir,
    )
    .await
}

pub async fn file(app: &TestApp, id: &str) -> Option<Value> {
    let r = app.get(&format!("/api/v1/children/{id}")).await;
    if r.status() == 200 {
        Some(r.json().await.unwrap())
    } else {
        None
    }
}

pub async fn wait_for_versions(app: &TestApp, id: &str, n: usize) -> Value {
    eventually(20, &format!("{n} versions of the file"), || async {
        file(app, id)
            .await
            .is_some_and(|f| f["history"].as_array().unwrap().len() == n)
    })
    .await;
    file(app, id).await.unwrap()
}

/// A client presenting `cert`/`key` (PEM files) to the hukou node's peer listener.
pub fn client_as(pki: &DevPki, cert: &std::path::Path, key: &std::path::Path) -> reqwest::Client {
    client_to(pki, cert, key, CHENGDU)
}

/// A client presenting `cert`/`key` to the peer listener of node `server`.
pub fn client_to(
    pki: &DevPki,
    cert: &std::path::Path,
    key: &std::path::Path,
    server: &str,
) -> reqwest::Client {
    let ca = hukou_sync::tls::pki::load_certs(&pki.ca_cert).unwrap();
    let chain = hukou_sync::tls::pki::load_certs(cert).unwrap();
    let key = hukou_sync::tls::pki::load_private_key(key).unwrap();
    let cfg =
        hukou_sync::tls::peer_client_config(&ca, chain, key, server, &Default::default()).unwrap();
    reqwest::Client::builder()
        .use_preconfigured_tls((*cfg).clone())
        .build()
        .unwrap()
}

/// Node `from`'s client to node `to`'s peer listener.
pub fn peer_client(pki: &DevPki, from: &str, to: &str) -> reqwest::Client {
    let n = pki.nodes.iter().find(|n| n.id.as_str() == from).unwrap();
    client_to(pki, &n.tls_cert, &n.tls_key, to)
}

pub fn residence_client(pki: &DevPki) -> reqwest::Client {
    let n = pki
        .nodes
        .iter()
        .find(|n| n.id.as_str() == ZHENGZHOU)
        .unwrap();
    client_as(pki, &n.tls_cert, &n.tls_key)
}

pub fn residence_key(pki: &DevPki) -> SigningKey {
    let n = pki
        .nodes
        .iter()
        .find(|n| n.id.as_str() == ZHENGZHOU)
        .unwrap();
    SigningKey::load(&n.signing_key).unwrap()
}

pub fn peer_url(app: &TestApp) -> String {
    format!(
        "https://127.0.0.1:{}/peer/v1/versions",
        app.settings.peer.as_ref().unwrap().listen.port()
    )
}

pub async fn push(
    client: &reqwest::Client,
    app: &TestApp,
    sender: &str,
    versions: Vec<SignedVersion>,
) -> reqwest::Response {
    let req = PushRequest {
        sender: NodeId::parse(sender).unwrap(),
        versions,
        tree_head: None,
    };
    client.post(peer_url(app)).json(&req).send().await.unwrap()
}

pub async fn receipt(r: reqwest::Response) -> SignedReceipt {
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Stores an evidence file at `app` (`POST /api/v1/evidence`) and returns its SHA-256.
pub async fn upload_evidence(app: &TestApp, bytes: &[u8], media_type: &str) -> String {
    let r = app
        .http
        .post(app.url("/api/v1/evidence"))
        .header("content-type", media_type)
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert!(
        r.status() == 201 || r.status() == 200,
        "{}",
        r.text().await.unwrap()
    );
    let v: Value = r.json().await.unwrap();
    v["sha256"].as_str().unwrap().to_owned()
}

/// A small PDF whose bytes carry `marker`.
pub fn pdf(marker: &str) -> Vec<u8> {
    format!("%PDF-1.4\n% {marker}\n%%EOF\n").into_bytes()
}
