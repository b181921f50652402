//! The storage layer's write guarantees on both backends: a refused row in a multi-row insert
//! fails its whole transaction, and a head names a stored version (on SQLite by a foreign key
//! checked at COMMIT; on PostgreSQL by being written with its version, in one statement).

use hukou_sync::storage::records::{self, VersionRow};
use hukou_sync::storage::{self, StorageError};

use crate::helpers::spawn_app;

fn version_row(i: usize) -> VersionRow {
    VersionRow {
        id: format!("{i:064x}"),
        kind: "child".into(),
        doc_id: format!("doc-{i}"),
        author_node: "510000".into(),
        hlc: i as i64,
        parents: "[]".into(),
        body: "{}".into(),
        resolution: 0,
        signature: None,
        stored_at: chrono::Utc::now().naive_utc(),
        second_signature: None,
    }
}

/// A case's view row as the cases repository stores it (the columns it does not check are
/// placeholders).
fn case_row(
    id: &str,
    state: &str,
    heads: i64,
    at: chrono::NaiveDateTime,
) -> hukou_sync::storage::cases::CaseRow {
    hukou_sync::storage::cases::CaseRow {
        case_id: id.into(),
        child_id: format!("child-{id}"),
        benefit: "dibao".into(),
        requester: "410105".into(),
        decider: "510104".into(),
        state: state.into(),
        submitted_at: at,
        due_on: at.date(),
        head_count: heads,
        body: format!("{{\"case\":\"{id}\"}}"),
        updated_at: at,
    }
}

fn insert_in_transaction(
    app: &crate::helpers::TestApp,
    write: impl FnOnce(&mut storage::DbConn) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    let mut conn = app.store.conn().unwrap();
    storage::transaction(&mut conn, write)
}

#[tokio::test]
async fn a_refused_row_in_a_multi_row_insert_stores_nothing_of_its_transaction() {
    let app = spawn_app().await;
    let before = app.count("versions");
    insert_in_transaction(&app, |c| records::insert_versions(c, &[version_row(1000)])).unwrap();

    // 85 rows go as statements of 64, 16, 4 and 1; the refused row sits inside the 64 (a row
    // already stored) or inside the 16 (a row twice in the batch).
    for refused in [40, 70] {
        let mut rows: Vec<VersionRow> = (0..85).map(version_row).collect();
        rows[refused] = if refused < 64 {
            version_row(1000)
        } else {
            version_row(3)
        };
        let err = insert_in_transaction(&app, |c| {
            // Rows written earlier in the same transaction are undone as well.
            records::insert_versions(c, &[version_row(2000)])?;
            records::insert_versions(c, &rows)
        })
        .unwrap_err();
        // A unique violation (diesel's error stays inside storage; this is how it shows).
        assert!(err.is_write_race(), "{err:?}");
        assert_eq!(app.count("versions"), before + 1, "row {refused}");
    }

    // The same rows without the duplicate all go in.
    let rows: Vec<VersionRow> = (0..85).map(version_row).collect();
    insert_in_transaction(&app, |c| records::insert_versions(c, &rows)).unwrap();
    assert_eq!(app.count("versions"), before + 86);
}

/// A head names a stored version. On SQLite a deferred foreign key refuses one that does not
/// exist at COMMIT, and nothing of its transaction stays. On PostgreSQL heads carry no key
/// (migration `2026-12-11-100001_write_path_references`: it cost two thirds of a head's write);
/// a head is written only by the statement that stores its version, so a version refused takes
/// its head with it.
#[tokio::test]
async fn a_head_of_an_unknown_version_is_refused_and_nothing_of_its_transaction_stays() {
    use diesel::RunQueryDsl;
    let app = spawn_app().await;
    insert_in_transaction(&app, |c| records::insert_creations(c, &[version_row(1)])).unwrap();
    let heads = app.count("heads");
    assert_eq!(heads, 1, "a creation's head is written with it");
    if matches!(app.store.backend(), storage::Backend::Sqlite) {
        let known = format!("{:064x}", 1);
        let unknown = format!("{:064x}", 2);
        let err = insert_in_transaction(&app, |c| {
            let storage::DbConn::Sqlite(s) = c else {
                unreachable!()
            };
            for (doc, v) in [("doc-9", &known), ("doc-2", &unknown)] {
                diesel::sql_query(format!(
                    "INSERT INTO heads (kind, doc_id, version_id) VALUES ('child', '{doc}', '{v}')"
                ))
                .execute(s)
                .map_err(StorageError::from)?;
            }
            Ok(())
        })
        .unwrap_err();
        assert!(
            err.to_string().to_lowercase().contains("foreign key"),
            "{err}"
        );
        assert_eq!(app.count("heads"), heads);
    }

    // A creation refused (its id already stored, beside a new one) leaves no head of either.
    let err = insert_in_transaction(&app, |c| {
        records::insert_creations(c, &[version_row(3), version_row(1)])
    })
    .unwrap_err();
    assert!(err.is_write_race(), "{err:?}");
    assert_eq!(app.count("heads"), heads);
    assert_eq!(app.count("versions"), 1);

    // The connection is usable afterwards, and a valid creation goes in with its head.
    insert_in_transaction(&app, |c| records::insert_creations(c, &[version_row(3)])).unwrap();
    assert_eq!(app.count("heads"), heads + 1);
}

/// A peer's batch never ends inside a group of versions queued at one stamp (a file's history
/// queued with the move that makes a bureau its party): the group comes whole, past the limit;
/// otherwise a batch holds exactly `limit` versions, and the next read starts after the last.
#[tokio::test]
async fn a_queued_batch_never_ends_inside_a_group_of_equal_stamps() {
    use hukou_sync::storage::exchange;
    let app = spawn_app().await;
    let signed = |i: usize| VersionRow {
        signature: Some("A".repeat(86)),
        ..version_row(i)
    };
    let rows: Vec<VersionRow> = (1..=8).map(signed).collect();
    insert_in_transaction(&app, |c| records::insert_versions(c, &rows)).unwrap();
    // Versions 1 and 2 at their own stamps; 3 to 6 queued together at stamp 6; 7 and 8 alone.
    let items: Vec<(String, i64)> = rows
        .iter()
        .map(|r| {
            (
                r.id.clone(),
                if (3..=6).contains(&r.hlc) { 6 } else { r.hlc },
            )
        })
        .collect();
    let now = chrono::Utc::now().naive_utc();
    insert_in_transaction(&app, |c| {
        exchange::enqueue(c, "410100", &items, now).map(|_| ())
    })
    .unwrap();
    let mut conn = app.store.conn().unwrap();
    let ids = |b: &exchange::QueuedBatch| -> Vec<i64> {
        b.versions.iter().map(|v| v.hlc.to_i64()).collect()
    };
    // A limit of 3 ends inside the group: the group comes whole.
    let first = exchange::next_batch(&mut conn, "410100", 3, None).unwrap();
    assert_eq!(ids(&first), vec![1, 2, 3, 4, 5, 6]);
    let last = first.last.clone().unwrap();
    assert_eq!(last.0, 6);
    // A limit that ends at a group's edge takes exactly the limit.
    let second = exchange::next_batch(&mut conn, "410100", 1, Some(&last)).unwrap();
    assert_eq!(ids(&second), vec![7]);
    let third = exchange::next_batch(&mut conn, "410100", 5, second.last.as_ref()).unwrap();
    assert_eq!(ids(&third), vec![8]);
    let none = exchange::next_batch(&mut conn, "410100", 5, third.last.as_ref()).unwrap();
    assert!(none.versions.is_empty() && none.last.is_none());
}

/// SQLite's `synchronous` level on this connection (0 OFF, 1 NORMAL, 2 FULL).
fn synchronous(conn: &mut storage::DbConn) -> i32 {
    use diesel::sql_types::Integer;
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Level {
        #[diesel(sql_type = Integer)]
        synchronous: i32,
    }
    let storage::DbConn::Sqlite(c) = conn else {
        panic!("not SQLite")
    };
    diesel::sql_query("PRAGMA synchronous")
        .get_result::<Level>(c)
        .unwrap()
        .synchronous
}

/// A signed receipt means stored: the ingest of a batch commits under `durable_commits`, where a
/// SQLite commit is synced to disk (`synchronous = FULL`) before it returns; the connection goes
/// back to `NORMAL` after (everything else keeps the faster setting).
#[tokio::test]
async fn durable_commits_sync_each_commit_on_sqlite() {
    let app = spawn_app().await;
    if app.db.url.starts_with("postgres") {
        // PostgreSQL commits are durable already (synchronous_commit is never turned off).
        return;
    }
    let mut conn = app.store.conn().unwrap();
    assert_eq!(synchronous(&mut conn), 1);
    let inside = storage::durable_commits(&mut conn, |c| {
        storage::transaction(c, |c| {
            records::insert_versions(c, &[version_row(1)])?;
            Ok::<_, StorageError>(synchronous(c))
        })
    })
    .unwrap();
    assert_eq!(inside, 2);
    assert_eq!(synchronous(&mut conn), 1);
}

/// Leases (issue 25 #1) on both backends: one holder at a time, renewals keep the fence, a
/// takeover after expiry raises it, and the old holder's fencing check and renewal then fail.
#[tokio::test]
async fn a_lease_has_one_holder_and_a_takeover_fences_the_old_one_out() {
    use hukou_sync::storage::leases;
    use std::time::Duration;
    let app = spawn_app().await;
    let mut conn = app.store.conn().unwrap();
    let ttl = Duration::from_secs(60);
    let a = leases::acquire(&mut conn, "send:510100", "a", ttl)
        .unwrap()
        .unwrap();
    assert_eq!(a.fence, 1);
    assert_eq!(
        leases::acquire(&mut conn, "send:510100", "b", ttl).unwrap(),
        None
    );
    // Renewed by its holder, with the same fence; another lease is independent.
    assert_eq!(
        leases::acquire(&mut conn, "send:510100", "a", ttl).unwrap(),
        Some(a.clone())
    );
    assert!(leases::renew(&mut conn, &a, ttl).unwrap());
    assert!(leases::acquire(&mut conn, "job:tree_heads", "b", ttl)
        .unwrap()
        .is_some());
    assert!(storage::transaction(&mut conn, |c| leases::holds(c, &a)).unwrap());

    // Its holder stalls past it: another takes it over with a higher fence.
    app.exec("UPDATE leases SET expires_at = '2000-01-01 00:00:00' WHERE name = 'send:510100'");
    assert!(!storage::transaction(&mut conn, |c| leases::holds(c, &a)).unwrap());
    let b = leases::acquire(&mut conn, "send:510100", "b", ttl)
        .unwrap()
        .unwrap();
    assert_eq!(b.fence, 2);
    assert!(
        !leases::renew(&mut conn, &a, ttl).unwrap(),
        "the old holder is fenced out"
    );
    assert!(!storage::transaction(&mut conn, |c| leases::holds(c, &a)).unwrap());
    assert!(storage::transaction(&mut conn, |c| leases::holds(c, &b)).unwrap());

    // Released at shutdown: taken at once, the fence still growing.
    leases::release(&mut conn, &b).unwrap();
    let a2 = leases::acquire(&mut conn, "send:510100", "a", ttl)
        .unwrap()
        .unwrap();
    assert_eq!(a2.fence, 3);
    let names: Vec<String> = leases::list(&mut conn)
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(names, ["job:tree_heads", "send:510100"]);
}

/// `[database] durable_commits = "receipts"` on PostgreSQL: the node's connections commit
/// without waiting for the flush, except inside `durable_commits` (a received batch, a tree
/// head), and go back after; `every` (the default) leaves PostgreSQL's own `on`.
#[tokio::test]
async fn on_postgresql_only_receipts_and_heads_wait_for_the_flush_when_configured() {
    use hukou_sync::storage::{durable_commits, CommitDurability, Store};
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    fn setting(c: &mut storage::DbConn) -> String {
        diesel::RunQueryDsl::get_result::<Setting>(
            diesel::sql_query("SELECT current_setting('synchronous_commit') AS value"),
            c,
        )
        .unwrap()
        .value
    }
    let app = spawn_app().await;
    if app.store.backend() != storage::Backend::Postgres {
        eprintln!("skipped: synchronous_commit is PostgreSQL's (SQLite: synchronous = FULL inside durable_commits)");
        return;
    }
    assert_eq!(setting(&mut app.store.conn().unwrap()), "on");
    let store =
        Store::open_with(&app.settings.database.url, 1, CommitDurability::Receipts).unwrap();
    let mut c = store.conn().unwrap();
    assert_eq!(setting(&mut c), "off");
    let inside = durable_commits(&mut c, |c| Ok::<_, StorageError>(setting(c))).unwrap();
    assert_eq!(inside, "on");
    assert_eq!(setting(&mut c), "off");
}

/// An audit append on PostgreSQL does not hold the log's lock while its commit waits for the
/// disk: the appending transaction's own commit is asynchronous (`synchronous_commit = off`
/// inside it, after the lock is taken), and `storage::transaction` waits for the flush after the
/// commit, before it returns — so what the caller is told is saved is on disk, as the
/// connection's `on` asked. A failed transaction owes nothing.
#[tokio::test]
async fn on_postgresql_an_audit_append_commits_without_the_lock_held_through_the_flush() {
    use hukou_sync::audit::{self, Actor, Event, Outcome};
    #[derive(diesel::QueryableByName)]
    struct Text {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    #[derive(diesel::QueryableByName)]
    struct Flag {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        value: bool,
    }
    fn text(c: &mut storage::DbConn, sql: &str) -> String {
        diesel::RunQueryDsl::get_result::<Text>(diesel::sql_query(sql), c)
            .unwrap()
            .value
    }
    let app = spawn_app().await;
    if app.store.backend() != storage::Backend::Postgres {
        eprintln!("skipped: the audit log's lock and synchronous_commit are PostgreSQL's");
        return;
    }
    let mut conn = app.store.conn().unwrap();
    assert_eq!(
        text(
            &mut conn,
            "SELECT current_setting('synchronous_commit') AS value"
        ),
        "on"
    );
    let event = Event::new(Actor::console(), "test.event", Outcome::Ok);
    let (inside, lsn) = storage::transaction(&mut conn, |c| {
        audit::append(c, app.node.clock.now(), chrono::Utc::now(), &event)?;
        let inside = text(c, "SELECT current_setting('synchronous_commit') AS value");
        let lsn = text(c, "SELECT pg_current_wal_insert_lsn()::text AS value");
        Ok::<_, audit::AuditError>((inside, lsn))
    })
    .unwrap();
    assert_eq!(
        inside, "off",
        "the appending transaction's commit does not wait"
    );
    // Flushed before `transaction` returned: nothing else ran on this connection since.
    let flushed = diesel::RunQueryDsl::get_result::<Flag>(
        diesel::sql_query(format!(
            "SELECT pg_current_wal_flush_lsn() >= '{lsn}'::pg_lsn AS value"
        )),
        &mut conn,
    )
    .unwrap()
    .value;
    assert!(
        flushed,
        "the commit was flushed before the caller was answered"
    );
    // The session's own setting is untouched.
    assert_eq!(
        text(
            &mut conn,
            "SELECT current_setting('synchronous_commit') AS value"
        ),
        "on"
    );
    app.stop().await;
}

/// `[database] sqlite_cache_mib` is the page cache of the pool's connections together: each
/// connection gets its share (at least SQLite's default 2 MiB, at most 64 MiB), so a node's
/// caches cannot grow past the budget however much of the database its connections read.
#[tokio::test]
async fn on_sqlite_the_pools_connections_share_the_page_cache_budget() {
    use hukou_sync::storage::{CommitDurability, Store, DEFAULT_SQLITE_CACHE_MIB};
    #[derive(diesel::QueryableByName)]
    struct Size {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        cache_size: i64,
    }
    fn cache_kib(store: &Store) -> i64 {
        let mut c = store.conn().unwrap();
        // Negative: KiB (positive would be pages).
        -diesel::RunQueryDsl::get_result::<Size>(diesel::sql_query("PRAGMA cache_size"), &mut c)
            .unwrap()
            .cache_size
    }
    let app = spawn_app().await;
    if app.store.backend() != storage::Backend::Sqlite {
        eprintln!("skipped: the page cache is SQLite's (PostgreSQL's is the server's)");
        return;
    }
    let url = &app.settings.database.url;
    let open = |pool, mib| Store::open_with_cache(url, pool, CommitDurability::Every, mib).unwrap();
    // The test app's pool of 4 with the default budget.
    assert_eq!(
        cache_kib(&app.store),
        i64::from(DEFAULT_SQLITE_CACHE_MIB) * 1024 / 4
    );
    assert_eq!(cache_kib(&open(8, 128)), 16 * 1024);
    assert_eq!(cache_kib(&open(2, 1024)), 64 * 1024, "at most 64 MiB each");
    assert_eq!(
        cache_kib(&open(64, 8)),
        2 * 1024,
        "at least SQLite's default"
    );
}

/// The write of versions in one statement on PostgreSQL (`insert_creations`,
/// `insert_on_parents`) stores what the separate statements store on SQLite: the rows, the
/// parent edges, the heads moved past the parents, one dirty mark per document; and a refused
/// write stores nothing of its transaction.
#[tokio::test]
async fn versions_heads_and_dirty_marks_are_written_alike_on_both_backends() {
    #[derive(diesel::QueryableByName, Debug, PartialEq)]
    struct Mark {
        #[diesel(sql_type = diesel::sql_types::Text)]
        doc_id: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        gen: i64,
    }
    fn marks(app: &crate::helpers::TestApp) -> Vec<(String, i64)> {
        let mut c = app.store.conn().unwrap();
        diesel::RunQueryDsl::load::<Mark>(
            diesel::sql_query(
                "SELECT doc_id, gen FROM recon_dirty WHERE doc_id LIKE 'w-%' ORDER BY doc_id",
            ),
            &mut c,
        )
        .unwrap()
        .into_iter()
        .map(|m| (m.doc_id, m.gen))
        .collect()
    }
    let app = spawn_app().await;
    let row = |i: usize, doc: &str, parents: &[&VersionRow]| VersionRow {
        doc_id: doc.into(),
        parents: serde_json::to_string(&parents.iter().map(|p| &p.id).collect::<Vec<_>>()).unwrap(),
        ..version_row(5000 + i)
    };
    // Two creations of one document (two bureaus made it) and one of another.
    let (a1, a2, b1) = (row(1, "w-a", &[]), row(2, "w-a", &[]), row(3, "w-b", &[]));
    insert_in_transaction(&app, |c| {
        records::insert_creations(c, &[a1.clone(), a2.clone(), b1.clone()])
    })
    .unwrap();
    let mut conn = app.store.conn().unwrap();
    let mut heads_a = records::heads_of(&mut conn, "child", "w-a").unwrap();
    heads_a.sort();
    assert_eq!(heads_a, vec![a1.id.clone(), a2.id.clone()]);
    assert_eq!(marks(&app), vec![("w-a".into(), 1), ("w-b".into(), 1)]);

    // A merge of both heads: one head left, its edges stored, the document marked again.
    let merge = row(4, "w-a", &[&a1, &a2]);
    let parents = vec![a1.id.clone(), a2.id.clone()];
    let edges = app.count("version_parents");
    insert_in_transaction(&app, |c| records::insert_on_parents(c, &merge, &parents)).unwrap();
    assert_eq!(
        records::heads_of(&mut conn, "child", "w-a").unwrap(),
        vec![merge.id.clone()]
    );
    assert_eq!(
        records::heads_of(&mut conn, "child", "w-b").unwrap(),
        vec![b1.id.clone()]
    );
    assert_eq!(app.count("version_parents"), edges + 2);
    assert_eq!(marks(&app), vec![("w-a".into(), 2), ("w-b".into(), 1)]);

    // Refused: a creation already stored (in a batch with a new one), and a version on a parent
    // that does not exist. Nothing of either transaction stays.
    let (versions, heads, edges) = (
        app.count("versions"),
        app.count("heads"),
        app.count("version_parents"),
    );
    let c1 = row(5, "w-c", &[]);
    let err = insert_in_transaction(&app, |c| {
        records::insert_creations(c, &[c1.clone(), b1.clone()])
    })
    .unwrap_err();
    assert!(err.is_write_race(), "{err:?}");
    let ghost = version_row(5999);
    let orphan = row(6, "w-b", &[&ghost]);
    insert_in_transaction(&app, |c| {
        records::insert_on_parents(c, &orphan, std::slice::from_ref(&ghost.id))
    })
    .unwrap_err();
    assert_eq!(
        (
            app.count("versions"),
            app.count("heads"),
            app.count("version_parents")
        ),
        (versions, heads, edges)
    );
    assert_eq!(marks(&app), vec![("w-a".into(), 2), ("w-b".into(), 1)]);
    assert_eq!(
        records::heads_of(&mut conn, "child", "w-b").unwrap(),
        vec![b1.id.clone()]
    );
}

/// Versions made on parents, of many documents, in one write (`insert_on_parents_many`: one
/// statement on PostgreSQL): each document's heads move past its version's parents, the edges
/// and dirty marks are stored; a chain within one document is written in order; a version on a
/// parent that does not exist fails the write and nothing of its transaction stays.
#[tokio::test]
async fn versions_on_parents_of_many_documents_are_written_together() {
    let app = spawn_app().await;
    let row = |i: usize, doc: &str, parents: &[&VersionRow]| VersionRow {
        doc_id: doc.into(),
        parents: serde_json::to_string(&parents.iter().map(|p| &p.id).collect::<Vec<_>>()).unwrap(),
        ..version_row(7000 + i)
    };
    let on = |r: &VersionRow, parents: &[&VersionRow]| {
        (
            r.clone(),
            parents.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
        )
    };
    let heads = |doc: &str| {
        let mut conn = app.store.conn().unwrap();
        let mut h = records::heads_of(&mut conn, "child", doc).unwrap();
        h.sort();
        h
    };
    // Two roots of m-a (two bureaus made it), one of m-b and of m-c.
    let (a1, a2, b1, c1) = (
        row(1, "m-a", &[]),
        row(2, "m-a", &[]),
        row(3, "m-b", &[]),
        row(4, "m-c", &[]),
    );
    insert_in_transaction(&app, |c| {
        records::insert_creations(c, &[a1.clone(), a2.clone(), b1.clone(), c1.clone()])
    })
    .unwrap();
    let edges = app.count("version_parents");

    // A merge of m-a's two roots and an edit of m-b, together; m-c untouched.
    let (a3, b2) = (row(5, "m-a", &[&a1, &a2]), row(6, "m-b", &[&b1]));
    insert_in_transaction(&app, |c| {
        records::insert_on_parents_many(c, &[on(&a3, &[&a1, &a2]), on(&b2, &[&b1])])
    })
    .unwrap();
    assert_eq!(heads("m-a"), vec![a3.id.clone()]);
    assert_eq!(heads("m-b"), vec![b2.id.clone()]);
    assert_eq!(heads("m-c"), vec![c1.id.clone()]);
    assert_eq!(app.count("version_parents"), edges + 3);

    // A chain of m-b beside an edit of m-c: written in order.
    let (b3, c2) = (row(7, "m-b", &[&b2]), row(8, "m-c", &[&c1]));
    let b4 = row(9, "m-b", &[&b3]);
    insert_in_transaction(&app, |c| {
        records::insert_on_parents_many(c, &[on(&b3, &[&b2]), on(&c2, &[&c1]), on(&b4, &[&b3])])
    })
    .unwrap();
    assert_eq!(heads("m-b"), vec![b4.id.clone()]);
    assert_eq!(heads("m-c"), vec![c2.id.clone()]);
    assert_eq!(app.count("version_parents"), edges + 6);

    // A version on a parent that does not exist, beside a good one: nothing stays.
    let counts = |app: &crate::helpers::TestApp| {
        (
            app.count("versions"),
            app.count("heads"),
            app.count("version_parents"),
        )
    };
    let before = counts(&app);
    let ghost = version_row(7999);
    let (a4, orphan) = (row(10, "m-a", &[&a3]), row(11, "m-c", &[&ghost]));
    insert_in_transaction(&app, |c| {
        records::insert_on_parents_many(c, &[on(&a4, &[&a3]), on(&orphan, &[&ghost])])
    })
    .unwrap_err();
    assert_eq!(counts(&app), before);
    assert_eq!(heads("m-a"), vec![a3.id.clone()]);
    assert_eq!(heads("m-c"), vec![c2.id.clone()]);
}

/// An append reads the log's right edge with its size (on PostgreSQL in one statement, the edge
/// computed in SQL): at every size it is what the stored tree holds, and appends of one and of
/// several events build the tree the verifier checks.
#[tokio::test]
async fn an_append_reads_the_right_edge_the_stored_tree_holds_at_every_size() {
    use hukou_sync::audit::{self, Actor, Event, Outcome};
    use hukou_sync::storage::audit as audit_repo;
    let app = spawn_app().await;
    let mut conn = app.store.conn().unwrap();
    let event = Event::new(Actor::console(), "test.event", Outcome::Ok);
    for round in 0..24 {
        storage::transaction(&mut conn, |c| {
            let start = audit_repo::begin_append(c)?;
            let edge = audit_repo::right_edge(start.size);
            let stored = audit_repo::subtree_hashes(c, &edge)?;
            assert_eq!(start.edge, stored, "size {}", start.size);
            assert_eq!(start.edge.len(), edge.len(), "size {}", start.size);
            assert_eq!(edge.len() as u32, start.size.count_ones());
            Ok::<_, StorageError>(())
        })
        .unwrap();
        // One event, then three at once, in turn.
        let n = if round % 2 == 0 { 1 } else { 3 };
        let events = vec![event.clone(); n];
        let stamps = app.node.clock.now_many(n);
        storage::transaction(&mut conn, |c| {
            audit::append_many(c, &stamps, chrono::Utc::now(), &events)
        })
        .unwrap();
    }
    // A head signed from the stored subtrees; the verifier recomputes it from the leaves.
    audit::log::sign_tree_head(&mut conn, &app.node.key, chrono::Utc::now()).unwrap();
    let report =
        audit::verify::verify_database(&mut conn, Some(&app.node.key.public_key()), &mut |_, _| {})
            .unwrap();
    assert!(report.ok(), "{report:?}");
}

/// The states of the cases asked for, those held and only those — the same on both backends
/// (on PostgreSQL the statement is planned with its keys each time, past the five calls after
/// which a prepared statement would switch to its generic plan).
#[tokio::test]
async fn case_states_are_read_for_the_ids_asked_and_only_those() {
    use hukou_sync::storage::cases;
    let app = spawn_app().await;
    let now = chrono::Utc::now().naive_utc();
    let row = |i: usize, state: &str| case_row(&format!("case-{i:04}"), state, 1, now);
    let mut conn = app.store.conn().unwrap();
    for i in 0..40 {
        let state = if i % 2 == 0 { "submitted" } else { "received" };
        cases::upsert(&mut conn, &row(i, state)).unwrap();
    }
    for _ in 0..7 {
        let asked: Vec<String> = ["case-0003", "case-0010", "case-9999"]
            .map(String::from)
            .to_vec();
        let mut states = cases::states_of(&mut conn, &asked).unwrap();
        states.sort();
        assert_eq!(
            states,
            vec![
                ("case-0003".to_string(), "received".to_string()),
                ("case-0010".to_string(), "submitted".to_string()),
            ]
        );
    }
    assert!(cases::states_of(&mut conn, &[]).unwrap().is_empty());
}

/// Many cases' view rows in one write (`cases::upsert_many`: one statement on PostgreSQL): new
/// rows inserted, stored ones replaced in every column, a case named twice written in order
/// (the last row wins), and untouched rows left as they were.
#[tokio::test]
async fn many_case_rows_are_inserted_or_replaced_at_once() {
    use hukou_sync::storage::cases::{self, CaseRow};
    let app = spawn_app().await;
    // Whole seconds: both backends give them back as written.
    let now = chrono::NaiveDate::from_ymd_opt(2026, 12, 6)
        .unwrap()
        .and_hms_opt(9, 30, 0)
        .unwrap();
    let row =
        |i: usize, state: &str, heads: i64| case_row(&format!("many-{i:04}"), state, heads, now);
    let state_of = |id: &str| {
        let mut conn = app.store.conn().unwrap();
        let asked = vec![id.to_owned()];
        cases::states_of(&mut conn, &asked)
            .unwrap()
            .pop()
            .map(|(_, s)| s)
    };
    let mut conn = app.store.conn().unwrap();
    let first: Vec<CaseRow> = (0..3).map(|i| row(i, "submitted", 1)).collect();
    cases::upsert_many(&mut conn, &first).unwrap();
    // Rows given out of order: two replaced (one with two heads now), one new.
    let second = vec![
        row(3, "submitted", 1),
        row(2, "received", 2),
        row(0, "received", 1),
    ];
    cases::upsert_many(&mut conn, &second).unwrap();
    assert_eq!(state_of("many-0000").as_deref(), Some("received"));
    assert_eq!(state_of("many-0001").as_deref(), Some("submitted"));
    assert_eq!(state_of("many-0002").as_deref(), Some("received"));
    assert_eq!(state_of("many-0003").as_deref(), Some("submitted"));
    assert_eq!(app.count("cases"), 4);
    let stored = |id: &str| -> CaseRow {
        use diesel::prelude::*;
        use hukou_sync::storage::schema::cases as t;
        let mut conn = app.store.conn().unwrap();
        t::table
            .find(id)
            .select(CaseRow::as_select())
            .first(&mut *conn)
            .unwrap()
    };
    assert_eq!(stored("many-0002"), row(2, "received", 2));
    // A case named twice: the last row wins.
    cases::upsert_many(&mut conn, &[row(1, "received", 1), row(1, "withdrawn", 1)]).unwrap();
    assert_eq!(state_of("many-0001").as_deref(), Some("withdrawn"));
    assert_eq!(app.count("cases"), 4);
    cases::upsert_many(&mut conn, &[]).unwrap();
}

/// Many documents' heads in one read: each document with its heads, one without heads absent.
#[tokio::test]
async fn heads_of_many_documents_are_read_at_once() {
    let app = spawn_app().await;
    let rows: Vec<VersionRow> = (1..=3)
        .map(|i| VersionRow {
            signature: Some("A".repeat(86)),
            ..version_row(i)
        })
        .collect();
    insert_in_transaction(&app, |c| records::insert_creations(c, &rows)).unwrap();
    let mut conn = app.store.conn().unwrap();
    let asked: Vec<String> = ["doc-1", "doc-3", "doc-9"].map(String::from).to_vec();
    for _ in 0..7 {
        let heads = records::head_versions_of(&mut conn, "child", &asked).unwrap();
        let mut docs: Vec<&String> = heads.keys().collect();
        docs.sort();
        assert_eq!(docs, ["doc-1", "doc-3"]);
        assert_eq!(heads["doc-3"].len(), 1);
        assert_eq!(heads["doc-3"][0].doc_id, "doc-3");
        assert!(records::head_versions_of(&mut conn, "case", &asked)
            .unwrap()
            .is_empty());
    }
}
