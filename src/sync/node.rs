//! [`LocalNode`]: who this node is — its id, the regions it serves, its record-signing key, its
//! hybrid logical clock and (when it exchanges with peers) the signed directory — and what any
//! node is to a given child.

use std::collections::BTreeSet;

use crate::crypto::hash::HashAlg;
use crate::crypto::hlc::{HlcClock, SystemClock};
use crate::crypto::keys::SigningKey;
use crate::directory::DirectoryHandle;
use crate::domain::benefit::BenefitPolicy;
use crate::domain::visit::VisitSchedule;
use crate::domain::{NodeId, RegionCode, RegionPrefix, RiskPalette, Roles};

/// This node, as its services see it.
#[derive(Debug)]
pub struct LocalNode {
    pub id: NodeId,
    /// Used only without a directory. Invariant: not empty (checked by settings validation).
    pub serves: Vec<RegionPrefix>,
    /// The key of every new signature, of the configured suite (`[node] signature_suite`).
    pub key: SigningKey,
    /// During a migration between suites: a key of the other suite that signs every new
    /// version a second time (`[node] dual_signing_key`).
    pub dual_key: Option<SigningKey>,
    pub clock: HlcClock<SystemClock>,
    pub palette: RiskPalette,
    /// How often children must be visited here (the due list and each file's due date).
    pub visits: VisitSchedule,
    /// The rules between benefits and when they stop at 18 (`[eligibility]`).
    pub benefits: BenefitPolicy,
    /// The signed directory; `None` for a node that exchanges with nobody. With a directory,
    /// the directory (longest prefix) decides which node serves a region, for this node too.
    pub directory: Option<DirectoryHandle>,
    /// The network's content hash (the directory's `hash`; SHA-256 without a directory): of
    /// version ids, receipt digests and the reconciliation summary. Fixed for the process: a
    /// directory reload declaring another is refused, and at start the database's recorded
    /// hash must be this one (the audit log reads it from there).
    pub hash: HashAlg,
    /// Bumped after every commit that queues versions, so sender loops wake without polling.
    pub outbox_changed: tokio::sync::watch::Sender<u64>,
    /// Bumped when a received case names evidence files, so the fetch job (the decider pulls
    /// the files from the requester) wakes without polling.
    pub evidence_wanted: tokio::sync::watch::Sender<u64>,
    /// What the sender has pushed since the process started, for figures (`bench topology`).
    pub wire: WireTotals,
}

/// Versions and bytes this process's senders pushed to peers: counted after a verified receipt,
/// the request body (the JSON batch as sent) and the receipt's body.
#[derive(Debug, Default)]
pub struct WireTotals {
    versions: std::sync::atomic::AtomicU64,
    bytes_sent: std::sync::atomic::AtomicU64,
    bytes_received: std::sync::atomic::AtomicU64,
}

impl WireTotals {
    /// Counts one delivered batch.
    pub fn add(&self, versions: u64, sent: u64, received: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.versions.fetch_add(versions, Relaxed);
        self.bytes_sent.fetch_add(sent, Relaxed);
        self.bytes_received.fetch_add(received, Relaxed);
    }

    /// `(versions, bytes sent, bytes received)` so far.
    pub fn totals(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.versions.load(Relaxed),
            self.bytes_sent.load(Relaxed),
            self.bytes_received.load(Relaxed),
        )
    }
}

impl LocalNode {
    /// The node serving a region: by the directory, or this node if it serves it standalone.
    pub fn node_for(&self, region: &RegionCode) -> Option<NodeId> {
        match &self.directory {
            Some(d) => d.current().route(region).map(|n| n.id.clone()),
            None => self
                .serves
                .iter()
                .any(|p| p.matches(region))
                .then(|| self.id.clone()),
        }
    }

    /// Whether this node serves a region.
    pub fn serves(&self, region: &RegionCode) -> bool {
        self.node_for(region).as_ref() == Some(&self.id)
    }

    /// This node's roles for a child with these regions.
    pub fn roles(&self, hukou: &RegionCode, residence: &RegionCode) -> Roles {
        self.roles_of(&self.id, hukou, residence)
    }

    /// Any node's roles for a child with these regions.
    pub fn roles_of(&self, node: &NodeId, hukou: &RegionCode, residence: &RegionCode) -> Roles {
        Roles {
            hukou: self.node_for(hukou).as_ref() == Some(node),
            residence: self.node_for(residence).as_ref() == Some(node),
        }
    }

    /// The nodes serving either region (one node when it serves both).
    pub fn parties(&self, hukou: &RegionCode, residence: &RegionCode) -> BTreeSet<NodeId> {
        [hukou, residence]
            .into_iter()
            .filter_map(|r| self.node_for(r))
            .collect()
    }

    /// Signs a version this node authored: with its key, and a second time with the dual key
    /// during a migration window.
    pub fn sign_version(
        &self,
        version: crate::sync::version::Version,
    ) -> Result<crate::sync::version::SignedVersion, crate::sync::version::VersionError> {
        let signed = version.sign(&self.key, self.hash)?;
        Ok(match &self.dual_key {
            Some(k) => signed.countersign(k)?,
            None => signed,
        })
    }

    /// Wakes the evidence fetch job.
    pub fn want_evidence(&self) {
        self.evidence_wanted.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Wakes the sender loops.
    pub fn wake_senders(&self) {
        self.outbox_changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}
