-- SQLite only (see migrations/sqlite/2026-11-23-000007_compact_keys): PostgreSQL tables have
-- no rowid, so there is nothing to compact here. The folder exists so both backends share one
-- migration history.
SELECT 1;
