//! Fuzz target of the signed directory document: any bytes are refused or accepted without a
//! panic, and so is any edit of a directory that is then signed (the edits reach the typed parse
//! and the validation that a signature check would otherwise stop).

use serde_json::Value;

use super::testutil::{now, sample_doc};
use super::{document, Directory};
use crate::crypto::fuzz::check;
use crate::crypto::{jcs, SigningContext, SigningKey};

#[test]
fn directory_document_takes_any_bytes() {
    let (authority, _) = SigningKey::generate().unwrap();
    let public = authority.public_key();
    let signed = document::sign(&sample_doc(7), &authority).unwrap();
    let seed = serde_json::to_vec(&signed).unwrap();
    check("directory", 3_000, &[&seed], |bytes| {
        // As it arrives: the signature does not match an edited document.
        if let Ok(d) = Directory::from_signed_json(bytes, &public, now()) {
            assert!(d.nodes().count() <= bytes.len());
        }
        // As if the authority had signed the edit.
        let Ok(Value::Object(mut top)) = serde_json::from_slice::<Value>(bytes) else {
            return;
        };
        let Some(directory) = top.get("directory") else {
            return;
        };
        let Ok(canonical) = jcs::canonicalize(directory) else {
            return;
        };
        let Ok(signature) = authority.sign(SigningContext::Directory, &canonical) else {
            return;
        };
        top.insert("signature".into(), Value::String(signature.to_string()));
        let resigned = serde_json::to_vec(&Value::Object(top)).unwrap();
        if let Ok(d) = Directory::from_signed_json(&resigned, &public, now()) {
            assert!(d.nodes().count() <= bytes.len());
            for node in d.nodes() {
                for prefix in &node.serves {
                    // Every region the directory routes resolves to a node.
                    if let Ok(code) =
                        crate::domain::RegionCode::parse(&format!("{:0<6}", prefix.digits()))
                    {
                        let _ = d.route(&code);
                    }
                }
            }
        }
    });
}
