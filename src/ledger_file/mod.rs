//! The bureaus' ledger file: the spreadsheet they keep today, as CSV ([`csv`]: header names in
//! Chinese or English, UTF-8 or GB18030, one child per row, read into the API's field objects and
//! written back on export) or as a workbook ([`sheet`] reads `.xlsx`, `.xls` and `.ods` with the
//! same columns and rules; [`xlsx`] writes the `.xlsx` export and the empty template with
//! drop-down lists); the header row both share ([`header`]: aliases, ignored columns); a
//! generator of sample ledgers with valid-checksum ID numbers ([`sample`], for the `sample`
//! command, the benchmarks and the tests); the visit ledger ([`visits`], one visit per row,
//! written by `export --visits`); and how a field's value is read from one line of text
//! ([`typed`], for `child update --set`); a ledger file as it arrives, CSV or workbook, read and
//! its rows validated ([`input`], for `import` and the upload page).
//!
//! Imports only [`crate::domain`]; the command line and the benchmarks call it.

pub mod csv;
pub mod header;
pub mod input;
pub mod sample;
pub mod sheet;
pub mod typed;
pub mod visits;
pub mod xlsx;

#[cfg(test)]
mod fuzz;
