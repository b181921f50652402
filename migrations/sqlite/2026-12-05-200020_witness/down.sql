DROP TABLE tampered_versions;
DROP TABLE version_check;
DROP TABLE audit_self_check;
DROP TABLE witness_evidence;
DROP TABLE cosignatures;
DROP TABLE witnessed_logs;
ALTER TABLE tree_heads DROP COLUMN checkpoint;
