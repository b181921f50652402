//! A development and test network of nodes on one machine: the development PKI on disk
//! ([`pki`]) and, soon, booting the nodes.

pub mod pki;
