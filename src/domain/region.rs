//! GB/T 2260 administrative division codes (行政区划代码): the shipped table, [`RegionCode`] that
//! can only hold a code present in it, and [`RegionPrefix`] for "this node serves these regions".

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

/// The Ministry of Civil Affairs list (2021), copied from `shared/data/regions-gbt2260.csv`.
const TABLE_CSV: &str = include_str!("regions-gbt2260.csv");

/// Level of an administrative division.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegionLevel {
    Province,
    City,
    County,
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Region {
    pub code: &'static str,
    pub name: &'static str,
    pub level: RegionLevel,
    /// Enclosing unit's code; `None` for provinces.
    pub parent: Option<&'static str>,
}

/// The table, parsed once. Rows that do not parse are a build defect and are caught by the
/// `table_loads_completely` test, so they are skipped here rather than panicking at run time.
static TABLE: LazyLock<HashMap<&'static str, Region>> = LazyLock::new(|| {
    TABLE_CSV
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split(',');
            let code = cols.next()?;
            let name = cols.next()?;
            let level = match cols.next()? {
                "province" => RegionLevel::Province,
                "city" => RegionLevel::City,
                "county" => RegionLevel::County,
                _ => return None,
            };
            let parent = cols.next().filter(|p| !p.is_empty());
            Some((
                code,
                Region {
                    code,
                    name,
                    level,
                    parent,
                },
            ))
        })
        .collect()
});

/// A six-digit region code present in the shipped GB/T 2260 table.
///
/// Invariant: `0` is a key of `TABLE`. Construct only through [`RegionCode::parse`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RegionCode(String);

/// Why a string is not a region code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionError {
    #[error("must be 6 digits")]
    Format,
    #[error("{0} is not in the GB/T 2260 table")]
    Unknown(String),
    #[error("a region prefix is 2, 4 or 6 digits, or * for every region")]
    Prefix,
}

impl RegionCode {
    pub fn parse(input: &str) -> Result<Self, RegionError> {
        let s = input.trim();
        if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RegionError::Format);
        }
        if !TABLE.contains_key(s) {
            return Err(RegionError::Unknown(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The table row of this code.
    pub fn region(&self) -> Option<&'static Region> {
        TABLE.get(self.0.as_str())
    }

    pub fn name(&self) -> &'static str {
        self.region().map_or("", |r| r.name)
    }

    pub fn level(&self) -> Option<RegionLevel> {
        self.region().map(|r| r.level)
    }

    pub fn parent(&self) -> Option<RegionCode> {
        self.region()
            .and_then(|r| r.parent)
            .map(|p| Self(p.to_owned()))
    }

    /// "Province / city / county" names, for display.
    pub fn full_name(&self) -> String {
        let mut names = vec![self.name()];
        let mut cur = self.parent();
        while let Some(p) = cur {
            names.push(p.name());
            cur = p.parent();
        }
        names.reverse();
        names.join(" ")
    }
}

impl fmt::Debug for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RegionCode({})", self.0)
    }
}
impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl FromStr for RegionCode {
    type Err = RegionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
impl TryFrom<String> for RegionCode {
    type Error = RegionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<RegionCode> for String {
    fn from(r: RegionCode) -> String {
        r.0
    }
}

/// A served-region prefix: a province (`41`), a city (`4101`), a county (`410105`), or `*`.
///
/// Invariant: `0` is empty (written `*`, every region) or 2, 4 or 6 ASCII digits.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RegionPrefix(String);

impl RegionPrefix {
    pub fn parse(input: &str) -> Result<Self, RegionError> {
        let s = input.trim();
        if s == "*" {
            return Ok(Self(String::new()));
        }
        if !matches!(s.len(), 2 | 4 | 6) || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RegionError::Prefix);
        }
        Ok(Self(s.to_owned()))
    }

    /// The digits of the prefix ("" for `*`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `*`: every region.
    pub fn everywhere() -> Self {
        Self(String::new())
    }

    /// Number of digits matched; longer is more specific (longest-prefix routing).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, region: &RegionCode) -> bool {
        region.as_str().starts_with(&self.0)
    }

    /// The digits, empty for `*`.
    pub fn digits(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RegionPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RegionPrefix({self})")
    }
}
impl fmt::Display for RegionPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("*")
        } else {
            f.write_str(&self.0)
        }
    }
}
impl TryFrom<String> for RegionPrefix {
    type Error = RegionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<RegionPrefix> for String {
    fn from(r: RegionPrefix) -> String {
        r.to_string()
    }
}

/// Every code in the table (sample data and tests).
pub fn all_codes() -> impl Iterator<Item = RegionCode> {
    let mut codes: Vec<_> = TABLE.keys().copied().collect();
    codes.sort_unstable();
    codes.into_iter().map(|c| RegionCode(c.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_loads_completely() {
        assert_eq!(TABLE.len(), TABLE_CSV.lines().count() - 1);
        assert_eq!(TABLE.len(), 3217);
        for r in TABLE.values() {
            if let Some(p) = r.parent {
                assert!(TABLE.contains_key(p), "{} has unknown parent {p}", r.code);
            }
        }
    }

    #[test]
    fn parses_known_and_rejects_unknown() {
        let zz = RegionCode::parse("410105").unwrap();
        assert_eq!(zz.name(), "金水区");
        assert_eq!(zz.level(), Some(RegionLevel::County));
        assert_eq!(zz.parent().unwrap().as_str(), "410100");
        assert_eq!(zz.full_name(), "河南省 郑州市 金水区");
        assert_eq!(
            RegionCode::parse("419999"),
            Err(RegionError::Unknown("419999".into()))
        );
        assert_eq!(RegionCode::parse("4101"), Err(RegionError::Format));
        assert_eq!(RegionCode::parse("41010a"), Err(RegionError::Format));
    }

    #[test]
    fn prefixes_match() {
        let zz = RegionCode::parse("410105").unwrap();
        assert!(RegionPrefix::parse("41").unwrap().matches(&zz));
        assert!(RegionPrefix::parse("4101").unwrap().matches(&zz));
        assert!(!RegionPrefix::parse("5101").unwrap().matches(&zz));
        assert!(RegionPrefix::parse("*").unwrap().matches(&zz));
        assert!(RegionPrefix::parse("410").is_err());
    }
}
