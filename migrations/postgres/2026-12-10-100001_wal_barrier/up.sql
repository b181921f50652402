-- A tiny write per flush (storage::flush_wal): on PostgreSQL a transaction that appended to the
-- audit log commits without waiting for the disk, so that the log's lock is not held through a
-- flush; the connection then updates its slot here (its backend pid modulo 1024) with its own
-- synchronous_commit, and that commit waits until the WAL up to it — every earlier commit of the
-- connection included — is flushed and at synchronous standbys. (A commit that wrote no WAL
-- would not wait.) Unused on SQLite; kept so both backends share one schema.
CREATE TABLE wal_barrier (
    slot BIGINT PRIMARY KEY NOT NULL,
    n BIGINT NOT NULL
);
