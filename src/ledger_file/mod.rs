//! The bureaus' ledger file: the CSV spreadsheet they keep today ([`csv`]: header names in
//! Chinese or English, UTF-8 or GB18030, one child per row, read into the API's field objects and
//! written back on export) and a generator of sample ledgers with valid-checksum ID numbers
//! ([`sample`], for the `sample` command, the benchmarks and the tests); the visit ledger
//! ([`visits`], one visit per row, written by `export --visits`).
//!
//! Imports only [`crate::domain`]; the command line and the benchmarks call it.

pub mod csv;
pub mod sample;
pub mod visits;

#[cfg(test)]
mod fuzz;
