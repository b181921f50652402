//! Development / test PKI and PEM file handling.
//!
//! This file owns:
//! - generating an exchange CA and node certificates with rcgen (ECDSA P-256,
//!   ring backend) — meant for development, tests and small pilots, not as a
//!   replacement for the ministry's production CA;
//! - re-loading an existing CA from its PEM files so `pki issue` can sign more
//!   node certificates later;
//! - writing PEM files with safe permissions (private keys `0600`, created
//!   exclusively, never overwritten);
//! - loading certificate chains and private keys for the rustls configs in
//!   [`super::config`], refusing private key files readable by group/others.
//!
//! Node certificates carry the node identity as the SAN URI
//! `urn:hukou-sync:node:<id>` (see [`super::identity`]) and are valid for both
//! TLS server and client authentication, so one certificate serves a node's
//! listener and its outgoing exchange calls.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::string::{BmpString, Ia5String, PrintableString, TeletexString, UniversalString};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData,
    SanType,
};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::extensions::ParsedExtension;

use super::identity;
use crate::crypto::secret_file::{write_new_secret, SecretFileError};

/// Hosts put in a node certificate when the operator gives none.
pub const DEFAULT_HOSTS: &[&str] = &["localhost", "127.0.0.1"];

/// Validity of a generated exchange CA (about ten years).
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// Validity of a generated node certificate (about one year).
pub const NODE_CERT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// How far `not_before` is back-dated, to tolerate clock skew between nodes.
const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// Last second representable in an X.509 GeneralizedTime (9999-12-31T23:59:59Z).
const MAX_X509_UNIX_SECS: u64 = 253_402_300_799;

/// Label used in errors for PEM that did not come from a file.
const IN_MEMORY: &str = "<in-memory PEM>";

/// Errors of the development PKI and of PEM loading.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The node id does not match `[a-z0-9][a-z0-9-]{0,31}`.
    #[error("invalid node id {0:?}: must match [a-z0-9][a-z0-9-]{{0,31}}")]
    InvalidNodeId(String),
    /// The CA common name is empty.
    #[error("CA common name must not be empty")]
    EmptyCommonName,
    /// A host is neither an IP address nor a syntactically valid DNS name.
    #[error("invalid host {0:?}: neither an IP address nor a valid DNS name")]
    InvalidHost(String),
    /// The requested validity period is empty or outside 1970..=9999.
    #[error("invalid validity period: not_before must be earlier than not_after and both within 1970..=9999")]
    InvalidValidity,
    /// Generating a key pair failed.
    #[error("key generation failed: {0}")]
    KeyGeneration(#[source] rcgen::Error),
    /// Building or signing a certificate failed.
    #[error("certificate signing failed: {0}")]
    Signing(#[source] rcgen::Error),
    /// The CA certificate PEM is unusable (not exactly one parseable certificate).
    #[error("CA certificate is unusable: {0}")]
    CaCertificate(String),
    /// The CA private key PEM could not be read as a key rcgen can sign with.
    #[error("CA private key is unusable: {0}")]
    CaKey(#[source] rcgen::Error),
    /// The CA certificate is not marked as a certificate authority.
    #[error("certificate is not a CA: basic constraints cA=true and keyCertSign are required")]
    NotACa,
    /// The CA private key does not belong to the CA certificate.
    #[error("CA private key does not match the CA certificate's public key")]
    CaKeyMismatch,
    /// Reading a file failed.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Underlying I/O error.
        source: io::Error,
    },
    /// The target file already exists; PEM files are never overwritten.
    #[error("refusing to overwrite existing file {}", path.display())]
    AlreadyExists {
        /// The file.
        path: PathBuf,
    },
    /// Writing a file failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Underlying I/O error.
        source: io::Error,
    },
    /// A private key file is accessible by group or others.
    #[error(
        "private key file {} is accessible by group/others (mode {mode:03o}); run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    KeyFilePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The PEM text is malformed.
    #[error("{origin}: malformed PEM: {source}")]
    Pem {
        /// File path, or `<in-memory PEM>`.
        origin: String,
        /// Parser error.
        source: pem::Error,
    },
    /// No `CERTIFICATE` block was found.
    #[error("{origin}: no CERTIFICATE found")]
    NoCertificates {
        /// File path, or `<in-memory PEM>`.
        origin: String,
    },
    /// No private key block (PKCS#8, SEC1 or PKCS#1) was found.
    #[error("{origin}: no private key found")]
    NoPrivateKey {
        /// File path, or `<in-memory PEM>`.
        origin: String,
    },
}

/// A certificate and its private key, both PEM-encoded.
///
/// `Debug` never prints the private key.
#[derive(Clone, PartialEq, Eq)]
pub struct CertifiedKey {
    /// PEM `CERTIFICATE` (the leaf only; the CA is a trust root, not part of the chain).
    pub cert_pem: String,
    /// PEM PKCS#8 `PRIVATE KEY`. Secret.
    pub key_pem: String,
}

impl fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertifiedKey")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Generates a self-signed exchange CA: ECDSA P-256, basic constraints
/// `cA=true, pathLen=0` (it signs node certificates directly), key usages
/// keyCertSign + cRLSign + digitalSignature, valid for [`CA_VALIDITY`].
pub fn generate_ca(common_name: &str) -> Result<CertifiedKey, PkiError> {
    if common_name.trim().is_empty() {
        return Err(PkiError::EmptyCommonName);
    }
    let key = new_key()?;
    let now = SystemTime::now();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(
        &mut params,
        now.checked_sub(BACKDATE).unwrap_or(now),
        now.checked_add(CA_VALIDITY)
            .ok_or(PkiError::InvalidValidity)?,
    )?;
    let cert = params.self_signed(&key).map_err(PkiError::Signing)?;
    Ok(CertifiedKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Issues a node certificate signed by `ca`, valid for [`NODE_CERT_VALIDITY`].
///
/// See [`issue_node_cert_with_validity`] for the certificate's contents.
/// Callers without a better idea pass [`DEFAULT_HOSTS`].
pub fn issue_node_cert(
    ca: &CertifiedKey,
    node_id: &str,
    hosts: &[&str],
) -> Result<CertifiedKey, PkiError> {
    let now = SystemTime::now();
    issue_node_cert_with_validity(
        ca,
        node_id,
        hosts,
        now.checked_sub(BACKDATE).unwrap_or(now),
        now.checked_add(NODE_CERT_VALIDITY)
            .ok_or(PkiError::InvalidValidity)?,
    )
}

/// Issues a node certificate signed by `ca`, valid from five minutes ago (clock skew between
/// nodes) for `days` days. See [`issue_node_cert_with_validity`] for its contents.
pub fn issue_node_cert_for_days(
    ca: &CertifiedKey,
    node_id: &str,
    hosts: &[&str],
    days: u64,
) -> Result<CertifiedKey, PkiError> {
    let now = SystemTime::now();
    let not_after = days
        .checked_mul(24 * 60 * 60)
        .and_then(|secs| now.checked_add(Duration::from_secs(secs)))
        .ok_or(PkiError::InvalidValidity)?;
    issue_node_cert_with_validity(
        ca,
        node_id,
        hosts,
        now.checked_sub(BACKDATE).unwrap_or(now),
        not_after,
    )
}

/// Lower-case hex SHA-256 of the first certificate of `cert_pem`: what the signed directory pins.
pub fn pem_fingerprint(cert_pem: &str) -> Result<String, PkiError> {
    let ders = load_certs_from_pem(cert_pem)?;
    let der = ders.first().ok_or(PkiError::NoCertificates {
        origin: "<in-memory PEM>".to_owned(),
    })?;
    Ok(identity::fingerprint(der))
}

/// Issues a node certificate signed by `ca` with an explicit validity window
/// (tests use it to make expired or not-yet-valid certificates).
///
/// The certificate has a fresh ECDSA P-256 key, subject CN = `node_id`, SAN URI
/// `urn:hukou-sync:node:<node_id>` plus one SAN per host (an IP address if it
/// parses as one, otherwise a DNS name), key usage digitalSignature, extended
/// key usages serverAuth and clientAuth, and an authority key identifier.
pub fn issue_node_cert_with_validity(
    ca: &CertifiedKey,
    node_id: &str,
    hosts: &[&str],
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<CertifiedKey, PkiError> {
    if !identity::is_valid_node_id(node_id) {
        return Err(PkiError::InvalidNodeId(node_id.to_owned()));
    }
    let mut sans = Vec::with_capacity(hosts.len() + 1);
    sans.push(SanType::URI(
        Ia5String::try_from(identity::node_uri(node_id))
            .map_err(|_| PkiError::InvalidNodeId(node_id.to_owned()))?,
    ));
    for host in hosts {
        sans.push(host_san(host)?);
    }

    let issuer = ca_issuer(ca)?;
    let key = new_key()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, node_id);
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, not_before, not_after)?;
    let cert = params.signed_by(&key, &issuer).map_err(PkiError::Signing)?;
    Ok(CertifiedKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Re-loads an exchange CA from its PEM files (for `pki issue`).
///
/// The key file is subject to the same permission check as
/// [`load_private_key`]. The pair is validated: the certificate must be a
/// single CA certificate and the key must match its public key.
pub fn load_ca(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, PkiError> {
    let cert_pem = read_to_string(cert_path)?;
    let key_pem = read_private_file(key_path)?;
    let ca = CertifiedKey { cert_pem, key_pem };
    ca_issuer(&ca)?;
    Ok(ca)
}

/// Writes secret PEM (a private key) to a new file with mode `0600`.
///
/// Fails with [`PkiError::AlreadyExists`] rather than overwrite anything.
pub fn write_private_pem(path: &Path, pem: &str) -> Result<(), PkiError> {
    write_new_secret(path, pem.as_bytes()).map_err(|e| match e {
        SecretFileError::AlreadyExists { path } => PkiError::AlreadyExists { path },
        SecretFileError::InsecurePermissions { path, mode } => {
            PkiError::KeyFilePermissions { path, mode }
        }
        SecretFileError::Io { path, source, .. } => PkiError::Write { path, source },
    })
}

/// Writes public PEM (a certificate) to a new file with mode `0644`.
///
/// Fails with [`PkiError::AlreadyExists`] rather than overwrite anything.
pub fn write_public_pem(path: &Path, pem: &str) -> Result<(), PkiError> {
    write_new_file(path, pem, 0o644)
}

/// Loads every `CERTIFICATE` from a PEM file, in order (leaf first for a chain).
///
/// An empty result is an error.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let bytes = std::fs::read(path).map_err(|source| PkiError::Read {
        path: path.to_owned(),
        source,
    })?;
    certs_from_pem_bytes(&bytes, &path.display().to_string())
}

/// Loads every `CERTIFICATE` from PEM text. An empty result is an error.
pub fn load_certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    certs_from_pem_bytes(pem.as_bytes(), IN_MEMORY)
}

/// Loads the first private key (PKCS#8, SEC1 or PKCS#1) from a PEM file.
///
/// Refuses a file whose mode grants any access to group or others
/// (`mode & 0o077 != 0`), naming the file and the `chmod 600` fix.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PkiError> {
    let pem = read_private_file(path)?;
    key_from_pem_bytes(pem.as_bytes(), &path.display().to_string())
}

/// Loads the first private key (PKCS#8, SEC1 or PKCS#1) from PEM text.
pub fn load_private_key_from_pem(pem: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
    key_from_pem_bytes(pem.as_bytes(), IN_MEMORY)
}

fn new_key() -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(PkiError::KeyGeneration)
}

fn host_san(host: &str) -> Result<SanType, PkiError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    // Validate DNS syntax with the same rules rustls/webpki apply.
    rustls_pki_types::DnsName::try_from(host)
        .map_err(|_| PkiError::InvalidHost(host.to_owned()))?;
    Ia5String::try_from(host)
        .map(SanType::DnsName)
        .map_err(|_| PkiError::InvalidHost(host.to_owned()))
}

/// Sets the validity window after checking it is non-empty and representable.
fn set_validity(
    params: &mut CertificateParams,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<(), PkiError> {
    let representable = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .is_ok_and(|d| d.as_secs() <= MAX_X509_UNIX_SECS)
    };
    if not_before >= not_after || !representable(not_before) || !representable(not_after) {
        return Err(PkiError::InvalidValidity);
    }
    // Both times are within 1970..=9999 (checked above), so the conversion to
    // `time::OffsetDateTime` cannot overflow (it panics only out of range).
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    Ok(())
}

/// Builds an rcgen issuer from a CA's PEM, validating the pair.
///
/// This mirrors rcgen's `Issuer::from_ca_cert_pem`, which needs rcgen's
/// `x509-parser` feature; that feature switches on x509-parser's `verify`
/// feature, which this crate deliberately keeps off. The issuer name is
/// rebuilt attribute by attribute with the same string types, so issued
/// certificates' issuer field is byte-identical to the CA's subject (checked
/// in the tests).
fn ca_issuer(ca: &CertifiedKey) -> Result<Issuer<'static, KeyPair>, PkiError> {
    let certs =
        load_certs_from_pem(&ca.cert_pem).map_err(|e| PkiError::CaCertificate(e.to_string()))?;
    let [cert_der] = certs.as_slice() else {
        return Err(PkiError::CaCertificate(format!(
            "expected exactly one certificate, found {}",
            certs.len()
        )));
    };
    let key = KeyPair::from_pem(&ca.key_pem).map_err(PkiError::CaKey)?;

    let (rest, cert) = x509_parser::parse_x509_certificate(cert_der.as_ref())
        .map_err(|e| PkiError::CaCertificate(e.to_string()))?;
    if !rest.is_empty() {
        return Err(PkiError::CaCertificate(
            "trailing bytes after the certificate".to_owned(),
        ));
    }

    let is_ca = cert
        .basic_constraints()
        .map_err(|e| PkiError::CaCertificate(e.to_string()))?
        .is_some_and(|bc| bc.value.ca);
    let key_usage = cert
        .key_usage()
        .map_err(|e| PkiError::CaCertificate(e.to_string()))?
        .map(|ku| *ku.value);
    if !is_ca || key_usage.is_some_and(|ku| !ku.key_cert_sign()) {
        return Err(PkiError::NotACa);
    }
    if cert.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err(PkiError::CaKeyMismatch);
    }

    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name_of(cert.subject())?;
    params.key_identifier_method = cert
        .iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(ski) => {
                Some(KeyIdMethod::PreSpecified(ski.0.to_vec()))
            }
            _ => None,
        })
        .unwrap_or(KeyIdMethod::Sha256);
    params.key_usages = key_usage.map(key_usages_of).unwrap_or_default();
    Ok(Issuer::new(params, key))
}

/// Converts a parsed X.509 name into rcgen's representation, keeping each
/// attribute's string type so the re-encoding is byte-identical.
fn distinguished_name_of(
    name: &x509_parser::x509::X509Name<'_>,
) -> Result<DistinguishedName, PkiError> {
    let unsupported = |what: &str| PkiError::CaCertificate(format!("unsupported subject: {what}"));
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err(unsupported("multi-valued or empty RDN"));
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or_else(|| unsupported("attribute OID too large"))?
            .collect();
        let ty = DnType::from_oid(&oid);
        if dn.get(&ty).is_some() {
            return Err(unsupported("repeated attribute type"));
        }
        let value = attr.attr_value();
        let data = value.data;
        let text = || std::str::from_utf8(data).map_err(|_| unsupported("non-UTF-8 string"));
        let bad_string = |_| unsupported("invalid string value");
        let dn_value = match value.header.tag() {
            Tag::Utf8String => DnValue::Utf8String(text()?.to_owned()),
            Tag::PrintableString => {
                DnValue::PrintableString(PrintableString::try_from(text()?).map_err(bad_string)?)
            }
            Tag::Ia5String => DnValue::Ia5String(Ia5String::try_from(text()?).map_err(bad_string)?),
            Tag::T61String => {
                DnValue::TeletexString(TeletexString::try_from(text()?).map_err(bad_string)?)
            }
            Tag::BmpString => DnValue::BmpString(
                BmpString::from_utf16be(data.to_vec())
                    .map_err(|_| unsupported("invalid BMPString"))?,
            ),
            Tag::UniversalString => DnValue::UniversalString(
                UniversalString::from_utf32be(data.to_vec())
                    .map_err(|_| unsupported("invalid UniversalString"))?,
            ),
            _ => return Err(unsupported("non-string attribute value")),
        };
        dn.push(ty, dn_value);
    }
    Ok(dn)
}

fn key_usages_of(ku: x509_parser::extensions::KeyUsage) -> Vec<KeyUsagePurpose> {
    [
        (ku.digital_signature(), KeyUsagePurpose::DigitalSignature),
        (ku.non_repudiation(), KeyUsagePurpose::ContentCommitment),
        (ku.key_encipherment(), KeyUsagePurpose::KeyEncipherment),
        (ku.data_encipherment(), KeyUsagePurpose::DataEncipherment),
        (ku.key_agreement(), KeyUsagePurpose::KeyAgreement),
        (ku.key_cert_sign(), KeyUsagePurpose::KeyCertSign),
        (ku.crl_sign(), KeyUsagePurpose::CrlSign),
        (ku.encipher_only(), KeyUsagePurpose::EncipherOnly),
        (ku.decipher_only(), KeyUsagePurpose::DecipherOnly),
    ]
    .into_iter()
    .filter_map(|(set, purpose)| set.then_some(purpose))
    .collect()
}

fn certs_from_pem_bytes(
    bytes: &[u8],
    origin: &str,
) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| PkiError::Pem {
            origin: origin.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(PkiError::NoCertificates {
            origin: origin.to_owned(),
        });
    }
    Ok(certs)
}

fn key_from_pem_bytes(bytes: &[u8], origin: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_slice(bytes).map_err(|source| match source {
        pem::Error::NoItemsFound => PkiError::NoPrivateKey {
            origin: origin.to_owned(),
        },
        source => PkiError::Pem {
            origin: origin.to_owned(),
            source,
        },
    })
}

fn read_to_string(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads a secret file after checking (on the opened handle, so there is no
/// race with a rename) that group/others have no access to it.
fn read_private_file(path: &Path) -> Result<String, PkiError> {
    let read_err = |source| PkiError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(read_err)?;
    let mode = file.metadata().map_err(read_err)?.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(PkiError::KeyFilePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(read_err)?;
    Ok(text)
}

fn write_new_file(path: &Path, contents: &str, mode: u32) -> Result<(), PkiError> {
    let write_err = |source| PkiError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => PkiError::AlreadyExists {
                path: path.to_owned(),
            },
            _ => write_err(source),
        })?;
    // The umask may have removed bits from `mode` at creation; set it exactly
    // (for 0600 this is a no-op or a tightening that already happened).
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(write_err)?;
    file.write_all(contents.as_bytes()).map_err(write_err)?;
    file.sync_all().map_err(write_err)
}

#[cfg(test)]
mod tests {
    use super::identity::{node_id_of, NODE_URI_PREFIX};
    use super::*;
    use x509_parser::extensions::GeneralName;

    fn ca() -> CertifiedKey {
        generate_ca("hukou-sync test exchange CA").unwrap()
    }

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn debug_hides_the_private_key() {
        let ca = ca();
        let shown = format!("{ca:?}");
        assert!(shown.contains("<redacted>"));
        assert!(!shown.contains("PRIVATE KEY"));
        assert!(shown.contains("BEGIN CERTIFICATE"));
    }

    #[test]
    fn ca_certificate_is_a_p256_ca() {
        let ca = ca();
        let der = load_certs_from_pem(&ca.cert_pem).unwrap().remove(0);
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let bc = cert.basic_constraints().unwrap().unwrap().value;
        assert!(bc.ca);
        assert!(cert.key_usage().unwrap().unwrap().value.key_cert_sign());
        assert_eq!(
            cert.public_key().algorithm.algorithm,
            x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
        );
        let years = (cert.validity().not_after.timestamp()
            - cert.validity().not_before.timestamp())
            / (365 * 86_400);
        assert_eq!(years, 10);
        assert!(matches!(generate_ca("  "), Err(PkiError::EmptyCommonName)));
    }

    #[test]
    fn node_certificate_contents() {
        let ca = ca();
        let node = issue_node_cert(&ca, "410000", &["localhost", "127.0.0.1", "::1"]).unwrap();
        let der = load_certs_from_pem(&node.cert_pem).unwrap().remove(0);
        assert_eq!(node_id_of(&der).unwrap(), "410000");

        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let sans = &cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names;
        assert!(sans.contains(&GeneralName::URI(&format!("{NODE_URI_PREFIX}410000"))));
        assert!(sans.contains(&GeneralName::DNSName("localhost")));
        assert!(sans.contains(&GeneralName::IPAddress(&[127, 0, 0, 1])));
        assert!(sans.contains(&GeneralName::IPAddress(
            &"::1".parse::<std::net::Ipv6Addr>().unwrap().octets()
        )));
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);

        // The issuer name is byte-identical to the CA's subject.
        let ca_der = load_certs_from_pem(&ca.cert_pem).unwrap().remove(0);
        let (_, ca_cert) = x509_parser::parse_x509_certificate(ca_der.as_ref()).unwrap();
        assert_eq!(cert.issuer().as_raw(), ca_cert.subject().as_raw());

        // The key PEM loads as a private key usable by rustls.
        load_private_key_from_pem(&node.key_pem).unwrap();
    }

    #[test]
    fn issuing_validates_inputs() {
        let ca = ca();
        assert!(matches!(
            issue_node_cert(&ca, "Bad_Id", DEFAULT_HOSTS),
            Err(PkiError::InvalidNodeId(_))
        ));
        assert!(matches!(
            issue_node_cert(&ca, "410000", &["not a host"]),
            Err(PkiError::InvalidHost(_))
        ));
        let now = SystemTime::now();
        assert!(matches!(
            issue_node_cert_with_validity(&ca, "410000", DEFAULT_HOSTS, now, now),
            Err(PkiError::InvalidValidity)
        ));
        assert!(matches!(
            issue_node_cert_with_validity(
                &ca,
                "410000",
                DEFAULT_HOSTS,
                UNIX_EPOCH,
                now + Duration::from_secs(10_000 * 365 * 86_400)
            ),
            Err(PkiError::InvalidValidity)
        ));
    }

    #[test]
    fn a_leaf_or_a_foreign_key_cannot_act_as_ca() {
        let ca = ca();
        let node = issue_node_cert(&ca, "410000", DEFAULT_HOSTS).unwrap();
        assert!(matches!(
            issue_node_cert(&node, "420000", DEFAULT_HOSTS),
            Err(PkiError::NotACa)
        ));
        let other = generate_ca("other CA").unwrap();
        let mixed = CertifiedKey {
            cert_pem: ca.cert_pem.clone(),
            key_pem: other.key_pem,
        };
        assert!(matches!(
            issue_node_cert(&mixed, "420000", DEFAULT_HOSTS),
            Err(PkiError::CaKeyMismatch)
        ));
    }

    #[test]
    fn pem_files_round_trip_with_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca();
        let cert_path = dir.path().join("ca.pem");
        let key_path = dir.path().join("ca-key.pem");
        write_public_pem(&cert_path, &ca.cert_pem).unwrap();
        write_private_pem(&key_path, &ca.key_pem).unwrap();
        assert_eq!(mode_of(&cert_path), 0o644);
        assert_eq!(mode_of(&key_path), 0o600);

        // Never overwrite.
        assert!(matches!(
            write_private_pem(&key_path, "x"),
            Err(PkiError::AlreadyExists { .. })
        ));
        assert!(matches!(
            write_public_pem(&cert_path, "x"),
            Err(PkiError::AlreadyExists { .. })
        ));

        // Reloading the CA gives something that can issue.
        let loaded = load_ca(&cert_path, &key_path).unwrap();
        assert_eq!(loaded, ca);
        let node = issue_node_cert(&loaded, "410000", DEFAULT_HOSTS).unwrap();
        assert_eq!(
            node_id_of(&load_certs_from_pem(&node.cert_pem).unwrap()[0]).unwrap(),
            "410000"
        );

        assert_eq!(load_certs(&cert_path).unwrap().len(), 1);
        load_private_key(&key_path).unwrap();
    }

    #[test]
    fn load_private_key_refuses_group_or_world_readable_files() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca();
        let key_path = dir.path().join("node-key.pem");
        write_private_pem(&key_path, &ca.key_pem).unwrap();
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();

        let err = load_private_key(&key_path).unwrap_err();
        assert!(
            matches!(err, PkiError::KeyFilePermissions { mode: 0o644, .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("chmod 600"), "{msg}");
        assert!(msg.contains(&key_path.display().to_string()), "{msg}");

        // Group-only access is refused too; load_ca applies the same check.
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            load_private_key(&key_path),
            Err(PkiError::KeyFilePermissions { .. })
        ));
        let cert_path = dir.path().join("ca.pem");
        write_public_pem(&cert_path, &ca.cert_pem).unwrap();
        assert!(matches!(
            load_ca(&cert_path, &key_path),
            Err(PkiError::KeyFilePermissions { .. })
        ));

        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o400)).unwrap();
        load_private_key(&key_path).unwrap();
    }

    #[test]
    fn loading_reports_empty_and_missing_input() {
        assert!(matches!(
            load_certs_from_pem(""),
            Err(PkiError::NoCertificates { .. })
        ));
        assert!(matches!(
            load_private_key_from_pem(&ca().cert_pem),
            Err(PkiError::NoPrivateKey { .. })
        ));
        assert!(matches!(
            load_certs_from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n"),
            Err(PkiError::Pem { .. })
        ));
        assert!(matches!(
            load_certs(Path::new("/nonexistent/hukou-sync/ca.pem")),
            Err(PkiError::Read { .. })
        ));
    }
}
