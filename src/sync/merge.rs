//! The merged view of a child's file (DESIGN §3–§4): the per-field 3-way merge of a document's
//! version DAG, the open conflicts that DAG contains, and the fields under review. This module
//! owns those rules and nothing else: it is pure (no I/O, no clock), and it never looks at HLC
//! stamps or arrival order — the same *set* of versions always gives the same [`MergedView`].
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
//!    (hukou fields: a writer with `roles.hukou`; residence fields: `roles.residence`; shared
//!    fields have no authority) → that value.
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
    /// The author's HLC stamp. Carried for callers; the merge never reads it.
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
    /// Every field's value: the merge of the heads, with fallbacks for fields under open conflict.
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
        version: VersionId,
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

/// The fields under open conflict, which the API must refuse to edit. A new local edit carries
/// their values from [`MergedView::fields`], which already holds each one's fallback.
pub fn fields_under_review(view: &MergedView) -> BTreeSet<ChildField> {
    view.conflicts.iter().map(|c| c.field).collect()
}

// ---------------------------------------------------------------------------------------------
// Field rules

/// Whether a writer with `roles` is the authority of `field` (rule 3). Shared fields have none.
fn has_authority(field: ChildField, roles: Roles) -> bool {
    match field.authority() {
        Authority::Hukou => roles.hukou,
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

/// A fixed-size set of version indices.
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

        let index: HashMap<VersionId, usize> =
            order.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let n = order.len();
        let mut dag = Dag {
            versions: Vec::with_capacity(n),
            parents: Vec::with_capacity(n),
            ancestry: Vec::with_capacity(n),
            depth: Vec::with_capacity(n),
            heads: Vec::new(),
            resolutions: Vec::new(),
        };
        for (i, id) in order.iter().enumerate() {
            // Every id in `order` came from `by_id`, and every parent was checked to be in it,
            // so these lookups cannot fail; `continue`/`filter_map` only keep the code panic-free.
            let Some(v) = by_id.get(id) else { continue };
            let parents: Vec<usize> = parent_ids
                .get(id)
                .into_iter()
                .flatten()
                .filter_map(|p| index.get(p).copied())
                .collect();
            let mut ancestry = BitSet::new(n);
            ancestry.insert(i);
            let mut depth = 0;
            for &p in &parents {
                ancestry.union_with(&dag.ancestry[p]);
                depth = depth.max(dag.depth[p] + 1);
            }
            if !children.contains_key(id) {
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
    disputes: Vec<(ChildField, Value, Vec<(usize, FieldState)>)>,
}

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

    /// The base state of a merge of `sides` (all already processed).
    fn base_state(&mut self, sides: &[usize]) -> Rc<State> {
        let lowest = self.dag.lowest_common_ancestors(sides);
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

    /// Rules 1–4 for every field, merging `sides` (at least two, all already processed).
    fn merge(&mut self, sides: &[usize]) -> Merged {
        let base = self.base_state(sides);
        let mut state = Vec::with_capacity(ChildField::ALL.len());
        let mut disputes = Vec::new();
        for (i, &field) in ChildField::ALL.iter().enumerate() {
            let side_states: Vec<(usize, &FieldState)> =
                sides.iter().map(|&s| (s, &self.states[s][i])).collect();
            match merge_field(field, &base[i], &side_states) {
                FieldMerge::Clean(s) => state.push(s),
                FieldMerge::Disputed(candidates) => {
                    state.push(FieldState {
                        value: base[i].value.clone(),
                        writer: Roles::default(),
                    });
                    disputes.push((field, base[i].value.clone(), candidates));
                }
            }
        }
        Merged { state, disputes }
    }

    /// Records the disputes of merge point `at` (`None`: the head set) as conflicts; returns
    /// their indices.
    fn open_conflicts(&mut self, at: Option<usize>, sides: &[usize], merged: &Merged) -> Vec<usize> {
        let depth = match at {
            Some(v) => self.dag.depth[v],
            None => self.dag.depth.iter().max().map_or(0, |d| d + 1),
        };
        let mut opened = Vec::new();
        for (field, base, candidates) in &merged.disputes {
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
                        owns_review(*field, input.author_roles)
                            && input.fields.contains_key(field)
                            && self.dag.ancestry[r].contains(m)
                    })
                    .collect(),
            };
            opened.push(self.conflicts.len());
            self.conflicts.push(Opened {
                field: *field,
                merge_point: at,
                depth,
                merged: sides.to_vec(),
                base: base.clone(),
                candidates: candidates.clone(),
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
                let merged = self.merge(parents);
                let opened = self.open_conflicts(Some(v), parents, &merged);
                (merged.state, opened)
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

        let mut state = Vec::with_capacity(ChildField::ALL.len());
        for (i, (&field, from_parents)) in ChildField::ALL.iter().zip(merged).enumerate() {
            let own = input.fields.get(&field).filter(|value| {
                **value != from_parents.value || resolves.contains(&field)
            });
            state.push(match (self.fallback(&open, field), own) {
                (Some(fallback), _) => FieldState {
                    value: fallback.clone(),
                    writer: Roles::default(),
                },
                (None, Some(value)) => FieldState {
                    value: value.clone(),
                    writer: input.author_roles,
                },
                (None, None) => from_parents,
            });
            debug_assert_eq!(state.len(), i + 1);
        }
        self.states.push(Rc::new(state));
        self.open.push(open);
    }

    /// The view: the single head's state, or the head-set merge with rule 5 applied.
    fn view(mut self) -> MergedView {
        let dag = self.dag;
        let (state, open) = match dag.heads.as_slice() {
            [head] => ((*self.states[*head]).clone(), self.open[*head].clone()),
            heads => {
                let merged = self.merge(heads);
                let opened = self.open_conflicts(None, heads, &merged);
                let open = self.open_at(None, heads, &opened);
                let state = ChildField::ALL
                    .iter()
                    .zip(merged.state)
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
