-- PostgreSQL only (its pattern operator class for prefix LIKE); SQLite's indexes are unchanged.
-- Kept as a migration on both backends so their histories stay the same.
SELECT 1;
