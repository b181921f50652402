-- Multi-row inserts without a statement journal on SQLite (PostgreSQL is unchanged).
--
-- Inside a transaction, SQLite protects a statement that writes several rows and may fail part
-- way with a statement journal: before the statement first changes a page, it copies the page
-- into an in-memory journal, so that the statement alone can be undone. The application writes
-- rows in multi-row `INSERT OR IGNORE`s whose row count it checks (see `insert_many!`): a
-- refused row fails the whole transaction, so nothing needs undoing statement by statement,
-- and such an insert needs no journal — unless the table has an immediate foreign key. A
-- foreign key checked at COMMIT (`DEFERRABLE INITIALLY DEFERRED`) is still enforced: a version
-- that does not exist fails the transaction at COMMIT instead of at the statement.
-- Same columns, keys and indexes as before (2026-11-23-000007_compact_keys).

CREATE TABLE heads_new (
    kind       TEXT NOT NULL,
    doc_id     TEXT NOT NULL,
    version_id TEXT NOT NULL REFERENCES versions (id) DEFERRABLE INITIALLY DEFERRED,
    PRIMARY KEY (kind, doc_id, version_id)
) WITHOUT ROWID;
INSERT INTO heads_new SELECT * FROM heads;
DROP TABLE heads;
ALTER TABLE heads_new RENAME TO heads;

CREATE TABLE version_parents_new (
    version_id TEXT NOT NULL REFERENCES versions (id) DEFERRABLE INITIALLY DEFERRED,
    parent_id  TEXT NOT NULL REFERENCES versions (id) DEFERRABLE INITIALLY DEFERRED,
    PRIMARY KEY (version_id, parent_id)
) WITHOUT ROWID;
INSERT INTO version_parents_new SELECT * FROM version_parents;
DROP TABLE version_parents;
ALTER TABLE version_parents_new RENAME TO version_parents;
CREATE INDEX version_parents_parent ON version_parents (parent_id);

CREATE TABLE outbox_new (
    peer        TEXT NOT NULL,
    version_id  TEXT NOT NULL REFERENCES versions (id) DEFERRABLE INITIALLY DEFERRED,
    hlc         BIGINT NOT NULL,                -- the version's stamp: parents sort before children
    enqueued_at TIMESTAMP NOT NULL,
    PRIMARY KEY (peer, version_id)
) WITHOUT ROWID;
INSERT INTO outbox_new SELECT * FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_order ON outbox (peer, hlc, version_id);
