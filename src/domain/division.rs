//! Divisions below the county (NBS 2023 codes, shipped in the binary): [`TownshipCode`], a
//! 9-digit township (乡镇/街道), and [`VillageCode`], a 12-digit village or community (村/社区),
//! each able to hold only a code present in its table. Routing stays on the six-digit
//! [`super::RegionCode`]; these say which township and village inside it.
//!
//! The township table (41,352 rows) is parsed on first use; the village table (620,573 rows,
//! gzip-compressed in the binary) is decompressed and indexed on first use of a village code, so
//! a node that never names a village never pays for it.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

/// NBS township codes (`code,name,county`), copied from `shared/data/townships.csv`.
const TOWNSHIPS_CSV: &str = include_str!("townships.csv");
/// NBS village codes (`code,name,township`), gzip, copied from `shared/data/villages.csv.gz`.
const VILLAGES_GZ: &[u8] = include_bytes!("villages.csv.gz");

static TOWNSHIPS: LazyLock<HashMap<&'static str, &'static str>> = LazyLock::new(|| {
    TOWNSHIPS_CSV
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split(',');
            Some((cols.next()?, cols.next()?))
        })
        .filter(|(code, _)| code.len() == 9)
        .collect()
});

/// The village table: the decompressed text and, sorted by code, each row's code and name.
struct Villages {
    rows: Vec<(u64, String)>,
}

static VILLAGES: LazyLock<Villages> = LazyLock::new(|| {
    let mut text = String::new();
    // A table that does not decompress is a build defect, caught by `tables_load_completely`;
    // here it leaves the table empty (every village code refused) rather than panicking.
    if flate2::read::GzDecoder::new(VILLAGES_GZ)
        .read_to_string(&mut text)
        .is_err()
    {
        text.clear();
    }
    let mut rows: Vec<(u64, String)> = text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split(',');
            let code = cols.next()?;
            let name = cols.next()?;
            (code.len() == 12)
                .then(|| code.parse().ok())
                .flatten()
                .map(|c| (c, name.to_owned()))
        })
        .collect();
    rows.sort_unstable_by_key(|(c, _)| *c);
    Villages { rows }
});

/// Why a string is not a township or village code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DivisionError {
    #[error("a township code is 9 digits")]
    TownshipFormat,
    #[error("{0} is not in the township table (NBS 2023)")]
    UnknownTownship(String),
    #[error("a village code is 12 digits")]
    VillageFormat,
    #[error("{0} is not in the village table (NBS 2023)")]
    UnknownVillage(String),
}

fn digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

/// A 9-digit township (乡镇/街道) code present in the shipped table.
///
/// Invariant: `0` is a key of `TOWNSHIPS`. Construct only through [`TownshipCode::parse`] (or
/// [`TownshipCode::by_name`], which finds a key).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TownshipCode(String);

impl TownshipCode {
    pub fn parse(input: &str) -> Result<Self, DivisionError> {
        let s = input.trim();
        if !digits(s, 9) {
            return Err(DivisionError::TownshipFormat);
        }
        if !TOWNSHIPS.contains_key(s) {
            return Err(DivisionError::UnknownTownship(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The six-digit county (or city) code it lies in.
    pub fn county(&self) -> &str {
        &self.0[..6]
    }

    pub fn name(&self) -> &'static str {
        TOWNSHIPS.get(self.0.as_str()).copied().unwrap_or("")
    }

    /// The township of `county` (six digits) named `name` (花园路街道), when exactly one is: how
    /// a ledger's 乡镇（街道） column holding names is read.
    pub fn by_name(county: &str, name: &str) -> Option<Self> {
        let name = name.trim();
        let mut found = TOWNSHIPS
            .iter()
            .filter(|(code, n)| code.starts_with(county) && **n == name);
        match (found.next(), found.next()) {
            (Some((code, _)), None) if county.len() == 6 => Some(Self((*code).to_owned())),
            _ => None,
        }
    }
}

/// A 12-digit village or community (村/社区) code present in the shipped table.
///
/// Invariant: `0` is a code of `VILLAGES`. Construct only through [`VillageCode::parse`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VillageCode(String);

impl VillageCode {
    pub fn parse(input: &str) -> Result<Self, DivisionError> {
        let s = input.trim();
        if !digits(s, 12) {
            return Err(DivisionError::VillageFormat);
        }
        let known = s
            .parse::<u64>()
            .ok()
            .is_some_and(|c| VILLAGES.rows.binary_search_by_key(&c, |(k, _)| *k).is_ok());
        if !known {
            return Err(DivisionError::UnknownVillage(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The nine-digit township it lies in.
    pub fn township(&self) -> &str {
        &self.0[..9]
    }

    pub fn name(&self) -> &'static str {
        let Ok(c) = self.0.parse::<u64>() else {
            return "";
        };
        VILLAGES
            .rows
            .binary_search_by_key(&c, |(k, _)| *k)
            .ok()
            .and_then(|i| VILLAGES.rows.get(i))
            .map_or("", |(_, n)| n.as_str())
    }
}

/// A stale-list filter: a region prefix (2, 4 or 6 digits, or `*`) or a township (9 digits).
pub fn check_region_or_township(s: &str) -> Result<(), String> {
    if s.len() == 9 {
        return TownshipCode::parse(s)
            .map(|_| ())
            .map_err(|e| e.to_string());
    }
    super::RegionPrefix::parse(s)
        .map(|_| ())
        .map_err(|e| format!("not a region prefix or township: {e}"))
}

macro_rules! text_forms {
    ($t:ty) => {
        impl TryFrom<String> for $t {
            type Error = DivisionError;
            fn try_from(s: String) -> Result<Self, DivisionError> {
                Self::parse(&s)
            }
        }
        impl From<$t> for String {
            fn from(c: $t) -> String {
                c.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($t), self.0)
            }
        }
    };
}
text_forms!(TownshipCode);
text_forms!(VillageCode);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_load_completely() {
        assert_eq!(TOWNSHIPS.len(), 41_352);
        assert_eq!(VILLAGES.rows.len(), 620_573);
    }

    #[test]
    fn codes_parse_against_the_tables() {
        let t = TownshipCode::parse("510104017").unwrap();
        assert_eq!(
            TownshipCode::by_name("410105", "花园路街道")
                .unwrap()
                .as_str(),
            "410105002"
        );
        assert_eq!(TownshipCode::by_name("410105", "不存在街道"), None);
        assert_eq!(TownshipCode::by_name("4101", "花园路街道"), None);
        assert_eq!(t.county(), "510104");
        assert!(!t.name().is_empty());
        let v = VillageCode::parse("110101001001").unwrap();
        assert_eq!(v.township(), "110101001");
        assert_eq!(v.name(), "多福巷社区居委会");
        assert_eq!(
            TownshipCode::parse("51010400"),
            Err(DivisionError::TownshipFormat)
        );
        assert!(matches!(
            TownshipCode::parse("510104999"),
            Err(DivisionError::UnknownTownship(_))
        ));
        assert!(matches!(
            VillageCode::parse("110101001999"),
            Err(DivisionError::UnknownVillage(_))
        ));
        assert_eq!(
            VillageCode::parse("1101010010"),
            Err(DivisionError::VillageFormat)
        );
    }
}
