//! The tamper-evident audit trail (DESIGN §8): one event per action, appended in the action's
//! own transaction; an RFC 9162 Merkle tree over the events' canonical bytes; signed tree heads;
//! inclusion and consistency proofs; and offline verification of the database or of an export.
//!
//! An event's leaf commits to its details by digest, so the details column can be archived apart
//! without breaking the tree, and a changed byte anywhere in an event changes its leaf.

pub mod event;
pub mod log;
pub mod merkle;
pub mod verify;

pub use event::{Actor, ActorKind, Event, Outcome, Via};
pub use log::{append, append_many, AuditError, SignedTreeHead};
