-- Witnessing (DESIGN §8, issue 20): checkpoints in the C2SP signed-note format beside the signed
-- tree heads, what this node cosigned as a witness of each peer, the cosignatures its own
-- checkpoints received, and the evidence of a peer's misbehaviour.

-- The signed checkpoint (signed note) of a tree head, signed with it.
ALTER TABLE tree_heads ADD COLUMN checkpoint TEXT;

-- As a witness: the latest checkpoint of each peer's log this node cosigned. Read and replaced
-- in one transaction per request (check and store atomic).
CREATE TABLE witnessed_logs (
    peer        TEXT PRIMARY KEY NOT NULL,
    size        BIGINT NOT NULL,
    root        TEXT NOT NULL,                 -- lower-case hex
    checkpoint  TEXT NOT NULL,                 -- the signed note as received
    cosigned_at TIMESTAMP NOT NULL
);

-- As a log: the cosignatures witnesses returned for this node's checkpoints.
CREATE TABLE cosignatures (
    witness     TEXT NOT NULL,
    size        BIGINT NOT NULL,
    root        TEXT NOT NULL,                 -- lower-case hex
    line        TEXT NOT NULL,                 -- the note signature line, '— name base64'
    cosigned_at TIMESTAMP NOT NULL,            -- the cosignature's own timestamp
    PRIMARY KEY (witness, size)
);

-- Evidence that a peer's log equivocated, rolled back or could not prove consistency. While a
-- peer has evidence not yet acknowledged, this node cosigns nothing for it.
CREATE TABLE witness_evidence (
    id              TEXT PRIMARY KEY NOT NULL, -- SHA-256 of the document
    peer            TEXT NOT NULL,
    kind            TEXT NOT NULL,             -- equivocation | rollback | inconsistent_proof
    detected_at     TIMESTAMP NOT NULL,
    document        TEXT NOT NULL,             -- JSON, hukou-sync/witness-evidence/v1
    acknowledged_at TIMESTAMP,
    acknowledged_by TEXT
);
CREATE INDEX witness_evidence_peer ON witness_evidence (peer);

-- Where the start-up self check resumes: the log verified up to `size` (events recomputed from
-- their columns, every signed head compared), kept as the peaks of its Merkle frontier (hex,
-- comma-separated, largest first), so a start hashes only the events added since.
CREATE TABLE audit_self_check (
    name       TEXT PRIMARY KEY NOT NULL,      -- 'log'
    size       BIGINT NOT NULL,
    peaks      TEXT NOT NULL,
    checked_at TIMESTAMP NOT NULL
);

-- Version integrity: the background job re-hashes stored versions (a body whose hash is not its
-- id was changed in the database) and keeps where it is and what it found.
CREATE TABLE version_check (
    name       TEXT PRIMARY KEY NOT NULL,      -- 'versions'
    after_id   TEXT NOT NULL,                  -- the last id checked ('' : start over)
    passes     BIGINT NOT NULL,                -- complete passes over every version
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE tampered_versions (
    version_id TEXT PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL,
    doc_id     TEXT NOT NULL,
    found_at   TIMESTAMP NOT NULL
);
CREATE INDEX tampered_versions_doc ON tampered_versions (kind, doc_id);
