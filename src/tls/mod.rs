//! TLS for the node-to-node exchange.
//!
//! This module owns three things, and nothing outside it should duplicate them:
//! - **Building every rustls config of the process** ([`config`]): the mutual-TLS
//!   exchange listener, the per-peer exchange client (which pins the peer's node
//!   id), and the optional admin listener. All use the ring provider explicitly;
//!   TLS 1.3 only unless the policy allows TLS 1.2.
//! - **Generating dev/test PKI** ([`pki`]): an ECDSA P-256 exchange CA and node
//!   certificates (rcgen), re-loading a CA to issue more, writing PEM files with
//!   safe permissions, and loading certificate chains and private keys.
//! - **Mapping a verified peer certificate to a node id** ([`identity`]): the
//!   single SAN URI `urn:hukou-sync:node:<id>`, plus the SHA-256 fingerprint the
//!   signed directory pins.
//!
//! Typical use on a node:
//! 1. `pki::load_certs` (CA roots and own chain) and `pki::load_private_key`;
//! 2. `config::peer_server_config` for the listener and one
//!    `config::peer_client_config` per peer node;
//! 3. after a handshake, `identity::node_id_of(&peer_certificates()[0])` names
//!    the calling node.

pub mod config;
pub mod identity;
pub mod pki;

pub use config::{
    admin_server_config, crypto_provider, peer_client_config, peer_client_config_checked,
    peer_server_config, publication_client_config, NodePinningVerifier, PeerPinningError,
    ServerCheck, TlsError, TlsPolicy,
};
pub use identity::{fingerprint, is_valid_node_id, node_id_of, IdentityError, NODE_URI_PREFIX};
pub use pki::{CertifiedKey, PkiError};
