-- Facts about this node's stored data that must never silently change. One row today:
-- name 'content_hash', value 'sha256' or 'sm3' — the hash its version ids, receipt ids, audit
-- tree and reconciliation summary were made with, fixed when the node first starts under a
-- directory (or found to be 'sha256' for data stored before the directory could say). A node
-- whose directory declares another hash refuses to start.
CREATE TABLE node_meta (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
