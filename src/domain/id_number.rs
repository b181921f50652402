//! The resident ID number (公民身份号码) of GB 11643-1999: parsing, the ISO 7064 MOD 11-2 check
//! digit, and what the number says about its holder (birth date, sex, issuing region).

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use super::region::RegionCode;

/// Weights of the first 17 characters in the MOD 11-2 sum (GB 11643-1999 §7.2).
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check character for each remainder of the weighted sum mod 11.
const CHECK_CHARS: &[u8; 11] = b"10X98765432";

/// A valid 18-character resident ID number.
///
/// Invariant: `0` is 17 ASCII digits followed by a digit or upper-case `X`, the check character is
/// correct, and characters 7–14 are a real calendar date. Construct only through [`IdNumber::parse`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdNumber(String);

/// Why a string is not a resident ID number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdNumberError {
    #[error("must be 18 characters, got {0}")]
    Length(usize),
    #[error("the first 17 characters must be digits and the last a digit or X")]
    Characters,
    #[error("characters 7-14 are not a real date ({0})")]
    BirthDate(String),
    #[error("wrong check digit: expected {expected}, got {got}")]
    CheckDigit { expected: char, got: char },
}

impl IdNumber {
    /// Parses an ID number, normalising a lower-case `x` check character to `X`. Surrounding
    /// whitespace is trimmed (spreadsheets keep it).
    pub fn parse(input: &str) -> Result<Self, IdNumberError> {
        let s = input.trim();
        let n = s.chars().count();
        if n != 18 {
            return Err(IdNumberError::Length(n));
        }
        let bytes = s.as_bytes();
        if !bytes[..17].iter().all(u8::is_ascii_digit) {
            return Err(IdNumberError::Characters);
        }
        let last = bytes[17].to_ascii_uppercase();
        if !(last.is_ascii_digit() || last == b'X') {
            return Err(IdNumberError::Characters);
        }
        let date = &s[6..14];
        if parse_birth_date(date).is_none() {
            return Err(IdNumberError::BirthDate(date.to_owned()));
        }
        let expected = check_char(&bytes[..17]);
        if expected != last {
            return Err(IdNumberError::CheckDigit {
                expected: expected as char,
                got: last as char,
            });
        }
        let mut normalised = s[..17].to_owned();
        normalised.push(last as char);
        Ok(Self(normalised))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Date of birth, characters 7–14.
    pub fn birth_date(&self) -> NaiveDate {
        // Invariant: checked by `parse`; the fallback is unreachable.
        parse_birth_date(&self.0[6..14]).unwrap_or(NaiveDate::MIN)
    }

    /// Sex from the sequence code (character 17): odd is male, even female.
    pub fn sex(&self) -> Sex {
        // Invariant: character 17 is an ASCII digit.
        if (self.0.as_bytes()[16] - b'0') % 2 == 1 {
            Sex::Male
        } else {
            Sex::Female
        }
    }

    /// The six-digit region code of the issuing place (the hukou at first registration; it can
    /// differ from the current hukou region and is never used for routing).
    pub fn issuing_region_digits(&self) -> &str {
        &self.0[..6]
    }

    /// The issuing region as a code of the shipped GB/T 2260 table — the default hukou region a
    /// person names when asking about a child; an error when the code is no longer in the table.
    pub fn issuing_region(&self) -> Result<RegionCode, super::region::RegionError> {
        RegionCode::parse(self.issuing_region_digits())
    }

    /// Masked form for logs: `4101**********0012`.
    pub fn masked(&self) -> String {
        format!("{}**********{}", &self.0[..4], &self.0[14..])
    }

    /// Masks text that should hold an ID number; text that does not parse is hidden entirely,
    /// so nothing unmasked ever reaches a log or a page.
    pub fn mask_text(text: &str) -> String {
        Self::parse(text).map_or_else(|_| "******".to_owned(), |i| i.masked())
    }

    /// Masks every ID number inside free text (a run of 17 digits and a digit or `X`, not part
    /// of a longer run of digits), leaving the rest: `4101**********0012`. For logs, panic
    /// messages and audit events shown to roles that may not read children.
    pub fn mask_within(text: &str) -> String {
        let chars: Vec<char> = text.chars().collect();
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        while i < chars.len() {
            let candidate = i + 18 <= chars.len()
                && chars[i..i + 17].iter().all(char::is_ascii_digit)
                && (chars[i + 17].is_ascii_digit() || chars[i + 17] == 'X' || chars[i + 17] == 'x')
                && (i == 0 || !chars[i - 1].is_ascii_digit());
            if candidate {
                out.extend(&chars[i..i + 4]);
                out.push_str("**********");
                out.extend(&chars[i + 14..i + 18]);
                i += 18;
            } else {
                out.push(chars[i]);
                i += 1;
            }
        }
        out
    }

    /// Builds a valid number from a region, a birth date and a three-digit sequence (sample data
    /// and tests). The sequence's parity decides the sex.
    pub fn generate(region: &RegionCode, birth: NaiveDate, sequence: u16) -> Self {
        let mut s = format!(
            "{}{:04}{:02}{:02}{:03}",
            region.as_str(),
            birth.year(),
            birth.month(),
            birth.day(),
            sequence % 1000
        );
        let c = check_char(s.as_bytes());
        s.push(c as char);
        Self(s)
    }
}

fn parse_birth_date(s: &str) -> Option<NaiveDate> {
    let d = NaiveDate::parse_from_str(s, "%Y%m%d").ok()?;
    (d.year() >= 1800).then_some(d)
}

/// Check character of 17 ASCII digits.
fn check_char(first17: &[u8]) -> u8 {
    let sum: u32 = first17
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    CHECK_CHARS[(sum % 11) as usize]
}

impl fmt::Debug for IdNumber {
    /// Debug output is masked, so a stray `{:?}` never puts a full number in a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdNumber({})", self.masked())
    }
}

impl fmt::Display for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for IdNumber {
    type Err = IdNumberError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for IdNumber {
    type Error = IdNumberError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<IdNumber> for String {
    fn from(id: IdNumber) -> String {
        id.0
    }
}

/// Sex as recorded by the ID number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    Male,
    Female,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_standard_example() {
        // The example number printed in GB 11643-1999 (Beijing, 1949-12-31, male).
        let id = IdNumber::parse("11010519491231002X").unwrap();
        assert_eq!(
            id.birth_date(),
            NaiveDate::from_ymd_opt(1949, 12, 31).unwrap()
        );
        assert_eq!(id.sex(), Sex::Female);
        let id = IdNumber::parse("440524188001010014").unwrap();
        assert_eq!(id.sex(), Sex::Male);
    }

    #[test]
    fn normalises_lower_case_x() {
        let id = IdNumber::parse("11010519491231002x").unwrap();
        assert_eq!(id.as_str(), "11010519491231002X");
    }

    #[test]
    fn rejects_wrong_check_digit() {
        assert_eq!(
            IdNumber::parse("110105194912310021"),
            Err(IdNumberError::CheckDigit {
                expected: 'X',
                got: '1'
            })
        );
    }

    #[test]
    fn rejects_impossible_dates() {
        // 2015 is not a leap year; build the number with a correct check digit so only the date fails.
        let mut s = String::from("41010520150229001");
        s.push(check_char(s.as_bytes()) as char);
        assert!(matches!(
            IdNumber::parse(&s),
            Err(IdNumberError::BirthDate(_))
        ));
        let mut leap = String::from("41010520160229001");
        leap.push(check_char(leap.as_bytes()) as char);
        assert!(IdNumber::parse(&leap).is_ok());
    }

    #[test]
    fn rejects_wrong_lengths_and_characters() {
        assert_eq!(
            IdNumber::parse("11010519491231002"),
            Err(IdNumberError::Length(17))
        );
        assert_eq!(
            IdNumber::parse("11010519491231002X1"),
            Err(IdNumberError::Length(19))
        );
        assert_eq!(
            IdNumber::parse("1101051949123100X2"),
            Err(IdNumberError::Characters)
        );
        assert_eq!(
            IdNumber::parse("11010519491231００２X"),
            Err(IdNumberError::Characters)
        );
    }

    #[test]
    fn generated_numbers_are_valid_and_masked() {
        let region = RegionCode::parse("410105").unwrap();
        let birth = NaiveDate::from_ymd_opt(2014, 6, 1).unwrap();
        for seq in 0..50 {
            let id = IdNumber::generate(&region, birth, seq);
            assert_eq!(IdNumber::parse(id.as_str()).unwrap(), id);
            assert_eq!(id.birth_date(), birth);
            assert_eq!(id.sex() == Sex::Male, seq % 2 == 1);
            assert!(!format!("{id:?}").contains(&id.as_str()[6..14]));
            assert_eq!(IdNumber::mask_text(id.as_str()), id.masked());
        }
        // Text that is not an ID number is hidden entirely, never echoed.
        assert_eq!(IdNumber::mask_text("41010520140601001X-oops"), "******");
    }
}
