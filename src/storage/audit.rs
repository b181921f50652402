//! Repository of the audit log: events, stored subtree hashes and signed tree heads. Appends are
//! serialised so sequence numbers are gapless: SQLite transactions here begin IMMEDIATE (one writer
//! at a time); on PostgreSQL the appender takes a transaction-scoped advisory lock. Tree heads
//! and subtree hashes come out typed ([`StoredTreeHead`], [`Digest`]); a stored value that does
//! not parse is [`StorageError::Corrupt`].

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::{audit_events, audit_nodes, audit_self_check, node_meta, tree_heads};
use super::{DbConn, StorageError};
use crate::crypto::hash::HashAlg;
use crate::crypto::keys::{PublicKey, Signature};
use crate::domain::digest::Digest;

/// Class of the PostgreSQL advisory lock that serialises audit appends ("hu" in ASCII): the lock
/// is `(class, hash of the schema)` ([`super::schema_lock`]), one per node's schema.
const AUDIT_LOCK_CLASS: i32 = 0x6875;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events)]
#[diesel(treat_none_as_default_value = false)]
pub struct AuditEventRow {
    pub seq: i64,
    pub hlc: i64,
    pub at: NaiveDateTime,
    pub actor_kind: String,
    pub actor_id: String,
    pub via: String,
    pub action: String,
    pub object_kind: Option<String>,
    pub object_id: Option<String>,
    pub purpose: Option<String>,
    pub outcome: String,
    pub details: String,
    pub details_digest: String,
    pub leaf_hash: String,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = tree_heads)]
#[diesel(treat_none_as_default_value = false)]
pub struct TreeHeadRow {
    pub size: i64,
    pub root: String,
    pub signed_at: NaiveDateTime,
    pub public_key: String,
    pub signature: String,
    /// The same head as a C2SP checkpoint (signed note); `None` for heads signed before
    /// checkpoints existed.
    pub checkpoint: Option<String>,
}

/// A signed tree head as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTreeHead {
    pub size: u64,
    pub root: Digest,
    pub signed_at: DateTime<Utc>,
    pub public_key: PublicKey,
    pub signature: Signature,
    pub checkpoint: Option<String>,
}

impl TryFrom<TreeHeadRow> for StoredTreeHead {
    type Error = StorageError;

    fn try_from(r: TreeHeadRow) -> Result<Self, StorageError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            StorageError::corrupt("tree_heads", format!("tree head {}: {what}: {e}", r.size))
        };
        Ok(StoredTreeHead {
            size: u64::try_from(r.size).map_err(|e| bad("size", &e))?,
            root: r.root.parse().map_err(|e| bad("root", &e))?,
            signed_at: r.signed_at.and_utc(),
            public_key: r.public_key.parse().map_err(|e| bad("key", &e))?,
            signature: r.signature.parse().map_err(|e| bad("signature", &e))?,
            checkpoint: r.checkpoint,
        })
    }
}

/// Filters of the event list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub actor_id: Option<String>,
    pub action: Option<String>,
    pub object_kind: Option<String>,
    pub object_id: Option<String>,
    pub since: Option<NaiveDateTime>,
    pub until: Option<NaiveDateTime>,
    /// Only events with a larger sequence number (keyset paging).
    pub after_seq: Option<i64>,
    pub limit: i64,
}

/// Locks the log for appending (inside the caller's transaction) and returns its size.
/// `node_meta` name of the content hash the stored data was made with.
const CONTENT_HASH: &str = "content_hash";

/// The content hash this database's ids and audit tree were made with: the recorded one, or
/// SHA-256 when none is recorded (data stored before a directory could declare a hash, or
/// none yet).
pub fn content_hash(conn: &mut DbConn) -> Result<HashAlg, StorageError> {
    let stored: Option<String> = node_meta::table
        .find(CONTENT_HASH)
        .select(node_meta::value)
        .first(conn)
        .optional()?;
    parse_content_hash(stored)
}

fn parse_content_hash(stored: Option<String>) -> Result<HashAlg, StorageError> {
    match stored {
        None => Ok(HashAlg::Sha256),
        Some(text) => {
            text.parse().map_err(
                |e: crate::crypto::hash::UnknownHashAlg| StorageError::Corrupt {
                    table: "node_meta",
                    reason: e.to_string(),
                },
            )
        }
    }
}

/// Records `declared` as this database's content hash unless one is recorded already or data
/// exists (versions or audit events stored before a hash was recorded were made with SHA-256,
/// which is then recorded). Returns the recorded hash; the caller refuses to run when it is not
/// `declared`. Call inside a transaction.
pub fn bind_content_hash(conn: &mut DbConn, declared: HashAlg) -> Result<HashAlg, StorageError> {
    let recorded: Option<String> = node_meta::table
        .find(CONTENT_HASH)
        .select(node_meta::value)
        .first(conn)
        .optional()?;
    if recorded.is_some() {
        return content_hash(conn);
    }
    let versions: i64 = super::schema::versions::table.count().get_result(conn)?;
    let hash = if size(conn)? > 0 || versions > 0 {
        HashAlg::Sha256
    } else {
        declared
    };
    diesel::insert_into(node_meta::table)
        .values((
            node_meta::name.eq(CONTENT_HASH),
            node_meta::value.eq(hash.as_str()),
        ))
        .execute(conn)?;
    Ok(hash)
}

/// Locks the log for an append (see the module docs) and returns its size and its content hash,
/// read in one statement after the lock.
pub fn lock_for_append(conn: &mut DbConn) -> Result<(i64, HashAlg), StorageError> {
    lock(conn)?;
    read_size_and_hash(conn)
}

/// The log's size and its content hash, in one statement.
fn read_size_and_hash(conn: &mut DbConn) -> Result<(i64, HashAlg), StorageError> {
    let (max, hash): (Option<i64>, Option<String>) = diesel::select((
        audit_events::table
            .select(diesel::dsl::max(audit_events::seq))
            .single_value(),
        node_meta::table
            .find(CONTENT_HASH)
            .select(node_meta::value)
            .single_value(),
    ))
    .get_result(conn)?;
    Ok((max.map_or(0, |m| m + 1), parse_content_hash(hash)?))
}

/// Takes the append lock on PostgreSQL (SQLite transactions here already hold the one writer's).
/// The lock is held until the transaction ends; so that it is not held while the commit waits
/// for the disk, the same statement makes this transaction's commit asynchronous and the
/// durability the connection asked for is owed after the commit ([`super::transaction`] pays
/// it, outside the lock).
fn lock(conn: &mut DbConn) -> Result<(), StorageError> {
    if let DbConn::Postgres(pg) = conn {
        #[derive(diesel::QueryableByName)]
        struct Was {
            #[diesel(sql_type = diesel::sql_types::Text)]
            was: String,
        }
        let was: Was = AuditLock.get_result(pg)?;
        if was.was != "off" {
            super::note_flush_after_commit();
        }
    }
    Ok(())
}

/// The right edge of a log of `size` events: one complete subtree `(level, index)` per set bit of
/// `size`, largest first — the subtrees an append at `size` builds on (level 0 is an event's
/// leaf hash).
pub fn right_edge(size: i64) -> Vec<(i64, i64)> {
    let mut edge = Vec::new();
    let mut offset = 0i64;
    for level in (0..63u32).rev() {
        if size & (1i64 << level) != 0 {
            edge.push((i64::from(level), offset >> level));
            offset += 1i64 << level;
        }
    }
    edge
}

/// What an append starts from, read under the lock.
pub struct AppendStart {
    /// The log's size: the first new event's sequence number.
    pub size: i64,
    /// The network's content hash.
    pub alg: HashAlg,
    /// The stored hashes of [`right_edge`]`(size)`; a subtree missing from the store is absent.
    pub edge: std::collections::HashMap<(i64, i64), Digest>,
}

/// Locks the log for an append (see the module docs) and reads what the append builds on: its
/// size, its content hash and the hashes of its right edge. On PostgreSQL that is one statement,
/// the lock included (the edge computed from the size in SQL: each statement is a round trip to
/// a server, the lock is held from here to the commit, and an append is in every writing
/// transaction); on SQLite, two in-process queries.
pub fn begin_append(conn: &mut DbConn) -> Result<AppendStart, StorageError> {
    match conn {
        DbConn::Postgres(pg) => {
            #[derive(diesel::QueryableByName)]
            struct EdgeRow {
                #[diesel(sql_type = diesel::sql_types::Text)]
                was: String,
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                size: i64,
                #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
                content_hash: Option<String>,
                #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
                level: Option<i64>,
                #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
                idx: Option<i64>,
                #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
                hash: Option<String>,
            }
            // One round trip under the lock: the function takes it, then reads with a snapshot
            // of its own (migration `audit_append_start`).
            let rows: Vec<EdgeRow> = AppendStartCall.load(pg)?;
            let first = rows
                .first()
                .ok_or_else(|| StorageError::corrupt("audit_events", "no size read"))?;
            if first.was != "off" {
                super::note_flush_after_commit();
            }
            let (size, alg) = (first.size, parse_content_hash(first.content_hash.clone())?);
            let mut edge = std::collections::HashMap::with_capacity(rows.len());
            for row in rows {
                if let (Some(level), Some(idx), Some(h)) = (row.level, row.idx, row.hash) {
                    let d = h.parse().map_err(|e| {
                        StorageError::corrupt(
                            "audit_nodes",
                            format!("subtree ({level}, {idx}): {e}"),
                        )
                    })?;
                    edge.insert((level, idx), d);
                }
            }
            Ok(AppendStart { size, alg, edge })
        }
        DbConn::Sqlite(_) => {
            lock(conn)?;
            let (size, alg) = read_size_and_hash(conn)?;
            let edge = subtree_hashes(conn, &right_edge(size))?;
            Ok(AppendStart { size, alg, edge })
        }
    }
}

/// [`begin_append`] on PostgreSQL: the function `audit_append_start` (its migration says what it
/// does) with this log's lock class — the lock, then the size, the content hash, and the hash of
/// each subtree of the right edge (computed from the size as [`right_edge`] does; one row each,
/// or one row of nulls for an empty log).
struct AppendStartCall;

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for AppendStartCall {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        out.push_sql(&format!(
            "SELECT was, size, content_hash, level, idx, hash \
             FROM audit_append_start({AUDIT_LOCK_CLASS})"
        ));
        Ok(())
    }
}
pg_cached_statement!(static AppendStartCall);

/// Stores appended events and the subtrees they complete: on PostgreSQL in one statement (the
/// rows as arrays), on SQLite in multi-row inserts.
pub fn insert_appended(
    conn: &mut DbConn,
    rows: &[AuditEventRow],
    nodes: &[(i64, i64, String)],
) -> Result<(), StorageError> {
    let DbConn::Postgres(pg) = conn else {
        insert_events(conn, rows)?;
        return insert_nodes(conn, nodes);
    };
    InsertAppended {
        seq: rows.iter().map(|r| r.seq).collect(),
        hlc: rows.iter().map(|r| r.hlc).collect(),
        at: rows.iter().map(|r| r.at).collect(),
        actor_kind: rows.iter().map(|r| r.actor_kind.as_str()).collect(),
        actor_id: rows.iter().map(|r| r.actor_id.as_str()).collect(),
        via: rows.iter().map(|r| r.via.as_str()).collect(),
        action: rows.iter().map(|r| r.action.as_str()).collect(),
        object_kind: rows.iter().map(|r| r.object_kind.as_deref()).collect(),
        object_id: rows.iter().map(|r| r.object_id.as_deref()).collect(),
        purpose: rows.iter().map(|r| r.purpose.as_deref()).collect(),
        outcome: rows.iter().map(|r| r.outcome.as_str()).collect(),
        details: rows.iter().map(|r| r.details.as_str()).collect(),
        details_digest: rows.iter().map(|r| r.details_digest.as_str()).collect(),
        leaf_hash: rows.iter().map(|r| r.leaf_hash.as_str()).collect(),
        level: nodes.iter().map(|n| n.0).collect(),
        idx: nodes.iter().map(|n| n.1).collect(),
        hash: nodes.iter().map(|n| n.2.as_str()).collect(),
    }
    .execute(pg)?;
    Ok(())
}

/// [`insert_appended`] on PostgreSQL: the events' columns and the nodes' as arrays.
struct InsertAppended<'a> {
    seq: Vec<i64>,
    hlc: Vec<i64>,
    at: Vec<NaiveDateTime>,
    actor_kind: Vec<&'a str>,
    actor_id: Vec<&'a str>,
    via: Vec<&'a str>,
    action: Vec<&'a str>,
    object_kind: Vec<Option<&'a str>>,
    object_id: Vec<Option<&'a str>>,
    purpose: Vec<Option<&'a str>>,
    outcome: Vec<&'a str>,
    details: Vec<&'a str>,
    details_digest: Vec<&'a str>,
    leaf_hash: Vec<&'a str>,
    level: Vec<i64>,
    idx: Vec<i64>,
    hash: Vec<&'a str>,
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for InsertAppended<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp};
        out.push_sql(
            "WITH e AS (INSERT INTO audit_events (seq, hlc, at, actor_kind, actor_id, via, action, \
                        object_kind, object_id, purpose, outcome, details, details_digest, \
                        leaf_hash) SELECT * FROM unnest(",
        );
        out.push_bind_param::<Array<BigInt>, _>(&self.seq)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.hlc)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.at)?;
        for text in [&self.actor_kind, &self.actor_id, &self.via, &self.action] {
            out.push_sql(", ");
            out.push_bind_param::<Array<Text>, _>(text)?;
        }
        for nullable in [&self.object_kind, &self.object_id, &self.purpose] {
            out.push_sql(", ");
            out.push_bind_param::<Array<Nullable<Text>>, _>(nullable)?;
        }
        for text in [
            &self.outcome,
            &self.details,
            &self.details_digest,
            &self.leaf_hash,
        ] {
            out.push_sql(", ");
            out.push_bind_param::<Array<Text>, _>(text)?;
        }
        out.push_sql(")) INSERT INTO audit_nodes (level, idx, hash) SELECT * FROM unnest(");
        push_binds!(out;
            Array<BigInt> => &self.level,
            Array<BigInt> => &self.idx,
            Array<Text> => &self.hash,
        );
        out.push_sql(")");
        Ok(())
    }
}
pg_cached_statement!(InsertAppended);

/// [`lock`]'s statement.
struct AuditLock;

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for AuditLock {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        out.push_sql(&format!(
            "SELECT current_setting('synchronous_commit') AS was, \
             set_config('synchronous_commit', 'off', true) AS now, \
             {}::text AS locked",
            super::schema_lock(AUDIT_LOCK_CLASS)
        ));
        Ok(())
    }
}
pg_cached_statement!(static AuditLock);

/// Number of events (the next sequence number, as sequences are gapless from 0).
pub fn size(conn: &mut DbConn) -> Result<i64, StorageError> {
    let max: Option<i64> = audit_events::table
        .select(diesel::dsl::max(audit_events::seq))
        .first(conn)?;
    Ok(max.map_or(0, |m| m + 1))
}

/// The `child.import` events from sequence `since` on naming these children: `(child, details)`
/// (a streamed import finds which rows of its own file stored an ID number it meets again).
pub fn imports_since(
    conn: &mut DbConn,
    since: i64,
    ids: &[String],
) -> Result<Vec<(String, String)>, StorageError> {
    let mut out = Vec::new();
    for chunk in ids.chunks(super::LIST_CHUNK) {
        let rows: Vec<(Option<String>, String)> = audit_events::table
            .filter(audit_events::seq.ge(since))
            .filter(audit_events::action.eq("child.import"))
            .filter(audit_events::object_kind.eq("child"))
            .filter(audit_events::object_id.eq_any(chunk))
            .select((audit_events::object_id, audit_events::details))
            .load(conn)?;
        out.extend(rows.into_iter().filter_map(|(id, d)| id.map(|id| (id, d))));
    }
    Ok(out)
}

pub fn insert_events(conn: &mut DbConn, rows: &[AuditEventRow]) -> Result<(), StorageError> {
    insert_many!(conn, audit_events::table, rows);
    Ok(())
}

pub fn insert_nodes(conn: &mut DbConn, nodes: &[(i64, i64, String)]) -> Result<(), StorageError> {
    insert_many!(conn, audit_nodes::table, nodes, |n| (
        audit_nodes::level.eq(n.0),
        audit_nodes::idx.eq(n.1),
        audit_nodes::hash.eq(n.2.clone()),
    ));
    Ok(())
}

/// The stored hashes of several complete subtrees, in one query per table (level 0 is a leaf
/// hash, read from the events); a subtree not stored is absent from the answer.
pub fn subtree_hashes(
    conn: &mut DbConn,
    wanted: &[(i64, i64)],
) -> Result<std::collections::HashMap<(i64, i64), Digest>, StorageError> {
    let mut out = std::collections::HashMap::with_capacity(wanted.len());
    let leaves: Vec<i64> = wanted
        .iter()
        .filter(|(l, _)| *l == 0)
        .map(|(_, i)| *i)
        .collect();
    let mut found: Vec<(i64, i64, String)> = Vec::with_capacity(wanted.len());
    if !leaves.is_empty() {
        let rows: Vec<(i64, String)> = audit_events::table
            .filter(audit_events::seq.eq_any(&leaves))
            .select((audit_events::seq, audit_events::leaf_hash))
            .load(conn)?;
        found.extend(rows.into_iter().map(|(i, h)| (0, i, h)));
    }
    let nodes: Vec<&(i64, i64)> = wanted.iter().filter(|(l, _)| *l > 0).collect();
    if let Some(((l0, i0), rest)) = nodes.split_first() {
        let mut q = audit_nodes::table
            .select((audit_nodes::level, audit_nodes::idx, audit_nodes::hash))
            .filter(audit_nodes::level.eq(*l0).and(audit_nodes::idx.eq(*i0)))
            .into_boxed();
        for (l, i) in rest {
            q = q.or_filter(audit_nodes::level.eq(*l).and(audit_nodes::idx.eq(*i)));
        }
        found.extend(q.load::<(i64, i64, String)>(conn)?);
    }
    for (level, idx, h) in found {
        let d = h.parse().map_err(|e| {
            let table = if level == 0 {
                "audit_events"
            } else {
                "audit_nodes"
            };
            StorageError::corrupt(table, format!("subtree ({level}, {idx}): {e}"))
        })?;
        out.insert((level, idx), d);
    }
    Ok(out)
}

/// The stored hash of a complete subtree; level 0 is a leaf hash.
pub fn subtree_hash(
    conn: &mut DbConn,
    level: i64,
    idx: i64,
) -> Result<Option<Digest>, StorageError> {
    let hash: Option<String> = if level == 0 {
        audit_events::table
            .find(idx)
            .select(audit_events::leaf_hash)
            .first(conn)
            .optional()?
    } else {
        audit_nodes::table
            .find((level, idx))
            .select(audit_nodes::hash)
            .first(conn)
            .optional()?
    };
    hash.map(|h| {
        h.parse().map_err(|e| {
            let table = if level == 0 {
                "audit_events"
            } else {
                "audit_nodes"
            };
            StorageError::corrupt(table, format!("subtree ({level}, {idx}): {e}"))
        })
    })
    .transpose()
}

pub fn get_event(conn: &mut DbConn, seq: i64) -> Result<Option<AuditEventRow>, StorageError> {
    audit_events::table
        .find(seq)
        .select(AuditEventRow::as_select())
        .first(conn)
        .optional()
        .map_err(StorageError::from)
}

/// Events with `from <= seq < to`, in order.
pub fn events_range(
    conn: &mut DbConn,
    from: i64,
    to: i64,
) -> Result<Vec<AuditEventRow>, StorageError> {
    audit_events::table
        .filter(audit_events::seq.ge(from))
        .filter(audit_events::seq.lt(to))
        .order(audit_events::seq.asc())
        .select(AuditEventRow::as_select())
        .load(conn)
        .map_err(StorageError::from)
}

pub fn list_events(conn: &mut DbConn, f: &EventFilter) -> Result<Vec<AuditEventRow>, StorageError> {
    let mut q = audit_events::table
        .select(AuditEventRow::as_select())
        .into_boxed();
    if let Some(v) = &f.actor_id {
        q = q.filter(audit_events::actor_id.eq(v.clone()));
    }
    if let Some(v) = &f.action {
        q = q.filter(audit_events::action.eq(v.clone()));
    }
    if let Some(v) = &f.object_kind {
        q = q.filter(audit_events::object_kind.eq(v.clone()));
    }
    if let Some(v) = &f.object_id {
        q = q.filter(audit_events::object_id.eq(v.clone()));
    }
    if let Some(t) = f.since {
        q = q.filter(audit_events::at.ge(t));
    }
    if let Some(t) = f.until {
        q = q.filter(audit_events::at.lt(t));
    }
    if let Some(s) = f.after_seq {
        q = q.filter(audit_events::seq.gt(s));
    }
    q.order(audit_events::seq.asc())
        .limit(f.limit)
        .load(conn)
        .map_err(StorageError::from)
}

pub fn insert_tree_head(conn: &mut DbConn, row: &TreeHeadRow) -> Result<(), StorageError> {
    per_backend!(conn, |c| diesel::insert_into(tree_heads::table)
        .values(row)
        .execute(c))?;
    Ok(())
}

/// Adds the checkpoint of a head signed before checkpoints existed (only where it has none).
pub fn set_checkpoint(conn: &mut DbConn, size: i64, checkpoint: &str) -> Result<(), StorageError> {
    diesel::update(
        tree_heads::table
            .filter(tree_heads::size.eq(size))
            .filter(tree_heads::checkpoint.is_null()),
    )
    .set(tree_heads::checkpoint.eq(checkpoint))
    .execute(conn)?;
    Ok(())
}

pub fn latest_tree_head(conn: &mut DbConn) -> Result<Option<StoredTreeHead>, StorageError> {
    let row: Option<TreeHeadRow> = tree_heads::table
        .order(tree_heads::size.desc())
        .select(TreeHeadRow::as_select())
        .first(conn)
        .optional()?;
    row.map(StoredTreeHead::try_from).transpose()
}

pub fn tree_head_at(conn: &mut DbConn, size: i64) -> Result<Option<StoredTreeHead>, StorageError> {
    let row: Option<TreeHeadRow> = tree_heads::table
        .find(size)
        .select(TreeHeadRow::as_select())
        .first(conn)
        .optional()?;
    row.map(StoredTreeHead::try_from).transpose()
}

pub fn all_tree_heads(conn: &mut DbConn) -> Result<Vec<StoredTreeHead>, StorageError> {
    tree_heads::table
        .order(tree_heads::size.asc())
        .select(TreeHeadRow::as_select())
        .load::<TreeHeadRow>(conn)?
        .into_iter()
        .map(StoredTreeHead::try_from)
        .collect()
}

/// Where the start-up self check resumes: `(size, peaks)`, or `None` before the first check.
pub fn self_check_mark(conn: &mut DbConn) -> Result<Option<(i64, String)>, StorageError> {
    audit_self_check::table
        .find("log")
        .select((audit_self_check::size, audit_self_check::peaks))
        .first(conn)
        .optional()
        .map_err(StorageError::from)
}

pub fn set_self_check_mark(
    conn: &mut DbConn,
    size: i64,
    peaks: &str,
    at: NaiveDateTime,
) -> Result<(), StorageError> {
    per_backend!(conn, |c| diesel::insert_into(audit_self_check::table)
        .values((
            audit_self_check::name.eq("log"),
            audit_self_check::size.eq(size),
            audit_self_check::peaks.eq(peaks),
            audit_self_check::checked_at.eq(at),
        ))
        .on_conflict(audit_self_check::name)
        .do_update()
        .set((
            audit_self_check::size.eq(size),
            audit_self_check::peaks.eq(peaks),
            audit_self_check::checked_at.eq(at),
        ))
        .execute(c))?;
    Ok(())
}

/// Signed heads of a size in `(from, to]`, smallest first.
pub fn tree_heads_between(
    conn: &mut DbConn,
    from: i64,
    to: i64,
) -> Result<Vec<StoredTreeHead>, StorageError> {
    tree_heads::table
        .filter(tree_heads::size.gt(from))
        .filter(tree_heads::size.le(to))
        .order(tree_heads::size.asc())
        .select(TreeHeadRow::as_select())
        .load::<TreeHeadRow>(conn)?
        .into_iter()
        .map(StoredTreeHead::try_from)
        .collect()
}

/// Removes signed heads of sizes above `size` (after an accepted restore: they describe events
/// that no longer exist; the audit event of the acceptance lists them).
pub fn delete_tree_heads_above(conn: &mut DbConn, size: i64) -> Result<usize, StorageError> {
    diesel::delete(tree_heads::table.filter(tree_heads::size.gt(size)))
        .execute(conn)
        .map_err(StorageError::from)
}
