//! RFC 9162 §2.1 (identical to RFC 6962 §2.1) Merkle tree for the
//! tamper-evident audit log, over the network's content hash ([`HashAlg`]:
//! SHA-256 as in the RFC, or SM3 for a network whose directory declares it;
//! the algorithms are the RFC's with the hash function replaced, as RFC 9162
//! §2.1 allows for other hash algorithms). Every function that hashes takes
//! the algorithm, and [`Frontier`] and [`MemoryTree`] carry it, so one process
//! holds trees of both kinds.
//!
//! This module owns, and keeps pure (no I/O, no storage):
//!
//! * the hashing rules: [`leaf_hash`] = `H(0x00 || leaf)`,
//!   [`node_hash`] = `H(0x01 || left || right)`, [`empty_root`] =
//!   `H("")`, and the Merkle Tree Hash [`root`] with the RFC split rule
//!   (`k` = largest power of two strictly less than `n`);
//! * [`Frontier`], a streaming accumulator (the "compact range" of the
//!   prefix `[0, size)`) that verifies a log of any length in one pass and
//!   yields the root at every intermediate size;
//! * the [`SubtreeSource`] abstraction over hashes of *perfect, aligned*
//!   subtrees, through which [`root_from`], [`inclusion_proof`] and
//!   [`consistency_proof`] make `O(log n)` lookups, so a store that persists
//!   those node hashes (see [`append_nodes`], [`completed_subtrees`],
//!   [`Frontier::append`]) serves proofs at millions of leaves cheaply;
//! * the verifiers [`verify_inclusion`] (RFC 9162 §2.1.3.2) and
//!   [`verify_consistency`] (RFC 9162 §2.1.4.2), written as the RFC's
//!   `fn`/`sn` bit-shifting algorithms;
//! * lower-case hex helpers [`to_hex`] / [`from_hex`] for [`Hash`].
//!
//! All hashing goes through `crypto::hash::Hasher` (`ring` for SHA-256,
//! RustCrypto's `sm3` for SM3).
//!
//! Node coordinates: the subtree at `(level, index)` covers leaves
//! `[index << level, (index + 1) << level)`; level 0 holds the leaf hashes
//! themselves.

use crate::crypto::hash::{HashAlg, Hasher};

/// A 32-byte SHA-256 or SM3 output: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// Domain-separation prefix of leaf hashes (RFC 9162 §2.1.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of interior node hashes (RFC 9162 §2.1.1).
const NODE_PREFIX: u8 = 0x01;

/// `alg` of the concatenation of `parts`.
fn hash(alg: HashAlg, parts: &[&[u8]]) -> Hash {
    let mut h = Hasher::new(alg);
    for part in parts {
        h.update(part);
    }
    h.finish().0
}

/// Leaf hash of a log entry: `H(0x00 || leaf)`.
#[must_use]
pub fn leaf_hash(alg: HashAlg, leaf: &[u8]) -> Hash {
    hash(alg, &[&[LEAF_PREFIX], leaf])
}

/// Interior node hash: `H(0x01 || left || right)`.
#[must_use]
pub fn node_hash(alg: HashAlg, left: &Hash, right: &Hash) -> Hash {
    hash(alg, &[&[NODE_PREFIX], left, right])
}

/// Root of the empty tree: `H("")`.
#[must_use]
pub fn empty_root(alg: HashAlg) -> Hash {
    hash(alg, &[])
}

/// Largest power of two strictly less than `n`. Callers guarantee `n >= 2`,
/// so `n - 1 >= 1`, its leading-zero count is at most 63 and the shift
/// amount lies in `0..=63`.
fn split_u64(n: u64) -> u64 {
    1u64 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// [`split_u64`] for slice lengths; callers guarantee `n >= 2`.
fn split_usize(n: usize) -> usize {
    1usize << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// `x >> s`, yielding 0 instead of panicking when `s >= 64`.
fn shr(x: u64, s: u32) -> u64 {
    x.checked_shr(s).unwrap_or(0)
}

/// Number of significant bits of `x` (0 for 0).
fn bit_len(x: u64) -> u32 {
    u64::BITS - x.leading_zeros()
}

/// Merkle Tree Hash (RFC 9162 §2.1.1) of a slice of LEAF HASHES (each
/// already passed through [`leaf_hash`]).
///
/// `root([]) = SHA-256("")`, `root([h]) = h`, and for `n > 1` the tree
/// splits at `k`, the largest power of two strictly less than `n`:
/// `root(h[0..n]) = node_hash(root(h[0..k]), root(h[k..n]))`.
///
/// This is the direct recursive definition (`O(n)` hashing, recursion depth
/// `O(log n)`); it serves as the reference the other algorithms are tested
/// against.
#[must_use]
pub fn root(alg: HashAlg, leaf_hashes: &[Hash]) -> Hash {
    match leaf_hashes {
        [] => empty_root(alg),
        [only] => *only,
        _ => {
            let k = split_usize(leaf_hashes.len());
            // Invariant: len >= 2 here, so 1 <= k < len and `split_at`
            // (which panics only when k > len) cannot panic.
            let (left, right) = leaf_hashes.split_at(k);
            node_hash(alg, &root(alg, left), &root(alg, right))
        }
    }
}

/// Right-fold of the hashes of consecutive perfect subtrees, ordered from
/// the leftmost (largest) to the rightmost (smallest): the RFC 9162 hash of
/// the range they cover. `None` when `peaks` is empty.
fn fold_peaks(alg: HashAlg, peaks: &[Hash]) -> Option<Hash> {
    let (last, rest) = peaks.split_last()?;
    Some(
        rest.iter()
            .rev()
            .fold(*last, |acc, peak| node_hash(alg, peak, &acc)),
    )
}

// ---------------------------------------------------------------------------
// Frontier
// ---------------------------------------------------------------------------

/// The hash of one perfect aligned subtree at `(level, index)`, covering
/// leaves `[index << level, (index + 1) << level)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SubtreeHash {
    /// Height of the subtree; 0 for a single leaf.
    pub level: u32,
    /// Position of the subtree among those of the same level.
    pub index: u64,
    /// Merkle Tree Hash of the subtree.
    pub hash: Hash,
}

/// Error of [`Frontier::from_peaks`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrontierError {
    /// A frontier of `size` leaves has exactly one peak per set bit of
    /// `size`.
    #[error("a frontier of size {size} has {expected} peaks, but {actual} were given")]
    PeakCountMismatch {
        /// The claimed tree size.
        size: u64,
        /// `size.count_ones()`.
        expected: usize,
        /// Number of peaks supplied.
        actual: usize,
    },
}

/// Streaming Merkle accumulator (a "compact range" of `[0, size)`).
///
/// It keeps the hashes of the perfect aligned subtrees ("peaks") whose
/// concatenation is the current tree: one per set bit of `size`, largest
/// (leftmost) first. [`push`](Frontier::push) costs amortised one
/// [`node_hash`] (at most `log2(size)`), [`root`](Frontier::root) costs
/// `popcount(size) - 1` hashes, and memory is `O(log n)`. Pushing every leaf
/// of a 1,000,000-entry log and checking [`root`](Frontier::root) at any
/// number of intermediate sizes is therefore a single linear pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frontier {
    /// The hash of every node.
    alg: HashAlg,
    size: u64,
    /// Invariant: `peaks.len() == size.count_ones()`, and `peaks[i]` is the
    /// subtree for the i-th set bit of `size`, counted from the top.
    peaks: Vec<Hash>,
}

impl Frontier {
    /// An empty accumulator (size 0, root [`empty_root`]).
    #[must_use]
    pub fn new(alg: HashAlg) -> Self {
        Self {
            alg,
            size: 0,
            peaks: Vec::new(),
        }
    }

    /// Rebuilds a frontier from previously saved [`peaks`](Frontier::peaks).
    ///
    /// # Errors
    /// [`FrontierError::PeakCountMismatch`] if `peaks.len()` differs from
    /// `size.count_ones()`.
    pub fn from_peaks(alg: HashAlg, size: u64, peaks: Vec<Hash>) -> Result<Self, FrontierError> {
        let expected = size.count_ones() as usize;
        if peaks.len() != expected {
            return Err(FrontierError::PeakCountMismatch {
                size,
                expected,
                actual: peaks.len(),
            });
        }
        Ok(Self { alg, size, peaks })
    }

    /// Rebuilds the frontier of the first `size` leaves from stored subtree
    /// hashes, with `popcount(size)` calls to `src`.
    ///
    /// # Errors
    /// [`ProofError::Source`] if the source cannot supply a subtree.
    pub fn from_source<S: SubtreeSource + ?Sized>(
        alg: HashAlg,
        src: &S,
        size: u64,
    ) -> Result<Self, ProofError<S::Error>> {
        let peaks = range_peaks(src, 0, size).map_err(ProofError::Source)?;
        Ok(Self { alg, size, peaks })
    }

    /// Appends one leaf hash (already passed through [`leaf_hash`]).
    pub fn push(&mut self, leaf_hash: Hash) {
        self.push_inner(leaf_hash, |_| {});
    }

    /// Appends one leaf hash and returns the perfect aligned subtrees of
    /// level >= 1 that this append completes (those listed by
    /// [`completed_subtrees`] for the new leaf's index), lowest level first,
    /// with their hashes, so a store can persist them incrementally:
    /// amortised one node per append.
    pub fn append(&mut self, leaf_hash: Hash) -> Vec<SubtreeHash> {
        let mut nodes = Vec::new();
        self.push_inner(leaf_hash, |n| nodes.push(n));
        nodes
    }

    fn push_inner(&mut self, leaf_hash: Hash, mut emit: impl FnMut(SubtreeHash)) {
        let index = self.size;
        let mut hash = leaf_hash;
        // Leaf `index` completes one subtree per trailing one bit of
        // `index`; each merges with the rightmost peak.
        for level in 1..=index.trailing_ones() {
            let Some(left) = self.peaks.pop() else {
                // Unreachable: by the `peaks` invariant there is one peak per
                // set bit of `size`, hence at least `trailing_ones` of them.
                break;
            };
            hash = node_hash(self.alg, &left, &hash);
            emit(SubtreeHash {
                level,
                index: shr(index, level),
                hash,
            });
        }
        self.peaks.push(hash);
        // Cannot overflow: 2^64 appends are physically out of reach.
        self.size += 1;
    }

    /// Number of leaves pushed so far.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The hash of its nodes.
    #[must_use]
    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    /// Root (Merkle Tree Hash) of the leaves pushed so far; [`empty_root`]
    /// when none. `O(log n)` hashes.
    #[must_use]
    pub fn root(&self) -> Hash {
        fold_peaks(self.alg, &self.peaks).unwrap_or_else(|| empty_root(self.alg))
    }

    /// Hashes of the perfect subtrees making up the current tree, leftmost
    /// (largest) first; one per set bit of [`size`](Frontier::size). Saving
    /// them with the size allows resuming with [`Frontier::from_peaks`].
    #[must_use]
    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }
}

// ---------------------------------------------------------------------------
// Subtree sources
// ---------------------------------------------------------------------------

/// Source of hashes of PERFECT, ALIGNED subtrees.
///
/// The subtree at `level` (0 = leaves) and `index` covers leaves
/// `[index << level, (index + 1) << level)`. The storage layer implements it
/// by a table of stored node hashes (filled with [`append_nodes`] or
/// [`Frontier::append`]) so that proofs at 1,000,000 leaves take
/// `O(log n)` lookups instead of `O(n)` hashing. `[Hash]` (a slice of leaf
/// hashes) and [`MemoryTree`] implement it for tests and small logs.
pub trait SubtreeSource {
    /// Lookup failure (missing node, storage error, ...).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Hash of the perfect subtree at `(level, index)`.
    ///
    /// # Errors
    /// When that subtree is not (yet) available.
    fn subtree(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

impl<S: SubtreeSource + ?Sized> SubtreeSource for &S {
    type Error = S::Error;

    fn subtree(&self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        (**self).subtree(level, index)
    }
}

/// A requested perfect subtree is not available from the source: it
/// reaches past the leaves held, or cannot be addressed at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("subtree (level {level}, index {index}) is not available from a source of {leaves} leaves")]
pub struct SubtreeUnavailable {
    /// Requested level.
    pub level: u32,
    /// Requested index within that level.
    pub index: u64,
    /// Number of leaves the source holds.
    pub leaves: u64,
}

/// Leaf range `[start, end)` covered by the subtree at `(level, index)`, or
/// `None` if it is not addressable with 64-bit leaf positions.
fn subtree_span(level: u32, index: u64) -> Option<(u64, u64)> {
    let width = 1u64.checked_shl(level)?;
    let start = index.checked_mul(width)?;
    let end = start.checked_add(width)?;
    Some((start, end))
}

/// Computes each subtree from the leaf hashes: `O(2^level)` hashing per
/// call, so proofs cost `O(n)` overall. Meant for tests and small logs.
/// Leaf hashes in memory, with the hash their subtrees are computed with: the reference
/// source (every subtree recomputed from its leaves).
#[derive(Clone, Copy, Debug)]
pub struct Leaves<'a> {
    pub alg: HashAlg,
    pub hashes: &'a [Hash],
}

impl SubtreeSource for Leaves<'_> {
    type Error = SubtreeUnavailable;

    fn subtree(&self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        let unavailable = SubtreeUnavailable {
            level,
            index,
            leaves: self.hashes.len() as u64,
        };
        let (start, end) = subtree_span(level, index).ok_or(unavailable)?;
        let start = usize::try_from(start).map_err(|_| unavailable)?;
        let end = usize::try_from(end).map_err(|_| unavailable)?;
        let leaves = self.hashes.get(start..end).ok_or(unavailable)?;
        Ok(root(self.alg, leaves))
    }
}

/// An in-memory table of every perfect aligned subtree hash of a growing
/// log: the reference model of what the storage layer persists. Lookups are
/// `O(1)`; memory is about `2n` hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryTree {
    /// `levels[l][i]` is the hash of the subtree at `(l, i)`.
    levels: Vec<Vec<Hash>>,
    frontier: Frontier,
}

impl MemoryTree {
    /// An empty tree.
    #[must_use]
    pub fn new(alg: HashAlg) -> Self {
        Self {
            levels: Vec::new(),
            frontier: Frontier::new(alg),
        }
    }

    /// A tree holding `leaf_hashes`.
    #[must_use]
    pub fn from_leaves(alg: HashAlg, leaf_hashes: &[Hash]) -> Self {
        let mut tree = Self::new(alg);
        for leaf in leaf_hashes {
            tree.push(*leaf);
        }
        tree
    }

    /// Appends a leaf hash, stores the subtrees it completes and returns
    /// them (level >= 1, lowest first).
    pub fn push(&mut self, leaf_hash: Hash) -> Vec<SubtreeHash> {
        let index = self.frontier.size();
        let nodes = self.frontier.append(leaf_hash);
        let leaf = SubtreeHash {
            level: 0,
            index,
            hash: leaf_hash,
        };
        for node in std::iter::once(&leaf).chain(&nodes) {
            let level = node.level as usize;
            while self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            if let Some(row) = self.levels.get_mut(level) {
                // Nodes of one level complete left to right, so this push
                // lands at `node.index`.
                row.push(node.hash);
            }
        }
        nodes
    }

    /// Number of leaves.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// Root of the whole tree.
    #[must_use]
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// The hash of its nodes.
    #[must_use]
    pub fn alg(&self) -> HashAlg {
        self.frontier.alg()
    }
}

impl SubtreeSource for MemoryTree {
    type Error = SubtreeUnavailable;

    fn subtree(&self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        let unavailable = SubtreeUnavailable {
            level,
            index,
            leaves: self.size(),
        };
        let row = self.levels.get(level as usize).ok_or(unavailable)?;
        let i = usize::try_from(index).map_err(|_| unavailable)?;
        row.get(i).copied().ok_or(unavailable)
    }
}

/// The perfect aligned subtrees, as `(level, index)`, that become complete
/// when leaf number `index` (0-based) is appended: one per trailing one bit
/// of `index`, lowest level first, all of level >= 1. A store persisting
/// these on every append holds every perfect subtree; that is amortised one
/// node per append.
pub fn completed_subtrees(index: u64) -> impl Iterator<Item = (u32, u64)> {
    (1..=index.trailing_ones()).map(move |level| (level, shr(index, level)))
}

/// The new node hashes to store when leaf number `index` with hash
/// `leaf_hash` is appended, computed from the nodes already stored: for
/// each of [`completed_subtrees`]`(index)` it looks up the left sibling of
/// the node below (`trailing_ones(index)` lookups, amortised one).
///
/// `src` must supply the perfect subtrees of the leaves before `index`
/// (the leaf itself need not be stored yet). [`Frontier::append`] gives the
/// same result from in-memory state without lookups.
///
/// # Errors
/// The source's error if a needed sibling is missing.
pub fn append_nodes<S: SubtreeSource + ?Sized>(
    alg: HashAlg,
    src: &S,
    index: u64,
    leaf_hash: Hash,
) -> Result<Vec<SubtreeHash>, S::Error> {
    let mut nodes = Vec::new();
    let mut hash = leaf_hash;
    for level in 1..=index.trailing_ones() {
        let child_level = level - 1;
        // The node below is a right child (its index is odd), so its left
        // sibling has index `^ 1`.
        let left = src.subtree(child_level, shr(index, child_level) ^ 1)?;
        hash = node_hash(alg, &left, &hash);
        nodes.push(SubtreeHash {
            level,
            index: shr(index, level),
            hash,
        });
    }
    Ok(nodes)
}

// ---------------------------------------------------------------------------
// Proof generation
// ---------------------------------------------------------------------------

/// Error of the proof generators and of [`root_from`].
#[derive(Debug, thiserror::Error)]
pub enum ProofError<E> {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange {
        /// Requested leaf index.
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// An inclusion proof was requested in a tree of size 0.
    #[error("the tree of size 0 contains no leaves")]
    EmptyTree,
    /// A consistency proof was requested from a larger to a smaller tree.
    #[error("old tree size {old_size} is greater than new tree size {new_size}")]
    OldSizeGreater {
        /// Size of the older tree.
        old_size: u64,
        /// Size of the newer tree.
        new_size: u64,
    },
    /// The subtree source failed.
    #[error("subtree source failed")]
    Source(#[source] E),
}

/// Hashes of the perfect aligned subtrees tiling `[start, start + len)`,
/// largest first. `start` must be a multiple of the smallest power of two
/// `>= len` — true of every subtree in the RFC 9162 recursion — so every
/// piece is aligned. `popcount(len)` calls to `src`.
fn range_peaks<S: SubtreeSource + ?Sized>(
    src: &S,
    start: u64,
    len: u64,
) -> Result<Vec<Hash>, S::Error> {
    let mut peaks = Vec::with_capacity(len.count_ones() as usize);
    let mut offset = start;
    for level in (0..u64::BITS).rev() {
        if (len >> level) & 1 == 1 {
            peaks.push(src.subtree(level, offset >> level)?);
            offset += 1u64 << level;
        }
    }
    Ok(peaks)
}

/// Merkle Tree Hash of leaves `[start, start + len)`, `len >= 1`, for a
/// range arising in the RFC 9162 recursion (see [`range_peaks`]).
fn range_root<S: SubtreeSource + ?Sized>(
    alg: HashAlg,
    src: &S,
    start: u64,
    len: u64,
) -> Result<Hash, ProofError<S::Error>> {
    let peaks = range_peaks(src, start, len).map_err(ProofError::Source)?;
    Ok(fold_peaks(alg, &peaks).unwrap_or_else(|| empty_root(alg)))
}

/// Root of the tree of the first `size` leaves, from `popcount(size)`
/// perfect aligned subtrees of `src` ([`empty_root`] for size 0).
///
/// # Errors
/// [`ProofError::Source`] if the source cannot supply a subtree.
pub fn root_from<S: SubtreeSource + ?Sized>(
    alg: HashAlg,
    src: &S,
    size: u64,
) -> Result<Hash, ProofError<S::Error>> {
    if size == 0 {
        return Ok(empty_root(alg));
    }
    range_root(alg, src, 0, size)
}

/// Number of hashes in the inclusion proof of leaf `index` in a tree of
/// `size` leaves (the leaf's depth); 0 when `index >= size`.
#[must_use]
pub fn inclusion_proof_len(index: u64, size: u64) -> usize {
    if index >= size {
        return 0;
    }
    let inner = bit_len(index ^ (size - 1));
    let border = shr(index, inner).count_ones();
    (inner + border) as usize
}

/// Number of hashes in the consistency proof from `old_size` to `new_size`;
/// 0 when `old_size == 0` or `old_size >= new_size`.
#[must_use]
pub fn consistency_proof_len(old_size: u64, new_size: u64) -> usize {
    if old_size == 0 || old_size >= new_size {
        return 0;
    }
    let shift = old_size.trailing_zeros();
    let inner = bit_len((old_size - 1) ^ (new_size - 1));
    let border = shr(old_size - 1, inner).count_ones();
    let seed = u32::from(!old_size.is_power_of_two());
    (inner.saturating_sub(shift) + border + seed) as usize
}

/// RFC 9162 §2.1.3.1 inclusion proof (audit path) of leaf `index` in the
/// tree of the first `size` leaves: `PATH(m, D[n])`, sibling hashes from the
/// leaf upwards. `O(log n)` calls to `src`.
///
/// # Errors
/// [`ProofError::EmptyTree`] for size 0, [`ProofError::IndexOutOfRange`]
/// when `index >= size`, [`ProofError::Source`] if a subtree is missing.
pub fn inclusion_proof<S: SubtreeSource + ?Sized>(
    alg: HashAlg,
    src: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if size == 0 {
        return Err(ProofError::EmptyTree);
    }
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // Walk down from the root; the current subtree is D[start, start + n)
    // and `m` the leaf's offset in it. Siblings are collected top-down.
    let mut path = Vec::with_capacity(inclusion_proof_len(index, size));
    let (mut start, mut n, mut m) = (0u64, size, index);
    while n > 1 {
        let k = split_u64(n);
        if m < k {
            path.push(range_root(alg, src, start + k, n - k)?);
            n = k;
        } else {
            path.push(range_root(alg, src, start, k)?);
            start += k;
            m -= k;
            n -= k;
        }
    }
    path.reverse();
    Ok(path)
}

/// RFC 9162 §2.1.4.1 consistency proof between the trees of the first
/// `old_size` and `new_size` leaves: `PROOF(m, D[n]) = SUBPROOF(m, D[n],
/// true)`. Empty when `old_size == 0` or `old_size == new_size`.
/// `O(log n)` calls to `src`.
///
/// # Errors
/// [`ProofError::OldSizeGreater`] when `old_size > new_size`,
/// [`ProofError::Source`] if a subtree is missing.
pub fn consistency_proof<S: SubtreeSource + ?Sized>(
    alg: HashAlg,
    src: &S,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if old_size > new_size {
        return Err(ProofError::OldSizeGreater { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[start, start + n), b), unrolled; appended hashes are
    // collected top-down and reversed at the end.
    let mut path = Vec::with_capacity(consistency_proof_len(old_size, new_size));
    let (mut start, mut n, mut m, mut whole_old_tree) = (0u64, new_size, old_size, true);
    loop {
        if m == n {
            if !whole_old_tree {
                path.push(range_root(alg, src, start, n)?);
            }
            break;
        }
        let k = split_u64(n);
        if m <= k {
            path.push(range_root(alg, src, start + k, n - k)?);
            n = k;
        } else {
            path.push(range_root(alg, src, start, k)?);
            start += k;
            m -= k;
            n -= k;
            whole_old_tree = false;
        }
    }
    path.reverse();
    Ok(path)
}

// ---------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------

/// Why a proof failed to verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Inclusion in a tree of size 0 is never provable.
    #[error("the tree of size 0 contains no leaves")]
    SizeZero,
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange {
        /// Claimed leaf index.
        index: u64,
        /// Claimed tree size.
        size: u64,
    },
    /// The old tree size exceeds the new one.
    #[error("old tree size {old_size} is greater than new tree size {new_size}")]
    OldSizeGreater {
        /// Claimed old size.
        old_size: u64,
        /// Claimed new size.
        new_size: u64,
    },
    /// The proof does not have the length these sizes call for.
    #[error("proof has {actual} hashes, expected {expected}")]
    WrongProofLength {
        /// Length required by the claimed index and sizes.
        expected: usize,
        /// Length supplied.
        actual: usize,
    },
    /// The root computed from the leaf hash and inclusion proof differs
    /// from the expected root.
    #[error("inclusion proof does not lead to the expected root")]
    RootMismatch,
    /// The old root computed from the consistency proof differs from the
    /// supplied old root; for `old_size == 0`, the supplied old root is not
    /// [`empty_root`].
    #[error("consistency proof does not match the old root")]
    OldRootMismatch,
    /// The new root computed from the consistency proof differs from the
    /// supplied new root; for `old_size == new_size`, the two roots differ.
    #[error("consistency proof does not match the new root")]
    NewRootMismatch,
}

/// Verifies an inclusion proof as RFC 9162 §2.1.3.2: that `leaf_hash` is
/// leaf `index` of the tree of `size` leaves whose root is `root`.
///
/// As in the RFC, the proof binds the leaf to `root` but `root` alone does
/// not pin `size`: a proof can also verify for another size in which the
/// leaf's audit path has the same shape (e.g. leaf 0 of 4 and leaf 0 of 3).
/// Take `size` and `root` together from one signed tree head.
///
/// # Errors
/// [`VerifyError::SizeZero`], [`VerifyError::IndexOutOfRange`],
/// [`VerifyError::WrongProofLength`] or [`VerifyError::RootMismatch`].
pub fn verify_inclusion(
    alg: HashAlg,
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), VerifyError> {
    // Step 1.
    if size == 0 {
        return Err(VerifyError::SizeZero);
    }
    if index >= size {
        return Err(VerifyError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    let wrong_length = VerifyError::WrongProofLength {
        expected,
        actual: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }
    // Steps 2-3.
    let mut fn_ = index;
    let mut sn = size - 1;
    let mut r = *leaf_hash;
    // Step 4.
    for p in proof {
        if sn == 0 {
            return Err(wrong_length);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(alg, p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(alg, &r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 5.
    if sn != 0 {
        return Err(wrong_length);
    }
    if r != *root {
        return Err(VerifyError::RootMismatch);
    }
    Ok(())
}

/// Verifies a consistency proof as RFC 9162 §2.1.4.2: that the tree of
/// `new_size` leaves with root `new_root` extends the tree of `old_size`
/// leaves with root `old_root`.
///
/// Edge cases (outside the RFC's `0 < first < second`): equal sizes need an
/// empty proof and equal roots; `old_size == 0` needs an empty proof and
/// `old_root == empty_root()`, and then any `new_root` is consistent.
///
/// # Errors
/// [`VerifyError::OldSizeGreater`], [`VerifyError::WrongProofLength`],
/// [`VerifyError::OldRootMismatch`] or [`VerifyError::NewRootMismatch`].
pub fn verify_consistency(
    alg: HashAlg,
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), VerifyError> {
    if old_size > new_size {
        return Err(VerifyError::OldSizeGreater { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        if !proof.is_empty() {
            return Err(VerifyError::WrongProofLength {
                expected: 0,
                actual: proof.len(),
            });
        }
        if old_size == 0 && *old_root != empty_root(alg) {
            return Err(VerifyError::OldRootMismatch);
        }
        if old_size == new_size && old_root != new_root {
            return Err(VerifyError::NewRootMismatch);
        }
        return Ok(());
    }
    let expected = consistency_proof_len(old_size, new_size);
    let wrong_length = VerifyError::WrongProofLength {
        expected,
        actual: proof.len(),
    };
    // Step 1 (an empty proof fails) is subsumed: `expected >= 1` here.
    if proof.len() != expected || proof.is_empty() {
        return Err(wrong_length);
    }
    // Step 2: if `first` is an exact power of two, `first_hash` is
    // (virtually) prepended to the path.
    let (seed, rest) = if old_size.is_power_of_two() {
        (old_root, proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (first, rest),
            None => return Err(wrong_length),
        }
    };
    // Steps 3-4.
    let mut fn_ = old_size - 1;
    let mut sn = new_size - 1;
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 5.
    let mut fr = *seed;
    let mut sr = *seed;
    // Step 6.
    for c in rest {
        if sn == 0 {
            return Err(wrong_length);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(alg, c, &fr);
            sr = node_hash(alg, c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(alg, &sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 7.
    if sn != 0 {
        return Err(wrong_length);
    }
    if fr != *old_root {
        return Err(VerifyError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(VerifyError::NewRootMismatch);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Hex
// ---------------------------------------------------------------------------

/// Error of [`from_hex`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    /// The text is not exactly 64 characters long.
    #[error("a hash in hex has 64 characters, got {actual}")]
    WrongLength {
        /// Length of the given text in bytes.
        actual: usize,
    },
    /// A character is not a lower-case hex digit.
    #[error("byte {position} of the hash text is not a lower-case hex digit")]
    InvalidDigit {
        /// 0-based byte offset of the offending character.
        position: usize,
    },
}

/// Lower-case hex text of a hash (64 characters): the crate's one spelling of a digest.
#[must_use]
pub fn to_hex(hash: &Hash) -> String {
    crate::domain::digest::to_hex(hash)
}

/// Parses exactly 64 lower-case hex characters (strict, the crate's digest text form: no upper
/// case, prefix or whitespace), through the crate's one hex parser.
///
/// # Errors
/// [`HexError::WrongLength`] or [`HexError::InvalidDigit`].
pub fn from_hex(text: &str) -> Result<Hash, HexError> {
    use crate::domain::digest::{Digest, DigestParseError};
    match text.parse::<Digest>() {
        Ok(d) => Ok(d.0),
        Err(DigestParseError::WrongLength(actual)) => Err(HexError::WrongLength { actual }),
        Err(DigestParseError::InvalidCharacter { index, .. }) => {
            Err(HexError::InvalidDigit { position: index })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC's hash: every published vector is SHA-256.
    const S: HashAlg = HashAlg::Sha256;

    fn lv(hashes: &[Hash]) -> Leaves<'_> {
        Leaves { alg: S, hashes }
    }
    use proptest::prelude::*;
    use std::cell::Cell;

    // -----------------------------------------------------------------------
    // Published RFC 6962 test vectors.
    //
    // Source: github.com/transparency-dev/merkle (Go), files
    //   * testonly/constants.go      LeafInputs, NodeHashes, RootHashes,
    //                                EmptyRootHash
    //   * proof/verify_test.go       inclusionProofs, consistencyProofs,
    //                                roots, the corrupt*Proof probes and
    //                                TestVerifyConsistency edge cases
    //   * proof/proof_test.go        TestInclusion / TestConsistency node
    //                                lists (node ids), rendered here as
    //                                hashes over NodeHashes
    //   * rfc6962/rfc6962_test.go    TestRFC6962Hasher
    // The same leaves, node hashes and roots appear in
    // github.com/google/trillian merkle/testonly/constants.go; they
    // originate in Google's certificate-transparency merkle_tree_test.cc.
    // -----------------------------------------------------------------------

    fn h(s: &str) -> Hash {
        from_hex(s).expect("valid vector hex")
    }

    const LEAF_INPUTS: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ];

    /// RootHashes(): index = tree size.
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    /// NodeHashes(): `[level][index]` of every perfect subtree of the
    /// 8-leaf tree.
    const NODE_HASHES: [&[&str]; 4] = [
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
            "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
        ],
        &[
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        ],
        &[
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
        &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
    ];

    /// verify_test.go `inclusionProofs`: (1-based leaf number, tree size,
    /// proof). The `{0, 0, nil}` entry ("an invalid path") is covered by
    /// `inclusion_parameter_errors`.
    const INCLUSION_PROOFS: &[(u64, u64, &[&str])] = &[
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            3,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            2,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];

    /// verify_test.go `consistencyProofs`: (size1, size2, proof).
    const CONSISTENCY_PROOFS: &[(u64, u64, &[&str])] = &[
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            6,
            7,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];

    /// verify_test.go `sha256SomeHash`.
    const SOME_HASH: &str = "abacaba000000000000000000000000000000000000000000060061e00123456";

    fn vector_leaves() -> Vec<Hash> {
        LEAF_INPUTS.iter().map(|l| leaf_hash(S, l)).collect()
    }

    fn vector_root(size: u64) -> Hash {
        h(ROOTS[size as usize])
    }

    fn hashes(list: &[&str]) -> Vec<Hash> {
        list.iter().map(|s| h(s)).collect()
    }

    /// NodeHashes()[level][index].
    fn nh(level: usize, index: usize) -> Hash {
        h(NODE_HASHES[level][index])
    }

    /// The same algorithms over SM3: the hashing rules are RFC 9162's with SM3 in place of
    /// SHA-256 (checked against `Digest::sm3_of`, itself tested on GB/T 32905's examples), the
    /// trees differ from SHA-256's, and a proof verifies only under the hash it was made with.
    #[test]
    fn sm3_trees_differ_and_proofs_bind_the_hash() {
        use crate::crypto::hash::Digest;
        const SM3: HashAlg = HashAlg::Sm3;
        assert_eq!(
            to_hex(&empty_root(SM3)),
            "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b"
        );
        assert_eq!(leaf_hash(SM3, b"L"), Digest::sm3_of(b"\x00L").0);
        let (a, b) = (leaf_hash(SM3, b"a"), leaf_hash(SM3, b"b"));
        assert_eq!(
            node_hash(SM3, &a, &b),
            Digest::sm3_of(&[&[1u8][..], &a, &b].concat()).0
        );
        let data: Vec<Vec<u8>> = (0u32..13).map(|i| i.to_be_bytes().to_vec()).collect();
        let sm3_leaves: Vec<Hash> = data.iter().map(|d| leaf_hash(SM3, d)).collect();
        let sha_leaves: Vec<Hash> = data.iter().map(|d| leaf_hash(S, d)).collect();
        assert_ne!(sm3_leaves, sha_leaves);
        let sm3_tree = MemoryTree::from_leaves(SM3, &sm3_leaves);
        let sha_tree = MemoryTree::from_leaves(S, &sha_leaves);
        assert_eq!(sm3_tree.alg(), SM3);
        assert_ne!(sm3_tree.root(), sha_tree.root());
        assert_eq!(sm3_tree.root(), root(SM3, &sm3_leaves));
        let src = Leaves {
            alg: SM3,
            hashes: &sm3_leaves,
        };
        for size in 1..=13u64 {
            assert_eq!(
                root_from(SM3, &sm3_tree, size).unwrap(),
                root(SM3, &sm3_leaves[..size as usize])
            );
            assert_eq!(
                root_from(SM3, &src, size).unwrap(),
                root(SM3, &sm3_leaves[..size as usize])
            );
        }
        let full = sm3_tree.root();
        for index in 0..13u64 {
            let proof = inclusion_proof(SM3, &sm3_tree, index, 13).unwrap();
            let leaf = &sm3_leaves[index as usize];
            verify_inclusion(SM3, leaf, index, 13, &proof, &full).unwrap();
            // The same proof under SHA-256 leads to another root (13 leaves: every path has
            // at least one hash to fold).
            assert_eq!(
                verify_inclusion(S, leaf, index, 13, &proof, &full),
                Err(VerifyError::RootMismatch)
            );
        }
        for old in 1..13u64 {
            let proof = consistency_proof(SM3, &sm3_tree, old, 13).unwrap();
            let old_root = root_from(SM3, &sm3_tree, old).unwrap();
            verify_consistency(SM3, old, 13, &old_root, &full, &proof).unwrap();
            assert!(verify_consistency(S, old, 13, &old_root, &full, &proof).is_err());
        }
        // An SM3 frontier over SHA-256 leaves is not the SHA-256 tree.
        let mut f = Frontier::new(SM3);
        for l in &sha_leaves {
            f.push(*l);
        }
        assert_ne!(f.root(), sha_tree.root());
        assert_eq!(
            verify_consistency(S, 0, 0, &empty_root(SM3), &empty_root(SM3), &[]),
            Err(VerifyError::OldRootMismatch)
        );
    }

    #[test]
    fn rfc6962_hasher_vectors() {
        // rfc6962_test.go TestRFC6962Hasher.
        assert_eq!(to_hex(&empty_root(S)), ROOTS[0]);
        assert_eq!(
            to_hex(&leaf_hash(S, b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_eq!(
            to_hex(&leaf_hash(S, b"L123456")),
            "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
        );
        // HashChildren("N123", "N456"): children that are not 32 bytes, so
        // through the private primitive `node_hash` is built on.
        assert_eq!(
            to_hex(&hash(S, &[&[NODE_PREFIX], b"N123", b"N456"])),
            "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
        );
        // And node_hash itself on 32-byte children: node (1, 0) from leaves.
        let leaves = vector_leaves();
        assert_eq!(node_hash(S, &leaves[0], &leaves[1]), nh(1, 0));
    }

    #[test]
    fn published_roots_for_every_size() {
        let leaves = vector_leaves();
        let tree = MemoryTree::from_leaves(S, &leaves);
        let mut frontier = Frontier::new(S);
        assert_eq!(frontier.root(), vector_root(0));
        assert_eq!(root(S, &[]), vector_root(0));
        assert_eq!(empty_root(S), vector_root(0));
        for size in 0..=8u64 {
            let want = vector_root(size);
            let prefix = &leaves[..size as usize];
            assert_eq!(root(S, prefix), want, "root(S, ) size {size}");
            assert_eq!(
                root_from(S, &lv(prefix), size).unwrap(),
                want,
                "root_from(S, slice) {size}"
            );
            assert_eq!(
                root_from(S, &lv(&leaves[..]), size).unwrap(),
                want,
                "root_from(S, all) {size}"
            );
            assert_eq!(
                root_from(S, &tree, size).unwrap(),
                want,
                "root_from(S, tree) {size}"
            );
            assert_eq!(
                Frontier::from_source(S, &tree, size).unwrap().root(),
                want,
                "Frontier::from_source {size}"
            );
            assert_eq!(frontier.size(), size);
            assert_eq!(frontier.root(), want, "Frontier {size}");
            if let Some(leaf) = leaves.get(size as usize) {
                frontier.push(*leaf);
            }
        }
    }

    #[test]
    fn published_node_hashes() {
        let leaves = vector_leaves();
        let tree = MemoryTree::from_leaves(S, &leaves);
        for (level, row) in NODE_HASHES.iter().enumerate() {
            for (index, want) in row.iter().enumerate() {
                let (level, index) = (level as u32, index as u64);
                assert_eq!(to_hex(&tree.subtree(level, index).unwrap()), *want);
                assert_eq!(to_hex(&lv(&leaves).subtree(level, index).unwrap()), *want);
            }
        }
    }

    #[test]
    fn published_compact_trees() {
        // testonly/constants.go CompactTrees(): the frontier peaks per size.
        let c = |l, i| nh(l, i);
        let want: [Vec<Hash>; 9] = [
            vec![],
            vec![c(0, 0)],
            vec![c(1, 0)],
            vec![c(1, 0), c(0, 2)],
            vec![c(2, 0)],
            vec![c(2, 0), c(0, 4)],
            vec![c(2, 0), c(1, 2)],
            vec![c(2, 0), c(1, 2), c(0, 6)],
            vec![c(3, 0)],
        ];
        let mut frontier = Frontier::new(S);
        for (size, leaf) in vector_leaves().into_iter().enumerate() {
            assert_eq!(frontier.peaks(), want[size].as_slice(), "size {size}");
            frontier.push(leaf);
        }
        assert_eq!(frontier.peaks(), want[8].as_slice());
    }

    /// A corrupted verification input: (description, index or size1, size
    /// or size2, root or root1, leaf or root2, proof).
    type Probe = (&'static str, u64, u64, Hash, Hash, Vec<Hash>);

    /// verify_test.go corruptInclusionProof: every probe must fail.
    fn assert_inclusion_probes_fail(
        index: u64,
        size: u64,
        proof: &[Hash],
        root: &Hash,
        leaf: &Hash,
    ) {
        let some = h(SOME_HASH);
        let garbage = [0u8; 32];
        let mut probes: Vec<Probe> = vec![
            (
                "index - 1",
                index.wrapping_sub(1),
                size,
                *root,
                *leaf,
                proof.to_vec(),
            ),
            ("index + 1", index + 1, size, *root, *leaf, proof.to_vec()),
            ("index ^ 2", index ^ 2, size, *root, *leaf, proof.to_vec()),
            ("size * 2", index, size * 2, *root, *leaf, proof.to_vec()),
            ("size / 2", index, size / 2, *root, *leaf, proof.to_vec()),
            (
                "wrong leaf",
                index,
                size,
                *root,
                leaf_hash(S, b"WrongLeaf"),
                proof.to_vec(),
            ),
            (
                "empty root",
                index,
                size,
                empty_root(S),
                *leaf,
                proof.to_vec(),
            ),
            ("random root", index, size, some, *leaf, proof.to_vec()),
        ];
        let mut with = |desc, p: Vec<Hash>| probes.push((desc, index, size, *root, *leaf, p));
        with("trailing garbage", [proof, &[garbage]].concat());
        with("trailing root", [proof, &[*root]].concat());
        with("preceding garbage", [&[garbage], proof].concat());
        with("preceding root", [&[*root], proof].concat());
        for i in 0..proof.len() {
            let mut p = proof.to_vec();
            p[i][0] ^= 8;
            with("modified proof bit 3", p);
        }
        if let Some((_, init)) = proof.split_last() {
            with("removed component", init.to_vec());
        }
        if proof.len() > 1 {
            with(
                "inserted component",
                [&[proof[0], some], &proof[1..]].concat(),
            );
        }
        for (desc, i, s, r, l, p) in probes {
            assert!(
                verify_inclusion(S, &l, i, s, &p, &r).is_err(),
                "probe {desc:?} verified for leaf {index} of {size}"
            );
        }
    }

    #[test]
    fn published_inclusion_proofs() {
        let leaves = vector_leaves();
        let tree = MemoryTree::from_leaves(S, &leaves);
        for &(leaf_number, size, proof) in INCLUSION_PROOFS {
            let index = leaf_number - 1;
            let want = hashes(proof);
            let leaf = leaves[index as usize];
            let root = vector_root(size);
            assert_eq!(
                inclusion_proof(S, &lv(&leaves[..]), index, size).unwrap(),
                want
            );
            assert_eq!(inclusion_proof(S, &tree, index, size).unwrap(), want);
            assert_eq!(inclusion_proof_len(index, size), want.len());
            verify_inclusion(S, &leaf, index, size, &want, &root).unwrap();
            assert_inclusion_probes_fail(index, size, &want, &root, &leaf);
        }
    }

    /// verify_test.go corruptConsistencyProof: every probe must fail.
    fn assert_consistency_probes_fail(
        size1: u64,
        size2: u64,
        proof: &[Hash],
        root1: &Hash,
        root2: &Hash,
    ) {
        let wrong = leaf_hash(S, b"WrongRoot");
        let garbage = [0u8; 32];
        let (r1, r2) = (*root1, *root2);
        let mut probes: Vec<Probe> = vec![
            ("size1 - 1", size1 - 1, size2, r1, r2, proof.to_vec()),
            ("size1 + 1", size1 + 1, size2, r1, r2, proof.to_vec()),
            ("size1 ^ 2", size1 ^ 2, size2, r1, r2, proof.to_vec()),
            ("size2 * 2", size1, size2 * 2, r1, r2, proof.to_vec()),
            ("size2 / 2", size1, size2 / 2, r1, r2, proof.to_vec()),
            ("wrong root1", size1, size2, wrong, r2, proof.to_vec()),
            ("wrong root2", size1, size2, r1, wrong, proof.to_vec()),
            ("swapped roots", size1, size2, r2, r1, proof.to_vec()),
            ("empty proof", size1, size2, r1, r2, vec![]),
        ];
        let mut with = |desc, p: Vec<Hash>| probes.push((desc, size1, size2, r1, r2, p));
        with("trailing garbage", [proof, &[garbage]].concat());
        with("trailing root1", [proof, &[r1]].concat());
        with("trailing root2", [proof, &[r2]].concat());
        with("preceding garbage", [&[garbage], proof].concat());
        with("preceding root1", [&[r1], proof].concat());
        with("preceding root2", [&[r2], proof].concat());
        with("preceding proof[0]", [&[proof[0]], proof].concat());
        with("truncated proof", proof[..proof.len() - 1].to_vec());
        for i in 0..proof.len() {
            let mut p = proof.to_vec();
            p[i][0] ^= 16;
            with("modified proof bit 4", p);
        }
        for (desc, s1, s2, a, b, p) in probes {
            assert!(
                verify_consistency(S, s1, s2, &a, &b, &p).is_err(),
                "probe {desc:?} verified for {size1} -> {size2}"
            );
        }
    }

    #[test]
    fn published_consistency_proofs() {
        let leaves = vector_leaves();
        let tree = MemoryTree::from_leaves(S, &leaves);
        for &(size1, size2, proof) in CONSISTENCY_PROOFS {
            let want = hashes(proof);
            let (root1, root2) = (vector_root(size1), vector_root(size2));
            assert_eq!(
                consistency_proof(S, &lv(&leaves[..]), size1, size2).unwrap(),
                want
            );
            assert_eq!(consistency_proof(S, &tree, size1, size2).unwrap(), want);
            assert_eq!(consistency_proof_len(size1, size2), want.len());
            verify_consistency(S, size1, size2, &root1, &root2, &want).unwrap();
            if !want.is_empty() {
                assert_consistency_probes_fail(size1, size2, &want, &root1, &root2);
            }
        }
    }

    #[test]
    fn published_proof_shapes() {
        // proof_test.go TestInclusion / TestConsistency give proofs as node
        // ids over the 8-leaf tree; `rehash` groups are ephemeral nodes,
        // e.g. l = hash(i, j) over leaves [4, 7). Rendered with NodeHashes.
        let leaves = vector_leaves();
        let l = node_hash(S, &nh(1, 2), &nh(0, 6)); // l = hash(i, j)
        let inclusion: Vec<(u64, u64, Vec<Hash>)> = vec![
            (1, 0, vec![]),
            (2, 0, vec![nh(0, 1)]),
            (2, 1, vec![nh(0, 0)]),
            (3, 1, vec![nh(0, 0), nh(0, 2)]),
            (7, 0, vec![nh(0, 1), nh(1, 1), l]),
            (7, 1, vec![nh(0, 0), nh(1, 1), l]),
            (7, 2, vec![nh(0, 3), nh(1, 0), l]),
            (7, 3, vec![nh(0, 2), nh(1, 0), l]),
            (7, 4, vec![nh(0, 5), nh(0, 6), nh(2, 0)]),
            (7, 5, vec![nh(0, 4), nh(0, 6), nh(2, 0)]),
            (7, 6, vec![nh(1, 2), nh(2, 0)]),
            (4, 2, vec![nh(0, 3), nh(1, 0)]),
            (5, 3, vec![nh(0, 2), nh(1, 0), nh(0, 4)]),
            (6, 3, vec![nh(0, 2), nh(1, 0), nh(1, 2)]),
            (6, 4, vec![nh(0, 5), nh(2, 0)]),
        ];
        for (size, index, want) in inclusion {
            let got = inclusion_proof(S, &lv(&leaves[..]), index, size).unwrap();
            assert_eq!(got, want, "inclusion {index} of {size}");
            verify_inclusion(
                S,
                &leaves[index as usize],
                index,
                size,
                &got,
                &vector_root(size),
            )
            .unwrap();
        }
        let mut consistency: Vec<(u64, u64, Vec<Hash>)> = vec![
            (1, 2, vec![nh(0, 1)]),
            (1, 4, vec![nh(0, 1), nh(1, 1)]),
            (1, 6, vec![nh(0, 1), nh(1, 1), nh(1, 2)]),
            (2, 3, vec![nh(0, 2)]),
            (2, 8, vec![nh(1, 1), nh(2, 1)]),
            (3, 7, vec![nh(0, 2), nh(0, 3), nh(1, 0), l]),
            (4, 7, vec![l]),
            (5, 7, vec![nh(0, 4), nh(0, 5), nh(0, 6), nh(2, 0)]),
            (6, 7, vec![nh(1, 2), nh(0, 6), nh(2, 0)]),
            (7, 8, vec![nh(0, 6), nh(0, 7), nh(1, 2), nh(2, 0)]),
            (2, 4, vec![nh(1, 1)]),
            (3, 5, vec![nh(0, 2), nh(0, 3), nh(1, 0), nh(0, 4)]),
            (3, 6, vec![nh(0, 2), nh(0, 3), nh(1, 0), nh(1, 2)]),
            (4, 6, vec![nh(1, 2)]),
            (1, 7, vec![nh(0, 1), nh(1, 1), l]),
        ];
        for size in [1, 2, 3, 4, 5, 7, 8] {
            consistency.push((size, size, vec![]));
        }
        for (size1, size2, want) in consistency {
            let got = consistency_proof(S, &lv(&leaves[..]), size1, size2).unwrap();
            assert_eq!(got, want, "consistency {size1} -> {size2}");
            verify_consistency(
                S,
                size1,
                size2,
                &vector_root(size1),
                &vector_root(size2),
                &got,
            )
            .unwrap();
        }
    }

    #[test]
    fn consistency_edge_cases() {
        // verify_test.go TestVerifyConsistency, adapted: this verifier also
        // requires the old root of a size-0 tree to be the empty root.
        let e = empty_root(S);
        let (r1, r2) = (leaf_hash(S, b"don't care 1"), leaf_hash(S, b"don't care 2"));
        let proof2 = [e];
        type Case<'a> = (u64, u64, Hash, Hash, &'a [Hash], Result<(), VerifyError>);
        let cases: [Case; 14] = [
            (0, 0, r1, r2, &[], Err(VerifyError::OldRootMismatch)),
            (1, 1, r1, r2, &[], Err(VerifyError::NewRootMismatch)),
            (0, 0, e, e, &[], Ok(())),
            (0, 1, e, r2, &[], Ok(())),
            (0, 1, r1, r2, &[], Err(VerifyError::OldRootMismatch)),
            (1, 1, r2, r2, &[], Ok(())),
            (
                1,
                0,
                r1,
                r2,
                &[],
                Err(VerifyError::OldSizeGreater {
                    old_size: 1,
                    new_size: 0,
                }),
            ),
            (
                2,
                1,
                r1,
                r2,
                &[],
                Err(VerifyError::OldSizeGreater {
                    old_size: 2,
                    new_size: 1,
                }),
            ),
            (
                1,
                2,
                r1,
                r2,
                &[],
                Err(VerifyError::WrongProofLength {
                    expected: 1,
                    actual: 0,
                }),
            ),
            (0, 0, e, r2, &[], Err(VerifyError::NewRootMismatch)),
            (1, 1, e, r2, &[], Err(VerifyError::NewRootMismatch)),
            (
                0,
                0,
                e,
                e,
                &proof2,
                Err(VerifyError::WrongProofLength {
                    expected: 0,
                    actual: 1,
                }),
            ),
            (
                0,
                1,
                e,
                e,
                &proof2,
                Err(VerifyError::WrongProofLength {
                    expected: 0,
                    actual: 1,
                }),
            ),
            (
                1,
                1,
                e,
                e,
                &proof2,
                Err(VerifyError::WrongProofLength {
                    expected: 0,
                    actual: 1,
                }),
            ),
        ];
        for (i, (s1, s2, a, b, p, want)) in cases.into_iter().enumerate() {
            assert_eq!(verify_consistency(S, s1, s2, &a, &b, p), want, "case {i}");
        }
    }

    #[test]
    fn inclusion_parameter_errors() {
        // verify_test.go TestVerifyInclusion probes {0,0}, {0,1}, {1,0},
        // {2,1} with an empty proof and mismatching leaf/root.
        let some = h(SOME_HASH);
        let e = empty_root(S);
        assert_eq!(
            verify_inclusion(S, &some, 0, 0, &[], &e),
            Err(VerifyError::SizeZero)
        );
        assert_eq!(
            verify_inclusion(S, &some, 1, 0, &[], &e),
            Err(VerifyError::SizeZero)
        );
        assert_eq!(
            verify_inclusion(S, &some, 2, 1, &[], &e),
            Err(VerifyError::IndexOutOfRange { index: 2, size: 1 })
        );
        assert_eq!(
            verify_inclusion(S, &some, 0, 1, &[], &e),
            Err(VerifyError::RootMismatch)
        );
        assert_eq!(
            verify_inclusion(S, &some, 0, 2, &[], &e),
            Err(VerifyError::WrongProofLength {
                expected: 1,
                actual: 0
            })
        );
        // TestVerifyInclusionSingleEntry.
        let d = leaf_hash(S, b"data");
        verify_inclusion(S, &d, 0, 1, &[], &d).unwrap();
        assert_eq!(
            verify_inclusion(S, &d, 0, 1, &[], &e),
            Err(VerifyError::RootMismatch)
        );

        // Generators.
        let leaves = vector_leaves();
        assert!(matches!(
            inclusion_proof(S, &lv(&leaves[..]), 0, 0),
            Err(ProofError::EmptyTree)
        ));
        assert!(matches!(
            inclusion_proof(S, &lv(&leaves[..]), 8, 7),
            Err(ProofError::IndexOutOfRange { index: 8, size: 7 })
        ));
        assert!(matches!(
            consistency_proof(S, &lv(&leaves[..]), 9, 8),
            Err(ProofError::OldSizeGreater {
                old_size: 9,
                new_size: 8
            })
        ));
        // Beyond what the source holds.
        assert!(matches!(
            inclusion_proof(S, &lv(&leaves[..]), 0, 9),
            Err(ProofError::Source(SubtreeUnavailable { leaves: 8, .. }))
        ));
        assert!(matches!(
            root_from(S, &lv(&leaves[..]), 9),
            Err(ProofError::Source(_))
        ));
        let tree = MemoryTree::from_leaves(S, &leaves);
        assert!(matches!(
            consistency_proof(S, &tree, 3, 12),
            Err(ProofError::Source(_))
        ));
        assert!(lv(&leaves).subtree(63, u64::MAX).is_err());
        assert!(lv(&leaves).subtree(64, 0).is_err());
        assert!(tree.subtree(64, 0).is_err());
        // Error texts are specific.
        let err = inclusion_proof(S, &lv(&leaves[..]), 8, 7).unwrap_err();
        assert_eq!(
            err.to_string(),
            "leaf index 8 is out of range for tree size 7"
        );
    }

    #[test]
    fn size_binding_is_the_callers_job() {
        // Inherent to RFC 9162 (not a bug): the proof of leaf 0 in the tree
        // of 4 also verifies as leaf 0 of a 3-leaf tree whose third "leaf
        // hash" is node (1, 1). The root alone does not fix the size; callers
        // take (size, root) together from a signed tree head.
        let leaves = vector_leaves();
        let proof = inclusion_proof(S, &lv(&leaves[..]), 0, 4).unwrap();
        verify_inclusion(S, &leaves[0], 0, 4, &proof, &vector_root(4)).unwrap();
        verify_inclusion(S, &leaves[0], 0, 3, &proof, &vector_root(4)).unwrap();
        assert!(verify_inclusion(S, &leaves[0], 0, 3, &proof, &vector_root(3)).is_err());
    }

    #[test]
    fn frontier_from_peaks() {
        let leaves = vector_leaves();
        let mut f = Frontier::new(S);
        for l in &leaves[..7] {
            f.push(*l);
        }
        let g = Frontier::from_peaks(S, 7, f.peaks().to_vec()).unwrap();
        assert_eq!(g, f);
        assert_eq!(g.root(), vector_root(7));
        assert_eq!(
            Frontier::from_peaks(S, 8, f.peaks().to_vec()),
            Err(FrontierError::PeakCountMismatch {
                size: 8,
                expected: 1,
                actual: 3
            })
        );
        let mut g = g;
        g.push(leaves[7]);
        assert_eq!(g.root(), vector_root(8));
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let x = h(ROOTS[8]);
        assert_eq!(to_hex(&x), ROOTS[8]);
        assert_eq!(from_hex(&to_hex(&[0xff; 32])), Ok([0xff; 32]));
        assert_eq!(from_hex(""), Err(HexError::WrongLength { actual: 0 }));
        assert_eq!(
            from_hex(&ROOTS[8][..62]),
            Err(HexError::WrongLength { actual: 62 })
        );
        let upper = ROOTS[8].to_uppercase();
        assert_eq!(
            from_hex(&upper),
            Err(HexError::InvalidDigit { position: 1 })
        );
        let mut bad = ROOTS[8].to_string();
        bad.replace_range(63..64, "g");
        assert_eq!(from_hex(&bad), Err(HexError::InvalidDigit { position: 63 }));
        // Multi-byte UTF-8 of the right byte length is rejected, not split.
        let wide = format!("é{}", &ROOTS[8][2..]);
        assert_eq!(from_hex(&wide), Err(HexError::InvalidDigit { position: 0 }));
    }

    // -----------------------------------------------------------------------
    // Helpers for the generated tests.
    // -----------------------------------------------------------------------

    fn make_leaves(seed: u64, n: u64) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(S, &[seed.to_be_bytes(), i.to_be_bytes()].concat()))
            .collect()
    }

    /// A source that counts lookups.
    struct Counting<'a, S: ?Sized> {
        inner: &'a S,
        calls: Cell<usize>,
    }

    impl<'a, S: ?Sized> Counting<'a, S> {
        fn new(inner: &'a S) -> Self {
            Self {
                inner,
                calls: Cell::new(0),
            }
        }
        fn take(&self) -> usize {
            self.calls.replace(0)
        }
    }

    impl<S: SubtreeSource + ?Sized> SubtreeSource for Counting<'_, S> {
        type Error = S::Error;
        fn subtree(&self, level: u32, index: u64) -> Result<Hash, Self::Error> {
            self.calls.set(self.calls.get() + 1);
            self.inner.subtree(level, index)
        }
    }

    /// Upper bound on lookups per proof or root: O(log n).
    fn lookup_bound(n: u64) -> usize {
        2 * bit_len(n) as usize + 1
    }

    /// Independent top-down reference for inclusion verification, straight
    /// from the RFC's recursive PATH definition (no bit tricks).
    fn ref_inclusion_root(m: u64, n: u64, leaf: &Hash, proof: &[Hash]) -> Option<Hash> {
        if n == 1 {
            return (m == 0 && proof.is_empty()).then_some(*leaf);
        }
        let (last, rest) = proof.split_last()?;
        let k = split_u64(n);
        if m < k {
            Some(node_hash(S, &ref_inclusion_root(m, k, leaf, rest)?, last))
        } else {
            Some(node_hash(
                S,
                last,
                &ref_inclusion_root(m - k, n - k, leaf, rest)?,
            ))
        }
    }

    fn ref_verify_inclusion(leaf: &Hash, m: u64, n: u64, proof: &[Hash], root: &Hash) -> bool {
        m < n && ref_inclusion_root(m, n, leaf, proof).as_ref() == Some(root)
    }

    /// Independent top-down reference for consistency verification, from
    /// the RFC's recursive SUBPROOF definition: (old root, new root).
    fn ref_subproof(
        m: u64,
        n: u64,
        whole: bool,
        old_root: &Hash,
        proof: &[Hash],
    ) -> Option<(Hash, Hash)> {
        if m == n {
            return if whole {
                proof.is_empty().then_some((*old_root, *old_root))
            } else {
                match proof {
                    [x] => Some((*x, *x)),
                    _ => None,
                }
            };
        }
        let (last, rest) = proof.split_last()?;
        let k = split_u64(n);
        if m <= k {
            let (fr, sr) = ref_subproof(m, k, whole, old_root, rest)?;
            Some((fr, node_hash(S, &sr, last)))
        } else {
            let (fr, sr) = ref_subproof(m - k, n - k, false, old_root, rest)?;
            Some((node_hash(S, last, &fr), node_hash(S, last, &sr)))
        }
    }

    fn ref_verify_consistency(
        m: u64,
        n: u64,
        old_root: &Hash,
        new_root: &Hash,
        proof: &[Hash],
    ) -> bool {
        if m > n {
            return false;
        }
        if m == 0 {
            return proof.is_empty()
                && *old_root == empty_root(S)
                && (n > 0 || new_root == old_root);
        }
        ref_subproof(m, n, true, old_root, proof) == Some((*old_root, *new_root))
    }

    fn flip(mut x: Hash, byte: usize, mask: u8) -> Hash {
        x[byte % 32] ^= mask;
        x
    }

    #[test]
    fn lookups_are_logarithmic() {
        let n = 1000u64;
        let tree = MemoryTree::from_leaves(S, &make_leaves(7, n));
        let src = Counting::new(&tree);
        for size in 1..=n {
            root_from(S, &src, size).unwrap();
            assert!(src.take() <= lookup_bound(size));
            for index in [0, size / 3, size / 2, size - 1] {
                inclusion_proof(S, &src, index, size).unwrap();
                assert!(
                    src.take() <= lookup_bound(size),
                    "inclusion {index} of {size}"
                );
            }
            for old in [1, size / 3, size / 2, size - 1] {
                consistency_proof(S, &src, old, size).unwrap();
                assert!(
                    src.take() <= lookup_bound(size),
                    "consistency {old} -> {size}"
                );
            }
        }
    }

    #[test]
    fn incremental_node_storage() {
        let leaves = make_leaves(3, 300);
        let mut tree = MemoryTree::new(S);
        let mut frontier = Frontier::new(S);
        for (i, leaf) in leaves.iter().enumerate() {
            let index = i as u64;
            let from_store = append_nodes(S, &tree, index, *leaf).unwrap();
            let from_frontier = frontier.append(*leaf);
            let stored = tree.push(*leaf);
            assert_eq!(from_store, from_frontier, "leaf {i}");
            assert_eq!(stored, from_frontier, "leaf {i}");
            let coords: Vec<(u32, u64)> = from_store.iter().map(|n| (n.level, n.index)).collect();
            assert_eq!(coords, completed_subtrees(index).collect::<Vec<_>>());
            for node in &from_store {
                assert!(node.level >= 1);
                let (start, end) = subtree_span(node.level, node.index).unwrap();
                assert_eq!(end, index + 1, "a completed subtree ends at the new leaf");
                assert_eq!(node.hash, root(S, &leaves[start as usize..end as usize]));
            }
        }
        // Every perfect subtree is stored, once: 299 nodes of level >= 1.
        let stored: usize = tree.levels.iter().skip(1).map(Vec::len).sum();
        assert_eq!(stored, 300 - 300u64.count_ones() as usize);
        assert_eq!(tree.levels[0], leaves);
        // A store missing a needed sibling reports it.
        assert!(append_nodes(S, &lv(&leaves[..2]), 3, leaves[3]).is_err());
    }

    #[test]
    fn million_leaf_log_in_one_pass() {
        // One streaming pass over 1,000,000 leaves with roots checked at
        // many intermediate sizes, plus O(log n) proofs at full size.
        const N: u64 = 1_000_000;
        let mut frontier = Frontier::new(S);
        let mut tree = MemoryTree::new(S);
        const STEP: u64 = 9_973;
        let mut next_checkpoint = STEP;
        let mut checkpoints = Vec::new();
        for i in 0..N {
            let leaf = leaf_hash(S, &i.to_be_bytes());
            frontier.push(leaf);
            tree.push(leaf);
            let size = frontier.size();
            if size == next_checkpoint || size.is_power_of_two() || size == N {
                checkpoints.push((size, frontier.root()));
                if size == next_checkpoint {
                    next_checkpoint += STEP;
                }
            }
        }
        assert_eq!(
            frontier.root(),
            root(S, &tree.levels[0]),
            "reference root at 1,000,000"
        );
        assert_eq!(tree.root(), frontier.root());
        let src = Counting::new(&tree);
        for &(size, want) in &checkpoints {
            assert_eq!(root_from(S, &src, size).unwrap(), want, "size {size}");
        }
        assert!(src.take() <= checkpoints.len() * lookup_bound(N));
        let new_root = frontier.root();
        for index in [0, 1, 123_456, 524_287, 524_288, N - 1] {
            let proof = inclusion_proof(S, &src, index, N).unwrap();
            assert!(src.take() <= lookup_bound(N));
            let leaf = tree.subtree(0, index).unwrap();
            verify_inclusion(S, &leaf, index, N, &proof, &new_root).unwrap();
        }
        for &(old, old_root) in &checkpoints {
            let proof = consistency_proof(S, &src, old, N).unwrap();
            assert!(src.take() <= lookup_bound(N));
            verify_consistency(S, old, N, &old_root, &new_root, &proof).unwrap();
        }
    }

    // -----------------------------------------------------------------------
    // Property tests.
    // -----------------------------------------------------------------------

    fn size_and_index() -> impl Strategy<Value = (u64, u64)> {
        (1u64..=300).prop_flat_map(|n| (Just(n), 0..n))
    }

    fn old_and_new() -> impl Strategy<Value = (u64, u64)> {
        (0u64..=300).prop_flat_map(|n| (0..=n, Just(n)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn inclusion_proofs_verify_and_bind(
            (size, index) in size_and_index(),
            seed in any::<u64>(),
            byte in 0usize..32,
            mask in 1u8..=255,
            other in any::<u64>(),
        ) {
            let leaves = make_leaves(seed, size);
            let root = root(S, &leaves);
            let leaf = leaves[index as usize];
            let proof = inclusion_proof(S, &lv(&leaves[..]), index, size).unwrap();
            prop_assert_eq!(proof.len(), inclusion_proof_len(index, size));
            prop_assert_eq!(verify_inclusion(S, &leaf, index, size, &proof, &root), Ok(()));
            prop_assert!(ref_verify_inclusion(&leaf, index, size, &proof, &root));

            // Any one byte of any proof hash.
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i] = flip(bad[i], byte + i, mask);
                prop_assert_eq!(
                    verify_inclusion(S, &leaf, index, size, &bad, &root),
                    Err(VerifyError::RootMismatch)
                );
            }
            // The root, the leaf.
            prop_assert_eq!(
                verify_inclusion(S, &leaf, index, size, &proof, &flip(root, byte, mask)),
                Err(VerifyError::RootMismatch)
            );
            prop_assert!(verify_inclusion(S, &flip(leaf, byte, mask), index, size, &proof, &root).is_err());
            // Any other index.
            let other_index = other % size;
            if other_index != index {
                prop_assert!(verify_inclusion(S, &leaf, other_index, size, &proof, &root).is_err());
            }
            prop_assert!(verify_inclusion(S, &leaf, index + size, size, &proof, &root).is_err());
            // Any other size: rejected whenever the leaf's path differs in
            // that size; the verifier agrees exactly with the independent
            // recursive reference (see `size_binding_is_the_callers_job`).
            for other_size in [size - 1, size + 1, size * 2, size / 2, 1 + other % 600] {
                if other_size == size {
                    continue;
                }
                let got = verify_inclusion(S, &leaf, index, other_size, &proof, &root);
                prop_assert_eq!(
                    got.is_ok(),
                    ref_verify_inclusion(&leaf, index, other_size, &proof, &root),
                    "size {} -> {}", size, other_size
                );
                if inclusion_proof_len(index, other_size) != proof.len() {
                    prop_assert!(got.is_err());
                }
            }
            // Length changes.
            prop_assert!(verify_inclusion(S, &leaf, index, size, &[proof.clone(), vec![root]].concat(), &root).is_err());
            if let Some((_, init)) = proof.split_last() {
                prop_assert!(verify_inclusion(S, &leaf, index, size, init, &root).is_err());
            }
        }

        #[test]
        fn consistency_proofs_verify_and_bind(
            (old, new) in old_and_new(),
            seed in any::<u64>(),
            byte in 0usize..32,
            mask in 1u8..=255,
            other in any::<u64>(),
        ) {
            let leaves = make_leaves(seed, new);
            let old_root = root(S, &leaves[..old as usize]);
            let new_root = root(S, &leaves);
            let proof = consistency_proof(S, &lv(&leaves[..]), old, new).unwrap();
            prop_assert_eq!(proof.len(), consistency_proof_len(old, new));
            prop_assert_eq!(verify_consistency(S, old, new, &old_root, &new_root, &proof), Ok(()));
            prop_assert!(ref_verify_consistency(old, new, &old_root, &new_root, &proof));

            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i] = flip(bad[i], byte + i, mask);
                prop_assert!(verify_consistency(S, old, new, &old_root, &new_root, &bad).is_err());
            }
            prop_assert!(verify_consistency(S, old, new, &flip(old_root, byte, mask), &new_root, &proof).is_err());
            // An empty old tree is consistent with every new root.
            if old > 0 || new == 0 {
                prop_assert!(verify_consistency(S, old, new, &old_root, &flip(new_root, byte, mask), &proof).is_err());
            }
            // Other sizes: exact agreement with the recursive reference, and
            // rejected whenever the proof length does not fit.
            let olds = [old.wrapping_sub(1), old + 1, old ^ 2, other % (new + 1)];
            let news = [new.wrapping_sub(1), new + 1, new * 2, new / 2, other % 301];
            for (o, n) in olds.iter().map(|&o| (o, new)).chain(news.iter().map(|&n| (old, n))) {
                if (o, n) == (old, new) {
                    continue;
                }
                let got = verify_consistency(S, o, n, &old_root, &new_root, &proof);
                prop_assert_eq!(
                    got.is_ok(),
                    ref_verify_consistency(o, n, &old_root, &new_root, &proof),
                    "{} -> {} as {} -> {}", old, new, o, n
                );
                if o > n || (0 < o && o < n && consistency_proof_len(o, n) != proof.len()) {
                    prop_assert!(got.is_err());
                }
            }
            if !proof.is_empty() {
                prop_assert!(verify_consistency(S, old, new, &old_root, &new_root, &proof[1..]).is_err());
            }
            prop_assert!(verify_consistency(S, old, new, &old_root, &new_root, &[proof.clone(), vec![new_root]].concat()).is_err());
        }

        #[test]
        fn roots_agree(size in 0u64..=300, seed in any::<u64>(), cut in any::<u64>()) {
            let leaves = make_leaves(seed, size);
            let tree = MemoryTree::from_leaves(S, &leaves);
            let full = root(S, &leaves);
            prop_assert_eq!(root_from(S, &lv(&leaves[..]), size).unwrap(), full);
            prop_assert_eq!(root_from(S, &tree, size).unwrap(), full);
            prop_assert_eq!(tree.root(), full);
            let s = if size == 0 { 0 } else { cut % (size + 1) };
            let want = root(S, &leaves[..s as usize]);
            prop_assert_eq!(root_from(S, &lv(&leaves[..]), s).unwrap(), want);
            prop_assert_eq!(root_from(S, &tree, s).unwrap(), want);
            prop_assert_eq!(Frontier::from_source(S, &tree, s).unwrap().root(), want);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn frontier_matches_root_at_every_size(size in 0u64..=300, seed in any::<u64>()) {
            let leaves = make_leaves(seed, size);
            let mut frontier = Frontier::new(S);
            prop_assert_eq!(frontier.root(), root(S, &[]));
            for (i, leaf) in leaves.iter().enumerate() {
                frontier.push(*leaf);
                prop_assert_eq!(frontier.size(), i as u64 + 1);
                prop_assert_eq!(frontier.root(), root(S, &leaves[..=i]), "size {}", i + 1);
                prop_assert_eq!(frontier.peaks().len(), (i as u64 + 1).count_ones() as usize);
            }
        }

        #[test]
        fn proofs_from_stored_nodes_match_proofs_from_leaves(
            (size, index) in size_and_index(),
            seed in any::<u64>(),
            old_cut in any::<u64>(),
        ) {
            let leaves = make_leaves(seed, size);
            let tree = MemoryTree::from_leaves(S, &leaves);
            prop_assert_eq!(
                inclusion_proof(S, &tree, index, size).unwrap(),
                inclusion_proof(S, &lv(&leaves[..]), index, size).unwrap()
            );
            let old = old_cut % (size + 1);
            prop_assert_eq!(
                consistency_proof(S, &tree, old, size).unwrap(),
                consistency_proof(S, &lv(&leaves[..]), old, size).unwrap()
            );
        }
    }
}
