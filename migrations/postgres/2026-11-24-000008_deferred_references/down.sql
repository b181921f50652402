-- SQLite only (see migrations/sqlite/2026-11-24-000008_deferred_references): PostgreSQL keeps
-- no statement journal, so its immediate foreign keys cost nothing extra. The folder exists so
-- both backends share one migration history.
SELECT 1;
