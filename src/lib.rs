//! hukou-sync: the server each civil-affairs bureau runs to exchange children's files.
//!
//! Crate map (imports point down only):
//!
//! - [`cli`] — the `hukou-sync` commands: serve, migrate, import/export, child, audit, keygen,
//!   reconcile, stale.
//! - [`devnet`] — a development/test network on one machine: the dev PKI on disk (CA, authority,
//!   signed directory, node keys and configurations) and booting its nodes.
//! - [`startup`] — `Application::build(settings)`: binds listeners, wires state, runs.
//! - [`api`] — the admin HTTP API: routes, DTOs, and the one place errors become problem+json.
//! - [`ui`] — the administrators' web pages (server-rendered, no JavaScript needed).
//! - [`accounts`] — users (argon2id), sessions, bearer tokens, roles and their permissions.
//! - [`conflicts`] — the review queue and resolution versions.
//! - [`sync`] — documents and versions: build, sign, store; heads; the local ledger of files.
//! - [`reconcile`] — Merkle anti-entropy with peers: incremental per-peer summaries, the
//!   root/nodes/buckets/versions/want protocol, repairs through the push path, reports, cron
//!   schedules, and the six-month stale-file check.
//! - [`ledger_file`] — the bureaus' CSV ledger (reader/writer) and the sample-ledger generator.
//! - [`audit`] — the tamper-evident log: events, RFC 9162 Merkle tree, signed heads, proofs.
//! - [`storage`] — the only module that names diesel: SQLite/PostgreSQL, migrations, repositories.
//! - [`crypto`] — RFC 8785 canonical JSON, SHA-256, Ed25519 keys and signatures, the HLC.
//! - [`tls`] — every rustls configuration, certificate generation, peer certificate → node id.
//! - [`config`] — settings from TOML and environment, validated once.
//! - [`domain`] — ID numbers, regions, node ids, the child record and field authority. Pure.
//!
//! The path of an edit: `api::children` parses the body → `sync::ledger` validates it against
//! `domain`, checks field authority, builds a `sync::Version` (parents = current heads), hashes
//! its JCS bytes (`crypto`) and signs it → in one `storage::transaction` the version, its parent
//! edges, the new heads, the current view and an `audit` event are written, or none of them.
//! Writing the new heads also marks the document dirty for [`reconcile`], whose next run folds it
//! into the per-peer summary, compares it with the peer's over `api::reconcile`'s peer routes and
//! repairs differences through `sync::sender`'s push path.

pub mod accounts;
pub mod api;
pub mod audit;
pub mod cli;
pub mod config;
pub mod conflicts;
pub mod crypto;
pub mod devnet;
pub mod directory;
pub mod domain;
pub mod eligibility;
pub mod ledger_file;
pub mod reconcile;
pub mod startup;
pub mod storage;
pub mod sync;
pub mod tls;
pub mod ui;
