//! The tamper-evident audit trail (DESIGN §8): one event per action, appended in the action's
//! own transaction; an RFC 9162 Merkle tree over the events' canonical bytes; signed tree heads;
//! inclusion and consistency proofs; and offline verification of the database or of an export.
//!
//! Checkpoints and cosignatures in the C2SP formats (`checkpoint`) and what a witness decides
//! about a peer's checkpoint (`witness`) are pure; storing them is `storage::witness`, the
//! exchange with peers `sync::witness`.
//!
//! An event's leaf commits to its details by digest, so the details column can be archived apart
//! without breaking the tree, and a changed byte anywhere in an event changes its leaf.

pub mod checkpoint;
pub mod event;
pub mod log;
pub mod merkle;
pub mod selfcheck;
pub mod verify;
pub mod witness;

pub use event::{Actor, ActorKind, Event, Outcome, Via};
pub use log::{append, append_many, AuditError, SignedTreeHead};
