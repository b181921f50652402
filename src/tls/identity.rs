//! Node identity carried by exchange certificates.
//!
//! This file owns the mapping from an (already verified) X.509 certificate to
//! the node id of the civil-affairs bureau that holds it, and the certificate
//! fingerprint that the signed directory pins.
//!
//! A node's identity is a single subject-alternative-name URI of the form
//! `urn:hukou-sync:node:<id>`, where `<id>` matches `[a-z0-9][a-z0-9-]{0,31}`
//! (for example `urn:hukou-sync:node:410000`). Nothing else in the certificate
//! (common name, DNS names, organisation) is ever used to identify a node.
//!
//! None of these functions verify the certificate: they must only be applied
//! to certificates that rustls has already verified against the exchange CA.

use ring::digest;
use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;

/// Prefix of the subject-alternative-name URI that carries a node id.
pub const NODE_URI_PREFIX: &str = "urn:hukou-sync:node:";

/// Maximum length of a node id, in bytes (one leading character plus up to 31 more).
pub const MAX_NODE_ID_LEN: usize = 32;

/// Why a node id could not be extracted from a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The bytes are not a parseable DER X.509 certificate.
    #[error("certificate is not valid DER X.509: {reason}")]
    Parse {
        /// Parser diagnostic.
        reason: String,
    },
    /// The subject-alternative-name extension is present but unusable
    /// (duplicated or undecodable).
    #[error("certificate subjectAltName extension is invalid: {reason}")]
    SubjectAltName {
        /// Parser diagnostic.
        reason: String,
    },
    /// No `urn:hukou-sync:node:` URI is present in the subject alternative names.
    #[error("certificate carries no `{NODE_URI_PREFIX}<id>` subjectAltName URI")]
    NoNodeUri,
    /// More than one node URI is present; the certificate is ambiguous.
    #[error("certificate carries {count} `{NODE_URI_PREFIX}` subjectAltName URIs; exactly one is required")]
    MultipleNodeUris {
        /// How many node URIs were found.
        count: usize,
    },
    /// A node URI is present but its id (or prefix spelling) is invalid.
    #[error("malformed node URI {uri:?}: the id must match [a-z0-9][a-z0-9-]{{0,31}} after the exact prefix `{NODE_URI_PREFIX}`")]
    MalformedNodeUri {
        /// The offending URI, verbatim.
        uri: String,
    },
}

/// Returns true when `id` is a well-formed node id: `[a-z0-9][a-z0-9-]{0,31}`.
pub fn is_valid_node_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    match bytes.split_first() {
        None => false,
        Some((first, rest)) => {
            bytes.len() <= MAX_NODE_ID_LEN
                && (first.is_ascii_lowercase() || first.is_ascii_digit())
                && rest
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        }
    }
}

/// Builds the SAN URI for `node_id` (`urn:hukou-sync:node:<node_id>`).
///
/// The id is not validated here; see [`is_valid_node_id`].
pub fn node_uri(node_id: &str) -> String {
    format!("{NODE_URI_PREFIX}{node_id}")
}

/// Extracts the node id from a certificate's subject-alternative-name URIs.
///
/// Exactly one URI starting with [`NODE_URI_PREFIX`] (compared
/// case-insensitively, so that a mis-cased prefix is reported as malformed
/// rather than silently ignored) must be present, and its id must be valid.
/// Other URIs and other name types are ignored.
///
/// The certificate must already have been verified (this does not check
/// signatures, validity or the issuer).
pub fn node_id_of(cert: &CertificateDer<'_>) -> Result<String, IdentityError> {
    let (rest, parsed) =
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| IdentityError::Parse {
            reason: e.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(IdentityError::Parse {
            reason: format!("{} trailing bytes after the certificate", rest.len()),
        });
    }
    let san = parsed
        .subject_alternative_name()
        .map_err(|e| IdentityError::SubjectAltName {
            reason: e.to_string(),
        })?;
    let Some(san) = san else {
        return Err(IdentityError::NoNodeUri);
    };

    let node_uris: Vec<&str> = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) if has_node_prefix(uri) => Some(*uri),
            _ => None,
        })
        .collect();

    match node_uris.as_slice() {
        [] => Err(IdentityError::NoNodeUri),
        [uri] => match uri.strip_prefix(NODE_URI_PREFIX) {
            Some(id) if is_valid_node_id(id) => Ok(id.to_owned()),
            _ => Err(IdentityError::MalformedNodeUri {
                uri: (*uri).to_owned(),
            }),
        },
        several => Err(IdentityError::MultipleNodeUris {
            count: several.len(),
        }),
    }
}

/// Case-insensitive check for the node URI prefix.
fn has_node_prefix(uri: &str) -> bool {
    uri.get(..NODE_URI_PREFIX.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(NODE_URI_PREFIX))
}

/// Lower-case hex SHA-256 of the certificate's DER encoding.
///
/// This is the value the signed node directory pins for each node.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = digest::digest(&digest::SHA256, cert.as_ref());
    let mut out = String::with_capacity(hash.as_ref().len() * 2);
    for byte in hash.as_ref() {
        // Both indices are nibbles (< 16), so indexing HEX cannot panic.
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, SanType};

    /// Self-signed certificate with exactly the given SANs (bypasses the
    /// validation in `pki`, so malformed identities can be produced).
    fn cert_with_sans(sans: Vec<SanType>) -> CertificateDer<'static> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        params.self_signed(&key).unwrap().der().clone()
    }

    fn uri(s: &str) -> SanType {
        SanType::URI(s.try_into().unwrap())
    }

    fn dns(s: &str) -> SanType {
        SanType::DnsName(s.try_into().unwrap())
    }

    #[test]
    fn node_id_rule() {
        for ok in ["410000", "a", "0", "node-1", "a-", &"a".repeat(32)] {
            assert!(is_valid_node_id(ok), "{ok:?} should be valid");
        }
        for bad in [
            "",
            "-a",
            "A1",
            "a_b",
            "a.b",
            "a b",
            "é",
            "410000/",
            &"a".repeat(33),
        ] {
            assert!(!is_valid_node_id(bad), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn single_node_uri_is_extracted_and_other_names_ignored() {
        let cert = cert_with_sans(vec![
            dns("localhost"),
            uri("spiffe://example/other"),
            uri("urn:hukou-sync:node:410000"),
            SanType::IpAddress("127.0.0.1".parse().unwrap()),
        ]);
        assert_eq!(node_id_of(&cert).unwrap(), "410000");
    }

    #[test]
    fn no_san_extension_is_no_node_uri() {
        let cert = cert_with_sans(vec![]);
        assert_eq!(node_id_of(&cert), Err(IdentityError::NoNodeUri));
    }

    #[test]
    fn san_without_node_uri_is_no_node_uri() {
        let cert = cert_with_sans(vec![dns("localhost"), uri("https://example.org/")]);
        assert_eq!(node_id_of(&cert), Err(IdentityError::NoNodeUri));
    }

    #[test]
    fn several_node_uris_are_refused() {
        let cert = cert_with_sans(vec![
            uri("urn:hukou-sync:node:410000"),
            uri("urn:hukou-sync:node:420000"),
        ]);
        assert_eq!(
            node_id_of(&cert),
            Err(IdentityError::MultipleNodeUris { count: 2 })
        );
        // Even a duplicate of the same id is ambiguous.
        let cert = cert_with_sans(vec![
            uri("urn:hukou-sync:node:410000"),
            uri("urn:hukou-sync:node:410000"),
        ]);
        assert_eq!(
            node_id_of(&cert),
            Err(IdentityError::MultipleNodeUris { count: 2 })
        );
    }

    #[test]
    fn malformed_node_uris_are_refused() {
        for bad in [
            "urn:hukou-sync:node:",
            "urn:hukou-sync:node:ABC",
            "urn:hukou-sync:node:-410000",
            "urn:hukou-sync:node:410000/extra",
            "URN:HUKOU-SYNC:NODE:410000",
        ] {
            let cert = cert_with_sans(vec![uri(bad)]);
            assert_eq!(
                node_id_of(&cert),
                Err(IdentityError::MalformedNodeUri {
                    uri: bad.to_owned()
                }),
                "{bad}"
            );
        }
        let long = format!("urn:hukou-sync:node:{}", "a".repeat(33));
        let cert = cert_with_sans(vec![uri(&long)]);
        assert!(matches!(
            node_id_of(&cert),
            Err(IdentityError::MalformedNodeUri { .. })
        ));
    }

    #[test]
    fn garbage_is_a_parse_error() {
        let cert = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
        assert!(matches!(
            node_id_of(&cert),
            Err(IdentityError::Parse { .. })
        ));
        let good = cert_with_sans(vec![uri("urn:hukou-sync:node:1")]);
        let mut trailing = good.as_ref().to_vec();
        trailing.push(0);
        assert!(matches!(
            node_id_of(&CertificateDer::from(trailing)),
            Err(IdentityError::Parse { .. })
        ));
    }

    #[test]
    fn fingerprint_is_lower_hex_sha256_of_der() {
        let cert = CertificateDer::from(b"abc".to_vec());
        assert_eq!(
            fingerprint(&cert),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
