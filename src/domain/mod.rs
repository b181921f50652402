//! The vocabulary of the exchange, pure and without I/O: ID numbers, regions, node ids, the
//! child's record with the authority of each field, the risk scale and palettes, the case core, evidence file types (`evidence_file`) and the reconciliation report. Nothing here imports from the rest of the
//! crate; everything else builds on it.

pub mod benefit;
pub mod case;
pub mod child;
pub mod conflict;
pub mod digest;
pub mod division;
pub mod doc_kind;
pub mod evidence_file;
pub mod id_number;
pub mod month;
pub mod node;
pub mod reconcile_report;
pub mod region;
pub mod report;
pub mod request_id;
pub mod risk;
pub mod role;
pub mod scope;
pub mod shown_time;
pub mod text;
pub mod visit;

pub use child::{
    Authority, ChildField, ChildRecord, FieldError, Fields, RecordRules, RiskPalette, Roles,
};
pub use doc_kind::{DocKind, UnknownDocKind};
pub use id_number::{IdNumber, IdNumberError, Sex};
pub use month::{Month, MonthError};
pub use node::NodeId;
pub use region::{RegionCode, RegionPrefix};
pub use risk::{RiskError, RiskLevel};
pub use role::{Role, UnknownRole};
pub use scope::{Scope, ScopeError};
