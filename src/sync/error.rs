//! The error of the ledger's operations and of storing and receiving versions: one type, with
//! one problem code per variant in the API. Within `sync` it imports only `version`, so every
//! module of `sync` can use it without importing another's operations.

use super::version::VersionError;
use crate::audit::AuditError;
use crate::domain::child::FieldError;
use crate::domain::Authority;
use crate::storage::StorageError;

/// Errors of ledger operations; the API maps each to one problem code.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    // Transparent: a chained print (`{:#}`) would otherwise say the reason twice.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("unknown field {0:?}")]
    UnknownField(String),
    #[error("no child with ID number {0}")]
    NotFound(String),
    #[error("a file for {0} already exists")]
    AlreadyExists(String),
    #[error(
        "this node serves neither the hukou region {hukou} nor the residence region {residence}"
    )]
    NotParty { hukou: String, residence: String },
    #[error(
        "{field} is decided by the {authority:?} bureau, and this node is not it for this child"
    )]
    FieldNotOwned { field: String, authority: Authority },
    #[error("{} is recognised (认定) by the child's hukou bureau, and this node is not it for this child", .0.code())]
    RecognitionNotOwned(crate::domain::child::Category),
    #[error("the child is outside the regions this account covers ({scope})")]
    OutsideScope { scope: String },
    #[error("the ID number is the file's identity and cannot change")]
    ImmutableId,
    #[error("{0} is under review: a conflict on it must be resolved first")]
    UnderReview(String),
    #[error("internal inconsistency: {0}")]
    Internal(String),
    #[error(transparent)]
    Version(#[from] VersionError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl LedgerError {
    /// See [`StorageError::is_write_race`].
    pub fn is_write_race(&self) -> bool {
        matches!(self, LedgerError::Storage(e) if e.is_write_race())
    }
}
