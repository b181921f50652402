//! The ledger as a workbook (`.xlsx`, `.xls`, `.ods`, read with `calamine`): the same columns
//! and rules as the CSV ledger ([`super::header`], [`super::csv`]'s row reading), so a workbook
//! row becomes the same field object the API takes and is validated the same way.
//!
//! What a workbook adds, and how it is read:
//! - **Which sheet.** The first sheet, in workbook order, whose first [`HEADER_SCAN`] rows hold a
//!   header row naming ledger columns; other sheets (a 说明 sheet, a pivot table) are left alone.
//! - **Title rows and two-row headers.** The header row is found, not assumed: a title row
//!   above it (`XX区困境儿童台账`, usually merged across the columns) is skipped, and a header
//!   split over two rows (`监护人` merged over `姓名 关系 电话`) is read as `监护人姓名`,
//!   `监护人关系`, `监护人电话`. A merged cell holds its value in its first cell only, so a
//!   group header is carried right over the sub-headers below it. Of the candidates (each of
//!   the first rows alone, and with the row below it) the one naming every required column and
//!   the most ledger columns wins; a tie goes to the one-row header.
//! - **Blank rows.** A row none of whose ledger columns holds anything (blank trailing rows, a
//!   template's pre-numbered 序号) is no row.
//! - **Typed cells.** A date cell is its date; a number is its digits (`440305`, not
//!   `440305.0`); a number in a date column is an Excel date serial; text dates are read as in
//!   CSV. A number that cannot hold its digits (an ID number typed as a number keeps 15) and an
//!   error value (`#N/A`) are refused naming the cell.
//! - **Places.** Rows are the sheet's own row numbers, and every error names the cell:
//!   `台账!C7: hukou_region: …`.
//! - **Bounds.** The file's size, its unpacked size (a ZIP's declared sizes, checked before it
//!   is unpacked), the rows, the columns and a cell's length are bounded ([`MAX_FILE_BYTES`] …);
//!   an `.xlsx` sheet is read cell by cell, so a sheet whose two cells are a million rows apart
//!   never becomes a million-row grid. (`.xls` and `.ods` sheets are read whole by `calamine`;
//!   the file-size bound is their bound.)
//! - **No panic.** A fault inside the workbook reader on malformed bytes is the error
//!   "cannot be read", never a crash of the import.
//!
//! Formulas are not evaluated: a formula cell's value is the one the workbook saved.

use std::collections::BTreeMap;
use std::io::Cursor;

use calamine::{Data, Ods, Reader, Xls, Xlsx};
use chrono::NaiveDate;

use super::csv::{row_fields, Column, LedgerCsvError, RowError};
use super::header::{column_named, Header};
use crate::domain::child::ChildRecord;
use crate::domain::RecordRules;

/// The largest workbook file read.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;
/// The most a `.xlsx` or `.ods` (ZIP archives of XML) may unpack to, by its declared sizes.
pub const MAX_UNPACKED_BYTES: u64 = 256 * 1024 * 1024;
/// The last sheet row read (1-based): data, header and title rows together.
pub const MAX_ROWS: u32 = 200_000;
/// The last column read (`DX`, the 128th): a ledger has about 40.
pub const MAX_COLUMNS: u32 = 128;
/// The longest cell, in characters (the longest field, 备注, holds 2,000).
pub const MAX_CELL_CHARS: usize = 10_000;
/// How many rows from the top of a sheet may hold the header (title rows above it included).
pub const HEADER_SCAN: usize = 10;

/// Why a workbook cannot be read as a ledger. Errors about one row are [`RowError`]s instead.
#[derive(Debug, thiserror::Error)]
pub enum SheetError {
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a spreadsheet (.xlsx, .xls or .ods): {0}")]
    NotASpreadsheet(&'static str),
    #[error("the file is {size} bytes; a workbook ledger may be at most {max} bytes (split it, or save it as CSV)")]
    FileTooLarge { size: u64, max: u64 },
    #[error("the workbook unpacks to more than {max} bytes; split it, or save it as CSV")]
    UnpackedTooLarge { max: u64 },
    #[error("the workbook cannot be read: {0}")]
    Unreadable(String),
    #[error("{at}: more than {max} rows; split the ledger")]
    TooManyRows { at: String, max: u32 },
    #[error("{at}: a value beyond column {} (the {max}th); a ledger has about 40 columns", column_letters(max - 1))]
    TooManyColumns { at: String, max: u32 },
    #[error("{at}: the cell holds {chars} characters, more than {max}")]
    CellTooLong {
        at: String,
        chars: usize,
        max: usize,
    },
    #[error("no sheet has a header row naming the ledger's columns (looked at {sheets}, in their first {HEADER_SCAN} rows); a ledger needs 身份证号, 姓名, 户籍地区划代码 and 居住地区划代码")]
    NoHeader { sheets: String },
    #[error("{sheet}, header row {row}: {source}")]
    Header {
        sheet: String,
        row: String,
        source: LedgerCsvError,
    },
}

/// `A` for 0, `Z` for 25, `AA` for 26.
pub fn column_letters(mut col: u32) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'A' + (col % 26) as u8);
        if col < 26 {
            break;
        }
        col = col / 26 - 1;
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

/// `台账!C7` for the 0-based row 6 and column 2.
fn place(sheet: &str, row: u32, col: u32) -> String {
    format!("{sheet}!{}{}", column_letters(col), row + 1)
}

/// One sheet's non-empty cells: 0-based row → (0-based column, value), columns ascending.
struct Grid {
    name: String,
    rows: BTreeMap<u32, Vec<(u32, Data)>>,
    /// One past the rightmost column holding a value.
    width: u32,
}

impl Grid {
    fn new(name: String) -> Self {
        Self {
            name,
            rows: BTreeMap::new(),
            width: 0,
        }
    }

    /// Adds a cell, refusing what is out of bounds; empty cells are dropped.
    fn push(&mut self, row: u32, col: u32, value: Data) -> Result<(), SheetError> {
        let value = match value {
            Data::Empty => return Ok(()),
            Data::String(s) if s.trim().is_empty() => return Ok(()),
            other => other,
        };
        if row >= MAX_ROWS {
            return Err(SheetError::TooManyRows {
                at: place(&self.name, row, col),
                max: MAX_ROWS,
            });
        }
        if col >= MAX_COLUMNS {
            return Err(SheetError::TooManyColumns {
                at: place(&self.name, row, col),
                max: MAX_COLUMNS,
            });
        }
        if let Data::String(s) = &value {
            let chars = s.chars().count();
            if chars > MAX_CELL_CHARS {
                return Err(SheetError::CellTooLong {
                    at: place(&self.name, row, col),
                    chars,
                    max: MAX_CELL_CHARS,
                });
            }
        }
        self.width = self.width.max(col + 1);
        let cells = self.rows.entry(row).or_default();
        match cells.binary_search_by_key(&col, |(c, _)| *c) {
            Ok(i) => cells[i].1 = value,
            Err(i) => cells.insert(i, (col, value)),
        }
        Ok(())
    }

    /// A row's cells as text, `width` wide (header detection).
    fn text_row(&self, row: u32) -> Vec<String> {
        let mut out = vec![String::new(); self.width as usize];
        for (col, v) in self.rows.get(&row).into_iter().flatten() {
            if let Some(slot) = out.get_mut(*col as usize) {
                *slot = cell_text(v, None).unwrap_or_default();
            }
        }
        out
    }
}

/// An open workbook of one of the three formats.
enum Book {
    Xlsx(Box<Xlsx<Cursor<Vec<u8>>>>),
    Xls(Box<Xls<Cursor<Vec<u8>>>>),
    Ods(Box<Ods<Cursor<Vec<u8>>>>),
}

fn unreadable(e: impl std::fmt::Display) -> SheetError {
    SheetError::Unreadable(e.to_string())
}

/// The ZIP archive's declared unpacked size, bounded before anything is unpacked; and which
/// format it holds.
fn zip_kind(bytes: &[u8]) -> Result<ZipKind, SheetError> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(unreadable)?;
    let mut total: u64 = 0;
    let (mut xlsx, mut ods) = (false, false);
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).map_err(unreadable)?;
        total = total.saturating_add(entry.size());
        if total > MAX_UNPACKED_BYTES {
            return Err(SheetError::UnpackedTooLarge {
                max: MAX_UNPACKED_BYTES,
            });
        }
        match entry.name() {
            "xl/workbook.xml" | "xl/workbook.bin" => xlsx = true,
            "content.xml" => ods = true,
            _ => {}
        }
    }
    match (xlsx, ods) {
        (true, _) => Ok(ZipKind::Xlsx),
        (_, true) => Ok(ZipKind::Ods),
        _ => Err(SheetError::NotASpreadsheet(
            "a ZIP archive holding neither an Excel nor an OpenDocument workbook",
        )),
    }
}

enum ZipKind {
    Xlsx,
    Ods,
}

/// The OLE2 compound-file signature of `.xls` (and of password-protected `.xlsx`).
const OLE2: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

impl Book {
    /// Recognises the format by its bytes (not the file's name) and opens it.
    fn open(bytes: Vec<u8>) -> Result<Self, SheetError> {
        if bytes.starts_with(b"PK\x03\x04") {
            match zip_kind(&bytes)? {
                ZipKind::Xlsx => Ok(Book::Xlsx(Box::new(
                    Xlsx::new(Cursor::new(bytes)).map_err(unreadable)?,
                ))),
                ZipKind::Ods => Ok(Book::Ods(Box::new(
                    Ods::new(Cursor::new(bytes)).map_err(unreadable)?,
                ))),
            }
        } else if bytes.starts_with(&OLE2) {
            Xls::new(Cursor::new(bytes))
                .map(|x| Book::Xls(Box::new(x)))
                .map_err(|e| {
                    SheetError::Unreadable(format!(
                        "{e} (a password-protected workbook cannot be read: remove the password)"
                    ))
                })
        } else if std::str::from_utf8(&bytes[..bytes.len().min(4096)]).is_ok() {
            Err(SheetError::NotASpreadsheet(
                "the file is text (a CSV ledger is read when its name ends in .csv)",
            ))
        } else {
            Err(SheetError::NotASpreadsheet(
                "the file is neither a ZIP archive (.xlsx, .ods) nor an OLE2 file (.xls)",
            ))
        }
    }

    fn sheet_names(&self) -> Vec<String> {
        match self {
            Book::Xlsx(b) => b.sheet_names(),
            Book::Xls(b) => b.sheet_names(),
            Book::Ods(b) => b.sheet_names(),
        }
    }

    /// One sheet's cells, bounded as they are read.
    fn grid(&mut self, name: &str) -> Result<Grid, SheetError> {
        let mut grid = Grid::new(name.to_owned());
        let range = match self {
            Book::Xlsx(b) => {
                // Cell by cell: nothing is allocated for the space between cells.
                let mut cells = b.worksheet_cells_reader(name).map_err(unreadable)?;
                while let Some(cell) = cells.next_cell().map_err(unreadable)? {
                    let (row, col) = cell.get_position();
                    grid.push(row, col, Data::from(cell.get_value().clone()))?;
                }
                return Ok(grid);
            }
            Book::Xls(b) => b.worksheet_range(name).map_err(unreadable)?,
            Book::Ods(b) => b.worksheet_range(name).map_err(unreadable)?,
        };
        let (row0, col0) = range.start().unwrap_or((0, 0));
        for (r, c, v) in range.used_cells() {
            let (Ok(r), Ok(c)) = (u32::try_from(r), u32::try_from(c)) else {
                return Err(SheetError::TooManyRows {
                    at: name.to_owned(),
                    max: MAX_ROWS,
                });
            };
            grid.push(row0.saturating_add(r), col0.saturating_add(c), v.clone())?;
        }
        Ok(grid)
    }
}

/// A cell as the text a CSV ledger would hold; `column` is the ledger column it fills, if any.
/// The error is the reason, for the caller to place.
fn cell_text(v: &Data, column: Option<&Column>) -> Result<String, String> {
    let is_date = column.is_some_and(Column::is_date);
    match v {
        Data::Empty => Ok(String::new()),
        Data::String(s) => Ok(s.trim().to_owned()),
        Data::Int(i) => Ok(i.to_string()),
        Data::Float(f) => number_text(*f, is_date),
        Data::Bool(b) => Ok(if *b { "TRUE" } else { "FALSE" }.to_owned()),
        Data::DateTime(d) if d.is_datetime() => d
            .as_datetime()
            .map(|dt| dt.date().to_string())
            .ok_or_else(|| format!("the date serial {} is out of range", d.as_f64())),
        Data::DateTime(d) => Err(format!("holds a duration ({}), not a date", d.as_f64())),
        Data::DateTimeIso(s) => Ok(s.split('T').next().unwrap_or(s).to_owned()),
        Data::DurationIso(s) => Err(format!("holds a duration ({s}), not a date")),
        Data::Error(e) => Err(format!("holds the error value {e}")),
    }
}

/// The last Excel date serial (9999-12-31).
const LAST_SERIAL: f64 = 2_958_465.0;

fn number_text(f: f64, is_date: bool) -> Result<String, String> {
    if !f.is_finite() {
        return Err("is not a finite number".into());
    }
    let whole = f.fract() == 0.0;
    // A date column's number is a date whose format was lost (45566 is 2024-10-01), from 1900-03-01
    // on (before it, Excel counts a 29 February 1900 that never was); 20240305 is text-like
    // digits, read as CSV reads them.
    if is_date && whole && (61.0..=LAST_SERIAL).contains(&f) {
        let epoch = NaiveDate::from_ymd_opt(1899, 12, 30);
        return epoch
            .and_then(|e| e.checked_add_signed(chrono::Duration::days(f as i64)))
            .map(|d| d.to_string())
            .ok_or_else(|| format!("the date serial {f} is out of range"));
    }
    if whole && f.abs() < 1e15 {
        return Ok(format!("{f:.0}"));
    }
    if whole {
        // A spreadsheet number keeps 15 significant digits: an 18-digit ID number typed as a
        // number has already lost its last ones.
        return Err(format!(
            "is a number of more than 15 digits ({f:e}), which a spreadsheet cannot hold exactly; \
             format the column as text and type the value again"
        ));
    }
    Ok(f.to_string())
}

/// Builds the name of each column of a header made of `top` and the row `bottom` below it.
fn two_row_names(top: &[String], bottom: &[String]) -> Vec<String> {
    let mut group = String::new();
    top.iter()
        .zip(bottom)
        .map(|(t, b)| {
            if !t.is_empty() {
                group = t.clone();
            }
            match (t.is_empty(), b.is_empty()) {
                // A cell merged down over both rows (序号), or a lone top cell.
                (false, true) => t.clone(),
                (true, true) => String::new(),
                // A sub-header: under its group (carried right from a merged cell) when the two
                // together name a column, else on its own.
                (_, false) => {
                    let joined = format!("{group}{b}");
                    if !group.is_empty() && column_named(&joined).is_some() {
                        joined
                    } else {
                        b.clone()
                    }
                }
            }
        })
        .collect()
}

/// How well a candidate header reads: (names every required column, ledger columns named, no
/// column named twice). Higher is better.
fn score(names: &[String]) -> (bool, usize) {
    let cols: Vec<&str> = names
        .iter()
        .filter_map(|n| column_named(n))
        .map(|c| c.name)
        .collect();
    let mut unique = cols.clone();
    unique.sort_unstable();
    unique.dedup();
    let required = super::header::REQUIRED.iter().all(|r| unique.contains(r));
    // A candidate naming a column twice would be refused: it ranks below any that does not.
    (required && unique.len() == cols.len(), unique.len())
}

/// The header found on a sheet: its 0-based rows, and each column's name.
struct Found {
    first: u32,
    last: u32,
    names: Vec<String>,
    /// (names every required column and none twice, ledger columns named, one row).
    score: (bool, usize, bool),
}

fn find_header(grid: &Grid) -> Option<Found> {
    let mut best: Option<Found> = None;
    for &row in grid.rows.keys().take(HEADER_SCAN) {
        let top = grid.text_row(row);
        let mut candidates = vec![(row, top.clone())];
        if grid.rows.contains_key(&(row + 1)) {
            candidates.push((row + 1, two_row_names(&top, &grid.text_row(row + 1))));
        }
        for (last, names) in candidates {
            let (complete, named) = score(&names);
            let s = (complete, named, last == row);
            // Strictly better only: of equals, the one-row and then the earlier candidate.
            if s.1 >= 2 && best.as_ref().map_or(true, |b| s > b.score) {
                best = Some(Found {
                    first: row,
                    last,
                    names,
                    score: s,
                });
            }
        }
    }
    best
}

/// A cell that cannot be read: its 0-based column, the field it fills, and why.
type BadCell = (u32, &'static str, String);

/// A data row: its 0-based sheet row and its ledger cells, or the first cell that cannot be read.
struct SheetRow {
    row: u32,
    cells: Result<Vec<(&'static Column, String)>, BadCell>,
}

/// A workbook's ledger sheet, its header read and its rows turned to text, not yet validated.
pub struct SheetLedger {
    sheet: String,
    header: Header,
    /// 1-based sheet rows of the header (one or two).
    header_rows: (u32, u32),
    rows: Vec<SheetRow>,
}

impl std::fmt::Debug for SheetLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SheetLedger")
            .field("sheet", &self.sheet)
            .field("header", &self.header)
            .field("header_rows", &self.header_rows)
            .field("rows", &self.rows.len())
            .finish()
    }
}

/// Reads a workbook file, bounding its size before reading it.
pub fn read_file(path: &std::path::Path) -> Result<SheetLedger, SheetError> {
    let size = std::fs::metadata(path)?.len();
    if size > MAX_FILE_BYTES {
        return Err(SheetError::FileTooLarge {
            size,
            max: MAX_FILE_BYTES,
        });
    }
    read_bytes(std::fs::read(path)?)
}

/// Reads a workbook's bytes (any bytes: what is not a workbook is an error, never a panic).
pub fn read_bytes(bytes: Vec<u8>) -> Result<SheetLedger, SheetError> {
    let size = bytes.len() as u64;
    if size > MAX_FILE_BYTES {
        return Err(SheetError::FileTooLarge {
            size,
            max: MAX_FILE_BYTES,
        });
    }
    // The workbook reader is a large parser of outside input: a fault in it on a malformed file
    // is this file's error, not the end of the command.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_book(bytes))).unwrap_or_else(
        |_| {
            Err(SheetError::Unreadable(
                "the workbook reader failed on this file (is it damaged?)".into(),
            ))
        },
    )
}

fn read_book(bytes: Vec<u8>) -> Result<SheetLedger, SheetError> {
    let mut book = Book::open(bytes)?;
    let names = book.sheet_names();
    for name in &names {
        let grid = book.grid(name)?;
        let Some(found) = find_header(&grid) else {
            continue;
        };
        return SheetLedger::from_grid(grid, found);
    }
    Err(SheetError::NoHeader {
        sheets: if names.is_empty() {
            "no sheets".into()
        } else {
            names.join(", ")
        },
    })
}

impl SheetLedger {
    fn from_grid(grid: Grid, found: Found) -> Result<Self, SheetError> {
        let Grid {
            name: sheet, rows, ..
        } = grid;
        let header_rows = (found.first + 1, found.last + 1);
        let shown_rows = if header_rows.0 == header_rows.1 {
            header_rows.0.to_string()
        } else {
            format!("{}-{}", header_rows.0, header_rows.1)
        };
        // A column without a header and without a value below it is no column.
        let names = found.names;
        let data = || rows.range(found.last + 1..);
        let absent: Vec<usize> = (0..names.len())
            .filter(|&col| {
                names[col].is_empty()
                    && !data().any(|(_, cells)| cells.iter().any(|(c, _)| *c as usize == col))
            })
            .collect();
        let header = Header::read(&names, |i| column_letters(i as u32))
            .map(|h| h.forget(&absent))
            .map_err(|source| SheetError::Header {
                sheet: sheet.clone(),
                row: shown_rows,
                source,
            })?;
        let slots = header.slots().to_vec();
        let mut out = Vec::new();
        for (&row, cells) in data() {
            let mut read = Vec::new();
            let mut failed = None;
            for (col, v) in cells {
                let Some(Some(column)) = slots.get(*col as usize) else {
                    continue;
                };
                match cell_text(v, Some(column)) {
                    Ok(t) if t.is_empty() => {}
                    Ok(t) => read.push((*column, t)),
                    Err(reason) => {
                        failed = Some((*col, column.field(), reason));
                        break;
                    }
                }
            }
            let cells = match failed {
                Some(f) => Err(f),
                // A row none of whose ledger columns holds anything is blank.
                None if read.is_empty() => continue,
                None => Ok(read),
            };
            out.push(SheetRow { row, cells });
        }
        Ok(Self {
            sheet,
            header,
            header_rows,
            rows: out,
        })
    }

    /// The sheet the ledger was read from.
    pub fn sheet(&self) -> &str {
        &self.sheet
    }

    /// The 1-based sheet rows of the header (equal for a one-row header).
    pub fn header_rows(&self) -> (u32, u32) {
        self.header_rows
    }

    /// How the sheet's columns map onto the ledger's (and which are ignored).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The number of data rows (blank rows left out).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Where a row's problem with `field` is: `台账!C7`, or `台账!7` when no column holds it.
    pub fn place_of(&self, row: usize, field: &str) -> String {
        match self.header.position_of(field) {
            Some(col) => format!("{}!{}{row}", self.sheet, column_letters(col as u32)),
            None => format!("{}!{row}", self.sheet),
        }
    }

    /// Every row validated into a record by `rules`, in sheet order, with its 1-based sheet row;
    /// a failure names the cell.
    pub fn validate_all(
        &self,
        rules: &RecordRules<'_>,
    ) -> Vec<(usize, Result<ChildRecord, RowError>)> {
        self.rows
            .iter()
            .map(|r| {
                let row = r.row as usize + 1;
                let result = match &r.cells {
                    Err((col, field, reason)) => Err(RowError {
                        row,
                        field: (*field).to_owned(),
                        reason: reason.clone(),
                        cell: Some(place(&self.sheet, r.row, *col)),
                    }),
                    Ok(cells) => row_fields(cells.iter().map(|(c, t)| (*c, t.as_str())))
                        .and_then(|f| ChildRecord::from_fields(f, rules))
                        .map_err(|e| RowError {
                            row,
                            cell: Some(self.place_of(row, &e.field)),
                            field: e.field,
                            reason: e.reason,
                        }),
                };
                (row, result)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RiskPalette;
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

    fn rules(palette: &RiskPalette) -> RecordRules<'_> {
        RecordRules {
            today: NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
            palette,
        }
    }

    fn id(seq: u16) -> String {
        crate::domain::IdNumber::generate(
            &crate::domain::RegionCode::parse("510104").unwrap(),
            NaiveDate::from_ymd_opt(2015, 3, 3).unwrap(),
            seq,
        )
        .to_string()
    }

    #[test]
    fn column_letters_count_like_a_spreadsheet() {
        let got: Vec<String> = [0, 2, 25, 26, 27, 51, 52, 701, 702]
            .into_iter()
            .map(column_letters)
            .collect();
        assert_eq!(
            got,
            ["A", "C", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA"].map(String::from)
        );
    }

    #[test]
    fn a_title_row_a_two_row_header_and_blank_rows_are_read() {
        let mut wb = Workbook::new();
        let ws = wb.add_worksheet();
        ws.set_name("台账").unwrap();
        ws.merge_range(0, 0, 0, 8, "金水区困境儿童台账", &Format::new())
            .unwrap();
        for (c, h) in [
            "序号",
            "身份证号",
            "姓名",
            "户籍地",
            "",
            "监护人",
            "",
            "居住地",
            "最近走访日期",
        ]
        .iter()
        .enumerate()
        {
            if !h.is_empty() {
                ws.write_string(1, c as u16, *h).unwrap();
            }
        }
        for (c, h) in [
            (3, "区划代码"),
            (4, "地址"),
            (5, "姓名"),
            (6, "关系"),
            (7, "区划代码"),
        ] {
            ws.write_string(2, c, h).unwrap();
        }
        ws.write_number(3, 0, 1).unwrap();
        ws.write_string(3, 1, id(1)).unwrap();
        ws.write_string(3, 2, "王小明").unwrap();
        ws.write_number(3, 3, 510104).unwrap();
        ws.write_string(3, 4, "锦江区某街1号").unwrap();
        ws.write_string(3, 5, "王建国").unwrap();
        ws.write_string(3, 6, "祖父").unwrap();
        ws.write_number(3, 7, 410105).unwrap();
        let date = Format::new().set_num_format("yyyy-mm-dd");
        ws.write_datetime_with_format(3, 8, ExcelDateTime::from_ymd(2026, 9, 1).unwrap(), &date)
            .unwrap();
        // Pre-numbered blank rows below.
        for r in 4..9 {
            ws.write_number(r, 0, f64::from(r - 2)).unwrap();
        }
        let ledger = read_bytes(wb.save_to_buffer().unwrap()).unwrap();
        assert_eq!(ledger.sheet(), "台账");
        assert_eq!(ledger.header_rows(), (2, 3));
        assert_eq!(ledger.len(), 1);
        assert_eq!(ledger.header().ignored().len(), 1);
        assert_eq!(ledger.header().ignored()[0].header, "序号");
        let palette = RiskPalette::default();
        let rows = ledger.validate_all(&rules(&palette));
        let (row, record) = &rows[0];
        assert_eq!(*row, 4);
        let r = record.as_ref().unwrap();
        assert_eq!(r.hukou_region.to_string(), "510104");
        assert_eq!(r.residence_region.to_string(), "410105");
        assert_eq!(r.last_visit_on.unwrap().to_string(), "2026-09-01");
        assert_eq!(r.legal_guardian.as_ref().unwrap().relation.as_str(), "祖父");
        assert_eq!(r.hukou_address.as_ref().unwrap().as_str(), "锦江区某街1号");
    }

    #[test]
    fn a_bad_cell_is_named_by_sheet_row_and_column() {
        let mut wb = Workbook::new();
        let ws = wb.add_worksheet();
        ws.set_name("台账").unwrap();
        for (c, h) in ["身份证号", "姓名", "户籍地区划代码", "居住地区划代码"]
            .iter()
            .enumerate()
        {
            ws.write_string(0, c as u16, *h).unwrap();
        }
        ws.write_string(1, 0, id(1)).unwrap();
        ws.write_string(1, 1, "王小明").unwrap();
        ws.write_string(1, 2, "510104").unwrap();
        ws.write_string(1, 3, "410105").unwrap();
        ws.write_number(2, 0, 5.10104201503030e17).unwrap();
        ws.write_string(2, 1, "李四").unwrap();
        ws.write_string(2, 2, "999999").unwrap();
        ws.write_string(2, 3, "410105").unwrap();
        ws.write_string(3, 0, id(3)).unwrap();
        ws.write_string(3, 1, "张三").unwrap();
        ws.write_string(3, 2, "999999").unwrap();
        ws.write_string(3, 3, "410105").unwrap();
        let ledger = read_bytes(wb.save_to_buffer().unwrap()).unwrap();
        let palette = RiskPalette::default();
        let rows = ledger.validate_all(&rules(&palette));
        assert!(rows[0].1.is_ok(), "{:?}", rows[0].1);
        let e = rows[1].1.as_ref().unwrap_err();
        assert_eq!(e.cell.as_deref(), Some("台账!A3"));
        assert_eq!(e.field, "id_number");
        assert!(e.reason.contains("15 digits"), "{}", e.reason);
        let e = rows[2].1.as_ref().unwrap_err();
        assert_eq!(
            (e.cell.as_deref(), e.field.as_str()),
            (Some("台账!C4"), "hukou_region")
        );
    }

    /// A minimal OpenDocument spreadsheet (as LibreOffice or WPS saves one): a title row, the
    /// header, and a row with a float region code and a date cell.
    fn ods(id: &str) -> Vec<u8> {
        use std::io::Write;
        use zip::write::SimpleFileOptions;
        let cell = |v: &str| {
            format!("<table:table-cell office:value-type=\"string\"><text:p>{v}</text:p></table:table-cell>")
        };
        let header: String = ["身份证号", "姓名", "户籍地", "居住地", "最近走访日期"]
            .iter()
            .map(|h| cell(h))
            .collect();
        let content = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.3">
<office:body><office:spreadsheet><table:table table:name="台账">
<table:table-row><table:table-cell table:number-columns-spanned="5" office:value-type="string"><text:p>儿童台账</text:p></table:table-cell></table:table-row>
<table:table-row>{header}</table:table-row>
<table:table-row>{}{}<table:table-cell office:value-type="float" office:value="510104"><text:p>510104</text:p></table:table-cell>{}<table:table-cell office:value-type="date" office:date-value="2026-09-01"><text:p>2026/9/1</text:p></table:table-cell></table:table-row>
<table:table-row table:number-rows-repeated="3"><table:table-cell table:number-columns-repeated="5"/></table:table-row>
</table:table></office:spreadsheet></office:body></office:document-content>"#,
            cell(id),
            cell("王小明"),
            cell("410105"),
        );
        let manifest = r#"<?xml version="1.0" encoding="UTF-8"?>
<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#;
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let stored =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        for (name, body) in [
            ("mimetype", "application/vnd.oasis.opendocument.spreadsheet"),
            ("META-INF/manifest.xml", manifest),
            ("content.xml", content.as_str()),
        ] {
            zip.start_file(name, stored).unwrap();
            zip.write_all(body.as_bytes()).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn an_opendocument_spreadsheet_reads_like_an_xlsx() {
        let ledger = read_bytes(ods(&id(1))).unwrap();
        assert_eq!(
            (ledger.sheet(), ledger.header_rows(), ledger.len()),
            ("台账", (2, 2), 1)
        );
        let palette = RiskPalette::default();
        let rows = ledger.validate_all(&rules(&palette));
        assert_eq!(rows[0].0, 3);
        let r = rows[0].1.as_ref().unwrap();
        assert_eq!(r.hukou_region.to_string(), "510104");
        assert_eq!(r.last_visit_on.unwrap().to_string(), "2026-09-01");
        let rows = read_bytes(ods("510104"))
            .unwrap()
            .validate_all(&rules(&palette));
        assert_eq!(
            rows[0].1.as_ref().unwrap_err().cell.as_deref(),
            Some("台账!A3")
        );
    }

    #[test]
    fn typed_cells_read_as_csv_would_hold_them() {
        let date_col = crate::ledger_file::csv::COLUMNS
            .iter()
            .find(|c| c.name == "last_visit_on");
        assert_eq!(cell_text(&Data::Float(440305.0), None).unwrap(), "440305");
        assert_eq!(cell_text(&Data::Int(1), None).unwrap(), "1");
        assert_eq!(
            cell_text(&Data::Float(45566.0), date_col).unwrap(),
            "2024-10-01"
        );
        assert_eq!(
            cell_text(&Data::Float(20240305.0), date_col).unwrap(),
            "20240305"
        );
        assert_eq!(
            cell_text(&Data::DateTimeIso("2024-03-05T00:00:00".into()), date_col).unwrap(),
            "2024-03-05"
        );
        assert!(cell_text(&Data::Error(calamine::CellErrorType::NA), None).is_err());
        assert!(cell_text(&Data::Float(f64::NAN), None).is_err());
        assert_eq!(cell_text(&Data::Float(1.5), None).unwrap(), "1.5");
    }

    #[test]
    fn what_is_not_a_workbook_is_refused_by_its_bytes() {
        assert!(matches!(
            read_bytes(b"id_number,name\n".to_vec()),
            Err(SheetError::NotASpreadsheet(_))
        ));
        assert!(matches!(
            read_bytes(vec![0xff, 0x00, 0x12]),
            Err(SheetError::NotASpreadsheet(_))
        ));
        let mut ole = OLE2.to_vec();
        ole.extend([0u8; 100]);
        assert!(matches!(read_bytes(ole), Err(SheetError::Unreadable(_))));
        // A workbook without any ledger header.
        let mut wb = Workbook::new();
        wb.add_worksheet().write_string(0, 0, "hello").unwrap();
        assert!(matches!(
            read_bytes(wb.save_to_buffer().unwrap()),
            Err(SheetError::NoHeader { .. })
        ));
    }

    #[test]
    fn bounds_are_errors_naming_the_cell() {
        let mut wb = Workbook::new();
        let ws = wb.add_worksheet();
        ws.write_string(0, 0, "身份证号").unwrap();
        ws.write_string(MAX_ROWS, 0, "x").unwrap();
        match read_bytes(wb.save_to_buffer().unwrap()) {
            Err(SheetError::TooManyRows { at, .. }) => assert_eq!(at, "Sheet1!A200001"),
            other => panic!("{other:?}"),
        }
        let mut wb = Workbook::new();
        let ws = wb.add_worksheet();
        ws.write_string(0, MAX_COLUMNS as u16, "x").unwrap();
        assert!(matches!(
            read_bytes(wb.save_to_buffer().unwrap()),
            Err(SheetError::TooManyColumns { .. })
        ));
        let mut wb = Workbook::new();
        let ws = wb.add_worksheet();
        ws.write_string(1, 1, "长".repeat(MAX_CELL_CHARS + 1))
            .unwrap();
        match read_bytes(wb.save_to_buffer().unwrap()) {
            Err(SheetError::CellTooLong { at, .. }) => assert_eq!(at, "Sheet1!B2"),
            other => panic!("{other:?}"),
        }
    }
}
