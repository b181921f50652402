//! Documents and their versions: building, signing and storing versions, heads, and the local
//! ledger of children's files (create, update, import, read, list).

pub mod ledger;
pub mod node;
pub mod version;

pub use ledger::LedgerError;
pub use node::LocalNode;
pub use version::{DocKind, SignedVersion, Version, VersionId};
