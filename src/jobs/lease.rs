//! Holding leases while a node runs as several processes on one database (DESIGN §9): a keeper
//! task per lease takes it when free and renews it every quarter of its time, and publishes
//! whether this process holds it; [`singleton`] runs a job only while its lease is held here.
//! Every process runs the same jobs; the leases decide which one does each.
//!
//! A lease this process cannot renew (the database is unreachable) counts as lost three
//! quarters into its time, before another process could take it: a holder stops a little
//! early rather than overlap with its successor. At shutdown the leases held are released, so
//! another process takes over at once instead of after the lease time.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::Running;
use crate::storage::leases::{self, Lease};
use crate::storage::Store;

/// What every keeper of one process shares: the store, who this process is, the lease time.
#[derive(Clone)]
pub struct Leases {
    pub store: Store,
    /// This process: `host:pid:random`, unique among the node's processes.
    pub holder: Arc<str>,
    /// How long a lease lasts after its last renewal. Invariant: ≥ 1 s.
    pub ttl: Duration,
}

/// Whether this process holds a lease now (`Some` with its fence), as its keeper last saw it.
pub type Held = watch::Receiver<Option<Lease>>;

impl Leases {
    /// A name for this process: the host, the process id and 32 random bits.
    pub fn process_name() -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "host".into());
        let mut b = [0u8; 4];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
        format!(
            "{host}:{}:{:08x}",
            std::process::id(),
            u32::from_le_bytes(b)
        )
    }

    /// Starts a keeper of the lease `name`; it stops (releasing the lease) when `shutdown`
    /// turns true.
    pub fn keep(&self, name: String, running: &Running, shutdown: watch::Receiver<bool>) -> Held {
        let (tx, rx) = watch::channel(None);
        running.spawn(keep(self.clone(), name, tx, shutdown));
        rx
    }
}

async fn keep(
    leases: Leases,
    name: String,
    held: watch::Sender<Option<Lease>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let every = leases.ttl / 4;
    let mut renewed = Instant::now();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let current = held.borrow().clone();
        let (store, holder, ttl, n) = (
            leases.store.clone(),
            leases.holder.clone(),
            leases.ttl,
            name.clone(),
        );
        let result = store
            .run(move |c| match current {
                Some(lease) => leases::renew(c, &lease, ttl).map(|ok| ok.then_some(lease)),
                None => leases::acquire(c, &n, &holder, ttl),
            })
            .await;
        match result {
            Ok(now_held) => {
                if now_held.is_some() {
                    renewed = Instant::now();
                }
                let was = held.borrow().as_ref().map(|l| l.fence);
                let is = now_held.as_ref().map(|l| l.fence);
                if was != is {
                    match is {
                        Some(fence) => tracing::info!(lease = %name, fence, "lease taken"),
                        None => tracing::warn!(lease = %name, "lease lost to another process"),
                    }
                    held.send_replace(now_held);
                }
            }
            Err(e) => {
                if held.borrow().is_some() && renewed.elapsed() >= leases.ttl * 3 / 4 {
                    tracing::warn!(lease = %name, error = %e, "cannot renew a lease; given up before it expires");
                    held.send_replace(None);
                } else {
                    tracing::warn!(lease = %name, error = %e, "cannot take or renew a lease");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
    if let Some(lease) = held.send_replace(None) {
        let name = lease.name.clone();
        if let Err(e) = leases.store.run(move |c| leases::release(c, &lease)).await {
            tracing::warn!(lease = %name, error = %e, "cannot release a lease at shutdown");
        }
    }
}

/// Runs `job` only while this process holds the lease `name`: started when the lease is
/// taken, told to stop (its own shutdown signal) when it is lost, started again when taken
/// again; returns when `shutdown` turns true and the job has stopped.
pub async fn singleton<F, Fut>(
    leases: Leases,
    name: String,
    running: Running,
    mut shutdown: watch::Receiver<bool>,
    job: F,
) where
    F: Fn(watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut held = leases.keep(format!("job:{name}"), &running, shutdown.clone());
    loop {
        tokio::select! {
            r = held.wait_for(|h| h.is_some()) => if r.is_err() { return },
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let (stop, stop_rx) = watch::channel(false);
        let mut task = tokio::spawn(job(stop_rx));
        let ended_alone = tokio::select! {
            _ = held.wait_for(|h| h.is_none()) => false,
            _ = shutdown.wait_for(|s| *s) => false,
            _ = &mut task => true,
        };
        if ended_alone {
            return;
        }
        stop.send_replace(true);
        if let Err(e) = task.await {
            tracing::warn!(job = %name, error = %e, "a job failed");
        }
        if *shutdown.borrow() {
            return;
        }
    }
}
