//! A ledger file as it arrives — CSV or a workbook — read and its header checked, then every
//! row validated: the one reading behind `hukou-sync import` and the ledger upload page.

use crate::domain::child::ChildRecord;
use crate::domain::RecordRules;

use super::csv::{self as ledger_csv, Encoding, LedgerCsvError, LedgerReader, RowError};
use super::header::Header;
use super::sheet::{self, SheetError, SheetLedger};

/// Validated rows, in file order, with their row numbers.
pub type Validated = Vec<(usize, Result<ChildRecord, RowError>)>;

/// Why a ledger file cannot be read at all (as opposed to rows that fail).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(transparent)]
    Csv(#[from] LedgerCsvError),
    #[error(transparent)]
    Sheet(#[from] SheetError),
}

/// Whether bytes start like a workbook: a ZIP archive (`.xlsx`, `.ods`) or an OLE2 file
/// (`.xls`).
pub fn looks_like_workbook(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04")
        || head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1])
}

/// A ledger file read and its header checked, before any row is validated.
pub enum LedgerInput {
    Csv(Box<LedgerReader>),
    Workbook(Box<SheetLedger>),
}

impl LedgerInput {
    /// Reads a ledger's bytes: a workbook when `workbook` (by its name) or its bytes say so,
    /// CSV in `encoding` otherwise; `strict` refuses columns the ledger does not use.
    pub fn read_bytes(
        bytes: Vec<u8>,
        workbook: bool,
        encoding: Encoding,
        strict: bool,
    ) -> Result<Self, InputError> {
        let input = if workbook || looks_like_workbook(&bytes) {
            LedgerInput::Workbook(Box::new(sheet::read_bytes(bytes)?))
        } else {
            LedgerInput::Csv(Box::new(LedgerReader::new(ledger_csv::decode(
                &bytes[..],
                encoding,
            )?)?))
        };
        if strict {
            input.header().check_strict()?;
        }
        Ok(input)
    }

    pub fn header(&self) -> &Header {
        match self {
            LedgerInput::Csv(r) => r.header(),
            LedgerInput::Workbook(w) => w.header(),
        }
    }

    /// The workbook's sheet the ledger is read from (none for CSV).
    pub fn sheet(&self) -> Option<String> {
        match self {
            LedgerInput::Workbook(w) => Some(w.sheet().to_owned()),
            LedgerInput::Csv(_) => None,
        }
    }

    /// Every row validated, in file order; and the workbook, which places later errors.
    pub fn validate_all(self, rules: &RecordRules<'_>) -> (Validated, Option<Box<SheetLedger>>) {
        match self {
            LedgerInput::Workbook(w) => (w.validate_all(rules), Some(w)),
            LedgerInput::Csv(reader) => (csv_validated(reader.validate_all(rules)), None),
        }
    }
}

/// CSV rows as validated, each refusal named by its line (a CSV has no cells).
pub fn csv_validated(
    rows: Vec<(usize, Result<ChildRecord, crate::domain::FieldError>)>,
) -> Validated {
    rows.into_iter()
        .map(|(line, r)| {
            let r = r.map_err(|e| RowError {
                row: line,
                field: e.field,
                reason: e.reason,
                cell: None,
            });
            (line, r)
        })
        .collect()
}
