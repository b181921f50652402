//! The merged view of a child's file (DESIGN §3–§4): the per-field 3-way merge of a document's
//! version DAG, the open conflicts that DAG contains, and the fields under review. This module
//! owns those rules and nothing else: it is pure (no I/O, no clock), and it never looks at arrival
//! order — the same *set* of versions always gives the same [`MergedView`]. (The one rule that
//! reads a stamp, rule 6, reads the signed stamps of creations.)
//!
//! # Terms
//!
//! * **Ancestry** of a version: the version itself and everything reachable through `parents`.
//!   "Descends from M" includes M itself.
//! * **Merge point**: a version with several parents, or — when the document has several heads —
//!   the current head set (a virtual merge with no fields of its own, `merge_point: None`).
//! * **Base** of a set of versions: their lowest common ancestor (a common ancestor that is not an
//!   ancestor of another common ancestor). None → "nothing": every field is its empty value
//!   ([`empty_value`]). Several (criss-cross) → a *virtual base*: the lowest common ancestors are
//!   merged with these same rules against their own base, recursively, like git's recursive
//!   strategy; a field they dispute takes that inner base's value. The merge is symmetric in its
//!   sides, so the virtual base does not depend on any order.
//! * **State** of a version: for each field, its *effective* value (what the view would show if
//!   that version were the only head) and the author roles of the latest change that produced it
//!   (the *writer*).
//!
//! # Precedence, per field F
//!
//! At a merge point, the sides are the parents (or heads) and each side's value is its effective
//! value. A side *changed* F when its value differs from the base's.
//!
//! 1. No side changed F → the base's value.
//! 2. The sides that changed F all agree → that value.
//! 3. They disagree → if exactly one of the disagreeing values was written by F's authority
//!    (hukou fields: a writer with `roles.hukou`; residence fields: `roles.residence`, and for
//!    `residence_region` also `roles.hukou`, whose one change to it is a handover; shared
//!    fields have no authority) → that value. A value counts as the authority's when any side
//!    holding it got it from a change by the authority.
//! 4. Otherwise the merge point **opens a conflict** on F; the merged value is the *fallback*, the
//!    base's value.
//!
//! A version's own `fields` are then applied: a field it carries with a value other than the merge
//! of its parents is its author's change (a root changes what differs from the empty value; a
//! field a version omits is inherited). What counts for conflict detection is always the merge of
//! the parents, never the merge version's own body.
//!
//! 5. **Open conflicts win over everything.** While a conflict on F is open at a version (opened in
//!    its ancestry, not closed there), F's effective value is that conflict's fallback, whatever
//!    the version or a merged branch wrote. If several are open on F, the one opened at the
//!    deepest merge point applies (longest path from a root; ties: smallest merge-point id). A
//!    fallback is nobody's decision: its writer has no roles.
//!
//! # Closing
//!
//! A conflict on F opened at merge point M is **closed** by a version R that is marked
//! `resolution`, is authored by F's owning side (hukou fields and shared fields: the hukou side,
//! which owns the review queue; residence fields: the residence side), descends from M, and
//! carries F in its `fields`. Bodies are full snapshots, so in practice a resolution closes every
//! conflict in its ancestry on the fields its author owns; its value for F then counts as its
//! author's change. A head-set conflict has no version descending from all its heads; once a
//! version merges those heads, that version is the merge point and the same dispute is found
//! there. A conflict is listed in the view when no version of the document closes it.
//!
//! # Second roots (rule 6)
//!
//! Two creations of one file (a bureau that created the file before it could ask the hukou
//! bureau, a race, an offline node) are one file, not a dispute: the second root is merged by a
//! rule, never queued for review. Where the sides of a merge share no ancestor, rules 1–3 apply
//! as everywhere (a field only one creation set is taken; the field's authority wins a
//! disagreement), and instead of rule 4 a field still disputed takes the value of the side
//! holding the **first file** — the root with the lowest `(hlc, id)`, the earlier signed stamp
//! with the id breaking a tie, so every node picks the same side — except a residence field,
//! which takes the **latest** creation's: a second file is nearly always made by the bureau a
//! child has just arrived at, whose word on where and how the child lives is the newest. No
//! conflict is opened there; the other creation's differing values stay in its history.
//!
//! The view is the head's state (one head) or the virtual head-set merge (several heads), with
//! rule 5 applied.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::rc::Rc;

use serde_json::Value;

use super::version::VersionId;
use crate::domain::child::{empty_value, Authority, ChildField, Fields, Roles};

/// One version as the merge sees it.
#[derive(Clone, PartialEq)]
pub struct MergeInput {
    /// The version's content address.
    pub id: VersionId,
    /// The versions it was made on top of (all heads its author had); empty for a creation.
    pub parents: Vec<VersionId>,
    /// What the author node is to this child: hukou side, residence side, or both.
    pub author_roles: Roles,
    /// Marked as a reviewer's resolution of open conflicts.
    pub resolution: bool,
    /// The author's HLC stamp. The merge reads it only to order creations (rule 6).
    pub hlc: i64,
    /// The version's body, one JSON value per field.
    pub fields: Fields,
}

/// One competing value of a conflict: a side that changed the field.
#[derive(Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The parent (or head) whose branch changed the field.
    pub side: VersionId,
    /// Author roles of that branch's latest change of the field (none for a carried fallback).
    pub author_roles: Roles,
    /// The value that branch holds.
    pub value: Value,
}

/// An open conflict on one field.
#[derive(Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The disputed field.
    pub field: ChildField,
    /// The merge point that disputes it: the id of a version with several parents, or `None` for
    /// the current head set.
    pub merge_point: Option<VersionId>,
    /// The parents (or heads) merged there, sorted.
    pub merged: Vec<VersionId>,
    /// The common ancestor's value (the field's empty value when there is none): the fallback
    /// shown while the conflict is open.
    pub base: Value,
    /// The competing values, one per side that changed the field, sorted by side.
    pub candidates: Vec<Candidate>,
}

/// A document as a reader sees it, computed from all its versions.
#[derive(Clone, PartialEq, Eq)]
pub struct MergedView {
    /// Every field's value (all of [`ChildField::ALL`]): the merge of the heads, with the fallback
    /// for each field under open conflict.
    pub fields: Fields,
    /// The current heads, sorted.
    pub heads: Vec<VersionId>,
    /// The open conflicts, sorted by `(field, merge_point)`.
    pub conflicts: Vec<Conflict>,
}

/// Why a set of versions has no merged view.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// A version names a parent that is not among the versions given.
    #[error("version {version} names parent {parent}, which is not among the document's versions")]
    UnknownParent {
        /// The version naming the parent.
        version: VersionId,
        /// The missing parent.
        parent: VersionId,
    },
    /// The parent links form a cycle (impossible for content-addressed versions; corrupt input).
    #[error("the versions' parent links form a cycle")]
    Cycle,
    /// No versions at all.
    #[error("a document needs at least one version")]
    Empty,
}

/// The merged view of a document from ALL its versions, in any order. Deterministic: the same set
/// of versions gives the same view and the same open conflicts, whatever order they arrived in.
/// Versions are content-addressed, so a repeated id is the same version and counts once.
pub fn merged_view(versions: &[MergeInput]) -> Result<MergedView, MergeError> {
    let dag = Dag::build(versions)?;
    let mut engine = Engine::new(&dag);
    for v in 0..dag.len() {
        engine.add_version(v);
    }
    Ok(engine.view())
}

/// The view after `next`, a version made on top of ALL the current heads of the document whose
/// view is `before` (an edit or a resolution made on this node), without merging the document
/// again. `next` descends from every version, so it is the single head; it merges the sides the
/// head set merged, so its disputes are the head set's, now at merge point `next`; as a
/// resolution it closes every open conflict on a field its author owns and it carries; a field
/// still under conflict keeps its fallback, any other field takes `next`'s value. `None` when
/// `next` is not on exactly those heads: merge the document then.
pub fn view_after(before: &MergedView, next: &MergeInput) -> Option<MergedView> {
    let mut parents = next.parents.clone();
    parents.sort_unstable();
    parents.dedup();
    if parents.is_empty() || parents != before.heads || parents.contains(&next.id) {
        return None;
    }
    let closes = |field: ChildField| {
        next.resolution && owns_review(field, next.author_roles) && next.fields.contains_key(&field)
    };
    let mut conflicts: Vec<Conflict> = before
        .conflicts
        .iter()
        .filter(|c| !closes(c.field))
        .map(|c| Conflict {
            merge_point: c.merge_point.or(Some(next.id)),
            ..c.clone()
        })
        .collect();
    conflicts.sort_by_key(|c| (c.field, c.merge_point));
    let mut fields = Fields::new();
    for &field in ChildField::ALL.iter() {
        let value = if conflicts.iter().any(|c| c.field == field) {
            before.fields.get(&field)
        } else {
            next.fields
                .get(&field)
                .or_else(|| before.fields.get(&field))
        };
        fields.insert(field, value?.clone());
    }
    Some(MergedView {
        fields,
        heads: vec![next.id],
        conflicts,
    })
}

/// The fields under open conflict, which the API must refuse to edit. A new local edit carries
/// their values from [`MergedView::fields`], which already holds each one's fallback.
pub fn fields_under_review(view: &MergedView) -> BTreeSet<ChildField> {
    view.conflicts.iter().map(|c| c.field).collect()
}

// ---------------------------------------------------------------------------------------------
// Field rules

/// Whether a writer with `roles` is the authority of `field` (rule 3). Shared fields have none.
/// `residence_region` has two: the residence side, and the hukou side, whose only change to it
/// is a handover (`domain::child::is_handover`, checked at ingest) — so a handover disputed by
/// the old residence bureau's concurrent move goes to review instead of being lost.
fn has_authority(field: ChildField, roles: Roles) -> bool {
    match field.authority() {
        Authority::Hukou => roles.hukou,
        Authority::Residence if field == ChildField::ResidenceRegion => {
            roles.residence || roles.hukou
        }
        Authority::Residence => roles.residence,
        Authority::Shared => false,
    }
}

/// Whether a resolution authored with `roles` may close a conflict on `field`: the field's owning
/// side, and the hukou side for shared fields (it owns the review queue).
fn owns_review(field: ChildField, roles: Roles) -> bool {
    match field.authority() {
        Authority::Hukou | Authority::Shared => roles.hukou,
        Authority::Residence => roles.residence,
    }
}

fn union_roles(a: Roles, b: Roles) -> Roles {
    Roles {
        hukou: a.hukou || b.hukou,
        residence: a.residence || b.residence,
    }
}

/// A field's effective value at a version and who wrote it.
#[derive(Clone, PartialEq)]
struct FieldState {
    value: Value,
    /// Roles of the author of the latest change that produced `value` (no roles: nobody's change —
    /// an empty value nobody set, or a conflict's fallback).
    writer: Roles,
}

/// One [`FieldState`] per field, indexed like [`ChildField::ALL`].
type State = Vec<FieldState>;

fn empty_state() -> State {
    ChildField::ALL
        .iter()
        .map(|f| FieldState {
            value: empty_value(*f),
            writer: Roles::default(),
        })
        .collect()
}

/// The outcome of merging one field.
enum FieldMerge {
    Clean(FieldState),
    /// Rule 4: the sides that changed the field, as `(side, state)`.
    Disputed(Vec<(usize, FieldState)>),
}

/// Rules 1–4 for one field: `sides` are `(version, its state of the field)`.
fn merge_field(field: ChildField, base: &FieldState, sides: &[(usize, &FieldState)]) -> FieldMerge {
    // The distinct values of the sides that changed the field, each with the union of the
    // writers that hold it.
    let mut changed: Vec<(&Value, Roles)> = Vec::new();
    for (_, s) in sides.iter().filter(|(_, s)| s.value != base.value) {
        match changed.iter_mut().find(|(v, _)| **v == s.value) {
            Some((_, w)) => *w = union_roles(*w, s.writer),
            None => changed.push((&s.value, s.writer)),
        }
    }
    let clean = |(value, writer): (&Value, Roles)| {
        FieldMerge::Clean(FieldState {
            value: value.clone(),
            writer,
        })
    };
    match changed.as_slice() {
        [] => FieldMerge::Clean(base.clone()),
        [one] => clean(*one),
        _ => {
            let mut authoritative = changed.iter().filter(|(_, w)| has_authority(field, *w));
            match (authoritative.next(), authoritative.next()) {
                (Some(winner), None) => clean(*winner),
                _ => FieldMerge::Disputed(
                    sides
                        .iter()
                        .filter(|(_, s)| s.value != base.value)
                        .map(|(v, s)| (*v, (*s).clone()))
                        .collect(),
                ),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The DAG: versions in a deterministic topological order, with ancestor bitsets

/// A fixed-size set of version indices. Invariant: every index passed in is below the `len` the
/// set was made with (all sets are made with the DAG's length), so the word indexing is in bounds.
#[derive(Clone)]
struct BitSet(Vec<u64>);

impl BitSet {
    fn new(len: usize) -> Self {
        BitSet(vec![0; len.div_ceil(64)])
    }
    fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn contains(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    fn union_with(&mut self, other: &BitSet) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }
    fn intersect_with(&mut self, other: &BitSet) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a &= b;
        }
    }
    /// Members, largest first.
    fn iter_desc(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().rev().flat_map(|(i, &word)| {
            let mut word = word;
            std::iter::from_fn(move || {
                (word != 0).then(|| {
                    let bit = 63 - word.leading_zeros() as usize;
                    word &= !(1 << bit);
                    i * 64 + bit
                })
            })
        })
    }
}

/// Versions indexed by their position in a topological order (parents first; among versions
/// ready at the same time, smallest id first), so the indexing depends only on the set.
struct Dag<'a> {
    versions: Vec<&'a MergeInput>,
    /// Parents of each version, deduplicated.
    parents: Vec<Vec<usize>>,
    /// Ancestry of each version (itself included).
    ancestry: Vec<BitSet>,
    /// Longest path from a root (roots: 0).
    depth: Vec<u32>,
    /// Versions no other version names as a parent, sorted by id.
    heads: Vec<usize>,
    /// Versions marked as resolutions.
    resolutions: Vec<usize>,
}

impl<'a> Dag<'a> {
    fn build(input: &'a [MergeInput]) -> Result<Self, MergeError> {
        if input.is_empty() {
            return Err(MergeError::Empty);
        }
        // One entry per id (content-addressed: a repeated id is the same version).
        let mut by_id: BTreeMap<VersionId, &MergeInput> = BTreeMap::new();
        for v in input {
            by_id.entry(v.id).or_insert(v);
        }
        let mut parent_ids: BTreeMap<VersionId, BTreeSet<VersionId>> = BTreeMap::new();
        let mut children: BTreeMap<VersionId, Vec<VersionId>> = BTreeMap::new();
        for (id, v) in &by_id {
            let ps: BTreeSet<VersionId> = v.parents.iter().copied().collect();
            for p in &ps {
                if !by_id.contains_key(p) {
                    return Err(MergeError::UnknownParent {
                        version: *id,
                        parent: *p,
                    });
                }
                children.entry(*p).or_default().push(*id);
            }
            parent_ids.insert(*id, ps);
        }

        // Kahn's algorithm; the ready set is ordered by id.
        let mut waiting: BTreeMap<VersionId, usize> =
            parent_ids.iter().map(|(id, ps)| (*id, ps.len())).collect();
        let mut ready: BTreeSet<VersionId> = waiting
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(id, _)| *id)
            .collect();
        let mut order: Vec<VersionId> = Vec::with_capacity(by_id.len());
        while let Some(id) = ready.pop_first() {
            order.push(id);
            for child in children.get(&id).into_iter().flatten() {
                if let Some(n) = waiting.get_mut(child) {
                    // `children` lists each child once per distinct parent, and `waiting` counts
                    // distinct parents, so this never goes below zero.
                    *n -= 1;
                    if *n == 0 {
                        ready.insert(*child);
                    }
                }
            }
        }
        if order.len() != by_id.len() {
            return Err(MergeError::Cycle);
        }

        // Every id in `order` is a key of `by_id`, so nothing is dropped here; the positions in
        // `versions` are the indices used from now on.
        let versions: Vec<&MergeInput> = order
            .iter()
            .filter_map(|id| by_id.get(id).copied())
            .collect();
        let index: HashMap<VersionId, usize> = versions
            .iter()
            .enumerate()
            .map(|(i, v)| (v.id, i))
            .collect();
        let n = versions.len();
        let mut dag = Dag {
            versions: Vec::with_capacity(n),
            parents: Vec::with_capacity(n),
            ancestry: Vec::with_capacity(n),
            depth: Vec::with_capacity(n),
            heads: Vec::new(),
            resolutions: Vec::new(),
        };
        for (i, v) in versions.into_iter().enumerate() {
            // Every parent was checked to be present, so `filter_map` drops nothing.
            let mut parents: Vec<usize> = v
                .parents
                .iter()
                .filter_map(|p| index.get(p).copied())
                .collect();
            parents.sort_unstable();
            parents.dedup();
            // Parents come earlier in the order, so `dag.ancestry[p]` and `dag.depth[p]` exist.
            let mut ancestry = BitSet::new(n);
            ancestry.insert(i);
            let mut depth = 0;
            for &p in &parents {
                ancestry.union_with(&dag.ancestry[p]);
                depth = depth.max(dag.depth[p].saturating_add(1));
            }
            if !children.contains_key(&v.id) {
                dag.heads.push(i);
            }
            if v.resolution {
                dag.resolutions.push(i);
            }
            dag.versions.push(v);
            dag.parents.push(parents);
            dag.ancestry.push(ancestry);
            dag.depth.push(depth);
        }
        dag.heads.sort_by_key(|&h| dag.versions[h].id);
        Ok(dag)
    }

    fn len(&self) -> usize {
        self.versions.len()
    }

    /// Rule 6: of `sides` sharing no ancestor, the one whose ancestry holds the first root — the
    /// creation with the lowest `(hlc, id)`, both signed, so every node picks the same — and the
    /// one holding the latest root.
    fn sides_with_first_and_latest_root(&self, sides: &[usize]) -> (Option<usize>, Option<usize>) {
        let held = |v: usize| sides.iter().any(|&s| self.ancestry[s].contains(v));
        let roots: Vec<((i64, VersionId), usize)> = (0..self.len())
            .filter(|&v| self.parents[v].is_empty() && held(v))
            .map(|v| ((self.versions[v].hlc, self.versions[v].id), v))
            .collect();
        let side_holding = |root: Option<&((i64, VersionId), usize)>, last: bool| {
            let &(_, v) = root?;
            let with = sides
                .iter()
                .copied()
                .filter(|&s| self.ancestry[s].contains(v));
            if last {
                with.max()
            } else {
                with.min()
            }
        };
        (
            side_holding(roots.iter().min(), false),
            side_holding(roots.iter().max(), true),
        )
    }

    fn id(&self, v: usize) -> VersionId {
        self.versions[v].id
    }

    /// The lowest common ancestors of `sides` (sorted): the common ancestors that are not an
    /// ancestor of another common ancestor.
    fn lowest_common_ancestors(&self, sides: &[usize]) -> Vec<usize> {
        let Some((&first, rest)) = sides.split_first() else {
            return Vec::new();
        };
        let mut common = self.ancestry[first].clone();
        for &s in rest {
            common.intersect_with(&self.ancestry[s]);
        }
        // Walking from the latest in topological order, a common ancestor is lowest unless a
        // lowest one already found descends from it.
        let mut covered = BitSet::new(self.len());
        let mut lowest = Vec::new();
        for c in common.iter_desc() {
            if !covered.contains(c) {
                lowest.push(c);
                covered.union_with(&self.ancestry[c]);
            }
        }
        lowest.sort_unstable();
        lowest
    }
}

// ---------------------------------------------------------------------------------------------
// The engine: states and conflicts, version by version in topological order

/// A conflict found at a merge point.
struct Opened {
    field: ChildField,
    /// The merge version, or `None` for the head set.
    merge_point: Option<usize>,
    /// Depth of the merge point (the head set: deeper than every version).
    depth: u32,
    /// The sides merged there.
    merged: Vec<usize>,
    /// The fallback.
    base: Value,
    candidates: Vec<(usize, FieldState)>,
    /// The versions that close it (closing rule).
    closers: Vec<usize>,
}

/// A merge of several sides: the merged state (disputed fields hold their fallback) and the
/// disputes found.
struct Merged {
    state: State,
    disputes: Vec<Dispute>,
}

/// A field a merge disputes (rule 4).
struct Dispute {
    field: ChildField,
    /// The base's value: the fallback.
    base: Value,
    /// The sides that changed the field, with their states.
    candidates: Vec<(usize, FieldState)>,
}

/// Indexing invariant: versions are processed in topological order, so `states[p]` and
/// `open[p]` exist for every parent `p` of the version being processed, for every common ancestor
/// of processed versions, and for every head once all versions are processed; all version indices
/// are below `dag.len()`.
struct Engine<'d, 'a> {
    dag: &'d Dag<'a>,
    /// Effective state of each version processed so far.
    states: Vec<Rc<State>>,
    /// Indices into `conflicts` of the conflicts open at each version processed so far, sorted.
    open: Vec<Vec<usize>>,
    conflicts: Vec<Opened>,
    /// Virtual bases of criss-cross merges, keyed by their lowest common ancestors.
    virtual_bases: HashMap<Vec<usize>, Rc<State>>,
}

impl<'d, 'a> Engine<'d, 'a> {
    fn new(dag: &'d Dag<'a>) -> Self {
        Engine {
            dag,
            states: Vec::with_capacity(dag.len()),
            open: Vec::with_capacity(dag.len()),
            conflicts: Vec::new(),
            virtual_bases: HashMap::new(),
        }
    }

    /// The base state of a merge whose sides' lowest common ancestors are `lowest`.
    fn base_state(&mut self, lowest: Vec<usize>) -> Rc<State> {
        match lowest.as_slice() {
            [] => Rc::new(empty_state()),
            [one] => Rc::clone(&self.states[*one]),
            _ => {
                if let Some(state) = self.virtual_bases.get(&lowest) {
                    return Rc::clone(state);
                }
                // Criss-cross: merge the lowest common ancestors themselves. They are strict
                // ancestors of every side, so this recursion goes strictly down the DAG and ends.
                let state = Rc::new(self.merge(&lowest).state);
                self.virtual_bases.insert(lowest, Rc::clone(&state));
                state
            }
        }
    }

    /// Rules 1–4 for every field, merging `sides` (at least two, all already processed); rule 6
    /// instead of rule 4 when the sides share no ancestor.
    fn merge(&mut self, sides: &[usize]) -> Merged {
        let lowest = self.dag.lowest_common_ancestors(sides);
        // Rule 6: independent creations — the side holding the first file (residence fields:
        // the latest) decides disputes.
        let roots = lowest
            .is_empty()
            .then(|| self.dag.sides_with_first_and_latest_root(sides));
        let base = self.base_state(lowest);
        let mut state = Vec::with_capacity(ChildField::ALL.len());
        let mut disputes = Vec::new();
        for (i, &field) in ChildField::ALL.iter().enumerate() {
            let side_states: Vec<(usize, &FieldState)> =
                sides.iter().map(|&s| (s, &self.states[s][i])).collect();
            let rule6 = roots.and_then(|(first, latest)| match field.authority() {
                Authority::Residence => latest,
                Authority::Hukou | Authority::Shared => first,
            });
            match (merge_field(field, &base[i], &side_states), rule6) {
                (FieldMerge::Clean(s), _) => state.push(s),
                (FieldMerge::Disputed(_), Some(side)) => state.push(self.states[side][i].clone()),
                (FieldMerge::Disputed(candidates), None) => {
                    state.push(FieldState {
                        value: base[i].value.clone(),
                        writer: Roles::default(),
                    });
                    disputes.push(Dispute {
                        field,
                        base: base[i].value.clone(),
                        candidates,
                    });
                }
            }
        }
        Merged { state, disputes }
    }

    /// Records the disputes of merge point `at` (`None`: the head set) as conflicts; returns
    /// their indices.
    fn open_conflicts(
        &mut self,
        at: Option<usize>,
        sides: &[usize],
        disputes: Vec<Dispute>,
    ) -> Vec<usize> {
        let depth = match at {
            Some(v) => self.dag.depth[v],
            None => self
                .dag
                .depth
                .iter()
                .max()
                .map_or(0, |d| d.saturating_add(1)),
        };
        let mut opened = Vec::new();
        for Dispute {
            field,
            base,
            candidates,
        } in disputes
        {
            let closers = match at {
                // No version descends from every head.
                None => Vec::new(),
                Some(m) => self
                    .dag
                    .resolutions
                    .iter()
                    .copied()
                    .filter(|&r| {
                        let input = self.dag.versions[r];
                        owns_review(field, input.author_roles)
                            && input.fields.contains_key(&field)
                            && self.dag.ancestry[r].contains(m)
                    })
                    .collect(),
            };
            opened.push(self.conflicts.len());
            self.conflicts.push(Opened {
                field,
                merge_point: at,
                depth,
                merged: sides.to_vec(),
                base,
                candidates,
                closers,
            });
        }
        opened
    }

    /// Conflicts open at merge point `at` (`None`: the head set, whose ancestry is everything):
    /// those open at a side or opened here, unless closed in `at`'s ancestry.
    fn open_at(&self, at: Option<usize>, sides: &[usize], opened: &[usize]) -> Vec<usize> {
        let mut open: Vec<usize> = sides
            .iter()
            .flat_map(|&s| self.open[s].iter().copied())
            .chain(opened.iter().copied())
            .collect();
        open.sort_unstable();
        open.dedup();
        open.retain(|&c| {
            !self.conflicts[c].closers.iter().any(|&r| match at {
                Some(v) => self.dag.ancestry[v].contains(r),
                None => true,
            })
        });
        open
    }

    /// Rule 5 for `field`: the fallback of the conflict opened deepest among `open`.
    fn fallback(&self, open: &[usize], field: ChildField) -> Option<&Value> {
        open.iter()
            .map(|&c| &self.conflicts[c])
            .filter(|c| c.field == field)
            .max_by_key(|c| (c.depth, Reverse(c.merge_point.map(|m| self.dag.id(m)))))
            .map(|c| &c.base)
    }

    /// Processes version `v`: merges its parents, records the conflicts it opens, applies its own
    /// body and rule 5.
    fn add_version(&mut self, v: usize) {
        let dag = self.dag;
        let parents = &dag.parents[v];
        let input = dag.versions[v];
        let (merged, opened) = match parents.as_slice() {
            [] => (empty_state(), Vec::new()),
            [p] => ((*self.states[*p]).clone(), Vec::new()),
            _ => {
                let Merged { state, disputes } = self.merge(parents);
                (state, self.open_conflicts(Some(v), parents, disputes))
            }
        };
        let open = self.open_at(Some(v), parents, &opened);
        // Fields on which this version itself closes a conflict (its value is then a decision).
        let resolves: BTreeSet<ChildField> = parents
            .iter()
            .flat_map(|&p| self.open[p].iter())
            .chain(&opened)
            .map(|&c| &self.conflicts[c])
            .filter(|c| c.closers.contains(&v))
            .map(|c| c.field)
            .collect();

        let state: State = ChildField::ALL
            .iter()
            .zip(merged)
            .map(|(&field, from_parents)| {
                // Its own change: a value other than its parents' merge, or a resolution's
                // decision on a field it closes.
                let own = input
                    .fields
                    .get(&field)
                    .filter(|value| **value != from_parents.value || resolves.contains(&field));
                match (self.fallback(&open, field), own) {
                    (Some(fallback), _) => FieldState {
                        value: fallback.clone(),
                        writer: Roles::default(),
                    },
                    (None, Some(value)) => FieldState {
                        value: value.clone(),
                        writer: input.author_roles,
                    },
                    (None, None) => from_parents,
                }
            })
            .collect();
        self.states.push(Rc::new(state));
        self.open.push(open);
    }

    /// The view: the single head's state, or the head-set merge with rule 5 applied.
    fn view(mut self) -> MergedView {
        let dag = self.dag;
        let (state, open) = match dag.heads.as_slice() {
            [head] => ((*self.states[*head]).clone(), self.open[*head].clone()),
            heads => {
                let Merged { state, disputes } = self.merge(heads);
                let opened = self.open_conflicts(None, heads, disputes);
                let open = self.open_at(None, heads, &opened);
                let state = ChildField::ALL
                    .iter()
                    .zip(state)
                    .map(|(&field, s)| match self.fallback(&open, field) {
                        Some(fallback) => FieldState {
                            value: fallback.clone(),
                            writer: Roles::default(),
                        },
                        None => s,
                    })
                    .collect();
                (state, open)
            }
        };
        let fields: Fields = ChildField::ALL
            .iter()
            .zip(state)
            .map(|(&f, s)| (f, s.value))
            .collect();
        let mut conflicts: Vec<Conflict> = open
            .iter()
            .map(|&c| {
                let c = &self.conflicts[c];
                let mut merged: Vec<VersionId> = c.merged.iter().map(|&s| dag.id(s)).collect();
                merged.sort_unstable();
                let mut candidates: Vec<Candidate> = c
                    .candidates
                    .iter()
                    .map(|(side, s)| Candidate {
                        side: dag.id(*side),
                        author_roles: s.writer,
                        value: s.value.clone(),
                    })
                    .collect();
                candidates.sort_by_key(|c| c.side);
                Conflict {
                    field: c.field,
                    merge_point: c.merge_point.map(|m| dag.id(m)),
                    merged,
                    base: c.base.clone(),
                    candidates,
                }
            })
            .collect();
        conflicts.sort_by_key(|c| (c.field, c.merge_point));
        MergedView {
            fields,
            heads: dag.heads.iter().map(|&h| dag.id(h)).collect(),
            conflicts,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Debug output never shows field values: they can hold a child's name (DESIGN §11).

/// A JSON value's kind, for debug output.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

struct FieldNames<'a>(&'a Fields);
impl fmt::Debug for FieldNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k.name(), kind(v))))
            .finish()
    }
}

impl fmt::Debug for MergeInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MergeInput")
            .field("id", &self.id)
            .field("parents", &self.parents)
            .field("author_roles", &self.author_roles)
            .field("resolution", &self.resolution)
            .field("hlc", &self.hlc)
            .field("fields", &FieldNames(&self.fields))
            .finish()
    }
}

impl fmt::Debug for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Candidate")
            .field("side", &self.side)
            .field("author_roles", &self.author_roles)
            .field("value", &kind(&self.value))
            .finish()
    }
}

impl fmt::Debug for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conflict")
            .field("field", &self.field)
            .field("merge_point", &self.merge_point)
            .field("merged", &self.merged)
            .field("base", &kind(&self.base))
            .field("candidates", &self.candidates)
            .finish()
    }
}

impl fmt::Debug for MergedView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MergedView")
            .field("fields", &FieldNames(&self.fields))
            .field("heads", &self.heads)
            .field("conflicts", &self.conflicts)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::crypto::hash::Digest;
    use ChildField::{Categories, HealthStatus, Name, Notes, ResidenceRegion, RiskLevel};

    const HUKOU: Roles = Roles {
        hukou: true,
        residence: false,
    };
    const RESIDENCE: Roles = Roles {
        hukou: false,
        residence: true,
    };
    const BOTH: Roles = Roles {
        hukou: true,
        residence: true,
    };

    fn id(tag: &str) -> VersionId {
        VersionId(Digest::of(tag.as_bytes()))
    }

    fn sorted_ids(tags: &[&str]) -> Vec<VersionId> {
        let mut ids: Vec<VersionId> = tags.iter().map(|t| id(t)).collect();
        ids.sort();
        ids
    }

    /// A creation's body: every field empty except the ID number, name and notes.
    fn record() -> Fields {
        let mut f: Fields = ChildField::ALL
            .iter()
            .map(|f| (*f, empty_value(*f)))
            .collect();
        f.insert(ChildField::IdNumber, json!("510104201406010016"));
        f.insert(Name, json!("张小明"));
        f.insert(Notes, json!("n0"));
        f
    }

    /// Versions built the way nodes build them: an edit carries the view of its parents.
    #[derive(Default)]
    struct Doc {
        versions: Vec<MergeInput>,
    }

    impl Doc {
        fn create(&mut self, tag: &str, roles: Roles, changes: &[(ChildField, Value)]) {
            let mut fields = record();
            fields.extend(changes.iter().cloned());
            self.push(tag, &[], roles, false, fields);
        }

        fn edit(
            &mut self,
            tag: &str,
            parents: &[&str],
            roles: Roles,
            changes: &[(ChildField, Value)],
        ) {
            self.add(tag, parents, roles, false, changes);
        }

        fn resolve(
            &mut self,
            tag: &str,
            parents: &[&str],
            roles: Roles,
            changes: &[(ChildField, Value)],
        ) {
            self.add(tag, parents, roles, true, changes);
        }

        fn add(
            &mut self,
            tag: &str,
            parents: &[&str],
            roles: Roles,
            resolution: bool,
            changes: &[(ChildField, Value)],
        ) {
            let mut fields = self.view_of(parents).fields;
            fields.extend(changes.iter().cloned());
            self.push(tag, parents, roles, resolution, fields);
        }

        fn push(
            &mut self,
            tag: &str,
            parents: &[&str],
            roles: Roles,
            resolution: bool,
            fields: Fields,
        ) {
            self.versions.push(MergeInput {
                id: id(tag),
                parents: parents.iter().map(|p| id(p)).collect(),
                author_roles: roles,
                resolution,
                hlc: self.versions.len() as i64,
                fields,
            });
        }

        /// The view a node holding exactly the ancestry of `tags` has.
        fn view_of(&self, tags: &[&str]) -> MergedView {
            let by_id: HashMap<VersionId, &MergeInput> =
                self.versions.iter().map(|v| (v.id, v)).collect();
            let mut seen = HashSet::new();
            let mut stack: Vec<VersionId> = tags.iter().map(|t| id(t)).collect();
            let mut mine = Vec::new();
            while let Some(v) = stack.pop() {
                if seen.insert(v) {
                    let input = by_id[&v];
                    stack.extend(input.parents.iter().copied());
                    mine.push(input.clone());
                }
            }
            merged_view(&mine).unwrap()
        }

        /// The view of every version, checked to be the same in reverse and rotated orders.
        fn view(&self) -> MergedView {
            let view = merged_view(&self.versions).unwrap();
            let mut reversed = self.versions.clone();
            reversed.reverse();
            assert_eq!(merged_view(&reversed).unwrap(), view);
            for k in 1..self.versions.len() {
                let mut rotated = self.versions.clone();
                rotated.rotate_left(k);
                assert_eq!(merged_view(&rotated).unwrap(), view);
            }
            view
        }
    }

    /// `a` creates with notes "n0"; `b` (hukou side) and `c` (residence side) set notes apart.
    fn shared_dispute() -> Doc {
        let mut d = Doc::default();
        d.create("a", HUKOU, &[]);
        d.edit("b", &["a"], HUKOU, &[(Notes, json!("b"))]);
        d.edit("c", &["a"], RESIDENCE, &[(Notes, json!("c"))]);
        d
    }

    fn notes_conflict(merge_point: Option<&str>) -> Conflict {
        let mut candidates = vec![
            Candidate {
                side: id("b"),
                author_roles: HUKOU,
                value: json!("b"),
            },
            Candidate {
                side: id("c"),
                author_roles: RESIDENCE,
                value: json!("c"),
            },
        ];
        candidates.sort_by_key(|c| c.side);
        Conflict {
            field: Notes,
            merge_point: merge_point.map(id),
            merged: sorted_ids(&["b", "c"]),
            base: json!("n0"),
            candidates,
        }
    }

    #[test]
    fn linear_history_is_the_head() {
        let mut d = Doc::default();
        d.create("a", HUKOU, &[]);
        d.edit("b", &["a"], RESIDENCE, &[(RiskLevel, json!(3))]);
        d.edit("c", &["b"], HUKOU, &[(Name, json!("张晓明"))]);
        let view = d.view();
        assert_eq!(view.heads, vec![id("c")]);
        assert!(view.conflicts.is_empty());
        assert_eq!(view.fields.len(), ChildField::ALL.len());
        assert_eq!(view.fields[&Name], json!("张晓明"));
        assert_eq!(view.fields[&RiskLevel], json!(3));
        assert_eq!(view.fields[&Categories], json!([]));
        assert!(fields_under_review(&view).is_empty());
    }

    #[test]
    fn concurrent_edits_of_different_fields_merge_cleanly() {
        let mut d = Doc::default();
        d.create("a", HUKOU, &[]);
        d.edit("b", &["a"], HUKOU, &[(Name, json!("张晓明"))]);
        d.edit("c", &["a"], RESIDENCE, &[(RiskLevel, json!(1))]);
        let view = d.view();
        assert_eq!(view.heads, sorted_ids(&["b", "c"]));
        assert!(view.conflicts.is_empty());
        assert_eq!(view.fields[&Name], json!("张晓明"));
        assert_eq!(view.fields[&RiskLevel], json!(1));
        assert_eq!(view.fields[&Notes], json!("n0"));
    }

    #[test]
    fn same_field_same_value_is_no_conflict() {
        let mut d = Doc::default();
        d.create("a", HUKOU, &[]);
        d.edit("b", &["a"], HUKOU, &[(Notes, json!("x"))]);
        d.edit("c", &["a"], RESIDENCE, &[(Notes, json!("x"))]);
        let view = d.view();
        assert!(view.conflicts.is_empty());
        assert_eq!(view.fields[&Notes], json!("x"));
    }

    #[test]
    fn the_fields_authority_wins_a_disagreement() {
        let mut d = Doc::default();
        d.create("a", HUKOU, &[(RiskLevel, json!(3))]);
        // Each side also writes the other side's field (ingest would refuse it; the merge must
        // still be defined): the authority's value wins on each field.
        d.edit(
            "b",
            &["a"],
            HUKOU,
            &[(Name, json!("李四")), (RiskLevel, json!(1))],
        );
        d.edit(
            "c",
            &["a"],
            RESIDENCE,
            &[(Name, json!("王五")), (RiskLevel, json!(4))],
        );
        let view = d.view();
        assert!(view.conflicts.is_empty(), "{view:?}");
        assert_eq!(view.fields[&Name], json!("李四"));
        assert_eq!(view.fields[&RiskLevel], json!(4));
    }

    #[test]
    fn a_handover_disputed_by_a_concurrent_move_goes_to_review() {
        let mut d = Doc::default();
        d.create("a", RESIDENCE, &[(ResidenceRegion, json!("410105"))]);
        // The hukou side hands the child over to another bureau's region while the old
        // residence bureau moves it within its own: neither wins silently.
        d.edit("h", &["a"], HUKOU, &[(ResidenceRegion, json!("330106"))]);
        d.edit(
            "z",
            &["a"],
            RESIDENCE,
            &[(ResidenceRegion, json!("410102"))],
        );
        let view = d.view();
        assert_eq!(
            fields_under_review(&view),
            BTreeSet::from([ResidenceRegion])
        );
        assert_eq!(view.fields[&ResidenceRegion], json!("410105"));
        // Undisputed, the handover is simply taken.
        let mut d = Doc::default();
        d.create("a", RESIDENCE, &[(ResidenceRegion, json!("410105"))]);
        d.edit("h", &["a"], HUKOU, &[(ResidenceRegion, json!("330106"))]);
        d.edit("z", &["a"], RESIDENCE, &[(RiskLevel, json!(2))]);
        let view = d.view();
        assert!(view.conflicts.is_empty());
        assert_eq!(view.fields[&ResidenceRegion], json!("330106"));
    }

    #[test]
    fn two_authorities_disagreeing_is_a_conflict() {
        let mut d = Doc::default();
        d.create("a", HUKOU, &[]);
        d.edit("b", &["a"], HUKOU, &[(Name, json!("李四"))]);
        d.edit("c", &["a"], BOTH, &[(Name, json!("王五"))]);
        let view = d.view();
        assert_eq!(fields_under_review(&view), BTreeSet::from([Name]));
        assert_eq!(view.fields[&Name], json!("张小明"));
    }

    #[test]
    fn shared_field_disagreement_is_a_conflict_showing_the_base() {
        let d = shared_dispute();
        let view = d.view();
        assert_eq!(view.fields[&Notes], json!("n0"));
        assert_eq!(view.conflicts, vec![notes_conflict(None)]);
        assert_eq!(fields_under_review(&view), BTreeSet::from([Notes]));
    }

    #[test]
    fn a_second_root_is_merged_by_the_first_file_rule() {
        // "y" is created second (a later stamp) by the same side: the first file's value wins
        // the disagreement, and nothing goes to review.
        let mut d = Doc::default();
        d.create(
            "x",
            RESIDENCE,
            &[(Name, json!("甲")), (RiskLevel, json!(1))],
        );
        d.create("y", RESIDENCE, &[(Name, json!("乙")), (Notes, json!("y"))]);
        let view = d.view();
        assert_eq!(view.heads, sorted_ids(&["x", "y"]));
        assert!(view.conflicts.is_empty(), "{view:?}");
        assert_eq!(view.fields[&Name], json!("甲"));
        assert_eq!(view.fields[&Notes], json!("n0"));
        // One side set it, the other left it empty: taken.
        assert_eq!(view.fields[&RiskLevel], json!(1));

        // A residence field both set: the latest creation's (both by the residence side here).
        let mut d = Doc::default();
        d.create("x", RESIDENCE, &[(RiskLevel, json!(1))]);
        d.create("y", RESIDENCE, &[(RiskLevel, json!(4))]);
        assert_eq!(d.view().fields[&RiskLevel], json!(4));
        assert!(d.view().conflicts.is_empty());

        // The stamp decides, not the id: the same creations stamped the other way round.
        let mut d = Doc::default();
        d.create("y", RESIDENCE, &[(Name, json!("乙"))]);
        d.create("x", RESIDENCE, &[(Name, json!("甲"))]);
        assert_eq!(d.view().fields[&Name], json!("乙"));

        // Later edits on each root, then a merge version: the merge point has no common
        // ancestor either, so the same rule holds there and the merge opens nothing.
        let mut d = Doc::default();
        d.create("x", HUKOU, &[(Notes, json!("x"))]);
        d.create(
            "y",
            RESIDENCE,
            &[(Notes, json!("y")), (RiskLevel, json!(2))],
        );
        d.edit("x1", &["x"], HUKOU, &[(Notes, json!("x1"))]);
        d.edit("y1", &["y"], RESIDENCE, &[(Notes, json!("y1"))]);
        d.edit("m", &["x1", "y1"], HUKOU, &[]);
        let view = d.view();
        assert!(view.conflicts.is_empty(), "{view:?}");
        assert_eq!(view.fields[&Notes], json!("x1"));
        assert_eq!(view.fields[&RiskLevel], json!(2));

        let mut d = Doc::default();
        d.create("x", RESIDENCE, &[(Name, json!("甲"))]);
        d.create("y", HUKOU, &[(Name, json!("乙"))]);
        let view = d.view();
        assert!(view.conflicts.is_empty());
        assert_eq!(view.fields[&Name], json!("乙"));
    }

    #[test]
    fn a_merge_version_keeps_the_conflict_open() {
        let mut d = shared_dispute();
        d.edit("m", &["b", "c"], HUKOU, &[(RiskLevel, json!(3))]);
        let view = d.view();
        assert_eq!(view.heads, vec![id("m")]);
        assert_eq!(view.conflicts, vec![notes_conflict(Some("m"))]);
        assert_eq!(view.fields[&Notes], json!("n0"));
        assert_eq!(view.fields[&RiskLevel], json!(3));

        // A merge version whose author wrote a side's value into the field settles nothing.
        let mut d = shared_dispute();
        d.edit("m", &["b", "c"], RESIDENCE, &[(Notes, json!("c"))]);
        let view = d.view();
        assert_eq!(view.conflicts, vec![notes_conflict(Some("m"))]);
        assert_eq!(view.fields[&Notes], json!("n0"));
    }

    #[test]
    fn an_ordinary_edit_of_the_disputed_field_does_not_close_it() {
        let mut d = shared_dispute();
        d.edit("m", &["b", "c"], HUKOU, &[]);
        d.edit("d", &["m"], HUKOU, &[(Notes, json!("d"))]);
        d.edit(
            "e",
            &["d"],
            RESIDENCE,
            &[(Notes, json!("e")), (RiskLevel, json!(1))],
        );
        let view = d.view();
        assert_eq!(view.conflicts, vec![notes_conflict(Some("m"))]);
        assert_eq!(view.fields[&Notes], json!("n0"));
        assert_eq!(view.fields[&RiskLevel], json!(1));
    }

    #[test]
    fn a_hukou_side_resolution_closes_it() {
        let mut d = shared_dispute();
        d.edit("m", &["b", "c"], RESIDENCE, &[]);
        d.edit("d", &["m"], RESIDENCE, &[(RiskLevel, json!(1))]);
        d.resolve("r", &["d"], HUKOU, &[(Notes, json!("r"))]);
        let view = d.view();
        assert!(view.conflicts.is_empty(), "{view:?}");
        assert_eq!(view.fields[&Notes], json!("r"));
        assert_eq!(view.fields[&RiskLevel], json!(1));
        // Afterwards the field is ordinary again.
        d.edit("e", &["r"], RESIDENCE, &[(Notes, json!("e"))]);
        assert_eq!(d.view().fields[&Notes], json!("e"));
    }

    #[test]
    fn a_resolution_can_merge_the_heads_itself_and_keep_the_fallback() {
        let mut d = shared_dispute();
        d.resolve("r", &["b", "c"], HUKOU, &[(Notes, json!("c"))]);
        let view = d.view();
        assert!(view.conflicts.is_empty());
        assert_eq!(view.fields[&Notes], json!("c"));

        let mut d = shared_dispute();
        d.resolve("r", &["b", "c"], HUKOU, &[]);
        let view = d.view();
        assert!(view.conflicts.is_empty());
        assert_eq!(view.fields[&Notes], json!("n0"));
    }

    #[test]
    fn a_residence_side_resolution_of_a_shared_field_does_not_close_it() {
        let mut d = shared_dispute();
        d.edit("m", &["b", "c"], RESIDENCE, &[]);
        d.resolve("r", &["m"], RESIDENCE, &[(Notes, json!("r"))]);
        let view = d.view();
        assert_eq!(view.conflicts, vec![notes_conflict(Some("m"))]);
        assert_eq!(view.fields[&Notes], json!("n0"));
        d.resolve("s", &["r"], HUKOU, &[(Notes, json!("s"))]);
        let view = d.view();
        assert!(view.conflicts.is_empty());
        assert_eq!(view.fields[&Notes], json!("s"));
    }

    #[test]
    fn a_residence_field_conflict_is_closed_by_the_residence_side() {
        // Two residence-side nodes (the child moved) disagree on the risk level.
        let mut d = Doc::default();
        d.create("a", RESIDENCE, &[(RiskLevel, json!(3))]);
        d.edit("b", &["a"], RESIDENCE, &[(RiskLevel, json!(1))]);
        d.edit("c", &["a"], RESIDENCE, &[(RiskLevel, json!(4))]);
        d.resolve("r", &["b", "c"], HUKOU, &[(RiskLevel, json!(1))]);
        let view = d.view();
        assert_eq!(fields_under_review(&view), BTreeSet::from([RiskLevel]));
        assert_eq!(view.conflicts[0].merge_point, Some(id("r")));
        assert_eq!(view.fields[&RiskLevel], json!(3));
        d.resolve("s", &["r"], RESIDENCE, &[(RiskLevel, json!(4))]);
        let view = d.view();
        assert!(view.conflicts.is_empty());
        assert_eq!(view.fields[&RiskLevel], json!(4));
    }

    #[test]
    fn a_write_made_under_review_stays_ignored_after_a_concurrent_resolution() {
        let mut d = shared_dispute();
        d.edit("m", &["b", "c"], HUKOU, &[]);
        d.resolve("r", &["m"], HUKOU, &[(Notes, json!("r"))]);
        // Concurrent with the resolution, a buggy peer writes the field under review.
        d.edit(
            "e",
            &["m"],
            RESIDENCE,
            &[(Notes, json!("e")), (RiskLevel, json!(1))],
        );
        let view = d.view();
        assert_eq!(view.heads, sorted_ids(&["e", "r"]));
        assert!(view.conflicts.is_empty(), "{view:?}");
        assert_eq!(view.fields[&Notes], json!("r"));
        assert_eq!(view.fields[&RiskLevel], json!(1));
    }

    /// Every permutation of `items` (Heap's algorithm).
    fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
        fn go<T: Clone>(k: usize, a: &mut Vec<T>, out: &mut Vec<Vec<T>>) {
            if k <= 1 {
                out.push(a.clone());
                return;
            }
            for i in 0..k - 1 {
                go(k - 1, a, out);
                if k & 1 == 0 {
                    a.swap(i, k - 1);
                } else {
                    a.swap(0, k - 1);
                }
            }
            go(k - 1, a, out);
        }
        let mut out = Vec::new();
        go(items.len(), &mut items.to_vec(), &mut out);
        out
    }

    #[test]
    fn criss_cross_merges_against_a_virtual_base_in_any_order() {
        // b and c are concurrent; m1 and m2 each merge both: the heads' lowest common ancestors
        // are b and c, merged into a virtual base.
        let mut d = Doc::default();
        d.create("a", HUKOU, &[]);
        d.edit("b", &["a"], HUKOU, &[(Name, json!("张晓明"))]);
        d.edit("c", &["a"], RESIDENCE, &[(RiskLevel, json!(1))]);
        d.edit("m1", &["b", "c"], HUKOU, &[(Notes, json!("m1"))]);
        d.edit(
            "m2",
            &["c", "b"],
            RESIDENCE,
            &[(HealthStatus, json!("healthy"))],
        );
        let view = d.view();
        assert!(view.conflicts.is_empty(), "{view:?}");
        assert_eq!(view.fields[&Name], json!("张晓明"));
        assert_eq!(view.fields[&RiskLevel], json!(1));
        assert_eq!(view.fields[&Notes], json!("m1"));
        assert_eq!(view.fields[&HealthStatus], json!("healthy"));
        let perms = permutations(&d.versions);
        assert_eq!(perms.len(), 120);
        for p in perms {
            assert_eq!(merged_view(&p).unwrap(), view);
        }

        // The same shape over a disputed field: both merge versions open a conflict, the
        // virtual base carries the fallback, and the heads agree on it.
        let mut d = shared_dispute();
        d.edit("m1", &["b", "c"], HUKOU, &[(Notes, json!("m1"))]);
        d.edit("m2", &["b", "c"], RESIDENCE, &[]);
        let view = d.view();
        let mut expected = vec![notes_conflict(Some("m1")), notes_conflict(Some("m2"))];
        expected.sort_by_key(|c| c.merge_point);
        assert_eq!(view.conflicts, expected);
        assert_eq!(view.fields[&Notes], json!("n0"));
        for p in permutations(&d.versions) {
            assert_eq!(merged_view(&p).unwrap(), view);
        }
        // One resolution descending from both closes both.
        d.resolve("r", &["m1", "m2"], HUKOU, &[(Notes, json!("r"))]);
        let view = d.view();
        assert!(view.conflicts.is_empty());
        assert_eq!(view.fields[&Notes], json!("r"));
    }

    #[test]
    fn malformed_version_sets_are_refused() {
        assert_eq!(merged_view(&[]), Err(MergeError::Empty));

        let mut d = Doc::default();
        d.create("a", HUKOU, &[]);
        d.push("b", &["a", "ghost"], HUKOU, false, record());
        assert_eq!(
            merged_view(&d.versions),
            Err(MergeError::UnknownParent {
                version: id("b"),
                parent: id("ghost"),
            })
        );

        let mut d = Doc::default();
        d.push("a", &["a"], HUKOU, false, record());
        assert_eq!(merged_view(&d.versions), Err(MergeError::Cycle));

        let mut d = Doc::default();
        d.create("r", HUKOU, &[]);
        d.push("a", &["b", "r"], HUKOU, false, record());
        d.push("b", &["a"], HUKOU, false, record());
        assert_eq!(merged_view(&d.versions), Err(MergeError::Cycle));
    }

    #[test]
    fn a_repeated_version_counts_once() {
        let d = shared_dispute();
        let mut twice = d.versions.clone();
        twice.extend(d.versions.iter().cloned());
        assert_eq!(merged_view(&twice).unwrap(), d.view());
    }

    #[test]
    fn debug_output_hides_values() {
        let view = shared_dispute().view();
        let shown = format!("{view:?}");
        assert!(!shown.contains("张小明"), "{shown}");
        assert!(shown.contains("notes"), "{shown}");
    }

    // --- properties -------------------------------------------------------------------------

    /// The fields the generated histories touch, one of each authority (and a list field).
    const SIM_FIELDS: [ChildField; 4] = [Name, RiskLevel, Notes, Categories];

    fn sim_value(field: ChildField, pick: usize) -> Value {
        let pick = pick % 3;
        match field {
            Categories => {
                [json!([]), json!(["flowing"]), json!(["orphan", "flowing"])][pick].clone()
            }
            Name => json!(["甲", "乙", "丙"][pick]),
            RiskLevel => json!([1, 3, 4][pick]),
            _ => json!(["x", "y", "z"][pick]),
        }
    }

    /// Full dump for failure messages (tests only; debug output hides values).
    fn dump(view: &MergedView) -> String {
        let fields: BTreeMap<&str, &Value> =
            view.fields.iter().map(|(k, v)| (k.name(), v)).collect();
        let conflicts: Vec<String> = view
            .conflicts
            .iter()
            .map(|c| {
                let cands: Vec<String> = c
                    .candidates
                    .iter()
                    .map(|x| format!("{:?}={}", x.side, x.value))
                    .collect();
                format!(
                    "{}@{:?} base={} [{}]",
                    c.field,
                    c.merge_point,
                    c.base,
                    cands.join(", ")
                )
            })
            .collect();
        format!(
            "fields={fields:?}\nheads={:?}\nconflicts={conflicts:#?}",
            view.heads
        )
    }

    /// One generated version: parent picks (none: a creation), author A (hukou side) or B
    /// (residence side), resolution when the roll is < 2, and per simulated field either keep
    /// the first parent's value or write a value.
    type Step = (Vec<prop::sample::Index>, bool, u8, Vec<Option<usize>>);

    fn arb_steps() -> impl Strategy<Value = Vec<Step>> {
        let parents = prop_oneof![
            1 => Just(Vec::new()),
            8 => prop::collection::vec(any::<prop::sample::Index>(), 1..=3),
        ];
        let step = (
            parents,
            any::<bool>(),
            0u8..10,
            prop::collection::vec(prop::option::weighted(0.4, 0usize..3), SIM_FIELDS.len()),
        );
        prop::collection::vec(step, 1..24)
    }

    fn build_dag(steps: &[Step]) -> Vec<MergeInput> {
        let mut out: Vec<MergeInput> = Vec::new();
        for (i, (picks, author_a, roll, writes)) in steps.iter().enumerate() {
            let mut parents: Vec<VersionId> = if i == 0 {
                Vec::new()
            } else {
                picks.iter().map(|p| out[p.index(i)].id).collect()
            };
            parents.dedup();
            let mut fields = match parents.first() {
                Some(p) => out.iter().find(|v| v.id == *p).unwrap().fields.clone(),
                None => record(),
            };
            for (f, w) in SIM_FIELDS.iter().zip(writes) {
                if let Some(pick) = w {
                    fields.insert(*f, sim_value(*f, *pick));
                }
            }
            out.push(MergeInput {
                id: id(&format!("v{i}")),
                parents,
                author_roles: if *author_a { HUKOU } else { RESIDENCE },
                resolution: *roll < 2,
                hlc: i as i64,
                fields,
            });
        }
        out
    }

    /// Deterministic Fisher–Yates from a seed (splitmix64).
    fn shuffled<T: Clone>(items: &[T], mut seed: u64) -> Vec<T> {
        let mut next = move || {
            seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let mut v = items.to_vec();
        for i in (1..v.len()).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
        v
    }

    /// A simulated node: what it has received, in arrival order.
    struct SimNode {
        roles: Roles,
        name: &'static str,
        versions: Vec<MergeInput>,
        known: HashSet<VersionId>,
        made: usize,
        /// For each edit or resolution on top of all heads: the view before, the version, the
        /// view after (merged in full).
        after_commit: Vec<(MergedView, MergeInput, MergedView)>,
    }

    impl SimNode {
        fn new(name: &'static str, roles: Roles) -> Self {
            SimNode {
                roles,
                name,
                versions: Vec::new(),
                known: HashSet::new(),
                made: 0,
                after_commit: Vec::new(),
            }
        }

        fn receive(&mut self, v: &MergeInput) {
            if self.known.insert(v.id) {
                self.versions.push(v.clone());
            }
        }

        fn view(&self) -> MergedView {
            merged_view(&self.versions).unwrap()
        }

        /// What the ledger does: parents are all heads, the body is the view plus the change.
        fn commit(&mut self, fields: Fields, parents: Vec<VersionId>, resolution: bool) {
            self.made += 1;
            let v = MergeInput {
                id: id(&format!("{}-{}", self.name, self.made)),
                parents,
                author_roles: self.roles,
                resolution,
                hlc: self.made as i64,
                fields,
            };
            let before = (!self.versions.is_empty()).then(|| self.view());
            self.receive(&v);
            if let Some(before) = before {
                self.after_commit.push((before, v, self.view()));
            }
        }

        /// An edit of one field, refused (skipped) as the API would refuse it.
        fn edit(&mut self, field: ChildField, value: Value) {
            if self.versions.is_empty() {
                let mut fields = record();
                fields.insert(field, value);
                self.commit(fields, Vec::new(), false);
                return;
            }
            let view = self.view();
            if !self.roles.may_change(field) || fields_under_review(&view).contains(&field) {
                return;
            }
            let mut fields = view.fields.clone();
            fields.insert(field, value);
            if fields != view.fields {
                self.commit(fields, view.heads, false);
            }
        }

        /// A reviewer's resolution of every field under review whose conflicts it owns.
        fn resolve(&mut self, pick: usize) {
            if self.versions.is_empty() {
                return;
            }
            let view = self.view();
            let owned: Vec<ChildField> = fields_under_review(&view)
                .into_iter()
                .filter(|f| owns_review(*f, self.roles))
                .collect();
            if owned.is_empty() {
                return;
            }
            let mut fields = view.fields.clone();
            for f in owned {
                fields.insert(f, sim_value(f, pick));
            }
            self.commit(fields, view.heads, true);
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Edit {
            node_a: bool,
            field: usize,
            value: usize,
        },
        Resolve {
            value: usize,
        },
        /// Send a prefix (by arrival order, so ancestor-closed) of one node's versions.
        Sync {
            from_a: bool,
            share: u8,
        },
    }

    fn arb_ops() -> impl Strategy<Value = Vec<Op>> {
        let op = prop_oneof![
            6 => (any::<bool>(), 0..SIM_FIELDS.len(), 0usize..3)
                .prop_map(|(node_a, field, value)| Op::Edit { node_a, field, value }),
            1 => (0usize..3).prop_map(|value| Op::Resolve { value }),
            3 => (any::<bool>(), 0u8..=100).prop_map(|(from_a, share)| Op::Sync { from_a, share }),
        ];
        prop::collection::vec(op, 1..40)
    }

    fn sync(from: &SimNode, to: &mut SimNode, share: u8) {
        let n = (from.versions.len() * usize::from(share)).div_ceil(100);
        for v in &from.versions[..n] {
            to.receive(v);
        }
    }

    /// Two simulated nodes, the hukou side `A` and the residence side `B`, after `ops`.
    fn simulate(ops: Vec<Op>) -> (SimNode, SimNode) {
        let mut a = SimNode::new("A", HUKOU);
        let mut b = SimNode::new("B", RESIDENCE);
        for op in ops {
            match op {
                Op::Edit {
                    node_a,
                    field,
                    value,
                } => {
                    let node = if node_a { &mut a } else { &mut b };
                    let f = SIM_FIELDS[field];
                    node.edit(f, sim_value(f, value));
                }
                Op::Resolve { value } => a.resolve(value),
                Op::Sync {
                    from_a: true,
                    share,
                } => sync(&a, &mut b, share),
                Op::Sync {
                    from_a: false,
                    share,
                } => sync(&b, &mut a, share),
            }
        }
        (a, b)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Random DAGs (creations, branches, merges, resolutions): the view does not depend on
        /// the order of the versions, and it is consistent with its own conflicts.
        #[test]
        fn the_view_does_not_depend_on_order(steps in arb_steps(), seeds in prop::collection::vec(any::<u64>(), 4)) {
            let versions = build_dag(&steps);
            let view = merged_view(&versions).unwrap();
            let mut reversed = versions.clone();
            reversed.reverse();
            let other = merged_view(&reversed).unwrap();
            prop_assert!(other == view, "reversed:\n{}\n---\n{}", dump(&other), dump(&view));
            for seed in seeds {
                let other = merged_view(&shuffled(&versions, seed)).unwrap();
                prop_assert!(other == view, "shuffled:\n{}\n---\n{}", dump(&other), dump(&view));
            }

            // Heads are exactly the versions nobody names as a parent.
            let named: HashSet<VersionId> =
                versions.iter().flat_map(|v| v.parents.iter().copied()).collect();
            let mut heads: Vec<VersionId> =
                versions.iter().map(|v| v.id).filter(|v| !named.contains(v)).collect();
            heads.sort();
            prop_assert_eq!(&view.heads, &heads);
            // Each conflict sits at a merge point, with at least two candidates, and the field
            // shows the fallback of one of its open conflicts.
            for c in &view.conflicts {
                match c.merge_point {
                    Some(m) => {
                        let v = versions.iter().find(|v| v.id == m).unwrap();
                        prop_assert!(v.parents.len() >= 2);
                    }
                    None => prop_assert!(view.heads.len() >= 2),
                }
                prop_assert!(c.candidates.len() >= 2);
                prop_assert!(view.conflicts.iter().any(|o| o.field == c.field && o.base == view.fields[&c.field]));
            }
            let mut keys: Vec<_> = view.conflicts.iter().map(|c| (c.field, c.merge_point)).collect();
            let before = keys.clone();
            keys.sort();
            keys.dedup();
            prop_assert_eq!(keys, before);
        }

        /// An edit or a resolution on top of all heads: the view derived from the view before
        /// it is the view of the whole document merged again.
        #[test]
        fn the_view_after_a_version_on_all_heads_is_the_full_merge(ops in arb_ops()) {
            let (mut a, b) = simulate(ops);
            a.resolve(1);
            for (before, v, full) in a.after_commit.iter().chain(&b.after_commit) {
                let derived = view_after(before, v);
                prop_assert!(derived.as_ref() == Some(full), "derived:\n{}\n---\nfull:\n{}",
                    derived.as_ref().map(dump).unwrap_or_default(), dump(full));
            }
        }

        /// Two nodes editing, resolving and syncing as the ledger does: once each has
        /// everything, their views are equal although their versions arrived in different
        /// orders; the only conflicts are on shared fields; and a hukou-side resolution over
        /// all heads closes them all on both nodes.
        #[test]
        fn two_nodes_converge(ops in arb_ops()) {
            let (mut a, mut b) = simulate(ops);
            prop_assume!(!a.versions.is_empty() || !b.versions.is_empty());
            sync(&a, &mut b, 100);
            sync(&b, &mut a, 100);
            let (va, vb) = (a.view(), b.view());
            prop_assert!(va == vb, "A:\n{}\n---\nB:\n{}", dump(&va), dump(&vb));
            for c in &va.conflicts {
                prop_assert_eq!(c.field.authority(), Authority::Shared, "{}", dump(&va));
            }

            a.resolve(1);
            sync(&a, &mut b, 100);
            let (va, vb) = (a.view(), b.view());
            prop_assert!(va.conflicts.is_empty(), "{}", dump(&va));
            prop_assert!(va == vb, "A:\n{}\n---\nB:\n{}", dump(&va), dump(&vb));
        }
    }
}
