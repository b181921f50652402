//! The roles a person or system has on a node. Only the names live here; what each role may do
//! is decided by `accounts` (`Role::allows`).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// What a person or system is to this node. Ordered by nothing: each role is a set of
/// permissions, see `accounts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads and edits children's files and eligibility cases.
    Caseworker,
    /// A caseworker who may also resolve conflicts.
    Reviewer,
    /// Reads the audit trail and the exchange's status; no children's data.
    Auditor,
    /// Everything, including operations (tree heads, reconciliation).
    Administrator,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Caseworker,
        Role::Reviewer,
        Role::Auditor,
        Role::Administrator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Caseworker => "caseworker",
            Role::Reviewer => "reviewer",
            Role::Auditor => "auditor",
            Role::Administrator => "administrator",
        }
    }

    /// The role's name on the pages.
    pub fn label_zh(self) -> &'static str {
        match self {
            Role::Caseworker => "经办人",
            Role::Reviewer => "审核人",
            Role::Auditor => "审计员",
            Role::Administrator => "管理员",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: caseworker, reviewer, auditor or administrator")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}
