//! The ledger as an `.xlsx` workbook (written with `rust_xlsxwriter`): the export
//! (`export --format xlsx`) and the empty template (`template`), one sheet 台账 with the CSV
//! ledger's columns in its order under their Chinese headers ([`super::csv`]'s first alias).
//!
//! - The header row is bold and frozen; each column is as wide as its header or its values.
//! - Values of a vocabulary are written by their Chinese labels (流动, 与祖辈生活, 儿童主任),
//!   the risk level by this node's label; the import reads labels as codes, so an export
//!   imports back unchanged ([`super::sheet`]). Lists are joined with `、`.
//! - Dates are Excel dates (`yyyy-mm-dd`); every other value is a text cell, and every text
//!   column is formatted as text (`@`), so an ID number or region code typed into the workbook
//!   later stays text instead of becoming a number that loses digits.
//! - Each vocabulary column carries a drop-down list (data validation) of its labels for the
//!   rows below the header; on a list column (儿童类别, 重点关爱原因, 享受保障) the drop-down offers
//!   one value and typing several (`流动、留守`) is allowed with a note.
//! - Nothing is ever a formula: text stays text (a cell `=1+2` is the text `=1+2`).
//! - The command line's export streams its rows to a temporary file beside the output
//!   ([`LedgerWorkbook::streaming`]); a page's download and the template are built in memory.

use std::io::{Seek, Write};

use chrono::{Datelike, NaiveDate};
use rust_xlsxwriter::{
    DataValidation, DataValidationErrorStyle, ExcelDateTime, Format, FormatAlign, Workbook,
    Worksheet, XlsxError,
};

use super::csv::{export_cells, Column, Kind, COLUMNS};
use crate::domain::child::{
    Benefit, Category, ChildRecord, DisabilityGrade, DisabilityKind, EducationStatus,
    GuardianshipKind, HealthStatus, KeyCareReason, LivingStatus, ParentSituation,
    PsychologicalState, WorkerRole,
};
use crate::domain::RiskPalette;

/// The ledger sheet's name.
pub const SHEET: &str = "台账";
/// The last data row the format holds (1,048,576 rows, less the header).
pub const MAX_ROWS: u32 = 1_048_575;
/// Rows below the header that the drop-down lists cover, at least (the template's, and an
/// export's beyond its last row).
const LIST_ROWS: u32 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum XlsxLedgerError {
    #[error("writing the workbook: {0}")]
    Xlsx(#[from] XlsxError),
    #[error("more than {MAX_ROWS} files do not fit in one .xlsx sheet; export --format csv")]
    TooManyRows,
}

/// `(code, label)` pairs of a vocabulary.
fn pairs<T: Copy>(
    all: &[T],
    code: fn(T) -> &'static str,
    label: fn(T) -> &'static str,
) -> Vec<(String, String)> {
    all.iter()
        .map(|v| (code(*v).to_owned(), label(*v).to_owned()))
        .collect()
}

/// The vocabulary of a column as `(code, label)`, if it has one; the risk level's is this
/// node's palette.
fn vocabulary(column: &Column, palette: &RiskPalette) -> Option<Vec<(String, String)>> {
    Some(match column.name {
        "sex" => vec![("男".into(), "男".into()), ("女".into(), "女".into())],
        "father_situation" | "mother_situation" => pairs(
            ParentSituation::ALL,
            ParentSituation::code,
            ParentSituation::label_zh,
        ),
        "guardianship_kind" => pairs(
            GuardianshipKind::ALL,
            GuardianshipKind::code,
            GuardianshipKind::label_zh,
        ),
        "benefits" => pairs(Benefit::ALL, Benefit::code, Benefit::label_zh),
        "living_status" => pairs(
            LivingStatus::ALL,
            LivingStatus::code,
            LivingStatus::label_zh,
        ),
        "education_status" => pairs(
            EducationStatus::ALL,
            EducationStatus::code,
            EducationStatus::label_zh,
        ),
        "responsible_worker_role" => pairs(WorkerRole::ALL, WorkerRole::code, WorkerRole::label_zh),
        "key_care" => pairs(
            KeyCareReason::ALL,
            KeyCareReason::code,
            KeyCareReason::label_zh,
        ),
        "risk_level" => palette
            .levels()
            .iter()
            .map(|l| (l.clone(), l.clone()))
            .collect(),
        "categories" => pairs(Category::ALL, Category::code, Category::label_zh),
        "health_status" => pairs(
            HealthStatus::ALL,
            HealthStatus::code,
            HealthStatus::label_zh,
        ),
        "disability_kind" => pairs(
            DisabilityKind::ALL,
            DisabilityKind::code,
            DisabilityKind::label_zh,
        ),
        "disability_grade" => pairs(
            DisabilityGrade::ALL,
            DisabilityGrade::code,
            DisabilityGrade::label_zh,
        ),
        "psychological_state" => pairs(
            PsychologicalState::ALL,
            PsychologicalState::code,
            PsychologicalState::label_zh,
        ),
        _ => return None,
    })
}

/// Display width of text in a spreadsheet column: CJK characters count two.
fn width_of(s: &str) -> usize {
    s.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum()
}

/// A column's starting width by what it holds (widened later to its longest value).
fn base_width(column: &Column) -> usize {
    let by_kind = match column.name {
        "id_number" => 20,
        "notes" | "hukou_address" | "residence_address" => 30,
        _ if column.is_date() => 12,
        _ => 8,
    };
    by_kind.max(width_of(column.header_zh()) + 2)
}

/// A workbook being written: the 台账 sheet with its header, and the rows so far.
pub struct LedgerWorkbook {
    book: Workbook,
    /// Vocabulary of each column (in [`COLUMNS`] order), to write labels.
    vocab: Vec<Option<Vec<(String, String)>>>,
    widths: Vec<usize>,
    date: Format,
    text: Format,
    rows: u32,
}

fn sheet(book: &mut Workbook) -> Result<&mut Worksheet, XlsxError> {
    book.worksheet_from_index(0)
}

impl LedgerWorkbook {
    /// A workbook with the header row written, held in memory (a page's download, the
    /// template, tests): every cell stays in memory until [`Self::finish`].
    pub fn new(palette: &RiskPalette) -> Result<Self, XlsxLedgerError> {
        let mut book = Workbook::new();
        book.add_worksheet();
        Self::with_sheet(book, palette)
    }

    /// A workbook whose rows go to an unnamed temporary file in `tempdir` as they are pushed
    /// (`rust_xlsxwriter`'s constant-memory mode): the export of a whole node holds one row in
    /// memory, not the sheet. The file is created already unlinked (mode 0600) and is gone when
    /// the workbook is; put it beside the export, so a child's data stays where the export goes.
    pub fn streaming(
        palette: &RiskPalette,
        tempdir: &std::path::Path,
    ) -> Result<Self, XlsxLedgerError> {
        let mut book = Workbook::new();
        // Checks the directory (creates and drops a temporary file), so that adding the sheet
        // below, which opens its file without reporting an error, finds it writable.
        book.set_tempdir(tempdir)?;
        book.add_worksheet_with_constant_memory();
        Self::with_sheet(book, palette)
    }

    fn with_sheet(mut book: Workbook, palette: &RiskPalette) -> Result<Self, XlsxLedgerError> {
        let date = Format::new().set_num_format("yyyy-mm-dd");
        let text = Format::new().set_num_format("@");
        let head = Format::new()
            .set_bold()
            .set_background_color(0xDDEBF7)
            .set_align(FormatAlign::Center)
            .set_num_format("@");
        let ws = sheet(&mut book)?;
        ws.set_name(SHEET)?;
        for (c, column) in COLUMNS.iter().enumerate() {
            let c = c as u16;
            ws.write_string_with_format(0, c, column.header_zh(), &head)?;
            ws.set_column_format(c, if column.is_date() { &date } else { &text })?;
        }
        ws.set_freeze_panes(1, 0)?;
        Ok(Self {
            book,
            vocab: COLUMNS.iter().map(|c| vocabulary(c, palette)).collect(),
            widths: COLUMNS.iter().map(base_width).collect(),
            date,
            text,
            rows: 0,
        })
    }

    /// Appends one child's row.
    pub fn push(&mut self, r: &ChildRecord, palette: &RiskPalette) -> Result<(), XlsxLedgerError> {
        if self.rows >= MAX_ROWS {
            return Err(XlsxLedgerError::TooManyRows);
        }
        self.rows += 1;
        let row = self.rows;
        let cells = export_cells(r, palette);
        let ws = sheet(&mut self.book)?;
        for (c, (column, value)) in COLUMNS.iter().zip(cells).enumerate() {
            if value.is_empty() {
                continue;
            }
            let col = c as u16;
            if column.is_date() {
                if let Some(d) = NaiveDate::parse_from_str(&value, "%Y-%m-%d")
                    .ok()
                    .and_then(excel_date)
                {
                    ws.write_datetime_with_format(row, col, d, &self.date)?;
                    continue;
                }
            }
            let shown = match &self.vocab[c] {
                Some(vocab) => labels(&value, vocab, matches!(column.kind, Kind::List)),
                None => value,
            };
            self.widths[c] = self.widths[c].max(width_of(&shown).min(60));
            ws.write_string_with_format(row, col, shown, &self.text)?;
        }
        Ok(())
    }

    /// The rows written so far.
    pub fn rows(&self) -> u32 {
        self.rows
    }

    /// Sets the widths and the drop-down lists and writes the workbook to `out`.
    pub fn finish<W: Write + Seek + Send>(mut self, out: W) -> Result<(), XlsxLedgerError> {
        let last = self.rows.clamp(LIST_ROWS, MAX_ROWS);
        let ws = sheet(&mut self.book)?;
        for (c, column) in COLUMNS.iter().enumerate() {
            let col = c as u16;
            ws.set_column_width(col, self.widths[c] as f64 + 1.0)?;
            let Some(vocab) = &self.vocab[c] else {
                continue;
            };
            let labels: Vec<&str> = vocab.iter().map(|(_, l)| l.as_str()).collect();
            let mut list = DataValidation::new()
                .allow_list_strings(&labels)?
                .set_input_title(column.header_zh())?;
            if matches!(column.kind, Kind::List) {
                // A list column may hold several values: offer one, allow more.
                list = list
                    .set_error_style(DataValidationErrorStyle::Information)
                    .set_error_message(
                        "可填写多项，以“、”分隔 (several values: separate them with 、)",
                    )?;
            } else {
                list = list.set_error_message(format!(
                    "请从列表中选择 (choose from the list): {}",
                    labels.join("、")
                ))?;
            }
            ws.add_data_validation(1, col, last, col, &list)?;
        }
        self.book.save_to_writer(out)?;
        Ok(())
    }

    /// The workbook's bytes (tests, small files).
    pub fn into_bytes(self) -> Result<Vec<u8>, XlsxLedgerError> {
        let mut out = std::io::Cursor::new(Vec::new());
        self.finish(&mut out)?;
        Ok(out.into_inner())
    }
}

/// A date as Excel holds it; `None` outside Excel's years (1900–9999).
fn excel_date(d: NaiveDate) -> Option<ExcelDateTime> {
    let y = u16::try_from(d.year()).ok()?;
    ExcelDateTime::from_ymd(y, d.month() as u8, d.day() as u8).ok()
}

/// Codes as their labels: one, or a `;`-joined list joined again with `、`.
fn labels(value: &str, vocab: &[(String, String)], list: bool) -> String {
    let label = |code: &str| {
        vocab
            .iter()
            .find(|(c, _)| c == code)
            .map_or_else(|| code.to_owned(), |(_, l)| l.clone())
    };
    if list {
        value.split(';').map(label).collect::<Vec<_>>().join("、")
    } else {
        label(value)
    }
}

/// The empty ledger: header, formats and drop-down lists, no rows.
pub fn template(palette: &RiskPalette) -> Result<Vec<u8>, XlsxLedgerError> {
    LedgerWorkbook::new(palette)?.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::{Data, Reader, Xlsx};

    #[test]
    fn the_template_has_the_header_frozen_and_lists_for_vocabularies() {
        let bytes = template(&RiskPalette::default()).unwrap();
        let mut book = Xlsx::new(std::io::Cursor::new(bytes.clone())).unwrap();
        assert_eq!(book.sheet_names(), vec![SHEET.to_owned()]);
        let range = book.worksheet_range(SHEET).unwrap();
        assert_eq!(range.height(), 1);
        assert_eq!(range.get((0, 0)), Some(&Data::String("身份证号".into())));
        // The sheet's XML: frozen pane, list validations, text-formatted columns, no formula.
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut xml = String::new();
        std::io::Read::read_to_string(
            &mut zip.by_name("xl/worksheets/sheet1.xml").unwrap(),
            &mut xml,
        )
        .unwrap();
        assert!(xml.contains(r#"state="frozen""#), "{xml}");
        assert!(xml.contains(r#"type="list""#));
        assert!(xml.contains("流动,留守,困境,孤儿,事实无人抚养"));
        assert!(xml.contains("红,橙,黄,绿") || xml.contains("红"), "{xml}");
        assert!(!xml.contains("<f>"));
        // Every vocabulary's list fits Excel's 255 characters.
        for c in COLUMNS {
            if let Some(v) = vocabulary(c, &RiskPalette::default()) {
                let joined: Vec<&str> = v.iter().map(|(_, l)| l.as_str()).collect();
                assert!(joined.join(",").chars().count() <= 255, "{}", c.name);
            }
        }
    }

    #[test]
    fn labels_replace_codes_in_lists_and_single_values() {
        let v = vocabulary(
            COLUMNS.iter().find(|c| c.name == "categories").unwrap(),
            &RiskPalette::default(),
        )
        .unwrap();
        assert_eq!(labels("flowing;left_behind", &v, true), "流动、留守");
        assert_eq!(labels("unknown_code", &v, false), "unknown_code");
    }
}
