//! A development and test network of nodes on one machine: the one way the demo, the benchmarks
//! and the integration tests boot nodes.
//!
//! - [`pki`]: the development PKI on disk (exchange CA, directory authority, signed directory,
//!   node certificates, signing keys and configurations);
//! - this file: [`DevNet::create`] binds each node's admin and peer listeners on port 0 of
//!   127.0.0.1 first, so that the directory and the configurations can name the real ports, then
//!   writes the PKI; [`DevNet::start`] starts a node's [`Application`] on those listeners with
//!   settings loaded from its generated configuration (adjusted by the caller); [`run`] starts
//!   any node from settings and listeners and keeps the handles a caller needs; [`admin_client`]
//!   is an HTTP client with a fresh administrator token of a node.

pub mod pki;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

use self::pki::{init_dev_pki_in, DevNode, DevPki, NodePlan};
use crate::config::Settings;
use crate::domain::{NodeId, RegionPrefix};
use crate::startup::{Application, Listeners, StopHandle};
use crate::storage::Store;
use crate::sync::LocalNode;

/// Validity of a development network's directory and signing-key windows, in days.
pub const DIRECTORY_DAYS: i64 = 30;

/// A node of a development network: its id and the region prefixes it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// Its node id.
    pub id: NodeId,
    /// The region prefixes it serves.
    pub serves: Vec<RegionPrefix>,
}

impl NodeSpec {
    /// A node serving one prefix, from text (`"410100"`, `"4101"`).
    pub fn new(id: &str, serves: &str) -> anyhow::Result<NodeSpec> {
        Ok(NodeSpec {
            id: NodeId::parse(id).with_context(|| format!("node id {id:?}"))?,
            serves: vec![RegionPrefix::parse(serves).with_context(|| format!("prefix {serves:?}"))?],
        })
    }
}

/// A development network whose PKI is written and whose listeners are bound, ready to start.
pub struct DevNet {
    /// What the PKI wrote.
    pub pki: DevPki,
    /// The bound listeners of the nodes not started yet.
    listeners: BTreeMap<NodeId, Listeners>,
}

impl DevNet {
    /// Binds an admin and a peer listener on port 0 of 127.0.0.1 for each of `nodes`, then writes
    /// a development PKI under `pki_dir` naming those ports (directory valid
    /// [`DIRECTORY_DAYS`] days). `absent` nodes are listed in the directory too, with the ports
    /// their plans give, but never started.
    pub fn create(
        pki_dir: &Path,
        nodes: &[NodeSpec],
        absent: Vec<NodePlan>,
    ) -> anyhow::Result<DevNet> {
        DevNet::create_in(pki_dir, nodes, absent, crate::crypto::Suite::Ed25519)
    }

    /// [`DevNet::create`] with the directory authority's and every node's record-signing key of
    /// `suite`.
    pub fn create_in(
        pki_dir: &Path,
        nodes: &[NodeSpec],
        absent: Vec<NodePlan>,
        suite: crate::crypto::Suite,
    ) -> anyhow::Result<DevNet> {
        let bind =
            || TcpListener::bind("127.0.0.1:0").context("cannot bind a listener on 127.0.0.1");
        let port = |l: &TcpListener| -> anyhow::Result<u16> { Ok(l.local_addr()?.port()) };
        let mut plans = Vec::with_capacity(nodes.len() + absent.len());
        let mut listeners = BTreeMap::new();
        for spec in nodes {
            let (admin, peer) = (bind()?, bind()?);
            plans.push(NodePlan {
                id: spec.id.clone(),
                serves: spec.serves.clone(),
                peer_port: port(&peer)?,
                admin_port: port(&admin)?,
            });
            listeners.insert(
                spec.id.clone(),
                Listeners {
                    admin: Some(admin),
                    peer: Some(peer),
                },
            );
        }
        plans.extend(absent);
        let pki = init_dev_pki_in(pki_dir, &plans, DIRECTORY_DAYS, suite)?;
        Ok(DevNet { pki, listeners })
    }

    /// What the PKI wrote for node `id`.
    pub fn node(&self, id: &NodeId) -> anyhow::Result<&DevNode> {
        self.pki
            .nodes
            .iter()
            .find(|n| &n.id == id)
            .with_context(|| format!("node {id} is not in the development network"))
    }

    /// The settings of node `id`, loaded from its generated configuration.
    pub fn settings(&self, id: &NodeId) -> anyhow::Result<Settings> {
        Ok(Settings::load(Some(&self.node(id)?.config))?)
    }

    /// Starts node `id` with `settings` on its bound listeners (each node starts once).
    pub async fn start(&mut self, id: &NodeId, settings: Settings) -> anyhow::Result<RunningNode> {
        let listeners = self.listeners.remove(id).with_context(|| {
            format!("node {id} is not in the development network or already started")
        })?;
        run(settings, listeners).await
    }
}

/// A started node: what callers use to talk to it and to stop it.
pub struct RunningNode {
    /// `http://127.0.0.1:<admin port>`.
    pub admin_base: String,
    /// The admin listener's port.
    pub admin_port: u16,
    /// The peer listener's port, if it has one.
    pub peer_port: Option<u16>,
    /// Its database.
    pub store: Store,
    /// Its identity, keys and clock.
    pub node: Arc<LocalNode>,
    /// Stops its servers and jobs.
    pub stop: StopHandle,
    /// The task running it; ends when it is stopped.
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Builds a node from `settings` on `listeners` (port-0 defaults where `None`) and runs it on a
/// new task.
pub async fn run(settings: Settings, listeners: Listeners) -> anyhow::Result<RunningNode> {
    let app = Application::build_with(settings, listeners).await?;
    Ok(RunningNode {
        admin_base: format!("http://127.0.0.1:{}", app.admin_port()),
        admin_port: app.admin_port(),
        peer_port: app.peer_port(),
        store: app.store().clone(),
        node: app.node().clone(),
        stop: app.handle(),
        task: tokio::spawn(app.run_until_stopped()),
    })
}

/// An HTTP client carrying a fresh administrator token of the node, named `demo` (audited as
/// `token.create`): how the demo and the benchmarks call a node's admin API.
pub async fn admin_client(
    store: crate::storage::Store,
    node: std::sync::Arc<crate::sync::LocalNode>,
) -> anyhow::Result<reqwest::Client> {
    let secret = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        let mut conn = store.conn()?;
        Ok(crate::accounts::create_token(
            &mut conn,
            node.clock.now(),
            &crate::audit::Actor::console(),
            "demo",
            crate::accounts::Role::Administrator,
            &crate::accounts::Scope::whole_node(),
            chrono::Utc::now(),
        )?)
    })
    .await??;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {secret}").parse()?,
    );
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .build()?)
}
