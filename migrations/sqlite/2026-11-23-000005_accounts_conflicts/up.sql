-- People who use the admin pages (DESIGN §8: logins are audited). Passwords are argon2id PHC
-- strings; nothing else about a password is kept.
CREATE TABLE users (
    username        TEXT PRIMARY KEY NOT NULL,
    display_name    TEXT NOT NULL,
    role            TEXT NOT NULL,               -- caseworker | reviewer | auditor | administrator
    password_hash   TEXT NOT NULL,               -- argon2id PHC string
    failed_logins   BIGINT NOT NULL DEFAULT 0,   -- consecutive failures since the last success
    locked_until    TIMESTAMP,                   -- set after too many failures
    disabled        BIGINT NOT NULL DEFAULT 0,
    created_at      TIMESTAMP NOT NULL
);

-- Browser sessions. The cookie holds a random secret; only its SHA-256 is stored.
CREATE TABLE sessions (
    id_hash      TEXT PRIMARY KEY NOT NULL,
    username     TEXT NOT NULL REFERENCES users (username),
    csrf_token   TEXT NOT NULL,                  -- random, sent in every form
    created_at   TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL
);
CREATE INDEX sessions_user ON sessions (username);

-- Bearer tokens of the bureau's local systems: hashed at rest, scoped to a role, revocable.
CREATE TABLE api_tokens (
    name         TEXT PRIMARY KEY NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,           -- SHA-256 of the secret
    role         TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    revoked_at   TIMESTAMP,
    last_used_at TIMESTAMP
);

-- Open conflicts of children's files (DESIGN §4), as the merged view finds them: rebuilt with
-- the file's view on every change. The owner is the node whose reviewers may resolve it.
CREATE TABLE conflicts (
    doc_id       TEXT NOT NULL,
    field        TEXT NOT NULL,
    merge_point  TEXT NOT NULL,                  -- version id, or '' for the current head set
    owner        TEXT NOT NULL,                  -- node id
    base         TEXT NOT NULL,                  -- JSON: the common ancestor's value
    candidates   TEXT NOT NULL,                  -- JSON: [{side, author, hlc, value}]
    opened_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (doc_id, field, merge_point)
);
CREATE INDEX conflicts_owner ON conflicts (owner, opened_at, doc_id);
