-- Push with an outbox (DESIGN §6): one row per (peer, version) still to deliver.
CREATE TABLE outbox (
    peer        TEXT NOT NULL,
    version_id  TEXT NOT NULL REFERENCES versions (id),
    hlc         BIGINT NOT NULL,                -- the version's stamp: parents sort before children
    enqueued_at TIMESTAMP NOT NULL,
    PRIMARY KEY (peer, version_id)
);
CREATE INDEX outbox_order ON outbox (peer, hlc, version_id);

-- Versions a peer refused, with its stable code: kept for people to look at, never retried.
CREATE TABLE outbox_rejected (
    peer        TEXT NOT NULL,
    version_id  TEXT NOT NULL,
    code        TEXT NOT NULL,
    reason      TEXT NOT NULL,
    rejected_at TIMESTAMP NOT NULL,
    PRIMARY KEY (peer, version_id)
);

-- Signed receipts received from peers (non-repudiation of receipt), and those this node issued.
CREATE TABLE receipts (
    id          TEXT PRIMARY KEY NOT NULL,      -- SHA-256 of the receipt's canonical bytes
    issuer      TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    issued_at   TIMESTAMP NOT NULL,
    accepted    BIGINT NOT NULL,
    rejected    BIGINT NOT NULL,
    body        TEXT NOT NULL,                  -- the signed receipt, JSON
    stored_at   TIMESTAMP NOT NULL
);
CREATE INDEX receipts_issuer ON receipts (issuer, issued_at);

-- Delivery state per peer, surviving restarts.
CREATE TABLE peer_status (
    peer            TEXT PRIMARY KEY NOT NULL,
    last_success_at TIMESTAMP,
    last_error      TEXT,
    last_error_at   TIMESTAMP,
    failures        BIGINT NOT NULL DEFAULT 0,
    delivered       BIGINT NOT NULL DEFAULT 0
);

-- Tree heads peers sent us (witnessing, DESIGN §8).
CREATE TABLE peer_tree_heads (
    peer       TEXT NOT NULL,
    size       BIGINT NOT NULL,
    root       TEXT NOT NULL,
    signed_at  TIMESTAMP NOT NULL,
    public_key TEXT NOT NULL,
    signature  TEXT NOT NULL,
    PRIMARY KEY (peer, size)
);
