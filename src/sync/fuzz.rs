//! Fuzz target of the peer batch body (`POST /peer/v1/versions`) and its verification: any
//! bytes are parsed as the handler parses them, and every version of a parsed batch goes
//! through the id and signature checks without a panic. A version's hand-written canonical
//! bytes equal the generic RFC 8785 ones for whatever a peer sends.

use serde_json::json;

use super::ingest::verify_crypto;
use super::receipt::PushRequest;
use super::version::Version;
use crate::crypto::fuzz::check;
use crate::crypto::{jcs, Hlc, SigningKey};
use crate::directory::testutil::{now, sample_doc};
use crate::directory::{document, Directory, KeyWindow};
use crate::domain::{DocKind, NodeId};

#[test]
fn peer_batch_takes_any_bytes() {
    let (author, _) = SigningKey::generate().unwrap();
    let (authority, _) = SigningKey::generate().unwrap();
    let mut doc = sample_doc(3);
    doc.nodes[0].signing_keys = vec![KeyWindow {
        key: author.public_key(),
        valid_from: "2026-01-01T00:00:00Z".parse().unwrap(),
        valid_until: "2027-01-01T00:00:00Z".parse().unwrap(),
    }];
    let signed = serde_json::to_vec(&document::sign(&doc, &authority).unwrap()).unwrap();
    let dir = Directory::from_signed_json(&signed, &authority.public_key(), now()).unwrap();
    let first = Version::new(
        DocKind::Child,
        "410105201406010016".into(),
        vec![],
        NodeId::parse("410100").unwrap(),
        "2026-11-23T08:49:35.123Z+0003".parse::<Hlc>().unwrap(),
        json!({"id_number": "410105201406010016", "name": "王小明", "categories": ["flowing"],
               "notes": null, "benefits": [{"benefit": "dibao", "since": "2026-01"}]}),
    )
    .sign(&author, crate::crypto::hash::HashAlg::Sha256)
    .unwrap();
    let second = Version::new(
        DocKind::Child,
        "410105201406010016".into(),
        vec![first.id],
        NodeId::parse("410100").unwrap(),
        "2026-11-23T08:49:36.000Z+0000".parse::<Hlc>().unwrap(),
        json!({"risk_level": "黄", "n": 1.5e300}),
    )
    .sign(&author, crate::crypto::hash::HashAlg::Sha256)
    .unwrap();
    let batch = json!({"sender": "410100", "versions": [first, second]});
    let seed = serde_json::to_vec(&batch).unwrap();
    check("peer_batch", 3_000, &[&seed], |bytes| {
        let Ok(request) = serde_json::from_slice::<PushRequest>(bytes) else {
            return;
        };
        // Each version takes at least its id's 64 characters on the wire.
        assert!(request.versions.len() * 64 <= bytes.len());
        let _ = request.batch_digest(crate::crypto::hash::HashAlg::Sha256);
        for v in &request.versions {
            match (
                v.version.canonical_bytes(),
                jcs::to_canonical_vec(&v.version),
            ) {
                (Ok(written), Ok(generic)) => assert_eq!(written, generic),
                (Err(_), Err(_)) => {}
                (a, b) => panic!(
                    "canonical forms disagree: {:?} vs {:?}",
                    a.is_ok(),
                    b.is_ok()
                ),
            }
            if verify_crypto(&dir, v).is_ok() {
                assert_eq!(
                    v.version.id(crate::crypto::hash::HashAlg::Sha256).unwrap(),
                    v.id
                );
            }
        }
    });
}
