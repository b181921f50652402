//! The kinds of document the exchange carries: a child's file, a case, a visit and a report.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Kind of document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    Child,
    Case,
    Visit,
    Report,
}

impl DocKind {
    pub const ALL: [DocKind; 4] = [
        DocKind::Child,
        DocKind::Case,
        DocKind::Visit,
        DocKind::Report,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Child => "child",
            DocKind::Case => "case",
            DocKind::Visit => "visit",
            DocKind::Report => "report",
        }
    }
}

/// A string that names no kind of document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown kind {0:?}")]
pub struct UnknownDocKind(pub String);

impl FromStr for DocKind {
    type Err = UnknownDocKind;
    fn from_str(s: &str) -> Result<Self, UnknownDocKind> {
        match s {
            "child" => Ok(DocKind::Child),
            "case" => Ok(DocKind::Case),
            "visit" => Ok(DocKind::Visit),
            "report" => Ok(DocKind::Report),
            other => Err(UnknownDocKind(other.to_owned())),
        }
    }
}
