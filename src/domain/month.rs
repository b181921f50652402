//! A calendar month (`YYYY-MM`): one type with one rule for every month the crate handles — a
//! benefit's start in a child's file, an approval's effective month.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A calendar month, written `"YYYY-MM"` on the wire and nowhere else.
///
/// Invariant: the inner date is the first day of the month and its year is 1..=9999, so the
/// display form is always exactly seven characters. Construct through [`Month::new`],
/// [`Month::of`] or parsing.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month(NaiveDate);

/// A string that is not a month of the form `"YYYY-MM"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a month as YYYY-MM (year 0001-9999, month 01-12), got {0:?}")]
pub struct MonthError(pub String);

impl Month {
    /// The month `month` (1..=12) of `year` (1..=9999), or `None`.
    pub fn new(year: i32, month: u32) -> Option<Self> {
        if !(1..=9999).contains(&year) {
            return None;
        }
        NaiveDate::from_ymd_opt(year, month, 1).map(Month)
    }

    /// The month containing `date`, or `None` outside years 1..=9999.
    pub fn of(date: NaiveDate) -> Option<Self> {
        Month::new(date.year(), date.month())
    }

    /// The first day of the month.
    pub fn first_day(self) -> NaiveDate {
        self.0
    }

    /// The year (1..=9999).
    pub fn year(self) -> i32 {
        self.0.year()
    }

    /// The month of the year (1..=12).
    pub fn month(self) -> u32 {
        self.0.month()
    }
}

impl FromStr for Month {
    type Err = MonthError;

    /// Accepts exactly `YYYY-MM`: four digits, a hyphen, two digits; nothing around them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MonthError(s.to_owned());
        let b = s.as_bytes();
        let shape_ok = b.len() == 7
            && b[4] == b'-'
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[5..].iter().all(u8::is_ascii_digit);
        if !shape_ok {
            return Err(err());
        }
        let year: i32 = s[..4].parse().map_err(|_| err())?;
        let month: u32 = s[5..].parse().map_err(|_| err())?;
        Month::new(year, month).ok_or_else(err)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year(), self.month())
    }
}

impl fmt::Debug for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Month({self})")
    }
}

impl Serialize for Month {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Month {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
