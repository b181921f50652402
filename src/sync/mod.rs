//! Documents and their versions: building, signing, storing and merging versions; heads; the
//! local ledger of children's files; ingesting versions from peers with signed receipts; the
//! outbox and the sender loops that push to peers.

pub mod error;
pub mod ingest;
pub mod ledger;
pub mod merge;
pub mod node;
pub mod receipt;
pub mod sender;
pub mod store;
pub mod version;
pub mod view;

pub use error::LedgerError;
pub use node::LocalNode;
pub use version::{DocKind, SignedVersion, Version, VersionId};
