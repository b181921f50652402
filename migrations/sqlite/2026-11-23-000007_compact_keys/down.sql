-- Back to rowid tables and a BIGINT audit sequence (the schema of the earlier migrations).

CREATE TABLE audit_events_new (
    seq            BIGINT PRIMARY KEY NOT NULL,  -- leaf index in the Merkle tree, gapless from 0
    hlc            BIGINT NOT NULL,
    at             TIMESTAMP NOT NULL,
    actor_kind     TEXT NOT NULL,
    actor_id       TEXT NOT NULL,
    via            TEXT NOT NULL,
    action         TEXT NOT NULL,
    object_kind    TEXT,
    object_id      TEXT,
    purpose        TEXT,
    outcome        TEXT NOT NULL,
    details        TEXT NOT NULL,
    details_digest TEXT NOT NULL,
    leaf_hash      TEXT NOT NULL
);
INSERT INTO audit_events_new SELECT * FROM audit_events;
DROP TABLE audit_events;
ALTER TABLE audit_events_new RENAME TO audit_events;
CREATE INDEX audit_events_object ON audit_events (object_kind, object_id);
CREATE INDEX audit_events_at ON audit_events (at);

CREATE TABLE audit_nodes_new (
    level BIGINT NOT NULL,
    idx   BIGINT NOT NULL,
    hash  TEXT NOT NULL,
    PRIMARY KEY (level, idx)
);
INSERT INTO audit_nodes_new SELECT * FROM audit_nodes;
DROP TABLE audit_nodes;
ALTER TABLE audit_nodes_new RENAME TO audit_nodes;

CREATE TABLE heads_new (
    kind       TEXT NOT NULL,
    doc_id     TEXT NOT NULL,
    version_id TEXT NOT NULL REFERENCES versions (id),
    PRIMARY KEY (kind, doc_id, version_id)
);
INSERT INTO heads_new SELECT * FROM heads;
DROP TABLE heads;
ALTER TABLE heads_new RENAME TO heads;

CREATE TABLE version_parents_new (
    version_id TEXT NOT NULL REFERENCES versions (id),
    parent_id  TEXT NOT NULL REFERENCES versions (id),
    PRIMARY KEY (version_id, parent_id)
);
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
);
INSERT INTO outbox_new SELECT * FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_order ON outbox (peer, hlc, version_id);

CREATE TABLE recon_dirty_new (
    kind   TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    gen    BIGINT NOT NULL,
    PRIMARY KEY (kind, doc_id)
);
INSERT INTO recon_dirty_new SELECT * FROM recon_dirty;
DROP TABLE recon_dirty;
ALTER TABLE recon_dirty_new RENAME TO recon_dirty;
