//! Risk on one scale (风险等级, DESIGN §4): the exchange carries a level on a common four-level
//! scale — 1 the most severe (一级) to 4 the least (四级) — and each node's palette only *names*
//! the levels (红橙黄绿 at one bureau, 红黄蓝绿 or 橙红黄绿 at another). A label is local: it is
//! read from what people type (a form, a ledger's 风险等级 column) and shown back to them, and
//! never leaves the node.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A level on the common scale. Invariant: 1 ≤ level ≤ 4, 1 the most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RiskLevel(u8);

/// How many levels the common scale has.
pub const LEVELS: usize = 4;

impl RiskLevel {
    /// The most severe level (red in every palette shipped so far).
    pub const MOST_SEVERE: RiskLevel = RiskLevel(1);
    /// Every level, most severe first.
    pub const ALL: [RiskLevel; LEVELS] = [RiskLevel(1), RiskLevel(2), RiskLevel(3), RiskLevel(4)];

    pub fn new(level: u8) -> Result<Self, RiskError> {
        if (1..=LEVELS as u8).contains(&level) {
            Ok(RiskLevel(level))
        } else {
            Err(RiskError::OutOfScale(level.to_string()))
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }

    /// The level as stored in a view column and written in queries ("1".."4").
    pub fn as_str(self) -> &'static str {
        ["1", "2", "3", "4"][usize::from(self.0 - 1)]
    }

    /// The Chinese name of the level on the common scale (一级 … 四级).
    pub fn label_zh(self) -> &'static str {
        ["一级", "二级", "三级", "四级"][usize::from(self.0 - 1)]
    }
}

impl fmt::Display for RiskLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for RiskLevel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.0)
    }
}

impl<'de> Deserialize<'de> for RiskLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u64::deserialize(d)?;
        u8::try_from(n)
            .ok()
            .and_then(|n| RiskLevel::new(n).ok())
            .ok_or_else(|| serde::de::Error::custom(format!("risk level {n} is not 1–4")))
    }
}

/// Why a risk level or a palette is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RiskError {
    #[error("risk level {0:?} is not on the scale 1–4")]
    OutOfScale(String),
    #[error("{0:?} is not a risk level here: use one of {1} or 1–4")]
    UnknownLabel(String, String),
    #[error("the risk palette names exactly four levels, most severe first (e.g. 红/橙/黄/绿)")]
    WrongSize,
    #[error("risk labels must be distinct, non-empty and not digits")]
    BadLabel,
}

/// The names this node gives the four levels, most severe first; default 红/橙/黄/绿.
/// Invariant: exactly four distinct, non-empty labels, none of them a digit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskPalette(Vec<String>);

impl Default for RiskPalette {
    fn default() -> Self {
        Self(["红", "橙", "黄", "绿"].map(String::from).to_vec())
    }
}

impl RiskPalette {
    pub fn new(levels: Vec<String>) -> Result<Self, RiskError> {
        if levels.len() != LEVELS {
            return Err(RiskError::WrongSize);
        }
        let unique: BTreeSet<&str> = levels.iter().map(|l| l.trim()).collect();
        let bad = |l: &String| l.trim().is_empty() || l.trim().chars().all(|c| c.is_ascii_digit());
        if unique.len() != LEVELS || levels.iter().any(bad) {
            return Err(RiskError::BadLabel);
        }
        Ok(Self(
            levels.into_iter().map(|l| l.trim().to_owned()).collect(),
        ))
    }

    /// The local label of a level.
    pub fn label(&self, level: RiskLevel) -> &str {
        self.0
            .get(usize::from(level.0 - 1))
            .map_or("", String::as_str)
    }

    /// A level from what a person typed: a local label or the level's number.
    pub fn level_of(&self, input: &str) -> Result<RiskLevel, RiskError> {
        let input = input.trim();
        if let Some(i) = self.0.iter().position(|l| l == input) {
            return Ok(RiskLevel::ALL[i]);
        }
        match input.parse::<u8>() {
            Ok(n) => RiskLevel::new(n),
            Err(_) => Err(RiskError::UnknownLabel(
                input.chars().take(16).collect(),
                self.0.join("/"),
            )),
        }
    }

    /// A level as people read it here: the local label with the level, `红 (1)`.
    pub fn shown(&self, level: RiskLevel) -> String {
        format!("{} ({})", self.label(level), level)
    }

    /// A stored value of the `risk_level` field (the wire's number) as [`RiskPalette::shown`]
    /// reads it; `None` for anything that is not a level (an empty field).
    pub fn shown_value(&self, v: &serde_json::Value) -> Option<String> {
        let level = v.as_u64().and_then(|n| u8::try_from(n).ok())?;
        RiskLevel::new(level).ok().map(|l| self.shown(l))
    }

    pub fn levels(&self) -> &[String] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn palette(l: [&str; 4]) -> RiskPalette {
        RiskPalette::new(l.map(String::from).to_vec()).unwrap()
    }

    #[test]
    fn two_palettes_name_the_same_levels() {
        let a = RiskPalette::default();
        let b = palette(["红", "黄", "蓝", "绿"]);
        let level = a.level_of("橙").unwrap();
        assert_eq!(level.get(), 2);
        assert_eq!(b.label(level), "黄");
        assert_eq!(b.level_of("蓝").unwrap(), a.level_of("黄").unwrap());
        assert_eq!(a.level_of("1").unwrap(), RiskLevel::MOST_SEVERE);
        let orange_first = palette(["橙", "红", "黄", "绿"]);
        assert_eq!(orange_first.label(RiskLevel::MOST_SEVERE), "橙");
        assert_eq!(orange_first.level_of("橙").unwrap(), RiskLevel::MOST_SEVERE);
        assert_eq!(
            b.shown_value(&serde_json::json!(3)).as_deref(),
            Some("蓝 (3)")
        );
        assert_eq!(b.shown_value(&serde_json::Value::Null), None);
    }

    #[test]
    fn bad_levels_and_palettes_are_refused() {
        let a = RiskPalette::default();
        assert!(matches!(a.level_of("蓝"), Err(RiskError::UnknownLabel(..))));
        assert!(matches!(a.level_of("5"), Err(RiskError::OutOfScale(_))));
        assert!(matches!(a.level_of("0"), Err(RiskError::OutOfScale(_))));
        assert!(matches!(
            a.level_of("1.5"),
            Err(RiskError::UnknownLabel(..))
        ));
        assert!(matches!(a.level_of(""), Err(RiskError::UnknownLabel(..))));
        assert_eq!(
            RiskPalette::new(vec!["红".into(), "绿".into()]),
            Err(RiskError::WrongSize)
        );
        assert_eq!(
            RiskPalette::new(["红", "红", "黄", "绿"].map(String::from).to_vec()),
            Err(RiskError::BadLabel)
        );
        assert_eq!(
            RiskPalette::new(["红", "2", "黄", "绿"].map(String::from).to_vec()),
            Err(RiskError::BadLabel)
        );
    }

    #[test]
    fn the_wire_form_is_a_number_one_to_four() {
        let l: RiskLevel = serde_json::from_str("3").unwrap();
        assert_eq!(serde_json::to_string(&l).unwrap(), "3");
        assert!(serde_json::from_str::<RiskLevel>("5").is_err());
        assert!(serde_json::from_str::<RiskLevel>("\"红\"").is_err());
    }
}
