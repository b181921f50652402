-- Evidence files (证明材料, issue 22 #4). A file is stored once per node, by its SHA-256, encrypted
-- with AES-256-GCM under the node's key file (never in the database): the random 96-bit nonce
-- beside the ciphertext (with its tag), the SHA-256 as associated data. source_node: the peer
-- it was fetched from (NULL: uploaded here).
CREATE TABLE evidence_files (
    sha256      TEXT PRIMARY KEY NOT NULL,
    media_type  TEXT NOT NULL,
    size        BIGINT NOT NULL,
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    stored_at   TIMESTAMP NOT NULL,
    source_node TEXT
);
-- Which files each case names (its grounds and its answers), kept with the case's view row.
CREATE TABLE case_evidence (
    case_id TEXT NOT NULL,
    sha256  TEXT NOT NULL,
    PRIMARY KEY (case_id, sha256)
);
CREATE INDEX case_evidence_sha256 ON case_evidence (sha256);
-- The decider's attempts to fetch a file from the requester: the last outcome (fetched, failed,
-- mismatch), how many attempts, when, and why (no personal data).
CREATE TABLE evidence_fetches (
    sha256          TEXT PRIMARY KEY NOT NULL,
    peer            TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    last_attempt_at TIMESTAMP NOT NULL,
    detail          TEXT
);
