//! Fuzz targets of the ledger readers: the CSV reader (any bytes, decoded in every encoding mode,
//! split into rows and validated, never panic; each row yields one result and the results stay
//! in order) and the workbook reader (the same of any bytes read as `.xlsx`, `.xls` or `.ods`).

use crate::crypto::fuzz::check;
use crate::domain::{RecordRules, RiskPalette};
use crate::ledger_file::csv::{decode, Encoding, LedgerReader};

#[test]
fn ledger_csv_reader_takes_any_bytes() {
    let mut sample = Vec::new();
    crate::ledger_file::sample::write_ledger(&mut sample, 3, 7, "51", "41").unwrap();
    let palette = RiskPalette::default();
    let rules = RecordRules {
        today: chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
        palette: &palette,
    };
    check(
        "ledger_csv",
        400,
        &[&sample, b"id_number,name,hukou_region,residence_region\n"],
        |bytes| {
            for encoding in [Encoding::Auto, Encoding::Utf8, Encoding::Gb18030] {
                let Ok(text) = decode(bytes, encoding) else {
                    continue;
                };
                // GB18030 decodes a byte to at most one character of at most 4 UTF-8 bytes.
                assert!(text.len() <= 4 * bytes.len());
                let lines = text.bytes().filter(|b| *b == b'\n' || *b == b'\r').count() + 1;
                let Ok(reader) = LedgerReader::new(text) else {
                    continue;
                };
                let rows = reader.validate_all(&rules);
                assert!(
                    rows.len() <= lines,
                    "{} rows from {lines} lines",
                    rows.len()
                );
                assert!(
                    rows.windows(2).all(|w| w[0].0 < w[1].0),
                    "rows out of order"
                );
            }
        },
    );
}

/// Fuzz target of the workbook reader: any bytes — fresh, and edits of a real `.xlsx` ledger
/// (the template, and a sheet with a title row, a header and rows) — are read without a panic
/// (`calamine`'s own faults included: they are the file's error), and a sheet that reads gives
/// one result per data row, in sheet order, below its header.
#[test]
fn workbook_reader_takes_any_bytes() {
    use crate::ledger_file::sheet::read_bytes;
    let palette = RiskPalette::default();
    let rules = RecordRules {
        today: chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
        palette: &palette,
    };
    let template = crate::ledger_file::xlsx::template(&palette).unwrap();
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "台账").unwrap();
    for (c, h) in [
        "序号",
        "身份证号",
        "姓名",
        "户籍地",
        "居住地",
        "最近走访日期",
    ]
    .iter()
    .enumerate()
    {
        ws.write_string(1, c as u16, *h).unwrap();
    }
    for r in 2..6u32 {
        ws.write_number(r, 0, f64::from(r)).unwrap();
        ws.write_string(r, 1, format!("51010420150303{r:03}1"))
            .unwrap();
        ws.write_string(r, 2, "王小明").unwrap();
        ws.write_number(r, 3, 510104).unwrap();
        ws.write_string(r, 4, "410105").unwrap();
        ws.write_number(r, 5, 46000.0).unwrap();
    }
    let small = wb.save_to_buffer().unwrap();
    assert!(
        small.len() <= crate::crypto::fuzz::MAX_INPUT,
        "{}",
        small.len()
    );
    // The seeds read: the mutations start from real ledgers.
    assert_eq!(read_bytes(small.clone()).unwrap().len(), 4);
    assert!(read_bytes(template.clone()).unwrap().is_empty());
    check("workbook", 300, &[&template, &small], |bytes| {
        let Ok(ledger) = read_bytes(bytes.to_vec()) else {
            return;
        };
        let (_, last_header) = ledger.header_rows();
        let rows = ledger.validate_all(&rules);
        assert_eq!(rows.len(), ledger.len());
        assert!(
            rows.windows(2).all(|w| w[0].0 < w[1].0),
            "rows out of order"
        );
        assert!(rows.iter().all(|(row, _)| *row > last_header as usize));
    });
}
