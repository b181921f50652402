//! An open field conflict's competing values as kept beside a file's view: plain data that
//! `sync` writes, `storage` keeps (as JSON) and `conflicts` shows to reviewers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One competing value: the branch that holds it, who made that branch's head, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Candidate {
    /// The parent (or head) version whose branch changed the field.
    pub side: String,
    /// The node that authored that version.
    pub author: Option<String>,
    /// Its HLC stamp and wall time.
    pub hlc: Option<String>,
    pub at: Option<DateTime<Utc>>,
    #[schema(value_type = Object)]
    pub value: Value,
}
