-- PostgreSQL only (see migrations/postgres/2026-12-11-100001_write_path_references): SQLite's
-- deferred keys take no lock. The folder exists so both backends share one migration history.
SELECT 1;
