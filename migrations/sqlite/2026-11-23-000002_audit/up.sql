-- The audit log (DESIGN §8): append-only; the application never updates or deletes a row.
CREATE TABLE audit_events (
    seq            BIGINT PRIMARY KEY NOT NULL,  -- leaf index in the Merkle tree, gapless from 0
    hlc            BIGINT NOT NULL,
    at             TIMESTAMP NOT NULL,
    actor_kind     TEXT NOT NULL,                -- user | node | system | token
    actor_id       TEXT NOT NULL,
    via            TEXT NOT NULL,                -- api | cli | peer | ui | job
    action         TEXT NOT NULL,
    object_kind    TEXT,
    object_id      TEXT,
    purpose        TEXT,
    outcome        TEXT NOT NULL,
    details        TEXT NOT NULL,                -- JSON; its SHA-256 is in the leaf
    details_digest TEXT NOT NULL,
    leaf_hash      TEXT NOT NULL                 -- RFC 9162 leaf hash of the canonical event
);
-- Who touched a given file, and time ranges. Filters by actor or action scan in sequence order:
-- two more indexes would slow every audited action to speed up a rare administrative query.
CREATE INDEX audit_events_object ON audit_events (object_kind, object_id);
CREATE INDEX audit_events_at ON audit_events (at);

-- Hashes of complete, aligned subtrees (level >= 1), so proofs need O(log n) reads.
CREATE TABLE audit_nodes (
    level BIGINT NOT NULL,
    idx   BIGINT NOT NULL,
    hash  TEXT NOT NULL,
    PRIMARY KEY (level, idx)
);

-- Signed tree heads of this node's log.
CREATE TABLE tree_heads (
    size       BIGINT PRIMARY KEY NOT NULL,
    root       TEXT NOT NULL,
    signed_at  TIMESTAMP NOT NULL,
    public_key TEXT NOT NULL,
    signature  TEXT NOT NULL
);
