-- Immediate foreign keys again, as 2026-11-23-000007_compact_keys left them.

CREATE TABLE heads_new (
    kind       TEXT NOT NULL,
    doc_id     TEXT NOT NULL,
    version_id TEXT NOT NULL REFERENCES versions (id),
    PRIMARY KEY (kind, doc_id, version_id)
) WITHOUT ROWID;
INSERT INTO heads_new SELECT * FROM heads;
DROP TABLE heads;
ALTER TABLE heads_new RENAME TO heads;

CREATE TABLE version_parents_new (
    version_id TEXT NOT NULL REFERENCES versions (id),
    parent_id  TEXT NOT NULL REFERENCES versions (id),
    PRIMARY KEY (version_id, parent_id)
) WITHOUT ROWID;
INSERT INTO version_parents_new SELECT * FROM version_parents;
DROP TABLE version_parents;
ALTER TABLE version_parents_new RENAME TO version_parents;
CREATE INDEX version_parents_parent ON version_parents (parent_id);

CREATE TABLE outbox_new (
    peer        TEXT NOT NULL,
    version_id  TEXT NOT NULL REFERENCES versions (id),
    hlc         BIGINT NOT NULL,                -- the version's stamp: parents sort before children
    enqueued_at TIMESTAMP NOT NULL,
    PRIMARY KEY (peer, version_id)
) WITHOUT ROWID;
INSERT INTO outbox_new SELECT * FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_order ON outbox (peer, hlc, version_id);
