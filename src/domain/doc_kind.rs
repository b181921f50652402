//! The kinds of document the exchange carries: a child's file and a case.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Kind of document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    Child,
    Case,
}

impl DocKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Child => "child",
            DocKind::Case => "case",
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
            other => Err(UnknownDocKind(other.to_owned())),
        }
    }
}
