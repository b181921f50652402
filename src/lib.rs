//! hukou-sync: the server each civil-affairs bureau runs to exchange children's files.
//!
//! # Crate map
//!
//! Layers from top to bottom; a module imports only from modules below it (`ARCHITECTURE.md`
//! §10, whose section numbers the `DESIGN §n` references in module docs follow). The
//! architecture test (`tests/api/architecture.rs`) holds the same table and fails on any import
//! that points up or sideways.
//!
//! | layer | module | owns |
//! |---|---|---|
//! | commands | [`cli`] | the `hukou-sync` commands: parse arguments, call below, print (`cli::bench::*`: one file per benchmark) |
//! | dev network | [`devnet`] | a development network on 127.0.0.1: dev PKI, signed directory, running nodes — for the demo, the benchmarks and the tests |
//! | start | [`startup`] | `Application::build(settings)`: opens the store, binds the admin and peer listeners, wires state, calls `jobs::start` once |
//! | surfaces | [`api`] | the admin API (`/api/v1`) and the peer API (`api::peer`, everything under `/peer/v1`, mutual TLS); `api::error` is **the one place an error becomes HTTP**; `api::metrics` the one place metrics are registered and encoded (`prometheus-client`) and requests on both listeners counted |
//! | | [`ui`] | the web pages (server-rendered, no JavaScript needed); errors through `api::error` |
//! | | [`jobs`] | **every background loop starts in `jobs::start`** (tree heads, version integrity, witnessing, sender supervisor and per-peer senders, scheduled reconciliation, directory watch and fetch from peers, age-out) and stops in `Jobs::shutdown` |
//! | settings | [`config`] | settings from TOML and environment, validated once; builds the services' own settings types |
//! | services | [`accounts`] | users (argon2id), sessions, bearer tokens, roles and their permissions |
//! | | [`conflicts`] | the review queue and resolution versions |
//! | | [`eligibility`] | eligibility cases: the service (load → decide → store; an approval checked against the benefits held), the working-day calendar and the holidays the law fixes for years without a published one (`eligibility::statutory`); benefits over time (`eligibility::benefits`: the age-out run, the review due list); evidence files (`eligibility::evidence`: upload, sealed at rest, pulled by the decider and verified, downloads) |
//! | | [`visits`] | visits (走访): record, amend, read and list a child's visits; the due list by the visit schedule; reports and referrals (`visits::reports`); the file following them at the residence bureau |
//! | | [`stats`] | statistics for superiors: files by region, township, category, risk and worker, visits due and per month, cases by state and timeliness, stale files — from grouped counts, files served here only |
//! | | [`reconcile`] | Merkle anti-entropy with peers: summaries, protocol, repairs, reports (`reconcile::history` reads stored runs), stale files |
//! | exchange | [`sync`] | versions, heads, merge, outbox, sender, receipts; **`sync::store` is the one place a version is stored**; **`sync::receive` is where a peer's batch is received** (verify, ingest, receipt, witness); `sync::witness`: peers cosigning each other's checkpoints (both sides of tlog-witness); `sync::integrity`: re-hashing stored versions |
//! | | [`audit`] | the tamper-evident log: events, RFC 9162 Merkle tree, signed heads, C2SP checkpoints and cosignatures, what a witness decides and its evidence, the start-up self check, proofs, offline verification |
//! | | [`ledger_file`] | the ledger files people exchange: CSV and workbook (.xlsx/.xls/.ods) readers, CSV and .xlsx writers, the sample generator, values typed on one line |
//! | foundations | [`storage`] | the only module that names diesel: SQLite/PostgreSQL, migrations, typed repositories, `StorageError` |
//! | | [`directory`] | the signed directory: load, verify, route a region to its node, judge one a peer offers, assemble one |
//! | | [`tls`] | every rustls configuration, certificate generation for the dev PKI, peer certificate → node id |
//! | | [`crypto`] | RFC 8785 canonical JSON, SHA-256 and SM3 (the network's content hash, `crypto::hash::HashAlg`), Ed25519 and SM2 keys and signatures, the HLC, secret files, AES-256-GCM at rest (`crypto::at_rest`) |
//! | | [`domain`] | ID numbers, regions, node ids, digests, months, the child record and field authority, the risk scale and palettes (`domain::risk`), the rules between benefits (`domain::benefit`), the case state machine, evidence file types, report data. Pure; imports nothing from the crate |
//!
//! # The path of a version
//!
//! An edit: `api::children` parses the body → `sync::ledger` validates it against `domain`,
//! checks field authority, builds a `sync::Version` (parents = current heads), hashes its JCS
//! bytes (`crypto`) and signs it → in one `storage::transaction`, `sync::store` writes the
//! version, its parent edges, the new heads, the current view (computed once), the outbox rows
//! for the other parties and the `audit` event — or none of them. Imports, resolutions
//! (`conflicts`), case transitions (`eligibility`) and peers' versions take the same path.
//!
//! To a peer: `jobs::sender` runs `sync::sender` per peer, which posts outbox batches over mutual
//! TLS; the peer's `api::peer::versions` handler authenticates the certificate, parses the body
//! and calls `sync::receive`, which verifies every version, ingests it through `sync::store`,
//! signs and stores the receipt in the same transaction, witnesses the sender's tree head, and
//! lets eligibility react to received cases. Writing new heads marks the document dirty for
//! [`reconcile`], whose runs compare per-peer summaries and repair through the same push path.

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
pub mod jobs;
pub mod ledger_file;
pub mod reconcile;
pub mod startup;
pub mod stats;
pub mod storage;
pub mod sync;
pub mod tls;
pub mod ui;
pub mod visits;
