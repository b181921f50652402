//! Every background loop of a running node, started in one place ([`start`]) and stopped
//! together ([`Jobs::shutdown`]):
//! - [`tree_heads`]: signs a tree head of the audit log on an interval when it grew;
//! - [`integrity`]: re-hashes stored versions, a page at a time;
//! - [`sender`]: one delivery loop per peer in the directory, kept by a supervisor;
//! - [`reconcile`]: the scheduled reconciliation runs (`[[reconcile.schedule]]`);
//! - [`directory`]: reloads the signed directory on `SIGHUP` and when its file changes;
//! - [`directory_fetch`]: asks the peers for a newer signed directory and takes it (and writes
//!   it to the file);
//! - [`witness`]: asks each peer to cosign this node's latest checkpoint;
//! - [`age_out`]: once a day, ends the age-limited benefits of those who turned 18;
//! - [`evidence`]: the decider fetches the evidence files its cases name from the requesters;
//!   once a day, files uploaded here that no case names after `[evidence] unnamed_days` go.
//!
//! The work each loop repeats lives with its service (`sync::sender` delivers a batch,
//! `reconcile` runs, `directory` reloads and verifies, `audit` signs); here are only the loops,
//! their timing and their shutdown.

pub mod age_out;
pub mod directory;
pub mod directory_fetch;
pub mod evidence;
pub mod integrity;
pub mod lease;
pub mod reconcile;
pub mod sender;
pub mod tree_heads;
pub mod witness;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::CronSchedule;
use crate::crypto::keys::PublicKey;
use crate::domain::NodeId;
use crate::reconcile::Reconciler;
use crate::storage::Store;
use crate::sync::sender::{ClientFactory, SenderConfig};
use crate::sync::LocalNode;

/// How long [`Jobs::shutdown`] waits for each job before abandoning it.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// What the jobs of a node need.
pub struct JobsContext {
    pub store: Store,
    pub node: Arc<LocalNode>,
    /// Between signed tree heads.
    pub tree_head_interval: Duration,
    /// Between pages of the version integrity check, and the page size.
    pub version_check: (Duration, i64),
    /// The jobs of a node that exchanges with peers; `None` for a standalone node.
    pub exchange: Option<ExchangeJobs>,
    /// How long a file uploaded here is kept while no case names it ([`evidence::expire`]).
    pub evidence_unnamed: chrono::Duration,
    /// The leases this process takes: sending to each peer, and each singleton job.
    pub leases: lease::Leases,
}

/// The jobs of a node with a peer listener and a directory.
pub struct ExchangeJobs {
    pub clients: ClientFactory,
    /// Fetches the evidence files this node decides on (its loop: [`evidence`]).
    pub evidence: crate::eligibility::evidence::Fetcher,
    /// Between fetch rounds of files not yet here.
    pub evidence_retry: Duration,
    pub sender: SenderConfig,
    /// Scheduled runs: the reconciler and each peer with its schedule.
    pub reconciler: Reconciler,
    pub schedule: Vec<(NodeId, CronSchedule)>,
    /// The directory file to watch (the node's directory handle is reloaded from it).
    pub directory: DirectoryWatch,
    /// When peers are asked to cosign checkpoints.
    pub witness: witness::WitnessTiming,
}

/// The signed directory file and how to check it.
pub struct DirectoryWatch {
    pub path: PathBuf,
    pub authority: PublicKey,
    pub interval: Duration,
    /// Between rounds asking the peers for a newer directory ([`directory_fetch`]).
    pub fetch_interval: Duration,
    /// The authority's publication point, asked first each round.
    pub publication: Option<directory_fetch::Publication>,
}

/// The running jobs of a node.
pub struct Jobs {
    shutdown: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    running: Running,
}

/// How many job tasks (per-peer sender loops and lease keepers included) are running.
#[derive(Clone)]
pub struct Running(Arc<watch::Sender<usize>>);

impl Default for Running {
    fn default() -> Self {
        Running(Arc::new(watch::Sender::new(0)))
    }
}

impl Running {
    pub fn count(&self) -> usize {
        *self.0.borrow()
    }

    /// Waits until no job task runs.
    async fn all_ended(&self) {
        // An error is impossible: `self` holds the sender.
        let _ = self.0.subscribe().wait_for(|n| *n == 0).await;
    }

    /// Spawns `job`, counted while it runs.
    pub(crate) fn spawn(&self, job: impl Future<Output = ()> + Send + 'static) -> JoinHandle<()> {
        struct Alive(Arc<watch::Sender<usize>>);
        impl Drop for Alive {
            fn drop(&mut self) {
                self.0.send_modify(|n| *n = n.saturating_sub(1));
            }
        }
        self.0.send_modify(|n| *n += 1);
        let alive = Alive(self.0.clone());
        tokio::spawn(async move {
            let _alive = alive;
            job.await;
        })
    }
}

/// Runs `round` at once and then every `every` (a round that overruns delays the next, never
/// doubles it up) until `shutdown` turns true: the loop of the periodic jobs.
pub(crate) async fn every<F, Fut>(
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
    mut round: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        round().await;
    }
}

/// Starts every job of a node (on the current tokio runtime).
pub fn start(ctx: JobsContext) -> Jobs {
    let (shutdown, rx) = watch::channel(false);
    let running = Running::default();
    let leases = ctx.leases.clone();
    // A job only one process of the node runs at a time (under the lease `job:<name>`).
    let singleton = |name: String, job: Box<dyn Fn(watch::Receiver<bool>) -> BoxedJob + Send>| {
        running.spawn(lease::singleton(
            leases.clone(),
            name,
            running.clone(),
            rx.clone(),
            job,
        ))
    };
    let (store, node) = (ctx.store.clone(), ctx.node.clone());
    let interval = ctx.tree_head_interval;
    let mut tasks = vec![(
        "tree heads",
        singleton(
            "tree_heads".into(),
            Box::new(move |stop| {
                Box::pin(tree_heads::run(store.clone(), node.clone(), interval, stop))
            }),
        ),
    )];
    let (store, node) = (ctx.store.clone(), ctx.node.clone());
    let (every, page) = ctx.version_check;
    tasks.push((
        "version integrity",
        singleton(
            "version_integrity".into(),
            Box::new(move |stop| {
                Box::pin(integrity::run(
                    store.clone(),
                    node.clone(),
                    every,
                    page,
                    stop,
                ))
            }),
        ),
    ));
    let (store, node) = (ctx.store.clone(), ctx.node.clone());
    tasks.push((
        "age-out",
        singleton(
            "age_out".into(),
            Box::new(move |stop| {
                Box::pin(age_out::run(
                    store.clone(),
                    node.clone(),
                    age_out::EVERY,
                    stop,
                ))
            }),
        ),
    ));
    let (store, node, unnamed) = (ctx.store.clone(), ctx.node.clone(), ctx.evidence_unnamed);
    tasks.push((
        "evidence expiry",
        singleton(
            "evidence_expiry".into(),
            Box::new(move |stop| {
                Box::pin(evidence::expire(
                    store.clone(),
                    node.clone(),
                    unnamed,
                    evidence::EXPIRE_EVERY,
                    stop,
                ))
            }),
        ),
    ));
    if let Some(ex) = ctx.exchange {
        if let Some(handle) = ctx.node.directory.clone() {
            // Each process keeps its own copy of the directory (its own file, perhaps on its
            // own machine): the directory jobs run in every process.
            tasks.push((
                "directory fetch",
                running.spawn(directory_fetch::run(
                    directory_fetch::FetchContext {
                        store: ctx.store.clone(),
                        node: ctx.node.clone(),
                        handle: handle.clone(),
                        clients: ex.clients.clone(),
                        path: ex.directory.path.clone(),
                        authority: ex.directory.authority,
                        publication: ex.directory.publication.clone(),
                    },
                    ex.directory.fetch_interval,
                    rx.clone(),
                )),
            ));
            let mut stop = rx.clone();
            tasks.push((
                "directory watch",
                running.spawn(directory::run(
                    handle,
                    ex.directory.path,
                    ex.directory.authority,
                    ex.directory.interval,
                    Some((ctx.store.clone(), ctx.node.clone())),
                    async move {
                        // An error means the sender is gone: stop as well.
                        let _ = stop.wait_for(|s| *s).await;
                    },
                )),
            ));
        }
        for (peer, schedule) in ex.schedule {
            if ctx
                .node
                .directory
                .as_ref()
                .is_some_and(|d| d.current().node(&peer).is_none())
            {
                tracing::warn!(peer = %peer, "scheduled reconciliation with a node not in the directory");
            }
            let reconciler = ex.reconciler.clone();
            let name = format!("reconcile:{peer}");
            tasks.push((
                "scheduled reconciliation",
                singleton(
                    name,
                    Box::new(move |stop| {
                        Box::pin(reconcile::run(
                            reconciler.clone(),
                            peer.clone(),
                            schedule.clone(),
                            stop,
                        ))
                    }),
                ),
            ));
        }
        let (fetcher, node, retry) = (ex.evidence, ctx.node.clone(), ex.evidence_retry);
        tasks.push((
            "evidence fetch",
            singleton(
                "evidence_fetch".into(),
                Box::new(move |stop| {
                    Box::pin(evidence::run(fetcher.clone(), node.clone(), retry, stop))
                }),
            ),
        ));
        let (store, node, clients, timing) = (
            ctx.store.clone(),
            ctx.node.clone(),
            ex.clients.clone(),
            ex.witness,
        );
        tasks.push((
            "witnessing",
            singleton(
                "witnessing".into(),
                Box::new(move |stop| {
                    Box::pin(witness::run(
                        store.clone(),
                        node.clone(),
                        clients.clone(),
                        timing,
                        stop,
                    ))
                }),
            ),
        ));
        tasks.push((
            "sender supervisor",
            running.spawn(sender::supervise(
                ctx.store,
                ctx.node,
                ex.clients,
                ex.sender,
                ctx.leases.clone(),
                running.clone(),
                rx,
            )),
        ));
    }
    Jobs {
        shutdown,
        tasks,
        running,
    }
}

/// A job's future, as [`lease::singleton`] starts it.
type BoxedJob = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

impl Jobs {
    /// Counts the job tasks still running.
    pub fn running(&self) -> Running {
        self.running.clone()
    }

    /// Signals every job to stop and waits for each (at most [`STOP_WAIT`]; a job still running
    /// then is logged and abandoned).
    pub async fn shutdown(self) {
        // An error means no job listens any more: nothing to signal.
        let _ = self.shutdown.send(true);
        for (name, task) in self.tasks {
            match tokio::time::timeout(STOP_WAIT, task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(job = name, error = %e, "a job failed"),
                Err(_) => tracing::warn!(job = name, "a job did not stop in time; abandoned"),
            }
        }
        // The tasks they started (lease keepers releasing their leases, sender loops).
        if tokio::time::timeout(STOP_WAIT, self.running.all_ended())
            .await
            .is_err()
        {
            tracing::warn!(
                left = self.running.count(),
                "job tasks did not stop in time; abandoned"
            );
        }
    }
}
