-- PostgreSQL only (see migrations/postgres/2026-12-12-100001_audit_append_start): SQLite's
-- appender holds the one writer's lock already and reads in process, with no round trips.
SELECT 1;
