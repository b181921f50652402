//! Documents and their versions: building, signing and merging versions; the local ledger of
//! children's files; the one write path of versions ([`store`]: version, heads, view, outbox,
//! audit); receiving a peer's batch ([`receive`]: verify and ingest, signed receipts); the
//! outbox's sender loops that push to peers.

pub mod error;
pub mod ingest;
pub mod integrity;
pub mod ledger;
pub mod lookup;
pub mod memory;
pub mod merge;
pub mod node;
pub mod receipt;
pub mod receive;
pub mod sender;
pub mod store;
pub mod version;
pub mod view;
pub mod visit;
pub mod witness;

#[cfg(test)]
mod fuzz;

pub use error::LedgerError;
pub use node::LocalNode;
pub use version::{DocKind, SignedVersion, Version, VersionId};
