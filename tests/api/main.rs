//! The one integration test binary: real nodes on 127.0.0.1 with real databases (a temporary
//! SQLite file, or a fresh PostgreSQL schema when `TEST_DATABASE_URL` is set).
// The whole binary is tests: a panic on a failed step is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod architecture;
mod audit;
mod backup;
mod benefits;
mod browser;
mod cases;
mod children;
mod cli;
mod conflicts;
mod directory_fetch;
mod evidence;
mod excel;
mod exchange;
mod hardening_admin;
mod hardening_peer;
mod helpers;
mod jobs;
mod lookups;
mod metrics;
mod moves;
mod openapi;
mod pages;
mod partitions;
mod pg_restart;
mod processes;
mod reconcile;
mod records;
mod reports;
mod risk;
mod schema;
mod scopes;
mod stats;
mod storage;
mod suites;
mod topology;
mod ui;
mod visits;
mod walkthrough;
mod witness;
