//! Repositories of the exchange: the outbox, refused deliveries, receipts, peer status and the
//! tree heads peers sent. Receipts go in as [`ReceiptRow`]; receipts, peer status and queue depths
//! come out typed ([`StoredReceipt`], [`PeerStatus`], [`OutboxDepth`]), and a stored value that
//! does not parse is [`StorageError::Corrupt`].

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::records::{StoredVersion, VersionRow};
use super::schema::{outbox, outbox_rejected, peer_status, peer_tree_heads, receipts, versions};
use super::{DbConn, StorageError};
use crate::domain::digest::Digest;
use crate::domain::NodeId;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = receipts)]
pub struct ReceiptRow {
    pub id: String,
    pub issuer: String,
    pub recipient: String,
    pub issued_at: NaiveDateTime,
    pub accepted: i64,
    pub rejected: i64,
    pub body: String,
    pub stored_at: NaiveDateTime,
}

/// A stored receipt as read back. Its body stays the stored JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredReceipt {
    pub id: Digest,
    pub issuer: NodeId,
    pub recipient: NodeId,
    pub issued_at: DateTime<Utc>,
    /// How many versions it accepted, and refused.
    pub accepted: u64,
    pub rejected: u64,
    pub body: String,
    pub stored_at: DateTime<Utc>,
}

impl TryFrom<ReceiptRow> for StoredReceipt {
    type Error = StorageError;

    fn try_from(r: ReceiptRow) -> Result<Self, StorageError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            StorageError::corrupt("receipts", format!("receipt {}: {what}: {e}", r.id))
        };
        Ok(StoredReceipt {
            id: r.id.parse().map_err(|e| bad("id", &e))?,
            issuer: NodeId::parse(&r.issuer).map_err(|e| bad("issuer", &e))?,
            recipient: NodeId::parse(&r.recipient).map_err(|e| bad("recipient", &e))?,
            issued_at: r.issued_at.and_utc(),
            accepted: u64::try_from(r.accepted).map_err(|e| bad("accepted", &e))?,
            rejected: u64::try_from(r.rejected).map_err(|e| bad("rejected", &e))?,
            stored_at: r.stored_at.and_utc(),
            body: r.body,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = peer_status)]
struct PeerStatusRow {
    peer: String,
    last_success_at: Option<NaiveDateTime>,
    last_error: Option<String>,
    last_error_at: Option<NaiveDateTime>,
    failures: i64,
    delivered: i64,
}

/// How deliveries to a peer have gone.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerStatus {
    pub peer: NodeId,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// Failures since the last success.
    pub failures: u32,
    /// Versions delivered, ever.
    pub delivered: u64,
}

impl TryFrom<PeerStatusRow> for PeerStatus {
    type Error = StorageError;

    fn try_from(r: PeerStatusRow) -> Result<Self, StorageError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            StorageError::corrupt("peer_status", format!("peer {:?}: {what}: {e}", r.peer))
        };
        Ok(PeerStatus {
            peer: NodeId::parse(&r.peer).map_err(|e| bad("peer", &e))?,
            last_success_at: r.last_success_at.map(|t| t.and_utc()),
            last_error_at: r.last_error_at.map(|t| t.and_utc()),
            failures: u32::try_from(r.failures).map_err(|e| bad("failures", &e))?,
            delivered: u64::try_from(r.delivered).map_err(|e| bad("delivered", &e))?,
            last_error: r.last_error,
        })
    }
}

/// A peer's queue: how many versions wait, and since when.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxDepth {
    pub peer: NodeId,
    pub depth: u64,
    pub oldest: Option<DateTime<Utc>>,
}

/// Queues versions for a peer; already queued ones are left as they are.
pub fn enqueue(
    conn: &mut DbConn,
    peer: &str,
    items: &[(String, i64)],
    at: NaiveDateTime,
) -> Result<usize, StorageError> {
    let mut added = 0;
    for (id, hlc) in items {
        let exists: i64 = outbox::table
            .filter(outbox::peer.eq(peer))
            .filter(outbox::version_id.eq(id))
            .count()
            .get_result(conn)?;
        if exists == 0 {
            diesel::insert_into(outbox::table)
                .values((
                    outbox::peer.eq(peer),
                    outbox::version_id.eq(id),
                    outbox::hlc.eq(hlc),
                    outbox::enqueued_at.eq(at),
                ))
                .execute(conn)?;
            added += 1;
        }
    }
    Ok(added)
}

/// The next versions to send to a peer, parents before children (by queue stamp, then id), after
/// the queue position `after` when given, with the queue position of the last one: `limit` of
/// them, and then the rest of the last one's group of equal stamps, so a batch never ends inside
/// a group (a file's history queued for a bureau the child moved to is queued at the stamp of the
/// move, and travels in one batch with it).
pub fn next_batch(
    conn: &mut DbConn,
    peer: &str,
    limit: i64,
    after: Option<&(i64, String)>,
) -> Result<QueuedBatch, StorageError> {
    // No position: from the head (every stamp is above i64::MIN, or equal with a longer id).
    let (hlc, id) = after.map_or((i64::MIN, ""), |(h, id)| (*h, id.as_str()));
    let mut rows: Vec<(VersionRow, i64)> = outbox::table
        .inner_join(versions::table.on(versions::id.eq(outbox::version_id)))
        .filter(outbox::peer.eq(peer))
        .filter(
            outbox::hlc
                .gt(hlc)
                .or(outbox::hlc.eq(hlc).and(outbox::version_id.gt(id))),
        )
        .order((outbox::hlc.asc(), outbox::version_id.asc()))
        // One row past the batch tells whether the batch ends inside a group of equal stamps.
        .limit(limit.saturating_add(1))
        .select((VersionRow::as_select(), outbox::hlc))
        .load(conn)?;
    if rows.len() as i64 > limit {
        let past = rows.pop();
        let inside_group = matches!((rows.last(), &past), (Some((_, a)), Some((_, b))) if a == b);
        if let (true, Some(past)) = (inside_group, past) {
            let (past_id, group_hlc) = (past.0.id.clone(), past.1);
            rows.push(past);
            let rest: Vec<(VersionRow, i64)> = outbox::table
                .inner_join(versions::table.on(versions::id.eq(outbox::version_id)))
                .filter(outbox::peer.eq(peer))
                .filter(outbox::hlc.eq(group_hlc))
                .filter(outbox::version_id.gt(past_id))
                .order(outbox::version_id.asc())
                .select((VersionRow::as_select(), outbox::hlc))
                .load(conn)?;
            rows.extend(rest);
        }
    }
    let last = rows.last().map(|(r, queued)| (*queued, r.id.clone()));
    let stored = rows
        .into_iter()
        .map(|(r, _)| StoredVersion::try_from(r))
        .collect::<Result<_, _>>()?;
    Ok(QueuedBatch {
        versions: stored,
        last,
    })
}

/// A queue position: a version's queue stamp and its id (the queue's order).
pub type QueuePosition = (i64, String);

/// Versions read from a peer's queue, and the queue position of the last one.
#[derive(Debug)]
pub struct QueuedBatch {
    pub versions: Vec<StoredVersion>,
    pub last: Option<QueuePosition>,
}

/// How many of `ids` are still queued for `peer`.
pub fn still_queued(conn: &mut DbConn, peer: &str, ids: &[String]) -> Result<i64, StorageError> {
    let mut n = 0;
    for chunk in ids.chunks(500) {
        n += outbox::table
            .filter(outbox::peer.eq(peer))
            .filter(outbox::version_id.eq_any(chunk))
            .count()
            .get_result::<i64>(conn)?;
    }
    Ok(n)
}

pub fn dequeue(conn: &mut DbConn, peer: &str, ids: &[String]) -> Result<usize, StorageError> {
    let mut n = 0;
    for chunk in ids.chunks(500) {
        n += diesel::delete(
            outbox::table
                .filter(outbox::peer.eq(peer))
                .filter(outbox::version_id.eq_any(chunk)),
        )
        .execute(conn)?;
    }
    Ok(n)
}

pub fn record_rejection(
    conn: &mut DbConn,
    peer: &str,
    id: &str,
    code: &str,
    reason: &str,
    at: NaiveDateTime,
) -> Result<(), StorageError> {
    diesel::delete(
        outbox_rejected::table
            .filter(outbox_rejected::peer.eq(peer))
            .filter(outbox_rejected::version_id.eq(id)),
    )
    .execute(conn)?;
    diesel::insert_into(outbox_rejected::table)
        .values((
            outbox_rejected::peer.eq(peer),
            outbox_rejected::version_id.eq(id),
            outbox_rejected::code.eq(code),
            outbox_rejected::reason.eq(reason),
            outbox_rejected::rejected_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Forgets `peer`'s refusals of `ids` (they were accepted later: a refusal that was repaired is
/// no longer a refusal). Returns how many were forgotten.
pub fn clear_rejections(
    conn: &mut DbConn,
    peer: &str,
    ids: &[String],
) -> Result<usize, StorageError> {
    let mut n = 0;
    for chunk in ids.chunks(500) {
        n += diesel::delete(
            outbox_rejected::table
                .filter(outbox_rejected::peer.eq(peer))
                .filter(outbox_rejected::version_id.eq_any(chunk)),
        )
        .execute(conn)?;
    }
    Ok(n)
}

/// The code of `peer`'s refusal of version `id`, if it refused it.
pub fn rejection_code(
    conn: &mut DbConn,
    peer: &str,
    id: &str,
) -> Result<Option<String>, StorageError> {
    outbox_rejected::table
        .filter(outbox_rejected::peer.eq(peer))
        .filter(outbox_rejected::version_id.eq(id))
        .select(outbox_rejected::code)
        .first(conn)
        .optional()
        .map_err(StorageError::from)
}

/// The queue stamp of version `id` in `peer`'s queue, if it is queued there.
pub fn queued_stamp(conn: &mut DbConn, peer: &str, id: &str) -> Result<Option<i64>, StorageError> {
    outbox::table
        .filter(outbox::peer.eq(peer))
        .filter(outbox::version_id.eq(id))
        .select(outbox::hlc)
        .first(conn)
        .optional()
        .map_err(StorageError::from)
}

/// Queue depth and the oldest queued moment, per peer.
/// Versions queued for every peer, in all.
pub fn queued_total(conn: &mut DbConn) -> Result<i64, StorageError> {
    Ok(outbox::table.count().get_result(conn)?)
}

pub fn outbox_depths(conn: &mut DbConn) -> Result<Vec<OutboxDepth>, StorageError> {
    let rows: Vec<(String, i64, Option<NaiveDateTime>)> = outbox::table
        .group_by(outbox::peer)
        .select((
            outbox::peer,
            diesel::dsl::count_star(),
            diesel::dsl::min(outbox::enqueued_at),
        ))
        .load(conn)?;
    rows.into_iter()
        .map(|(peer, depth, oldest)| {
            let bad = |e: &dyn std::fmt::Display| {
                StorageError::corrupt("outbox", format!("peer {peer:?}: {e}"))
            };
            Ok(OutboxDepth {
                peer: NodeId::parse(&peer).map_err(|e| bad(&e))?,
                depth: u64::try_from(depth).map_err(|e| bad(&e))?,
                oldest: oldest.map(|t| t.and_utc()),
            })
        })
        .collect()
}

pub fn rejected_count(conn: &mut DbConn, peer: &str) -> Result<u64, StorageError> {
    let n: i64 = outbox_rejected::table
        .filter(outbox_rejected::peer.eq(peer))
        .count()
        .get_result(conn)?;
    u64::try_from(n).map_err(|e| StorageError::corrupt("outbox_rejected", e))
}

/// Stores a receipt once (its id is the hash of its content; a second copy changes nothing).
pub fn insert_receipt(conn: &mut DbConn, row: &ReceiptRow) -> Result<(), StorageError> {
    per_backend!(conn, |c| diesel::insert_into(receipts::table)
        .values(row)
        .on_conflict(receipts::id)
        .do_nothing()
        .execute(c))?;
    Ok(())
}

pub fn receipts_from(
    conn: &mut DbConn,
    issuer: &str,
    limit: i64,
) -> Result<Vec<StoredReceipt>, StorageError> {
    receipts::table
        .filter(receipts::issuer.eq(issuer))
        .order(receipts::issued_at.desc())
        .limit(limit)
        .select(ReceiptRow::as_select())
        .load::<ReceiptRow>(conn)?
        .into_iter()
        .map(StoredReceipt::try_from)
        .collect()
}

fn ensure_status(conn: &mut DbConn, peer: &str) -> Result<(), StorageError> {
    let exists: i64 = peer_status::table.find(peer).count().get_result(conn)?;
    if exists == 0 {
        diesel::insert_into(peer_status::table)
            .values((
                peer_status::peer.eq(peer),
                peer_status::failures.eq(0i64),
                peer_status::delivered.eq(0i64),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn mark_success(
    conn: &mut DbConn,
    peer: &str,
    delivered: i64,
    at: NaiveDateTime,
) -> Result<(), StorageError> {
    ensure_status(conn, peer)?;
    diesel::update(peer_status::table.find(peer))
        .set((
            peer_status::last_success_at.eq(Some(at)),
            peer_status::failures.eq(0i64),
            peer_status::delivered.eq(peer_status::delivered + delivered),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn mark_failure(
    conn: &mut DbConn,
    peer: &str,
    error: &str,
    at: NaiveDateTime,
) -> Result<u32, StorageError> {
    ensure_status(conn, peer)?;
    diesel::update(peer_status::table.find(peer))
        .set((
            peer_status::last_error.eq(Some(error)),
            peer_status::last_error_at.eq(Some(at)),
            peer_status::failures.eq(peer_status::failures + 1),
        ))
        .execute(conn)?;
    let failures: i64 = peer_status::table
        .find(peer)
        .select(peer_status::failures)
        .first(conn)?;
    u32::try_from(failures).map_err(|e| StorageError::corrupt("peer_status", e))
}

pub fn statuses(conn: &mut DbConn) -> Result<Vec<PeerStatus>, StorageError> {
    peer_status::table
        .order(peer_status::peer.asc())
        .select(PeerStatusRow::as_select())
        .load::<PeerStatusRow>(conn)?
        .into_iter()
        .map(PeerStatus::try_from)
        .collect()
}

/// Stores a tree head a peer sent, once per size. An upsert that does nothing on a second copy:
/// the same head can arrive at once with a pushed batch and with a receipt from that peer, and on
/// PostgreSQL a check before the insert would let both through to a unique violation.
pub fn witness_head(
    conn: &mut DbConn,
    peer: &str,
    size: i64,
    root: &str,
    signed_at: NaiveDateTime,
    public_key: &str,
    signature: &str,
) -> Result<(), StorageError> {
    per_backend!(conn, |c| diesel::insert_into(peer_tree_heads::table)
        .values((
            peer_tree_heads::peer.eq(peer),
            peer_tree_heads::size.eq(size),
            peer_tree_heads::root.eq(root),
            peer_tree_heads::signed_at.eq(signed_at),
            peer_tree_heads::public_key.eq(public_key),
            peer_tree_heads::signature.eq(signature),
        ))
        .on_conflict((peer_tree_heads::peer, peer_tree_heads::size))
        .do_nothing()
        .execute(c))?;
    Ok(())
}

/// The largest head a peer sent that is smaller than `size` (to check consistency against).
pub fn previous_peer_head(
    conn: &mut DbConn,
    peer: &str,
    size: i64,
) -> Result<Option<(i64, String)>, StorageError> {
    peer_tree_heads::table
        .filter(peer_tree_heads::peer.eq(peer))
        .filter(peer_tree_heads::size.lt(size))
        .order(peer_tree_heads::size.desc())
        .select((peer_tree_heads::size, peer_tree_heads::root))
        .first(conn)
        .optional()
        .map_err(StorageError::from)
}

/// Queues versions that cannot be queued yet (just created): `items` are (version id, stamp),
/// each version stored by the caller's transaction before this call (the foreign key checks
/// it). On PostgreSQL one statement whatever the count (the rows as arrays); on SQLite
/// multi-row inserts.
pub fn enqueue_new(
    conn: &mut DbConn,
    peer: &str,
    items: &[(String, i64)],
    at: NaiveDateTime,
) -> Result<(), StorageError> {
    if items.is_empty() {
        return Ok(());
    }
    let DbConn::Postgres(pg) = conn else {
        insert_many!(conn, outbox::table, items, |i| (
            outbox::peer.eq(peer.to_owned()),
            outbox::version_id.eq(i.0.clone()),
            outbox::hlc.eq(i.1),
            outbox::enqueued_at.eq(at),
        ));
        return Ok(());
    };
    EnqueueNew {
        peer,
        ids: items.iter().map(|i| i.0.as_str()).collect(),
        hlcs: items.iter().map(|i| i.1).collect(),
        at,
    }
    .execute(pg)?;
    Ok(())
}

/// [`enqueue_new`] on PostgreSQL: the rows from arrays, in one statement.
struct EnqueueNew<'a> {
    peer: &'a str,
    ids: Vec<&'a str>,
    hlcs: Vec<i64>,
    at: NaiveDateTime,
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for EnqueueNew<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        use diesel::sql_types::{Array, BigInt, Text, Timestamp};
        out.push_sql("INSERT INTO outbox (peer, version_id, hlc, enqueued_at) SELECT ");
        out.push_bind_param::<Text, _>(&self.peer)?;
        out.push_sql(", i.id, i.hlc, ");
        out.push_bind_param::<Timestamp, _>(&self.at)?;
        out.push_sql(" FROM unnest(");
        push_binds!(out; Array<Text> => &self.ids, Array<BigInt> => &self.hlcs);
        out.push_sql(") AS i (id, hlc)");
        Ok(())
    }
}
pg_cached_statement!(EnqueueNew);
