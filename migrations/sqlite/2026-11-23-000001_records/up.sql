-- Versions of documents (DESIGN §3): immutable, content-addressed, never deleted.
CREATE TABLE versions (
    id           TEXT PRIMARY KEY NOT NULL,     -- lower-case hex SHA-256 of the JCS bytes
    kind         TEXT NOT NULL,                 -- 'child' | 'case'
    doc_id       TEXT NOT NULL,
    author_node  TEXT NOT NULL,
    hlc          BIGINT NOT NULL,               -- wall_ms << 16 | counter
    parents      TEXT NOT NULL,                 -- JSON array of version ids, sorted
    body         TEXT NOT NULL,                 -- the full snapshot, JSON
    resolution   BIGINT NOT NULL DEFAULT 0,     -- 1 for a conflict resolution version
    signature    TEXT,                          -- base64url Ed25519 over "hukou-sync/v1/version\0" || id
    stored_at    TIMESTAMP NOT NULL
);
CREATE INDEX versions_doc ON versions (kind, doc_id, hlc);

CREATE TABLE version_parents (
    version_id TEXT NOT NULL REFERENCES versions (id),
    parent_id  TEXT NOT NULL REFERENCES versions (id),
    PRIMARY KEY (version_id, parent_id)
);
CREATE INDEX version_parents_parent ON version_parents (parent_id);

-- Versions that no other version names as a parent.
CREATE TABLE heads (
    kind       TEXT NOT NULL,
    doc_id     TEXT NOT NULL,
    version_id TEXT NOT NULL REFERENCES versions (id),
    PRIMARY KEY (kind, doc_id, version_id)
);

-- The current view of each child's file, for queries. Rebuilt from the versions on every change.
CREATE TABLE children (
    id_number        TEXT PRIMARY KEY NOT NULL,
    name             TEXT NOT NULL,
    hukou_region     TEXT NOT NULL,
    residence_region TEXT NOT NULL,
    categories       TEXT NOT NULL,             -- '|flowing|left_behind|' for LIKE filters
    risk_level       TEXT,
    last_visit_on    DATE,
    record           TEXT NOT NULL,             -- the merged record, JSON
    head_count       BIGINT NOT NULL,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL
);
CREATE INDEX children_hukou ON children (hukou_region);
CREATE INDEX children_residence ON children (residence_region);
CREATE INDEX children_updated ON children (updated_at);
