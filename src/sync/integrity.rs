//! Version integrity (DESIGN §3, issue 20): a version's id is the SHA-256 of its canonical
//! bytes, so a body changed in the database no longer hashes to its id. [`check_page`] re-hashes
//! the next page of stored versions (in id order, resuming where the last page ended, starting
//! over after the last version), and for each one that does not match: records it, writes the
//! audit event `version.tampered`, logs at ERROR (the document masked) and marks the document
//! for reconciliation, whose summaries leave a document with a tampered version out — so a
//! reconciliation run never counts it equal, and shows it as differing. The loop is a job
//! (`jobs::integrity`).

use chrono::{DateTime, Utc};

use super::node::LocalNode;
use super::version::SignedVersion;
use super::LedgerError;
use crate::audit::{self, Actor, Event, Outcome};
use crate::domain::IdNumber;
use crate::storage::{self, records, DbConn};

/// What one page found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub checked: usize,
    /// Ids newly found tampered.
    pub tampered: Vec<String>,
    /// The page reached the last version: the next starts over.
    pub wrapped: bool,
}

/// Re-hashes up to `limit` versions after the saved position (see the module doc).
pub fn check_page(
    conn: &mut DbConn,
    node: &LocalNode,
    limit: i64,
    now: DateTime<Utc>,
) -> Result<Page, LedgerError> {
    let (after, passes) = records::version_check_position(conn)?;
    let versions = records::versions_after(conn, &after, limit)?;
    let mut page = Page {
        checked: versions.len(),
        wrapped: (versions.len() as i64) < limit,
        ..Page::default()
    };
    let mut bad = Vec::new();
    for v in &versions {
        let matches = SignedVersion::from_stored(v)
            .ok()
            .and_then(|s| s.version.id(node.hash).ok())
            .is_some_and(|id| id.0 == v.id);
        if !matches {
            bad.push(v);
        }
    }
    let last = versions.last().map(|v| v.id.to_string());
    storage::transaction(conn, |c| {
        for v in &bad {
            let id = v.id.to_string();
            let kind = v.kind.as_str();
            if records::insert_tampered(c, &id, kind, &v.doc_id, now.naive_utc())? {
                crate::storage::reconcile::mark_dirty(c, kind, &[v.doc_id.as_str()])?;
                audit::append(
                    c,
                    node.clock.now(),
                    now,
                    &Event::new(Actor::job("integrity"), "version.tampered", Outcome::Failed)
                        .object(kind, &v.doc_id)
                        .details(serde_json::json!({
                            "version": id,
                            "reason": "the stored version no longer hashes to its id: it was changed in the database",
                        })),
                )?;
                tracing::error!(
                    version = %id,
                    kind,
                    doc = %IdNumber::mask_within(&v.doc_id),
                    "a stored version was changed in the database: its content no longer hashes to its id; reconciliation treats the file as differing"
                );
                page.tampered.push(id);
            }
        }
        match (&last, page.wrapped) {
            (_, true) => records::set_version_check_position(c, "", passes + 1, now.naive_utc())?,
            (Some(l), false) => records::set_version_check_position(c, l, passes, now.naive_utc())?,
            (None, false) => {}
        }
        Ok::<_, LedgerError>(())
    })?;
    Ok(page)
}
