//! The vocabulary of the exchange, pure and without I/O: ID numbers, regions, node ids and the
//! child's record with the authority of each field. Nothing here imports from the rest of the
//! crate; everything else builds on it.

pub mod case;
pub mod child;
pub mod digest;
pub mod id_number;
pub mod month;
pub mod node;
pub mod region;

pub use child::{
    Authority, ChildField, ChildRecord, FieldError, Fields, RecordRules, RiskPalette, Roles,
};
pub use id_number::{IdNumber, IdNumberError, Sex};
pub use month::{Month, MonthError};
pub use node::NodeId;
pub use region::{RegionCode, RegionPrefix};
