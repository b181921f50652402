//! Fuzz target of the reconciliation request bodies (`/peer/v1/reconcile/*`): any bytes are
//! parsed as the handlers parse them and checked by the same rules; a request the rules let
//! through never names a node or bucket the tree lacks.

use serde::de::DeserializeOwned;

use super::serve::{
    check_docs, BucketsRequest, NodesRequest, RootRequest, VersionsRequest, WantRequest,
};
use super::tree::{Tree, BUCKETS};
use crate::crypto::fuzz::check;
use crate::crypto::Digest;

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

#[test]
fn reconcile_bodies_take_any_bytes() {
    let tree = Tree::from_buckets(
        crate::crypto::hash::HashAlg::Sha256,
        [(7, Digest::of(b"a"), 1), (BUCKETS - 1, Digest::of(b"b"), 2)],
    );
    let corpus: &[&[u8]] = &[
        b"{}",
        br#"{"level": 2, "indices": [0, 15, 255]}"#,
        br#"{"buckets": [0, 65535, 7]}"#,
        br#"{"docs": [{"kind": "child", "doc_id": "410105201406010016"}, {"kind": "case", "doc_id": "01a2085c-0896-71be-af87-eeca77f2a799"}]}"#,
        br#"{"versions": ["0000000000000000000000000000000000000000000000000000000000000000"]}"#,
    ];
    check("reconcile_bodies", 5_000, corpus, |bytes| {
        let _ = parse::<RootRequest>(bytes);
        if let Some(req) = parse::<NodesRequest>(bytes) {
            if req.check().is_ok() {
                for i in &req.indices {
                    assert!(tree.children(req.level as usize, *i as usize).is_some());
                }
            }
        }
        if let Some(req) = parse::<BucketsRequest>(bytes) {
            if req.check().is_ok() {
                assert!(req.buckets.iter().all(|b| (*b as usize) < BUCKETS));
            }
        }
        if let Some(req) = parse::<VersionsRequest>(bytes) {
            if check_docs(&req.docs).is_ok() {
                assert!(req.docs.iter().all(|d| (1..=64).contains(&d.doc_id.len())));
            }
        }
        if let Some(req) = parse::<WantRequest>(bytes) {
            // Each id takes 66 bytes on the wire: the parse allocates in proportion.
            assert!(req.versions.len() * 66 <= bytes.len());
        }
    });
}
