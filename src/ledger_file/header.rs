//! A ledger's header row read against the ledger's columns ([`super::csv`]'s table), the same
//! for CSV and spreadsheet files: each header is matched by its English name or a Chinese alias,
//! ignoring spaces, line breaks, a `*` marking a required column and the width of brackets
//! (`乡镇(街道)` is `乡镇（街道）`). A header the ledger does not use (序号, 联系人, anything
//! unknown) is **ignored** and reported; with `--strict` the import refuses it. A column named
//! twice, and a missing required column, are refused either way.

use serde::Serialize;

use super::csv::{Column, LedgerCsvError, COLUMNS};

/// Columns every ledger must have.
pub const REQUIRED: [&str; 4] = ["id_number", "name", "hukou_region", "residence_region"];

/// A header the ledger does not use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IgnoredColumn {
    /// Where it is: the column letter in a spreadsheet (`A`), the 1-based position in a CSV file.
    pub column: String,
    /// The header as written (`(blank)` when there is none).
    pub header: String,
    /// The 0-based position.
    #[serde(skip)]
    pub position: usize,
}

/// How a file's columns map onto the ledger's.
#[derive(Clone)]
pub struct Header {
    /// For each column of the file, in order, the ledger column it fills; `None` when ignored.
    slots: Vec<Option<&'static Column>>,
    ignored: Vec<IgnoredColumn>,
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self
            .slots
            .iter()
            .map(|s| s.map_or("-", |c| c.name))
            .collect();
        f.debug_struct("Header")
            .field("slots", &names)
            .field("ignored", &self.ignored)
            .finish()
    }
}

/// The comparison form of a header: no whitespace, no `*`, full-width brackets.
fn key(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '*' | '＊'))
        .map(|c| match c {
            '(' => '（',
            ')' => '）',
            other => other,
        })
        .collect()
}

/// The ledger column a header names, if any.
pub(super) fn column_named(header: &str) -> Option<&'static Column> {
    let k = key(header);
    if k.is_empty() {
        return None;
    }
    COLUMNS
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(&k) || c.aliases.iter().any(|a| key(a) == k))
}

impl Header {
    /// Reads a header row. `place` names a column by its 0-based position (`C`, or `3`).
    pub fn read<S: AsRef<str>>(
        headers: &[S],
        place: impl Fn(usize) -> String,
    ) -> Result<Self, LedgerCsvError> {
        let mut slots: Vec<Option<&'static Column>> = Vec::with_capacity(headers.len());
        let mut ignored = Vec::new();
        for (i, h) in headers.iter().enumerate() {
            let h = h.as_ref().trim();
            match column_named(h) {
                Some(c) => {
                    if slots.iter().flatten().any(|x| x.name == c.name) {
                        return Err(LedgerCsvError::DuplicateColumn(h.to_owned()));
                    }
                    slots.push(Some(c));
                }
                None => {
                    slots.push(None);
                    ignored.push(IgnoredColumn {
                        position: i,
                        column: place(i),
                        header: if h.is_empty() {
                            "(blank)".to_owned()
                        } else {
                            h.to_owned()
                        },
                    });
                }
            }
        }
        for required in REQUIRED {
            if !slots.iter().flatten().any(|c| c.name == required) {
                return Err(LedgerCsvError::MissingColumn(required));
            }
        }
        Ok(Self { slots, ignored })
    }

    /// Forgets the ignored columns at `positions` (columns that are no columns: no header and
    /// nothing below it).
    pub(super) fn forget(mut self, positions: &[usize]) -> Self {
        self.ignored.retain(|c| !positions.contains(&c.position));
        self
    }

    /// The columns the ledger does not use, in file order.
    pub fn ignored(&self) -> &[IgnoredColumn] {
        &self.ignored
    }

    /// Refuses the ignored columns (`--strict`).
    pub fn check_strict(&self) -> Result<(), LedgerCsvError> {
        if self.ignored.is_empty() {
            return Ok(());
        }
        Err(LedgerCsvError::IgnoredColumns(describe(&self.ignored)))
    }

    /// The ledger column of each file column, in file order.
    pub(super) fn slots(&self) -> &[Option<&'static Column>] {
        &self.slots
    }

    /// The 0-based position of the column a validation error names (`hukou_region`, or
    /// `legal_guardian` for the first of its columns).
    pub fn position_of(&self, field: &str) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.is_some_and(|c| c.name == field))
            .or_else(|| {
                self.slots
                    .iter()
                    .position(|s| s.is_some_and(|c| c.field() == field))
            })
    }
}

/// `序号 (A), 联系人 (F)`.
pub fn describe(ignored: &[IgnoredColumn]) -> String {
    ignored
        .iter()
        .map(|c| format!("{} ({})", c.header, c.column))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letters(i: usize) -> String {
        super::super::sheet::column_letters(i as u32)
    }

    #[test]
    fn unknown_and_blank_headers_are_ignored_and_named_by_place() {
        let h = Header::read(
            &[
                "序号",
                "身份证号",
                "姓名",
                "户籍地区划代码",
                "联系人",
                "居住地代码",
                "",
            ],
            letters,
        )
        .unwrap();
        assert_eq!(
            h.ignored(),
            &[
                IgnoredColumn {
                    column: "A".into(),
                    header: "序号".into(),
                    position: 0,
                },
                IgnoredColumn {
                    column: "E".into(),
                    header: "联系人".into(),
                    position: 4,
                },
                IgnoredColumn {
                    column: "G".into(),
                    header: "(blank)".into(),
                    position: 6,
                },
            ]
        );
        assert_eq!(h.position_of("name"), Some(2));
        match h.check_strict() {
            Err(LedgerCsvError::IgnoredColumns(s)) => {
                assert_eq!(s, "序号 (A), 联系人 (E), (blank) (G)")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn headers_match_without_spaces_stars_or_bracket_width() {
        let h = Header::read(
            &[
                " *身份证号 ",
                "姓\n名",
                "户籍地区划代码",
                "居住地区划代码",
                "乡镇(街道)",
                "ID_NUMBER_X",
                "监护人电话",
            ],
            |i| (i + 1).to_string(),
        )
        .unwrap();
        assert_eq!(h.ignored().len(), 1);
        assert_eq!(h.ignored()[0].column, "6");
        assert_eq!(h.position_of("residence_township"), Some(4));
        // A person's error names the object; its first column is where it points.
        assert_eq!(h.position_of("legal_guardian"), Some(6));
    }

    #[test]
    fn duplicates_and_missing_required_columns_are_refused() {
        assert!(matches!(
            Header::read(
                &["身份证号", "公民身份号码", "姓名", "户籍地", "居住地"],
                letters
            ),
            Err(LedgerCsvError::DuplicateColumn(_))
        ));
        assert!(matches!(
            Header::read(&["身份证号", "姓名", "户籍地"], letters),
            Err(LedgerCsvError::MissingColumn("residence_region"))
        ));
    }
}
