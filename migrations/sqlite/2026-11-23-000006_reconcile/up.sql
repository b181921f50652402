-- Reconciliation (DESIGN §7): the per-peer Merkle summary, maintained incrementally, the runs'
-- reports and the per-peer run lock.

-- Documents whose heads changed since the summary last caught up. `gen` grows on every change,
-- so catching up removes a row only if no change came in while it was being processed.
CREATE TABLE recon_dirty (
    kind   TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    gen    BIGINT NOT NULL,
    PRIMARY KEY (kind, doc_id)
);
-- Every document already stored is dirty once, so an existing database builds its summary on
-- the first run.
INSERT INTO recon_dirty (kind, doc_id, gen) SELECT DISTINCT kind, doc_id, 1 FROM heads;

-- The summary's leaves: one row per (peer, document) both this node and the peer are party to.
CREATE TABLE recon_docs (
    peer   TEXT NOT NULL,
    kind   TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    bucket BIGINT NOT NULL,                 -- first 16 bits of SHA-256 of the document id
    heads  TEXT NOT NULL,                   -- sorted head ids, comma-separated
    leaf   TEXT NOT NULL,                   -- hex SHA-256 over (kind, doc_id, heads)
    PRIMARY KEY (peer, kind, doc_id)
);
CREATE INDEX recon_docs_bucket ON recon_docs (peer, bucket);
CREATE INDEX recon_docs_doc ON recon_docs (kind, doc_id);

-- Per peer and bucket: XOR of the leaves in the bucket and their count (empty buckets absent).
CREATE TABLE recon_buckets (
    peer   TEXT NOT NULL,
    bucket BIGINT NOT NULL,
    acc    TEXT NOT NULL,
    docs   BIGINT NOT NULL,
    PRIMARY KEY (peer, bucket)
);

-- One row whose update serialises catching up across processes (the CLI and the server).
CREATE TABLE recon_meta (
    name  TEXT PRIMARY KEY NOT NULL,
    value BIGINT NOT NULL
);
INSERT INTO recon_meta (name, value) VALUES ('catch_up', 0);

-- One row per run, with its report (JSON).
CREATE TABLE recon_runs (
    id          TEXT PRIMARY KEY NOT NULL,  -- UUIDv7
    peer        TEXT NOT NULL,
    started_by  TEXT NOT NULL,              -- cli | api | schedule
    dry_run     BIGINT NOT NULL,
    status      TEXT NOT NULL,              -- running | ok | failed | interrupted
    started_at  TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    differences BIGINT NOT NULL,
    report      TEXT NOT NULL
);
CREATE INDEX recon_runs_peer ON recon_runs (peer, started_at);
CREATE INDEX recon_runs_started ON recon_runs (started_at);

-- At most one run per peer, across processes: a lease the run renews; an expired lease (a
-- killed process) is taken over.
CREATE TABLE recon_locks (
    peer       TEXT PRIMARY KEY NOT NULL,
    run_id     TEXT NOT NULL,
    started_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
