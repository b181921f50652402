//! The region scope of an account: which of the node's children a user or token may see and
//! edit. A scope is a short list of prefixes of GB/T 2260 region codes (a province `41`, a city
//! `4101`, a district `410105`) or of NBS township codes (a street `410105001`); the empty scope
//! is the whole node. A child is *within* a scope when one prefix matches its hukou or residence
//! region (for 2-, 4- and 6-digit prefixes) or its hukou or residence township (for 9-digit
//! prefixes). The text form is the prefixes joined by `,` (`410105,410106001`), `*` for the
//! whole node.

use std::fmt;

use serde::{Deserialize, Serialize};

/// At most this many prefixes in one scope (a person covers a few districts, not a province's
/// hundred).
pub const MAX_PREFIXES: usize = 16;

/// One prefix of a scope.
///
/// Invariant: 2, 4, 6 or 9 ASCII digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScopePrefix(String);

impl ScopePrefix {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A township prefix (9 digits) matches townships; a shorter one matches region codes.
    pub fn is_township(&self) -> bool {
        self.0.len() == 9
    }
}

/// An account's region scope.
///
/// Invariant: at most [`MAX_PREFIXES`] prefixes, sorted, none repeated, none inside another
/// (`4101` and `410105` is stored as `4101`); empty means the whole node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scope(Vec<ScopePrefix>);

/// Why a scope's text does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("{0:?} is not a scope prefix: 2, 4 or 6 digits of a region code, or 9 of a township")]
    Prefix(String),
    #[error("a scope has at most {MAX_PREFIXES} prefixes")]
    TooMany,
}

impl Scope {
    /// The whole node.
    pub fn whole_node() -> Self {
        Self(Vec::new())
    }

    /// Parses `410105,410105001` (also `;`- or space-separated); `*` or empty is the whole node.
    pub fn parse(input: &str) -> Result<Self, ScopeError> {
        let s = input.trim();
        if s.is_empty() || s == "*" {
            return Ok(Self::whole_node());
        }
        let mut prefixes = Vec::new();
        for part in s
            .split([',', ';', ' ', '，', '；'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            if !matches!(part.len(), 2 | 4 | 6 | 9) || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ScopeError::Prefix(part.chars().take(32).collect()));
            }
            prefixes.push(part.to_owned());
            if prefixes.len() > MAX_PREFIXES {
                return Err(ScopeError::TooMany);
            }
        }
        prefixes.sort();
        prefixes.dedup();
        // Drop a prefix another one already covers (sorted: a covering prefix comes first).
        let mut kept: Vec<String> = Vec::with_capacity(prefixes.len());
        for p in prefixes {
            if !kept.iter().any(|k| p.starts_with(k.as_str())) {
                kept.push(p);
            }
        }
        Ok(Self(kept.into_iter().map(ScopePrefix).collect()))
    }

    /// Whether this is the whole node (no limit).
    pub fn is_whole_node(&self) -> bool {
        self.0.is_empty()
    }

    /// The stored text form: '' for the whole node (the column's default), else as shown.
    pub fn to_string_stored(&self) -> String {
        if self.is_whole_node() {
            String::new()
        } else {
            self.to_string()
        }
    }

    pub fn prefixes(&self) -> &[ScopePrefix] {
        &self.0
    }

    /// Whether a child with these regions and townships is within the scope.
    pub fn admits(
        &self,
        hukou_region: &str,
        residence_region: &str,
        hukou_township: Option<&str>,
        residence_township: Option<&str>,
    ) -> bool {
        self.is_whole_node()
            || self.0.iter().any(|p| {
                if p.is_township() {
                    [hukou_township, residence_township]
                        .into_iter()
                        .flatten()
                        .any(|t| t.starts_with(p.as_str()))
                } else {
                    hukou_region.starts_with(p.as_str()) || residence_region.starts_with(p.as_str())
                }
            })
    }

    /// Whether the child of `r` is within the scope.
    pub fn admits_record(&self, r: &super::ChildRecord) -> bool {
        self.admits(
            r.hukou_region.as_str(),
            r.residence_region.as_str(),
            r.hukou_township.as_ref().map(|t| t.as_str()),
            r.residence_township.as_ref().map(|t| t.as_str()),
        )
    }

    /// Whether a region code (6 digits) lies within the scope by region prefixes alone: a new
    /// file may be created, or a child moved, only into a region the scope covers. A township
    /// prefix covers its county's region code only together with the township itself, which
    /// the caller checks with [`Scope::admits`].
    pub fn covers_region(&self, region: &str) -> bool {
        self.is_whole_node()
            || self.0.iter().any(|p| {
                if p.is_township() {
                    p.as_str().starts_with(region)
                } else {
                    region.starts_with(p.as_str())
                }
            })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("*");
        }
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(p.as_str())?;
        }
        Ok(())
    }
}

impl TryFrom<String> for Scope {
    type Error = ScopeError;
    fn try_from(s: String) -> Result<Self, ScopeError> {
        Scope::parse(&s)
    }
}

impl From<Scope> for String {
    fn from(s: Scope) -> String {
        s.to_string()
    }
}

impl std::str::FromStr for Scope {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, ScopeError> {
        Scope::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_normalises_and_prints() {
        assert!(Scope::parse("").unwrap().is_whole_node());
        assert!(Scope::parse("*").unwrap().is_whole_node());
        let s = Scope::parse("410105001, 4101；410105,510104").unwrap();
        assert_eq!(s.to_string(), "4101,510104");
        assert_eq!(Scope::parse(&s.to_string()).unwrap(), s);
        assert_eq!(
            Scope::parse("410105001,410106").unwrap().to_string(),
            "410105001,410106"
        );
        for bad in ["4", "41010", "4101050011", "41a1", "410105,x"] {
            assert!(
                matches!(Scope::parse(bad), Err(ScopeError::Prefix(_))),
                "{bad}"
            );
        }
        let many = (10..30)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(Scope::parse(&many), Err(ScopeError::TooMany));
    }

    #[test]
    fn admits_by_region_or_township() {
        let district = Scope::parse("410105").unwrap();
        assert!(district.admits("510104", "410105", None, None));
        assert!(district.admits("410105", "510104", None, None));
        assert!(!district.admits("410106", "510104", None, None));
        let street = Scope::parse("410105001").unwrap();
        assert!(street.admits("510104", "410105", None, Some("410105001")));
        assert!(!street.admits("510104", "410105", None, Some("410105002")));
        assert!(!street.admits("510104", "410105", None, None));
        assert!(street.covers_region("410105"));
        assert!(!street.covers_region("410106"));
        assert!(district.covers_region("410105"));
        assert!(!district.covers_region("410106"));
        assert!(Scope::whole_node().admits("1", "2", None, None));
    }
}
