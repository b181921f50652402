//! The Merkle summary's pure core: which bucket a document falls in, a document's leaf, a
//! bucket's accumulator, and the 16-ary tree over the 65,536 buckets that two nodes descend to
//! find the buckets that differ. No I/O.
//!
//! Shape: level 0 is the root; level `l` has `16^l` nodes; level [`DEPTH`] (4) holds the buckets.
//! A node's children at level `l + 1` are `16·i .. 16·i + 16`. An empty subtree hashes to all
//! zeros, so two empty summaries agree and an empty bucket costs nothing.
//!
//! A bucket's accumulator is the XOR of its leaves: adding or removing a document is O(1), which
//! is what lets the summary be maintained incrementally. The accumulator is then hashed with the
//! bucket's document count, domain-separated, before it enters the tree.
//!
//! Every hash is the network's content hash ([`HashAlg`], the directory's `hash`): two nodes of
//! one network always compute the same buckets, leaves and nodes.

use crate::crypto::hash::{Digest, HashAlg, Hasher};

/// Children per node.
pub const FANOUT: usize = 16;
/// Levels below the root.
pub const DEPTH: usize = 4;
/// Buckets: `FANOUT^DEPTH` = 65,536 (the first 16 bits of a hash).
pub const BUCKETS: usize = 1 << 16;

const ZERO: Digest = Digest([0u8; 32]);

/// The bucket of a document: the first 16 bits of the content hash over its id
/// (domain-separated).
pub fn bucket_of(alg: HashAlg, doc_id: &str) -> u16 {
    let d = tagged(alg, b"hukou-sync/v1/recon-bucket\0", &[doc_id.as_bytes()]);
    u16::from_be_bytes([d.0[0], d.0[1]])
}

/// A document's leaf: the content hash over its kind, id and sorted heads, each length-prefixed so no
/// two different triples encode alike.
pub fn leaf(alg: HashAlg, kind: &str, doc_id: &str, sorted_heads: &[String]) -> Digest {
    let mut buf = Vec::with_capacity(64 + sorted_heads.len() * 72);
    for part in [kind, doc_id]
        .into_iter()
        .chain(sorted_heads.iter().map(String::as_str))
    {
        buf.extend_from_slice(&(part.len() as u32).to_be_bytes());
        buf.extend_from_slice(part.as_bytes());
    }
    tagged(alg, b"hukou-sync/v1/recon-leaf\0", &[&buf])
}

/// XOR of two accumulators (adding and removing a leaf are the same operation).
pub fn xor(a: &Digest, b: &Digest) -> Digest {
    let mut out = [0u8; 32];
    for (o, (x, y)) in out.iter_mut().zip(a.0.iter().zip(b.0.iter())) {
        *o = x ^ y;
    }
    Digest(out)
}

/// The hash a bucket contributes to the tree: zero when empty, else its accumulator and count.
pub fn bucket_hash(alg: HashAlg, acc: &Digest, docs: u64) -> Digest {
    if docs == 0 {
        return ZERO;
    }
    tagged(
        alg,
        b"hukou-sync/v1/recon-bucket-hash\0",
        &[&acc.0, &docs.to_be_bytes()],
    )
}

/// An inner node: zero when every child is, else the content hash over the children
/// (domain-separated).
pub fn node_hash(alg: HashAlg, children: &[Digest]) -> Digest {
    if children.iter().all(|c| *c == ZERO) {
        return ZERO;
    }
    let parts: Vec<&[u8]> = children.iter().map(|c| c.0.as_slice()).collect();
    tagged(alg, b"hukou-sync/v1/recon-node\0", &parts)
}

fn tagged(alg: HashAlg, tag: &[u8], parts: &[&[u8]]) -> Digest {
    let mut h = Hasher::new(alg);
    h.update(tag);
    for p in parts {
        h.update(p);
    }
    h.finish()
}

/// How many nodes a level has.
pub fn level_width(level: usize) -> usize {
    FANOUT.pow(level as u32)
}

/// The whole tree of one summary, built from its non-empty buckets.
#[derive(Debug, Clone)]
pub struct Tree {
    /// `levels[l]` has `16^l` hashes; `levels[DEPTH]` are the bucket hashes.
    levels: Vec<Vec<Digest>>,
}

impl Tree {
    /// Builds the tree from `(bucket, accumulator, documents)` of the non-empty buckets.
    /// Buckets out of range are ignored (the caller's rows are 16-bit by construction).
    pub fn from_buckets(
        alg: HashAlg,
        buckets: impl IntoIterator<Item = (usize, Digest, u64)>,
    ) -> Self {
        let mut leaves = vec![ZERO; BUCKETS];
        for (b, acc, docs) in buckets {
            if let Some(slot) = leaves.get_mut(b) {
                *slot = bucket_hash(alg, &acc, docs);
            }
        }
        let mut levels = vec![leaves];
        for _ in 0..DEPTH {
            let below = levels.last().map_or(&[][..], Vec::as_slice);
            let up: Vec<Digest> = below.chunks(FANOUT).map(|c| node_hash(alg, c)).collect();
            levels.push(up);
        }
        levels.reverse();
        Self { levels }
    }

    pub fn root(&self) -> Digest {
        // Invariant: `from_buckets` always builds DEPTH + 1 levels, the first of width 1.
        self.levels[0][0]
    }

    /// The hash of node `index` of `level`, if both are in range.
    pub fn node(&self, level: usize, index: usize) -> Option<Digest> {
        self.levels.get(level).and_then(|l| l.get(index)).copied()
    }

    /// The children of node `index` of `level` (`level < DEPTH`), if in range.
    pub fn children(&self, level: usize, index: usize) -> Option<&[Digest]> {
        if level >= DEPTH || index >= level_width(level) {
            return None;
        }
        let start = index * FANOUT;
        // `level < DEPTH`, so level + 1 exists.
        self.levels[level + 1].get(start..start + FANOUT)
    }
}

/// Indices (at `level + 1`) of the children of `parents` (at `level`) whose hashes differ
/// between `ours` and `theirs` (the peer's children of the same parents, in the same order).
pub fn differing_children(
    ours: &Tree,
    level: usize,
    parents: &[usize],
    theirs: &[Vec<Digest>],
) -> Vec<usize> {
    let mut out = Vec::new();
    for (p, their_children) in parents.iter().zip(theirs) {
        let Some(mine) = ours.children(level, *p) else {
            continue;
        };
        for (k, (a, b)) in mine.iter().zip(their_children).enumerate() {
            if a != b {
                out.push(p * FANOUT + k);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: HashAlg = HashAlg::Sha256;

    fn acc_of(leaves: &[Digest]) -> Digest {
        leaves.iter().fold(ZERO, |a, l| xor(&a, l))
    }

    #[test]
    fn empty_trees_agree_and_are_zero() {
        let a = Tree::from_buckets(S, []);
        assert_eq!(a.root(), ZERO);
        assert_eq!(a.children(0, 0).unwrap().len(), FANOUT);
        assert!(a.children(DEPTH, 0).is_none());
        assert!(a.children(1, 16).is_none());
    }

    #[test]
    fn xor_accumulator_is_order_free_and_removable() {
        let l1 = leaf(S, "child", "a", &["v1".into()]);
        let l2 = leaf(S, "child", "b", &["v2".into(), "v3".into()]);
        assert_eq!(xor(&xor(&ZERO, &l1), &l2), xor(&xor(&ZERO, &l2), &l1));
        assert_eq!(xor(&xor(&l1, &l2), &l2), l1);
    }

    #[test]
    fn leaves_are_unambiguous() {
        // The same characters split differently give different leaves.
        assert_ne!(
            leaf(S, "child", "ab", &["c".into()]),
            leaf(S, "child", "a", &["bc".into()])
        );
        assert_ne!(
            leaf(S, "child", "a", &["b".into(), "c".into()]),
            leaf(S, "child", "a", &["bc".into()])
        );
        assert_ne!(leaf(S, "child", "a", &[]), leaf(S, "case", "a", &[]));
    }

    #[test]
    fn one_changed_bucket_is_found_by_descending() {
        let docs: Vec<(String, Vec<String>)> = (0..5000)
            .map(|i| (format!("doc{i}"), vec![format!("v{i}")]))
            .collect();
        let build = |docs: &[(String, Vec<String>)]| {
            let mut accs = vec![(ZERO, 0u64); BUCKETS];
            for (d, h) in docs {
                let b = bucket_of(S, d) as usize;
                accs[b].0 = xor(&accs[b].0, &leaf(S, "child", d, h));
                accs[b].1 += 1;
            }
            Tree::from_buckets(
                S,
                accs.into_iter()
                    .enumerate()
                    .filter(|(_, (_, n))| *n > 0)
                    .map(|(b, (a, n))| (b, a, n)),
            )
        };
        let a = build(&docs);
        let mut changed = docs.clone();
        changed[1234].1 = vec!["v1234".into(), "w".into()];
        let b = build(&changed);
        assert_ne!(a.root(), b.root());
        assert_eq!(a.root(), build(&docs).root());
        let mut frontier = vec![0usize];
        for level in 0..DEPTH {
            let theirs: Vec<Vec<Digest>> = frontier
                .iter()
                .map(|i| b.children(level, *i).unwrap().to_vec())
                .collect();
            frontier = differing_children(&a, level, &frontier, &theirs);
            assert_eq!(frontier.len(), 1, "level {level}");
        }
        assert_eq!(frontier, vec![bucket_of(S, "doc1234") as usize]);
    }

    #[test]
    fn bucket_hash_depends_on_count() {
        let l = leaf(S, "child", "x", &["v".into()]);
        assert_ne!(bucket_hash(S, &l, 1), bucket_hash(S, &l, 3));
        assert_eq!(bucket_hash(S, &acc_of(&[l, l]), 0), ZERO);
    }

    #[test]
    fn sm3_summary_differs_from_sha256() {
        let heads = ["v".to_owned()];
        let (a, b) = (
            leaf(S, "child", "x", &heads),
            leaf(HashAlg::Sm3, "child", "x", &heads),
        );
        assert_ne!(a, b);
        let one = |alg| Tree::from_buckets(alg, [(7, a, 1)]).root();
        assert_ne!(one(S), one(HashAlg::Sm3));
        assert_eq!(one(HashAlg::Sm3), one(HashAlg::Sm3));
        assert_eq!(Tree::from_buckets(HashAlg::Sm3, []).root(), ZERO);
    }
}
