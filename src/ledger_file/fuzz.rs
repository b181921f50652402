//! Fuzz target of the ledger CSV reader: any bytes, decoded in every encoding mode, split into
//! rows and validated, never panic; each row yields one result and the results stay in order.

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
