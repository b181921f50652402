//! The asker's side of a run, with one peer:
//!
//! 1. catch the local summary up, build its tree;
//! 2. compare roots (equal: done — the only exchange between equal nodes);
//! 3. descend level by level, asking only for the children of nodes that differ;
//! 4. list the documents of the differing buckets on both sides, and find those whose heads
//!    differ;
//! 5. exchange the full version sets of those documents, so each side knows exactly which
//!    versions the other lacks (a restored backup may have lost an interior version);
//! 6. repair: queue what the peer lacks in the outbox and deliver it now through the sender's
//!    own path (verified, receipted); ask the peer to queue what this node lacks (`want`) and wait,
//!    bounded, for its push to bring them;
//! 7. write the report and its audit event.
//!
//! Every step is read-only or one transaction, and repairs go through the durable outbox, so a
//! run stopped anywhere leaves nothing half-done: the next run finds what is left and completes
//! it. At most one run per peer at a time, across processes: a lease row that the run renews
//! while alive; a killed process's lease expires and is taken over.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::report::{Report, RunStatus};
use super::serve::{
    BucketsRequest, BucketsResponse, NodesRequest, NodesResponse, RootRequest, RootResponse,
    VersionsRequest, VersionsResponse, WantRequest, WantResponse, MAX_BUCKETS, MAX_DOCS,
    MAX_INDICES, MAX_WANT,
};
use super::tree::{self, DEPTH, FANOUT};
use super::{stale, summary, ReconcileError};
use crate::audit::{self, Actor, Event, Outcome};
use crate::crypto::hash::Digest;
use crate::domain::NodeId;
use crate::storage::reconcile::{self as repo, LockAttempt};
use crate::storage::{self, Store};
use crate::sync::sender::{self, ClientFactory, SenderConfig};
use crate::sync::LocalNode;

/// Who started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartedBy {
    Cli,
    Api,
    /// The admin page.
    Ui,
    Schedule,
}

impl StartedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            StartedBy::Cli => "cli",
            StartedBy::Api => "api",
            StartedBy::Ui => "ui",
            StartedBy::Schedule => "schedule",
        }
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Compare and report; repair nothing.
    pub dry_run: bool,
    pub started_by: StartedBy,
    /// Recorded in the audit event.
    pub actor: Actor,
}

/// Where a run is, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Catching the local summary up.
    Summary,
    /// Comparing with the peer.
    Compare,
    /// Queueing and delivering versions (`done` of `total`).
    Repair,
    /// Waiting for versions asked of the peer (`done` of `total` arrived).
    Waiting,
}

#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub stage: Stage,
    pub done: u64,
    pub total: u64,
}

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// The future of an [`AlsoRepair`]: items brought here and items still missing, or why not.
pub type RepairFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(u64, u64), String>> + Send + 'a>>;

/// What a run repairs beyond versions, after them: eligibility's evidence files (the decider
/// fetches from the peer the files its cases name and lacks). Wired in by `startup`, since
/// reconciliation imports no service.
pub trait AlsoRepair: Send + Sync {
    /// Repairs with `peer`: how many items were brought here, and how many are still missing.
    fn repair<'a>(&'a self, peer: &'a NodeId) -> RepairFuture<'a>;
}

/// Runs reconciliations of this node; cheap to clone. Used by the CLI, the admin API and the
/// schedule alike.
#[derive(Clone)]
pub struct Reconciler {
    store: Store,
    node: Arc<LocalNode>,
    clients: ClientFactory,
    sender: SenderConfig,
    /// Longest wait for versions asked of the peer.
    pull_wait: Duration,
    /// A run's lock lasts this long without renewal.
    lease: Duration,
    stale_after_days: u32,
    /// This node's peer listener: versions asked of the peer arrive there, so a run waits for
    /// them only if it answers.
    peer_listener: Option<SocketAddr>,
    /// Repaired after the versions (evidence files), if wired in.
    also: Option<Arc<dyn AlsoRepair>>,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("node", &self.node.id)
            .finish()
    }
}

/// Settings of a [`Reconciler`].
#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    pub sender: SenderConfig,
    pub pull_wait: Duration,
    pub lease: Duration,
    pub stale_after_days: u32,
    pub peer_listener: Option<SocketAddr>,
}

impl Reconciler {
    pub fn new(
        store: Store,
        node: Arc<LocalNode>,
        clients: ClientFactory,
        config: ReconcilerConfig,
    ) -> Self {
        Self {
            store,
            node,
            clients,
            sender: config.sender,
            pull_wait: config.pull_wait,
            lease: config.lease,
            stale_after_days: config.stale_after_days,
            peer_listener: config.peer_listener,
            also: None,
        }
    }

    /// The same runner, repairing `also` after the versions of each (not dry) run.
    pub fn also_repairing(mut self, also: Arc<dyn AlsoRepair>) -> Self {
        self.also = Some(also);
        self
    }

    /// The peer named, if it is one: in the directory and not this node.
    pub fn check_peer(&self, peer: &str) -> Result<NodeId, ReconcileError> {
        let dir = self
            .node
            .directory
            .as_ref()
            .map(|d| d.current())
            .ok_or(ReconcileError::NoDirectory)?;
        let id = NodeId::parse(peer).map_err(|_| ReconcileError::UnknownPeer(peer.to_owned()))?;
        if id == self.node.id {
            return Err(ReconcileError::SelfPeer(peer.to_owned()));
        }
        if dir.node(&id).is_none() {
            return Err(ReconcileError::UnknownPeer(peer.to_owned()));
        }
        Ok(id)
    }

    /// Takes the peer's lock and records the run as running; refused if another run holds it.
    pub async fn start(&self, peer: &str, opts: RunOptions) -> Result<RunHandle, ReconcileError> {
        let peer = self.check_peer(peer)?;
        let run_uuid = uuid::Uuid::now_v7();
        let run_id = run_uuid.to_string();
        let now = Utc::now();
        let expires = now + chrono::Duration::from_std(self.lease).unwrap_or_default();
        let (p, r) = (peer.to_string(), run_id.clone());
        let attempt = self
            .store
            .run(move |c| repo::try_lock(c, &p, &r, now.naive_utc(), expires.naive_utc()))
            .await?;
        if let LockAttempt::Held { run_id, started_at } = attempt {
            return Err(ReconcileError::AlreadyRunning {
                peer: peer.to_string(),
                run_id,
                since: started_at,
            });
        }
        let lease = Lease::start(
            self.store.clone(),
            peer.to_string(),
            run_id.clone(),
            self.lease,
        );
        let (id, p) = (run_uuid, peer.clone());
        let (started_by, dry_run) = (opts.started_by.as_str(), opts.dry_run);
        self.store
            .run(move |c| {
                storage::transaction(c, |c| -> Result<(), ReconcileError> {
                    // This run holds the lock, so any run of the peer still marked running died.
                    repo::interrupt_runs(c, &p, now)?;
                    repo::insert_run(c, id, &p, started_by, dry_run, now)?;
                    Ok(())
                })
            })
            .await?;
        Ok(RunHandle {
            rec: self.clone(),
            peer,
            run_id,
            opts,
            started_at: now,
            lease,
        })
    }

    /// Starts and executes a run.
    pub async fn run(
        &self,
        peer: &str,
        opts: RunOptions,
        progress: ProgressFn,
    ) -> Result<Report, ReconcileError> {
        self.start(peer, opts).await?.execute(progress).await
    }
}

/// A started run holding its peer's lock.
pub struct RunHandle {
    rec: Reconciler,
    peer: NodeId,
    run_id: String,
    opts: RunOptions,
    started_at: DateTime<Utc>,
    lease: Lease,
}

impl std::fmt::Debug for RunHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunHandle")
            .field("peer", &self.peer)
            .field("run_id", &self.run_id)
            .finish()
    }
}

impl RunHandle {
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Runs the protocol and repairs, then stores and audits the report and releases the lock.
    /// A failure of the protocol is in the report (status `failed`); an error is returned only
    /// if the report itself cannot be stored.
    pub async fn execute(self, progress: ProgressFn) -> Result<Report, ReconcileError> {
        let clock = Instant::now();
        let mut report = Report::new(
            &self.run_id,
            self.peer.as_str(),
            self.opts.started_by.as_str(),
            self.opts.dry_run,
            self.started_at,
        );
        if let Err(e) = self.protocol(&mut report, &progress).await {
            report.errors.push(e.to_string());
        }
        if let (Some(also), false) = (&self.rec.also, self.opts.dry_run) {
            match also.repair(&self.peer).await {
                Ok((fetched, missing)) => {
                    report.evidence_fetched = fetched;
                    report.evidence_missing = missing;
                }
                Err(e) => report.errors.push(format!("evidence files: {e}")),
            }
        }
        let (node, p, days) = (
            self.rec.node.clone(),
            self.peer.to_string(),
            self.rec.stale_after_days,
        );
        match self
            .rec
            .store
            .run(move |c| {
                stale::list(
                    c,
                    &node,
                    days,
                    None,
                    Some(&p),
                    Utc::now(),
                    false,
                    &crate::domain::Scope::whole_node(),
                )
            })
            .await
        {
            Ok(s) => report.stale = s.summary(),
            Err(e) => report.errors.push(format!("stale files: {e}")),
        }
        report.status = if report.errors.is_empty() {
            RunStatus::Ok
        } else {
            RunStatus::Failed
        };
        let now = Utc::now();
        report.finished_at = Some(now);
        report.duration_ms = clock.elapsed().as_millis() as u64;
        let (node, r, actor) = (
            self.rec.node.clone(),
            report.clone(),
            self.opts.actor.clone(),
        );
        self.rec
            .store
            .run(move |c| persist(c, &node, &r, &actor, now))
            .await?;
        match report.status {
            RunStatus::Ok => tracing::info!(peer = %self.peer, run = %self.run_id,
                differing = report.documents_differing, to_peer = report.versions_to_peer,
                from_peer = report.versions_from_peer, "reconciliation finished"),
            _ => tracing::warn!(peer = %self.peer, run = %self.run_id,
                errors = ?report.errors, "reconciliation failed"),
        }
        self.lease.release().await;
        Ok(report)
    }

    async fn protocol(
        &self,
        report: &mut Report,
        progress: &ProgressFn,
    ) -> Result<(), ReconcileError> {
        let rec = &self.rec;
        let peer = &self.peer;
        progress(Progress {
            stage: Stage::Summary,
            done: 0,
            total: 0,
        });
        let node = rec.node.clone();
        rec.store
            .run(move |c| summary::catch_up(c, &node, &mut |_| {}))
            .await?;
        let (p, alg) = (peer.to_string(), rec.node.hash);
        let (tree, local_docs) = rec
            .store
            .run(move |c| summary::tree_for(c, alg, &p))
            .await?;
        report.local_documents = local_docs;
        report.local_root = Some(tree.root().to_string());

        let endpoint = rec
            .node
            .directory
            .as_ref()
            .and_then(|d| d.current().node(peer).map(|n| n.endpoint.clone()))
            .ok_or_else(|| ReconcileError::UnknownPeer(peer.to_string()))?;
        let http = (rec.clients)(peer).map_err(ReconcileError::Client)?;
        let mut wire = Wire {
            http,
            base: format!("{}/peer/v1/reconcile", endpoint.trim_end_matches('/')),
            sent: 0,
            received: 0,
            requests: 0,
        };
        let result = self
            .compare_and_repair(report, progress, &mut wire, &tree, local_docs)
            .await;
        report.bytes_sent += wire.sent;
        report.bytes_received += wire.received;
        report.round_trips += wire.requests;
        result
    }

    async fn compare_and_repair(
        &self,
        report: &mut Report,
        progress: &ProgressFn,
        wire: &mut Wire,
        tree: &tree::Tree,
        local_docs: u64,
    ) -> Result<(), ReconcileError> {
        let rec = &self.rec;
        let peer = &self.peer;
        progress(Progress {
            stage: Stage::Compare,
            done: 0,
            total: DEPTH as u64 + 1,
        });
        let root: RootResponse = wire.post("root", &RootRequest {}).await?;
        report.peer_root = Some(root.root.to_string());
        report.peer_documents = root.docs;
        if root.root == tree.root() {
            report.documents_compared = local_docs;
            report.documents_equal = local_docs;
            return Ok(());
        }

        // Descend: only the children of differing nodes are asked for.
        let mut frontier = vec![0usize];
        for level in 0..DEPTH {
            let mut next = Vec::new();
            for chunk in frontier.chunks(MAX_INDICES) {
                let req = NodesRequest {
                    level: level as u32,
                    indices: chunk.iter().map(|i| *i as u32).collect(),
                };
                let resp: NodesResponse = wire.post("nodes", &req).await?;
                if resp.children.len() != chunk.len()
                    || resp.children.iter().any(|c| c.len() != FANOUT)
                {
                    return Err(ReconcileError::BadResponse(
                        "nodes: wrong number of hashes".into(),
                    ));
                }
                next.extend(tree::differing_children(tree, level, chunk, &resp.children));
            }
            frontier = next;
            progress(Progress {
                stage: Stage::Compare,
                done: level as u64 + 1,
                total: DEPTH as u64 + 1,
            });
        }
        report.buckets_differing = frontier.len() as u64;

        // The documents of the differing buckets, on both sides.
        let mut theirs: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for chunk in frontier.chunks(MAX_BUCKETS) {
            let req = BucketsRequest {
                buckets: chunk.iter().map(|b| *b as u32).collect(),
            };
            let resp: BucketsResponse = wire.post("buckets", &req).await?;
            for d in resp.docs {
                theirs.insert((d.kind, d.doc_id), d.heads);
            }
        }
        let (p, buckets) = (
            peer.to_string(),
            frontier.iter().map(|b| *b as i64).collect::<Vec<_>>(),
        );
        let ours: BTreeMap<(String, String), Vec<String>> = rec
            .store
            .run(move |c| repo::summary_in_buckets(c, &p, &buckets))
            .await?
            .into_iter()
            .map(|r| ((r.kind, r.doc_id), super::serve::split_heads(&r.heads)))
            .collect();
        let only_theirs = theirs.keys().filter(|k| !ours.contains_key(*k)).count() as u64;
        let differing: Vec<(String, String)> = ours
            .keys()
            .chain(theirs.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|k| ours.get(*k) != theirs.get(*k))
            .cloned()
            .collect();
        report.documents_compared = local_docs + only_theirs;
        report.documents_differing = differing.len() as u64;
        report.documents_equal = report.documents_compared - report.documents_differing;
        if differing.is_empty() {
            return Ok(());
        }

        // Full version sets of the differing documents.
        let mut remote: HashMap<(String, String), HashSet<String>> = HashMap::new();
        for chunk in differing.chunks(MAX_DOCS) {
            let req = VersionsRequest {
                docs: chunk
                    .iter()
                    .map(|(k, d)| super::serve::DocRef {
                        kind: k.clone(),
                        doc_id: d.clone(),
                    })
                    .collect(),
            };
            let resp: VersionsResponse = wire.post("versions", &req).await?;
            for d in resp.docs {
                remote
                    .entry((d.kind, d.doc_id))
                    .or_default()
                    .extend(d.versions);
            }
        }
        let diff2 = differing.clone();
        let local: HashMap<(String, String), Vec<(String, i64)>> = rec
            .store
            .run(move |c| {
                let mut out: HashMap<(String, String), Vec<(String, i64)>> = HashMap::new();
                for kind in ["child", "case"] {
                    let docs: Vec<String> = diff2
                        .iter()
                        .filter(|(k, _)| k == kind)
                        .map(|(_, d)| d.clone())
                        .collect();
                    for (doc, id, hlc) in repo::versions_of_docs(c, kind, &docs)? {
                        out.entry((kind.to_owned(), doc))
                            .or_default()
                            .push((id, hlc));
                    }
                }
                Ok::<_, ReconcileError>(out)
            })
            .await?;
        let empty_remote = HashSet::new();
        let mut to_push: Vec<(String, i64)> = Vec::new();
        let mut to_pull: Vec<String> = Vec::new();
        let (mut docs_push, mut docs_pull) = (0u64, 0u64);
        for key in &differing {
            let r = remote.get(key).unwrap_or(&empty_remote);
            let l = local.get(key).map(Vec::as_slice).unwrap_or(&[]);
            // Push only documents this node shares with the peer by its own view.
            if ours.contains_key(key) {
                let missing: Vec<_> = l
                    .iter()
                    .filter(|(id, _)| !r.contains(id))
                    .cloned()
                    .collect();
                if !missing.is_empty() {
                    docs_push += 1;
                    to_push.extend(missing);
                }
            }
            let held: HashSet<&String> = l.iter().map(|(id, _)| id).collect();
            let wanted: Vec<String> = r.iter().filter(|id| !held.contains(id)).cloned().collect();
            if !wanted.is_empty() {
                docs_pull += 1;
                to_pull.extend(wanted);
            }
        }
        to_pull.sort();
        report.versions_to_peer = to_push.len() as u64;
        report.documents_repaired_to_peer = docs_push;
        report.versions_from_peer = to_pull.len() as u64;
        report.documents_repaired_from_peer = docs_pull;
        if self.opts.dry_run {
            return Ok(());
        }

        let total = (to_push.len() + to_pull.len()) as u64;
        progress(Progress {
            stage: Stage::Repair,
            done: 0,
            total,
        });
        if !to_pull.is_empty() {
            for chunk in to_pull.chunks(MAX_WANT) {
                let versions = chunk
                    .iter()
                    .map(|id| id.parse::<Digest>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ReconcileError::BadResponse(format!("version id: {e}")))?;
                let _: WantResponse = wire.post("want", &WantRequest { versions }).await?;
            }
        }
        if !to_push.is_empty() {
            let (p, items) = (peer.clone(), to_push.clone());
            rec.store
                .run(move |c| {
                    storage::transaction(c, |c| {
                        crate::sync::store::requeue(c, &p, &items, Utc::now().naive_utc())
                            .map_err(ReconcileError::from)
                    })
                })
                .await?;
            let delivered =
                sender::deliver_queued(&rec.store, &rec.node, peer, &rec.clients, &rec.sender)
                    .await;
            match delivered {
                Ok(d) => {
                    wire.sent += d.bytes_sent;
                    wire.received += d.bytes_received;
                    wire.requests += d.batches as u64;
                }
                Err(e) => report.errors.push(format!("delivery to {peer}: {e}")),
            }
            let (p, ids) = (
                peer.to_string(),
                to_push.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
            );
            let (queued, refused) = rec
                .store
                .run(move |c| repo::undelivered(c, &p, &ids))
                .await?;
            if queued > 0 {
                report.errors.push(format!(
                    "{queued} versions for {peer} are still queued; the sender keeps trying"
                ));
            }
            if refused > 0 {
                report.errors.push(format!(
                    "{peer} refused {refused} versions (see its receipts and the outbox refusals)"
                ));
            }
        }
        progress(Progress {
            stage: Stage::Repair,
            done: to_push.len() as u64,
            total,
        });
        if !to_pull.is_empty() {
            let received = self.wait_for(&to_pull, progress).await?;
            report.versions_received_from_peer = received;
            report.versions_pending_from_peer = to_pull.len() as u64 - received;
        }

        // What the repaired documents look like now.
        let node = rec.node.clone();
        let (children, cases): (Vec<_>, Vec<_>) = differing.iter().partition(|(k, _)| k == "child");
        let child_ids: Vec<String> = children.into_iter().map(|(_, d)| d.clone()).collect();
        let case_ids: Vec<String> = cases.into_iter().map(|(_, d)| d.clone()).collect();
        let (concurrent, open) = rec
            .store
            .run(move |c| {
                summary::catch_up(c, &node, &mut |_| {})?;
                let concurrent = repo::concurrent_among(c, &child_ids, &case_ids)?;
                let open = repo::open_conflicts_among(c, &child_ids)?;
                Ok::<_, ReconcileError>((concurrent, open))
            })
            .await?;
        report.conflicts_found = concurrent as u64;
        report.open_conflicts_found = open as u64;
        Ok(())
    }

    /// Waits, bounded, until the versions asked of the peer are stored here; returns how many
    /// arrived. Without a reachable peer listener of this node they cannot arrive: no wait.
    async fn wait_for(&self, ids: &[String], progress: &ProgressFn) -> Result<u64, ReconcileError> {
        let rec = &self.rec;
        let count = |ids: Vec<String>| async move {
            rec.store
                .run(move |c| {
                    crate::storage::records::existing_versions(c, &ids).map(|s| s.len() as u64)
                })
                .await
        };
        let total = ids.len() as u64;
        let mut arrived = count(ids.to_vec()).await?;
        if arrived == total || !self.listener_answers().await {
            return Ok(arrived);
        }
        // Ingest in this process bumps the outbox watch; another process's ingest (a CLI run
        // beside a server) is seen by the short poll.
        let mut wake = rec.node.outbox_changed.subscribe();
        let deadline = tokio::time::Instant::now() + rec.pull_wait;
        while arrived < total && tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = wake.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
            arrived = count(ids.to_vec()).await?;
            progress(Progress {
                stage: Stage::Waiting,
                done: arrived,
                total,
            });
        }
        Ok(arrived)
    }

    async fn listener_answers(&self) -> bool {
        let Some(mut addr) = self.rec.peer_listener else {
            return false;
        };
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        matches!(
            tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
                .await,
            Ok(Ok(_))
        )
    }
}

/// Stores the report with the run and audits it, in one transaction.
fn persist(
    conn: &mut storage::DbConn,
    node: &LocalNode,
    report: &Report,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(), ReconcileError> {
    let outcome = if report.status == RunStatus::Ok {
        Outcome::Ok
    } else {
        Outcome::Rejected
    };
    storage::transaction(conn, |c| -> Result<(), ReconcileError> {
        repo::finish_run(c, report, now)?;
        audit::append(
            c,
            node.clock.now(),
            now,
            &Event::new(actor.clone(), "reconcile.run", outcome)
                .object("node", &report.peer)
                .details(serde_json::json!({
                    "run": report.run_id, "status": report.status, "dry_run": report.dry_run,
                    "compared": report.documents_compared, "differing": report.documents_differing,
                    "to_peer": report.versions_to_peer, "from_peer": report.versions_from_peer,
                    "pending_from_peer": report.versions_pending_from_peer,
                    "conflicts": report.conflicts_found, "open_conflicts": report.open_conflicts_found,
                    "bytes_sent": report.bytes_sent,
                    "bytes_received": report.bytes_received, "errors": report.errors.len(),
                    "stale": report.stale.total,
                })),
        )?;
        Ok(())
    })
}

/// The protocol's HTTP client, counting request and response bodies.
struct Wire {
    http: reqwest::Client,
    base: String,
    sent: u64,
    received: u64,
    requests: u64,
}

impl Wire {
    async fn post<Q: Serialize, A: DeserializeOwned>(
        &mut self,
        route: &str,
        body: &Q,
    ) -> Result<A, ReconcileError> {
        let bytes =
            serde_json::to_vec(body).map_err(|e| ReconcileError::BadResponse(e.to_string()))?;
        self.sent += bytes.len() as u64;
        self.requests += 1;
        let resp = self
            .http
            .post(format!("{}/{route}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(bytes)
            .send()
            .await
            .map_err(|e| ReconcileError::Transport(crate::sync::sender::error_chain(&e)))?;
        let status = resp.status();
        let answer = resp
            .bytes()
            .await
            .map_err(|e| ReconcileError::Transport(crate::sync::sender::error_chain(&e)))?;
        self.received += answer.len() as u64;
        if !status.is_success() {
            return Err(ReconcileError::Peer {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&answer).chars().take(500).collect(),
            });
        }
        serde_json::from_slice(&answer)
            .map_err(|e| ReconcileError::BadResponse(format!("{route}: {e}")))
    }
}

/// A run's lock, renewed while the run lives and released when it ends. Dropped without
/// [`Lease::release`] (the run's future was dropped), it releases in the background.
struct Lease {
    store: Store,
    peer: String,
    run_id: String,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    held: bool,
}

impl Lease {
    fn start(store: Store, peer: String, run_id: String, lease: Duration) -> Self {
        let (s, p, r) = (store.clone(), peer.clone(), run_id.clone());
        let heartbeat = tokio::spawn(async move {
            let every = (lease / 3).max(Duration::from_millis(200));
            loop {
                tokio::time::sleep(every).await;
                let expires = Utc::now() + chrono::Duration::from_std(lease).unwrap_or_default();
                let (p2, r2) = (p.clone(), r.clone());
                let renewed = s
                    .run(move |c| repo::renew_lock(c, &p2, &r2, expires.naive_utc()))
                    .await;
                match renewed {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(peer = %p, run = %r, "reconciliation lock was taken over");
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot renew the reconciliation lock"),
                }
            }
        });
        Self {
            store,
            peer,
            run_id,
            heartbeat: Some(heartbeat),
            held: true,
        }
    }

    async fn release(mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        let (p, r) = (self.peer.clone(), self.run_id.clone());
        let released = self.store.run(move |c| repo::release_lock(c, &p, &r)).await;
        if let Err(e) = released {
            tracing::warn!(error = %e, "cannot release the reconciliation lock; it expires");
        }
        self.held = false;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        if self.held {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let (s, p, r) = (self.store.clone(), self.peer.clone(), self.run_id.clone());
                rt.spawn(async move {
                    let _ = s.run(move |c| repo::release_lock(c, &p, &r)).await;
                });
            }
        }
    }
}
