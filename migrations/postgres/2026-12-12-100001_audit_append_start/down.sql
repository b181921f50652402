DROP FUNCTION audit_append_start(integer);
