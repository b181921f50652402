//! The kinds of document the exchange carries: a child's file, a case and a visit.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Kind of document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    Child,
    Case,
    Visit,
}

impl DocKind {
    pub const ALL: [DocKind; 3] = [DocKind::Child, DocKind::Case, DocKind::Visit];

    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Child => "child",
            DocKind::Case => "case",
            DocKind::Visit => "visit",
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
            other => Err(UnknownDocKind(other.to_owned())),
        }
    }
}
