//! The one write path of versions (DESIGN §3): every version this node stores — made here (a new
//! file, an edit, an import, a conflict resolution, a case transition) or received from a peer —
//! is written through a [`Batch`], inside the caller's transaction:
//!
//! * the version and its parent edges;
//! * its document's heads, moved past its parents. Moving heads also marks the document dirty
//!   for reconciliation: the heads repository does that itself
//!   (`storage::records::{advance_heads, insert_heads}` call `storage::reconcile::mark_dirty`),
//!   so no version can move heads without it;
//! * the `children` view row of a child's file, computed once: a new file's row is its creation;
//!   a version made on top of all heads derives its view from the view the caller merged before
//!   ([`super::merge::view_after`]); anything else is merged from the stored versions. (A case's
//!   view row belongs to eligibility, which refreshes it after the store.);
//! * the outbox rows that queue it for each of its parties other than this node;
//! * its audit event.
//!
//! Writes are batched: versions wait and are written together when the batch is flushed — before
//! anything reads the versions or heads tables, and at the end: creations in multi-row inserts,
//! then the versions made on parents (`records::insert_on_parents_many`). Outbox rows, new view
//! rows and audit events are written by [`Batch::finish`]. Storing one version is a batch of one
//! ([`on_heads`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDateTime, Utc};

use super::error::LedgerError;
use super::merge::{self, MergedView};
use super::node::LocalNode;
use super::version::{DocKind, SignedVersion, VersionId};
use super::view;
use crate::audit::{self, Event};
use crate::domain::child::ChildRecord;
use crate::domain::NodeId;
use crate::storage::exchange;
use crate::storage::records::{self as repo, ChildRow, VersionRow};
use crate::storage::DbConn;

/// Versions being stored in one transaction, with what goes with them.
pub struct Batch<'n> {
    node: &'n LocalNode,
    now: DateTime<Utc>,
    at: NaiveDateTime,
    /// Creations not yet written.
    creations: Vec<VersionRow>,
    /// Versions made on parents not yet written, in the order added, with their parents' ids.
    on_parents: Vec<(VersionRow, Vec<String>)>,
    /// Versions to queue, per peer: (version, HLC).
    outbox: BTreeMap<NodeId, Vec<(String, i64)>>,
    /// View rows of new files (their only version is their creation).
    new_views: Vec<ChildRow>,
    /// `(ID number, benefit)` of the new files' benefits held (`child_benefits`).
    new_benefits: Vec<(String, &'static str)>,
    events: Vec<Event>,
}

impl<'n> Batch<'n> {
    pub fn new(node: &'n LocalNode, now: DateTime<Utc>) -> Self {
        Batch {
            node,
            now,
            at: now.naive_utc(),
            creations: Vec::new(),
            on_parents: Vec::new(),
            outbox: BTreeMap::new(),
            new_views: Vec::new(),
            new_benefits: Vec::new(),
            events: Vec::new(),
        }
    }

    /// The time the batch stores its rows at.
    pub fn at(&self) -> NaiveDateTime {
        self.at
    }

    /// A new version, queued for `parties` (this node is skipped). It waits to be written with
    /// the batch's others ([`Self::flush`]): creations together, then the versions made on
    /// parents in the order added, each moving its document's heads past its parents.
    pub fn add(&mut self, v: &SignedVersion, parties: &BTreeSet<NodeId>) {
        if v.version.parents.is_empty() {
            self.creations.push(v.to_row(self.at));
        } else {
            let parents: Vec<String> = v.version.parents.iter().map(ToString::to_string).collect();
            self.on_parents.push((v.to_row(self.at), parents));
        }
        self.queue(v.id.to_string(), v.version.hlc.to_i64(), parties);
    }

    /// A creation already in row form (an import signs and serialises on worker threads), queued
    /// for `parties` (this node is skipped).
    pub fn add_creation_row(&mut self, row: VersionRow, parties: impl IntoIterator<Item = NodeId>) {
        if self.node.directory.is_some() {
            for peer in parties {
                if peer != self.node.id {
                    self.outbox
                        .entry(peer)
                        .or_default()
                        .push((row.id.clone(), row.hlc));
                }
            }
        }
        self.creations.push(row);
    }

    fn queue(&mut self, id: String, hlc: i64, parties: &BTreeSet<NodeId>) {
        if self.node.directory.is_none() {
            return;
        }
        for peer in parties.iter().filter(|p| **p != self.node.id) {
            self.outbox
                .entry(peer.clone())
                .or_default()
                .push((id.clone(), hlc));
        }
    }

    /// A new version of a child's file (`record`, made on `parent_records`), queued for every
    /// party of it and of its parents except this node and `skip` (the peer it came from); a
    /// party it makes new also gets the file's history with it ([`Self::queue_history`]).
    /// Returns the peers it is queued for.
    pub fn add_child(
        &mut self,
        conn: &mut DbConn,
        v: &SignedVersion,
        record: &ChildRecord,
        parent_records: &[ChildRecord],
        skip: Option<&NodeId>,
    ) -> Result<BTreeSet<NodeId>, LedgerError> {
        let Recipients { all, new } = recipients(self.node, record, parent_records, skip);
        self.add(v, &all);
        self.queue_history(conn, v, &new)?;
        Ok(all)
    }

    /// Queues the whole stored history of `v`'s document (every version but `v`, which the batch
    /// queues itself) for `peers`, the parties `v` makes new: a bureau a child moved to cannot
    /// take the move without the file it moves. The history is queued at `v`'s stamp, so it
    /// sorts with `v` and the sender puts them in one batch (a batch never ends inside a group of
    /// equal stamps): the receiver is a party of the old versions only through the move beside
    /// them. Versions already queued for a peer stay as they are.
    fn queue_history(
        &mut self,
        conn: &mut DbConn,
        v: &SignedVersion,
        peers: &BTreeSet<NodeId>,
    ) -> Result<(), LedgerError> {
        let own = v.id.to_string();
        self.queue_history_of(
            conn,
            (v.version.kind, &v.version.doc_id),
            (&own, v.version.hlc.to_i64()),
            peers,
        )
    }

    /// [`Self::queue_history`] for the document `(kind, doc_id)` of the version `(own, hlc)`.
    pub(crate) fn queue_history_of(
        &mut self,
        conn: &mut DbConn,
        (kind, doc_id): (DocKind, &str),
        (own, hlc): (&str, i64),
        peers: &BTreeSet<NodeId>,
    ) -> Result<(), LedgerError> {
        if peers.is_empty() {
            return Ok(());
        }
        self.flush(conn)?;
        let mut history: Vec<String> =
            crate::storage::reconcile::history_ids(conn, kind.as_str(), doc_id)?
                .into_iter()
                .filter(|id| id != own)
                .collect();
        // A child's visits and reports go with the file (after it: the receiver checks them
        // against the child's file).
        if kind == DocKind::Child {
            let child = [doc_id.to_owned()];
            let visits = crate::storage::visits::ids_of_children(conn, &child)?;
            let reports = crate::storage::reports::ids_of_children(conn, &child)?;
            for (kind, docs) in [(DocKind::Visit, visits), (DocKind::Report, reports)] {
                history.extend(
                    crate::storage::reconcile::versions_of_docs(conn, kind.as_str(), &docs)?
                        .into_iter()
                        .map(|(_, id, _)| id),
                );
            }
        }
        for peer in peers {
            // Versions of this batch queued for the peer are written by `finish`.
            let in_batch: BTreeSet<&str> = self
                .outbox
                .get(peer)
                .map(|items| items.iter().map(|(id, _)| id.as_str()).collect())
                .unwrap_or_default();
            let items: Vec<(String, i64)> = history
                .iter()
                .filter(|id| !in_batch.contains(id.as_str()))
                .map(|id| (id.clone(), hlc))
                .collect();
            exchange::enqueue(conn, peer.as_str(), &items, self.at)?;
        }
        Ok(())
    }

    /// Writes the versions waiting and moves their heads: the creations (multi-row inserts),
    /// then the versions made on parents (whose parents may be among those creations). Anything
    /// that reads the versions or heads tables while the batch is open calls this first.
    pub fn flush(&mut self, conn: &mut DbConn) -> Result<(), LedgerError> {
        if !self.creations.is_empty() {
            repo::insert_creations(conn, &self.creations)?;
            self.creations.clear();
        }
        if !self.on_parents.is_empty() {
            repo::insert_on_parents_many(conn, &self.on_parents)?;
            self.on_parents.clear();
        }
        Ok(())
    }

    /// The view row of a new file whose only version is its creation: that record.
    pub fn new_file(&mut self, record: &ChildRecord) {
        self.new_file_row(
            view::creation_row(record, self.at, &self.node.visits),
            view::held_benefits(record),
        );
    }

    /// A view row written elsewhere in row form (an import builds them on worker threads),
    /// with the benefits its record holds.
    pub fn new_file_row(&mut self, row: ChildRow, benefits: Vec<&'static str>) {
        self.new_benefits
            .extend(benefits.into_iter().map(|b| (row.id_number.clone(), b)));
        self.new_views.push(row);
    }

    /// Refreshes a child's view from its stored versions (after writing the creations waiting).
    pub fn refresh_view(&mut self, conn: &mut DbConn, doc_id: &str) -> Result<(), LedgerError> {
        self.flush(conn)?;
        view::refresh_child_row(conn, self.node, doc_id, self.at)?;
        Ok(())
    }

    /// Stores the view of a child after `v`, made on top of all the heads of `before` (the view
    /// the caller merged from `versions`): derived from `before` without merging again, or, if
    /// `v` is not on exactly those heads, merged from the stored versions.
    pub fn view_after(
        &mut self,
        conn: &mut DbConn,
        versions: &[SignedVersion],
        before: &MergedView,
        v: &SignedVersion,
    ) -> Result<(), LedgerError> {
        let next = view::merge_input(self.node, v)?;
        match merge::view_after(before, &next) {
            Some(after) => {
                view::put_merged(
                    conn,
                    self.node,
                    &v.version.doc_id,
                    versions,
                    &after,
                    self.at,
                )?;
            }
            None => self.refresh_view(conn, &v.version.doc_id)?,
        }
        Ok(())
    }

    /// An audit event, written in order with the batch's others by [`Batch::finish`].
    pub fn event(&mut self, event: Event) {
        self.events.push(event);
    }

    /// Writes what is still waiting: the creations, the outbox rows (each names a stored
    /// version: on PostgreSQL its foreign key is checked at once), the new files' view rows and
    /// the audit events.
    pub fn finish(mut self, conn: &mut DbConn) -> Result<(), LedgerError> {
        self.flush(conn)?;
        for (peer, items) in &self.outbox {
            exchange::enqueue_new(conn, peer.as_str(), items, self.at)?;
        }
        if !self.new_views.is_empty() {
            repo::insert_children(conn, &self.new_views)?;
        }
        if !self.new_benefits.is_empty() {
            let pairs: Vec<(&str, &str)> = self
                .new_benefits
                .iter()
                .map(|(id, b)| (id.as_str(), *b))
                .collect();
            repo::insert_benefits(conn, &pairs)?;
        }
        if !self.events.is_empty() {
            let stamps = self.node.clock.now_many(self.events.len());
            audit::append_many(conn, &stamps, self.now, &self.events)?;
        }
        Ok(())
    }
}

/// Keeps this process's clock above the stamps of `parents` before it stamps a version made on
/// top of them. One process stamps above everything it wrote or received; with several
/// processes on one PostgreSQL database a parent may come from another process whose clock ran
/// ahead, and a version must never be stamped before its parent (the outbox sends in stamp
/// order, parents first).
pub fn raise_clock(
    conn: &mut DbConn,
    node: &LocalNode,
    parents: &[VersionId],
) -> Result<(), LedgerError> {
    if parents.is_empty() || matches!(conn, DbConn::Sqlite(_)) {
        return Ok(());
    }
    let ids: Vec<String> = parents.iter().map(ToString::to_string).collect();
    if let Some(h) = repo::max_hlc_of(conn, &ids)? {
        let h = crate::crypto::hlc::Hlc::from_i64(h)
            .map_err(|e| LedgerError::Internal(format!("a stored stamp: {e}")))?;
        node.clock.raise(h);
    }
    Ok(())
}

/// Stores a version of a child's file this node made on top of all its current heads (an edit
/// or a resolution), inside the caller's transaction: the version, the heads past it, the outbox
/// rows for every party of it and of its parents, the view (derived from `before`, the view the
/// caller merged from `versions`) and `event`.
#[allow(clippy::too_many_arguments)]
pub fn on_heads(
    conn: &mut DbConn,
    node: &LocalNode,
    versions: &[SignedVersion],
    before: &MergedView,
    version: &SignedVersion,
    record: &ChildRecord,
    event: Event,
    now: DateTime<Utc>,
) -> Result<(), LedgerError> {
    let heads = &version.version.parents;
    let parent_records: Vec<ChildRecord> = versions
        .iter()
        .filter(|v| heads.contains(&v.id))
        .map(view::record_of)
        .collect::<Result<_, _>>()?;
    let mut batch = Batch::new(node, now);
    batch.add_child(conn, version, record, &parent_records, None)?;
    batch.view_after(conn, versions, before, version)?;
    batch.event(event);
    batch.finish(conn)
}

/// Where a version of a child's file goes.
#[derive(Default)]
struct Recipients {
    /// Every node serving a region of the version's record or of its parents' records, except
    /// this node and the peer it came from.
    all: BTreeSet<NodeId>,
    /// Those of `all` that serve a region of the record but none of its parents' (a bureau the
    /// child moved to): they have none of the file. A creation makes nobody new: it is its whole
    /// history.
    new: BTreeSet<NodeId>,
}

fn recipients(
    node: &LocalNode,
    record: &ChildRecord,
    parent_records: &[ChildRecord],
    skip: Option<&NodeId>,
) -> Recipients {
    if node.directory.is_none() {
        return Recipients::default();
    }
    let own = node.parties(&record.hukou_region, &record.residence_region);
    let before: BTreeSet<NodeId> = parent_records
        .iter()
        .flat_map(|p| node.parties(&p.hukou_region, &p.residence_region))
        .collect();
    let keep = |p: &NodeId| *p != node.id && Some(p) != skip;
    let new = if parent_records.is_empty() {
        BTreeSet::new()
    } else {
        own.difference(&before)
            .filter(|p| keep(p))
            .cloned()
            .collect()
    };
    let all = own.union(&before).filter(|p| keep(p)).cloned().collect();
    Recipients { all, new }
}

/// Queues stored versions again for a peer that lacks them (reconciliation found the gap);
/// versions already queued for it are left as they are. Returns how many were queued.
pub fn requeue(
    conn: &mut DbConn,
    peer: &NodeId,
    items: &[(String, i64)],
    at: NaiveDateTime,
) -> Result<usize, LedgerError> {
    Ok(exchange::enqueue(conn, peer.as_str(), items, at)?)
}
