//! [`NodeId`]: the name of a hukou-sync node (one bureau or province) in the directory and in its
//! TLS certificate's SAN URI `urn:hukou-sync:node:<id>`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A node id such as `410000` or `zhengzhou-1`.
///
/// Invariant: 1 to 32 characters of `[a-z0-9-]`, not starting with `-`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a node id is 1-32 characters of a-z, 0-9 and '-', not starting with '-'")]
pub struct NodeIdError;

impl NodeId {
    pub fn parse(s: &str) -> Result<Self, NodeIdError> {
        let ok = (1..=32).contains(&s.len())
            && !s.starts_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(NodeIdError)
        }
    }

    /// `local`, the id of a node run without a directory.
    pub fn local() -> Self {
        Self("local".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0)
    }
}
impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl FromStr for NodeId {
    type Err = NodeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
impl TryFrom<String> for NodeId {
    type Error = NodeIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<NodeId> for String {
    fn from(n: NodeId) -> String {
        n.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids() {
        assert!(NodeId::parse("410000").is_ok());
        assert_eq!(NodeId::parse(NodeId::local().as_str()), Ok(NodeId::local()));
        assert!(NodeId::parse("zz-1").is_ok());
        assert!(NodeId::parse("").is_err());
        assert!(NodeId::parse("-a").is_err());
        assert!(NodeId::parse("A1").is_err());
        assert!(NodeId::parse(&"a".repeat(33)).is_err());
    }
}
