//! Repository of leases: the work only one process of a node may do at a time (DESIGN §9) —
//! sending to a peer, and each singleton job. A lease is held until its `expires_at` and renewed
//! well before; another process takes it only once it has expired, and each change of holder
//! raises its `fence`. Times are the database's clock, never a process's, so processes on
//! machines whose clocks disagree still agree on who holds what.
//!
//! On PostgreSQL a taker reads the row `FOR UPDATE SKIP LOCKED` (two processes taking one lease
//! at once: one skips it, never waits), and the fencing check ([`holds`]) reads it `FOR SHARE`,
//! so a takeover waits for a settle in progress and a settle never runs beside a takeover. On
//! SQLite (one process) the IMMEDIATE transaction serialises both.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::leases;
use super::{transaction, DbConn, StorageError};

/// One process's hold on a lease: the name, the holder and the fence it was granted with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    /// Invariant: ≥ 1; grows by one each time another holder takes the lease.
    pub fence: i64,
}

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = leases)]
pub struct LeaseRow {
    pub name: String,
    pub holder: String,
    pub fence: i64,
    pub expires_at: NaiveDateTime,
}

#[derive(QueryableByName)]
struct Now {
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    t: NaiveDateTime,
}

/// The database's clock, UTC.
pub fn db_now(conn: &mut DbConn) -> Result<NaiveDateTime, StorageError> {
    let sql = match conn {
        DbConn::Sqlite(_) => "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now') AS t",
        DbConn::Postgres(_) => {
            "SELECT CAST(clock_timestamp() AT TIME ZONE 'UTC' AS TIMESTAMP) AS t"
        }
    };
    Ok(diesel::sql_query(sql).get_result::<Now>(conn)?.t)
}

fn span(ttl: Duration) -> chrono::Duration {
    chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
}

/// Takes or renews the lease `name` for `holder` for `ttl`: granted when nobody holds it, when
/// `holder` already does (renewed, same fence) or when its holder let it expire (taken over,
/// fence + 1). `None`: another process holds it (or is taking it right now).
pub fn acquire(
    conn: &mut DbConn,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<Option<Lease>, StorageError> {
    transaction(conn, |c| {
        let now = db_now(c)?;
        let until = now + span(ttl);
        let query = leases::table.filter(leases::name.eq(name));
        let row: Option<LeaseRow> = match c {
            DbConn::Postgres(pg) => query
                .select(LeaseRow::as_select())
                .for_update()
                .skip_locked()
                .first(pg)
                .optional()?,
            DbConn::Sqlite(sq) => query.select(LeaseRow::as_select()).first(sq).optional()?,
        };
        let granted = |fence| Lease {
            name: name.to_owned(),
            holder: holder.to_owned(),
            fence,
        };
        match row {
            None => {
                let n = per_backend!(c, |b| diesel::insert_into(leases::table)
                    .values((
                        leases::name.eq(name),
                        leases::holder.eq(holder),
                        leases::fence.eq(1i64),
                        leases::expires_at.eq(until),
                    ))
                    .on_conflict_do_nothing()
                    .execute(b)?);
                // Another process inserted it first (or holds the row being inserted).
                Ok((n == 1).then(|| granted(1)))
            }
            Some(r) if r.holder == holder => {
                diesel::update(leases::table.filter(leases::name.eq(name)))
                    .set(leases::expires_at.eq(until))
                    .execute(c)?;
                Ok(Some(granted(r.fence)))
            }
            Some(r) if r.expires_at <= now => {
                let fence = r.fence.saturating_add(1);
                diesel::update(leases::table.filter(leases::name.eq(name)))
                    .set((
                        leases::holder.eq(holder),
                        leases::fence.eq(fence),
                        leases::expires_at.eq(until),
                    ))
                    .execute(c)?;
                Ok(Some(granted(fence)))
            }
            Some(_) => Ok(None),
        }
    })
}

/// Renews a held lease for `ttl` from now. `false`: it is no longer this holder's (another
/// process took it over after it expired).
pub fn renew(conn: &mut DbConn, lease: &Lease, ttl: Duration) -> Result<bool, StorageError> {
    let until = db_now(conn)? + span(ttl);
    let n = diesel::update(
        leases::table
            .filter(leases::name.eq(&lease.name))
            .filter(leases::holder.eq(&lease.holder))
            .filter(leases::fence.eq(lease.fence)),
    )
    .set(leases::expires_at.eq(until))
    .execute(conn)?;
    Ok(n == 1)
}

/// Gives a held lease up (at shutdown), so another process may take it at once. The row stays:
/// its fence keeps growing.
pub fn release(conn: &mut DbConn, lease: &Lease) -> Result<(), StorageError> {
    let past = db_now(conn)? - chrono::Duration::seconds(1);
    diesel::update(
        leases::table
            .filter(leases::name.eq(&lease.name))
            .filter(leases::holder.eq(&lease.holder))
            .filter(leases::fence.eq(lease.fence)),
    )
    .set(leases::expires_at.eq(past))
    .execute(conn)?;
    Ok(())
}

/// The fencing check, inside the caller's transaction: whether `lease` is still held, unexpired,
/// with its fence. On PostgreSQL the row stays share-locked until the caller commits, so nobody
/// takes the lease over while the caller settles what it did under it.
pub fn holds(conn: &mut DbConn, lease: &Lease) -> Result<bool, StorageError> {
    let now = db_now(conn)?;
    let query = || {
        leases::table
            .filter(leases::name.eq(&lease.name))
            .filter(leases::holder.eq(&lease.holder))
            .filter(leases::fence.eq(lease.fence))
            .filter(leases::expires_at.gt(now))
            .select(leases::fence)
    };
    let found: Option<i64> = match conn {
        DbConn::Postgres(pg) => query().for_share().first(pg).optional()?,
        DbConn::Sqlite(sq) => query().first(sq).optional()?,
    };
    Ok(found.is_some())
}

/// Every lease, by name (the `leases` command and the metrics).
pub fn list(conn: &mut DbConn) -> Result<Vec<LeaseRow>, StorageError> {
    Ok(leases::table
        .order(leases::name.asc())
        .select(LeaseRow::as_select())
        .load(conn)?)
}
