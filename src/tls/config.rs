//! Every rustls configuration the process uses, built in one place.
//!
//! This file owns:
//! - [`peer_server_config`]: the exchange listener. Client certificates are
//!   REQUIRED and verified against the exchange CA; anonymous clients are
//!   refused during the handshake.
//! - [`peer_client_config`]: outgoing exchange calls. Presents this node's
//!   certificate, verifies the server chain and host name against the
//!   exchange CA, and additionally pins the server's node id
//!   ([`NodePinningVerifier`]); [`peer_client_config_checked`] also asks a
//!   [`ServerCheck`] about the server's certificate at every handshake (the
//!   node passes one that requires it to be pinned and not revoked in the
//!   directory in use).
//! - [`admin_server_config`]: the optional TLS admin listener (no client auth).
//!
//! All configs use the ring provider explicitly ([`crypto_provider`]); the
//! process-global default provider is never consulted. TLS 1.3 only unless
//! [`TlsPolicy::allow_tls12`] is set. ALPN is `http/1.1` only (the server is
//! actix-web speaking HTTP/1.1).
//!
//! Verification here answers "is this a certificate from our exchange CA"
//! (and, for outgoing calls, "is it the node we meant to call"). Mapping an
//! incoming client's certificate to its node id is done after the handshake
//! with [`super::identity::node_id_of`] on `peer_certificates()[0]`.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::{VerifierBuilderError, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore, ServerConfig,
    SignatureScheme, SupportedProtocolVersion,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::identity::{self, IdentityError};

/// ALPN protocols offered/accepted by every config: HTTP/1.1 only.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

const TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
const TLS13_AND_TLS12: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Protocol-version policy shared by the peer configs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsPolicy {
    /// Also accept TLS 1.2 (default `false`: TLS 1.3 only).
    pub allow_tls12: bool,
}

impl TlsPolicy {
    fn versions(&self) -> &'static [&'static SupportedProtocolVersion] {
        if self.allow_tls12 {
            TLS13_AND_TLS12
        } else {
            TLS13_ONLY
        }
    }
}

/// Errors while building a rustls configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// No exchange CA root certificate was supplied.
    #[error("no exchange CA root certificates supplied")]
    NoCaRoots,
    /// An exchange CA root could not be used as a trust anchor.
    #[error("exchange CA root #{index} is not a usable trust anchor: {source}")]
    InvalidCaRoot {
        /// Position in the supplied list.
        index: usize,
        /// Why rustls/webpki rejected it.
        source: rustls::Error,
    },
    /// The certificate chain to present is empty.
    #[error("certificate chain to present is empty")]
    EmptyChain,
    /// The node id the client should pin is not a valid node id.
    #[error("expected peer node id {0:?} is invalid: must match [a-z0-9][a-z0-9-]{{0,31}}")]
    InvalidExpectedNode(String),
    /// Building the client-certificate verifier failed.
    #[error("cannot build client certificate verifier: {0}")]
    ClientVerifier(#[source] VerifierBuilderError),
    /// Building the server-certificate verifier failed.
    #[error("cannot build server certificate verifier: {0}")]
    ServerVerifier(#[source] VerifierBuilderError),
    /// The protocol versions are unusable with the provider.
    #[error("unsupported protocol version policy: {0}")]
    ProtocolVersions(#[source] rustls::Error),
    /// The certificate chain / private key pair was rejected (e.g. key does
    /// not match the certificate, or unsupported key type).
    #[error("certificate or private key rejected: {0}")]
    CertifiedKey(#[source] rustls::Error),
}

/// Why [`NodePinningVerifier`] rejected a server certificate that was
/// otherwise valid. Carried inside
/// `rustls::Error::InvalidCertificate(CertificateError::Other(..))`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerPinningError {
    /// The server is a valid exchange node, but not the one we meant to call.
    #[error("server certificate belongs to node {found:?}, expected node {expected:?}")]
    WrongNode {
        /// The node id pinned for this connection.
        expected: String,
        /// The node id in the server's certificate.
        found: String,
    },
    /// The server certificate carries no usable node identity.
    #[error("server certificate has no usable node identity: {0}")]
    Identity(#[from] IdentityError),
    /// The [`ServerCheck`] refused the certificate (e.g. it is revoked in the directory).
    #[error("server certificate of node {node:?} refused: {reason}")]
    Refused {
        /// The node id in the server's certificate.
        node: String,
        /// Why, as the check said.
        reason: String,
    },
}

/// A further check of a server certificate, run at every handshake after the chain, host name
/// and node id verified: given the node id and the end-entity certificate, `Err(reason)`
/// refuses it. Kept as a function so this module does not depend on the directory.
pub type ServerCheck = Arc<dyn Fn(&str, &CertificateDer<'_>) -> Result<(), String> + Send + Sync>;

/// The crypto provider used by every config: ring, passed explicitly.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Server config for the exchange listener.
///
/// Client certificates are required and must chain to one of `ca_roots`
/// (no anonymous clients). `chain` is this node's certificate chain (leaf
/// first) and `key` its private key. ALPN is `http/1.1`.
pub fn peer_server_config(
    ca_roots: &[CertificateDer<'_>],
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    policy: &TlsPolicy,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = crypto_provider();
    let roots = root_store(ca_roots)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(TlsError::ClientVerifier)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(policy.versions())
        .map_err(TlsError::ProtocolVersions)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(non_empty(chain)?, key)
        .map_err(TlsError::CertifiedKey)?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// Client config for calling the exchange listener of node `expected_peer_node`.
///
/// Presents `client_chain`/`client_key`; verifies the server's chain against
/// `ca_roots` and its host name against the name used to connect (standard
/// WebPKI), then requires the server certificate's node id to equal
/// `expected_peer_node` ([`NodePinningVerifier`]). Build one config per peer.
pub fn peer_client_config(
    ca_roots: &[CertificateDer<'_>],
    client_chain: Vec<CertificateDer<'static>>,
    client_key: PrivateKeyDer<'static>,
    expected_peer_node: &str,
    policy: &TlsPolicy,
) -> Result<Arc<ClientConfig>, TlsError> {
    peer_client_config_checked(
        ca_roots,
        client_chain,
        client_key,
        expected_peer_node,
        policy,
        None,
    )
}

/// [`peer_client_config`], with `check` also run on the server's certificate at every
/// handshake (see [`ServerCheck`]).
pub fn peer_client_config_checked(
    ca_roots: &[CertificateDer<'_>],
    client_chain: Vec<CertificateDer<'static>>,
    client_key: PrivateKeyDer<'static>,
    expected_peer_node: &str,
    policy: &TlsPolicy,
    check: Option<ServerCheck>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = crypto_provider();
    let roots = root_store(ca_roots)?;
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(TlsError::ServerVerifier)?;
    let mut verifier = NodePinningVerifier::new(webpki, expected_peer_node)?;
    verifier.check = check;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(policy.versions())
        .map_err(TlsError::ProtocolVersions)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(non_empty(client_chain)?, client_key)
        .map_err(TlsError::CertifiedKey)?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// Client config for fetching the signed directory from the authority's publication point:
/// the server's chain verified against `ca_roots` and its host name (standard WebPKI), no
/// client certificate. The directory itself is trusted only for the authority's signature.
pub fn publication_client_config(
    ca_roots: &[CertificateDer<'_>],
) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = crypto_provider();
    let roots = root_store(ca_roots)?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(TLS13_ONLY)
        .map_err(TlsError::ProtocolVersions)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// Server config for the optional TLS admin listener: no client
/// authentication, TLS 1.3 only, ALPN `http/1.1`.
pub fn admin_server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(TLS13_ONLY)
        .map_err(TlsError::ProtocolVersions)?
        .with_no_client_auth()
        .with_single_cert(non_empty(chain)?, key)
        .map_err(TlsError::CertifiedKey)?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

fn root_store(ca_roots: &[CertificateDer<'_>]) -> Result<Arc<RootCertStore>, TlsError> {
    if ca_roots.is_empty() {
        return Err(TlsError::NoCaRoots);
    }
    let mut store = RootCertStore::empty();
    for (index, root) in ca_roots.iter().enumerate() {
        store
            .add(root.clone().into_owned())
            .map_err(|source| TlsError::InvalidCaRoot { index, source })?;
    }
    Ok(Arc::new(store))
}

fn non_empty(
    chain: Vec<CertificateDer<'static>>,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    if chain.is_empty() {
        Err(TlsError::EmptyChain)
    } else {
        Ok(chain)
    }
}

/// Server-certificate verifier that runs an inner verifier (normally
/// WebPKI: chain, validity, EKU, host name) and then requires the server
/// certificate's node id to equal the pinned one.
///
/// A mismatch or a missing/malformed identity is reported as
/// `rustls::Error::InvalidCertificate(CertificateError::Other(..))` wrapping a
/// [`PeerPinningError`]. Signature checks are delegated to the inner verifier.
pub struct NodePinningVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    expected_node: String,
    /// Run last, on a certificate that passed everything else.
    check: Option<ServerCheck>,
}

impl NodePinningVerifier {
    /// Wraps `inner`, pinning `expected_node` (which must be a valid node id).
    pub fn new(inner: Arc<dyn ServerCertVerifier>, expected_node: &str) -> Result<Self, TlsError> {
        if !identity::is_valid_node_id(expected_node) {
            return Err(TlsError::InvalidExpectedNode(expected_node.to_owned()));
        }
        Ok(Self {
            inner,
            expected_node: expected_node.to_owned(),
            check: None,
        })
    }

    /// The pinned node id.
    pub fn expected_node(&self) -> &str {
        &self.expected_node
    }
}

impl fmt::Debug for NodePinningVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodePinningVerifier")
            .field("expected_node", &self.expected_node)
            .field("checked", &self.check.is_some())
            .finish_non_exhaustive()
    }
}

fn pinning_error(err: PeerPinningError) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(err))))
}

impl ServerCertVerifier for NodePinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let found = identity::node_id_of(end_entity)
            .map_err(|e| pinning_error(PeerPinningError::Identity(e)))?;
        if found != self.expected_node {
            return Err(pinning_error(PeerPinningError::WrongNode {
                expected: self.expected_node.clone(),
                found,
            }));
        }
        if let Some(check) = &self.check {
            check(&found, end_entity).map_err(|reason| {
                pinning_error(PeerPinningError::Refused {
                    node: found.clone(),
                    reason,
                })
            })?;
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

#[cfg(test)]
mod tests {
    use super::super::pki::{self, CertifiedKey, DEFAULT_HOSTS};
    use super::*;
    use rustls::{ClientConnection, ConnectionCommon, ProtocolVersion, ServerConnection};
    use std::time::{Duration, SystemTime};

    /// A node's material in the form the configs take.
    struct Node {
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    }

    impl Node {
        fn from_pem(ck: &CertifiedKey) -> Self {
            Node {
                chain: pki::load_certs_from_pem(&ck.cert_pem).unwrap(),
                key: pki::load_private_key_from_pem(&ck.key_pem).unwrap(),
            }
        }
    }

    struct Pki {
        root: Vec<CertificateDer<'static>>,
        ca: CertifiedKey,
    }

    impl Pki {
        fn new(name: &str) -> Self {
            let ca = pki::generate_ca(name).unwrap();
            Pki {
                root: pki::load_certs_from_pem(&ca.cert_pem).unwrap(),
                ca,
            }
        }

        fn node(&self, id: &str) -> Node {
            Node::from_pem(&pki::issue_node_cert(&self.ca, id, DEFAULT_HOSTS).unwrap())
        }
    }

    const TLS13: TlsPolicy = TlsPolicy { allow_tls12: false };

    fn server(pki: &Pki, node: Node, policy: &TlsPolicy) -> ServerConnection {
        let cfg = peer_server_config(&pki.root, node.chain, node.key, policy).unwrap();
        ServerConnection::new(cfg).unwrap()
    }

    fn client_with(cfg: Arc<ClientConfig>, host: &str) -> ClientConnection {
        ClientConnection::new(cfg, ServerName::try_from(host.to_owned()).unwrap()).unwrap()
    }

    fn client(pki: &Pki, node: Node, expected: &str, policy: &TlsPolicy) -> ClientConnection {
        let cfg = peer_client_config(&pki.root, node.chain, node.key, expected, policy).unwrap();
        client_with(cfg, "localhost")
    }

    /// Result of driving a handshake in memory.
    #[derive(Debug)]
    struct Outcome {
        client_err: Option<rustls::Error>,
        server_err: Option<rustls::Error>,
    }

    impl Outcome {
        fn ok(&self) -> bool {
            self.client_err.is_none() && self.server_err.is_none()
        }
    }

    /// Moves all pending TLS records from `from` to `to`; returns bytes moved.
    fn transfer<A, B>(from: &mut ConnectionCommon<A>, to: &mut ConnectionCommon<B>) -> usize {
        let mut buf = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            if to.read_tls(&mut rd).is_err() {
                break;
            }
        }
        buf.len()
    }

    /// Drives client and server against each other until both finish the
    /// handshake or one side fails (the failing side's alert is delivered).
    fn handshake(client: &mut ClientConnection, server: &mut ServerConnection) -> Outcome {
        let mut out = Outcome {
            client_err: None,
            server_err: None,
        };
        for _ in 0..32 {
            let moved_cs = transfer(client, server);
            if let Err(e) = server.process_new_packets() {
                out.server_err = Some(e);
                transfer(server, client);
                out.client_err = client.process_new_packets().err();
                return out;
            }
            let moved_sc = transfer(server, client);
            if let Err(e) = client.process_new_packets() {
                out.client_err = Some(e);
                transfer(client, server);
                out.server_err = server.process_new_packets().err();
                return out;
            }
            if !client.is_handshaking()
                && !server.is_handshaking()
                && moved_cs == 0
                && moved_sc == 0
            {
                return out;
            }
        }
        panic!("handshake did not converge");
    }

    /// Sends application data both ways over an established pair.
    fn exchange_data(client: &mut ClientConnection, server: &mut ServerConnection) {
        use std::io::{Read, Write};
        client.writer().write_all(b"ping").unwrap();
        transfer(client, server);
        server.process_new_packets().unwrap();
        let mut got = [0u8; 4];
        server.reader().read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        server.writer().write_all(b"pong").unwrap();
        transfer(server, client);
        client.process_new_packets().unwrap();
        client.reader().read_exact(&mut got).unwrap();
        assert_eq!(&got, b"pong");
    }

    fn pinning_reason(err: &rustls::Error) -> Option<&PeerPinningError> {
        match err {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
                inner.downcast_ref::<PeerPinningError>()
            }
            _ => None,
        }
    }

    #[test]
    fn mutual_handshake_succeeds_and_server_sees_client_node() {
        let pki = Pki::new("exchange CA");
        let mut s = server(&pki, pki.node("410000"), &TLS13);
        let mut c = client(&pki, pki.node("420000"), "410000", &TLS13);
        let out = handshake(&mut c, &mut s);
        assert!(out.ok(), "{out:?}");
        exchange_data(&mut c, &mut s);

        assert_eq!(s.protocol_version(), Some(ProtocolVersion::TLSv1_3));
        assert_eq!(s.alpn_protocol(), Some(ALPN_HTTP11));
        let client_certs = s.peer_certificates().expect("server sees client cert");
        assert_eq!(identity::node_id_of(&client_certs[0]).unwrap(), "420000");
        let server_certs = c.peer_certificates().expect("client sees server cert");
        assert_eq!(identity::node_id_of(&server_certs[0]).unwrap(), "410000");
    }

    #[test]
    fn client_without_certificate_is_refused() {
        let pki = Pki::new("exchange CA");
        let mut s = server(&pki, pki.node("410000"), &TLS13);
        let roots = root_store(&pki.root).unwrap();
        let cfg = ClientConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(TLS13_ONLY)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut c = client_with(Arc::new(cfg), "localhost");
        let out = handshake(&mut c, &mut s);
        assert_eq!(out.server_err, Some(rustls::Error::NoCertificatesPresented));
        assert!(s.peer_certificates().is_none());
        assert!(out.client_err.is_some(), "client learns of the refusal");
    }

    #[test]
    fn client_certificate_from_another_ca_is_refused() {
        let pki = Pki::new("exchange CA");
        let rogue = Pki::new("rogue CA");
        let mut s = server(&pki, pki.node("410000"), &TLS13);
        // The rogue client trusts the real CA (so it accepts the server) but
        // its own certificate is issued by the rogue CA.
        let rogue_node = rogue.node("420000");
        let cfg = peer_client_config(
            &pki.root,
            rogue_node.chain,
            rogue_node.key,
            "410000",
            &TLS13,
        )
        .unwrap();
        let mut c = client_with(cfg, "localhost");
        let out = handshake(&mut c, &mut s);
        assert_eq!(
            out.server_err,
            Some(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        );
    }

    #[test]
    fn server_with_wrong_node_id_is_refused_by_client() {
        let pki = Pki::new("exchange CA");
        let mut s = server(&pki, pki.node("410000"), &TLS13);
        let mut c = client(&pki, pki.node("420000"), "430000", &TLS13);
        let out = handshake(&mut c, &mut s);
        let err = out.client_err.expect("client must refuse");
        assert_eq!(
            pinning_reason(&err),
            Some(&PeerPinningError::WrongNode {
                expected: "430000".into(),
                found: "410000".into()
            }),
            "{err:?}"
        );
        assert!(out.server_err.is_some(), "server receives the alert");
    }

    /// The check sees the server's node id and certificate at the handshake, and its refusal
    /// fails the handshake with its reason; a check that accepts changes nothing.
    #[test]
    fn a_server_check_refuses_or_accepts_the_server_certificate() {
        let pki = Pki::new("exchange CA");
        for revoked in [true, false] {
            let server_node = pki.node("410000");
            let fp = crate::tls::fingerprint(&server_node.chain[0]);
            let check: ServerCheck = Arc::new(move |node: &str, cert: &CertificateDer<'_>| {
                assert_eq!(node, "410000");
                assert_eq!(crate::tls::fingerprint(cert), fp);
                if revoked {
                    Err("revoked in the directory".to_owned())
                } else {
                    Ok(())
                }
            });
            let mut s = server(&pki, server_node, &TLS13);
            let me = pki.node("420000");
            let cfg = peer_client_config_checked(
                &pki.root,
                me.chain,
                me.key,
                "410000",
                &TLS13,
                Some(check),
            )
            .unwrap();
            let mut c = client_with(cfg, "localhost");
            let out = handshake(&mut c, &mut s);
            if revoked {
                let err = out.client_err.expect("client must refuse");
                assert_eq!(
                    pinning_reason(&err),
                    Some(&PeerPinningError::Refused {
                        node: "410000".into(),
                        reason: "revoked in the directory".into()
                    }),
                    "{err:?}"
                );
            } else {
                assert!(out.ok(), "{out:?}");
            }
        }
    }

    #[test]
    fn server_from_another_ca_is_refused_by_client() {
        let pki = Pki::new("exchange CA");
        let rogue = Pki::new("rogue CA");
        let rogue_server = rogue.node("410000");
        let cfg = ServerConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(TLS13_ONLY)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(rogue_server.chain, rogue_server.key)
            .unwrap();
        let mut s = ServerConnection::new(Arc::new(cfg)).unwrap();
        let mut c = client(&pki, pki.node("420000"), "410000", &TLS13);
        let out = handshake(&mut c, &mut s);
        assert_eq!(
            out.client_err,
            Some(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        );
    }

    #[test]
    fn host_name_is_still_verified() {
        let pki = Pki::new("exchange CA");
        let mut s = server(&pki, pki.node("410000"), &TLS13);
        let me = pki.node("420000");
        let cfg = peer_client_config(&pki.root, me.chain, me.key, "410000", &TLS13).unwrap();
        let mut c = client_with(cfg, "bureau.example.org");
        let out = handshake(&mut c, &mut s);
        assert!(
            matches!(
                out.client_err,
                Some(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                        | CertificateError::NotValidForNameContext { .. }
                ))
            ),
            "{out:?}"
        );
    }

    #[test]
    fn expired_client_certificate_is_refused() {
        let pki = Pki::new("exchange CA");
        let mut s = server(&pki, pki.node("410000"), &TLS13);
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        let expired = pki::issue_node_cert_with_validity(
            &pki.ca,
            "420000",
            DEFAULT_HOSTS,
            now - 400 * day,
            now - day,
        )
        .unwrap();
        let me = Node::from_pem(&expired);
        let mut c = client(&pki, me, "410000", &TLS13);
        let out = handshake(&mut c, &mut s);
        assert!(
            matches!(
                out.server_err,
                Some(rustls::Error::InvalidCertificate(
                    CertificateError::Expired | CertificateError::ExpiredContext { .. }
                ))
            ),
            "{out:?}"
        );
    }

    fn tls12_only_client(pki: &Pki, me: Node, expected: &str) -> ClientConnection {
        let roots = root_store(&pki.root).unwrap();
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, crypto_provider())
            .build()
            .unwrap();
        let verifier = NodePinningVerifier::new(webpki, expected).unwrap();
        let cfg = ClientConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_auth_cert(me.chain, me.key)
            .unwrap();
        client_with(Arc::new(cfg), "localhost")
    }

    #[test]
    fn tls12_client_is_refused_by_tls13_only_server() {
        let pki = Pki::new("exchange CA");
        let mut s = server(&pki, pki.node("410000"), &TLS13);
        let mut c = tls12_only_client(&pki, pki.node("420000"), "410000");
        let out = handshake(&mut c, &mut s);
        assert!(
            matches!(out.server_err, Some(rustls::Error::PeerIncompatible(_))),
            "{out:?}"
        );
    }

    #[test]
    fn tls12_is_accepted_when_policy_allows_it() {
        let pki = Pki::new("exchange CA");
        let policy = TlsPolicy { allow_tls12: true };
        let mut s = server(&pki, pki.node("410000"), &policy);
        let mut c = tls12_only_client(&pki, pki.node("420000"), "410000");
        let out = handshake(&mut c, &mut s);
        assert!(out.ok(), "{out:?}");
        exchange_data(&mut c, &mut s);
        assert_eq!(s.protocol_version(), Some(ProtocolVersion::TLSv1_2));
        let client_certs = s.peer_certificates().unwrap();
        assert_eq!(identity::node_id_of(&client_certs[0]).unwrap(), "420000");

        // Pinning also applies on the TLS 1.2 path.
        let mut s = server(&pki, pki.node("410000"), &policy);
        let mut c = tls12_only_client(&pki, pki.node("420000"), "499999");
        let out = handshake(&mut c, &mut s);
        assert!(
            matches!(
                out.client_err.as_ref().and_then(pinning_reason),
                Some(PeerPinningError::WrongNode { .. })
            ),
            "{out:?}"
        );
    }

    #[test]
    fn admin_listener_needs_no_client_certificate() {
        let pki = Pki::new("exchange CA");
        let admin = pki.node("410000");
        let cfg = admin_server_config(admin.chain, admin.key).unwrap();
        let mut s = ServerConnection::new(cfg).unwrap();
        let roots = root_store(&pki.root).unwrap();
        let ccfg = ClientConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(TLS13_ONLY)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut c = client_with(Arc::new(ccfg), "127.0.0.1");
        let out = handshake(&mut c, &mut s);
        assert!(out.ok(), "{out:?}");
        assert!(s.peer_certificates().is_none());
    }

    #[test]
    fn builders_reject_bad_inputs() {
        let pki = Pki::new("exchange CA");
        let n = pki.node("410000");
        assert!(matches!(
            peer_server_config(&[], n.chain.clone(), n.key.clone_key(), &TLS13),
            Err(TlsError::NoCaRoots)
        ));
        assert!(matches!(
            peer_server_config(&pki.root, Vec::new(), n.key.clone_key(), &TLS13),
            Err(TlsError::EmptyChain)
        ));
        assert!(matches!(
            peer_server_config(
                &[CertificateDer::from(vec![1, 2, 3])],
                n.chain.clone(),
                n.key.clone_key(),
                &TLS13
            ),
            Err(TlsError::InvalidCaRoot { index: 0, .. })
        ));
        assert!(matches!(
            peer_client_config(&pki.root, n.chain, n.key, "Not-A-Node", &TLS13),
            Err(TlsError::InvalidExpectedNode(_))
        ));
    }
}
