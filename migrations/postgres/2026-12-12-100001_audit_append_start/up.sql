-- The start of an audit append in one round trip (`storage::audit::begin_append`).
--
-- Every writing transaction appends its audit events last, under the log's lock, and holds the
-- lock until it commits: the round trips made under it bound how many transactions a node
-- commits per second. Taking the lock and reading what the append builds on were two
-- statements, because a statement's snapshot is taken when it starts: one that also waited for
-- the lock would miss the previous holder's events. A VOLATILE PL/pgSQL function takes a new
-- snapshot for each statement it runs, so here the read after the lock sees them.
--
-- What it does, in order: remember the connection's `synchronous_commit` (returned as `was`)
-- and make this transaction's commit asynchronous (its durability is paid after the lock is
-- gone, `storage::flush_wal`); take the lock, `(lock_class, hash of the schema)`; read the log's
-- size, its content hash and the hashes of the subtrees of its right edge (one row each, or one
-- row of nulls for an empty log).
CREATE FUNCTION audit_append_start(lock_class integer)
RETURNS TABLE (was text, size bigint, content_hash text, level bigint, idx bigint, hash text)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    prior text := current_setting('synchronous_commit');
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM pg_advisory_xact_lock(lock_class, hashtext(current_schema()));
    RETURN QUERY
    WITH s AS (SELECT coalesce(max(ev.seq) + 1, 0)::bigint AS size FROM audit_events ev),
         e AS (SELECT l::bigint AS level, (s.size >> (l + 1)) << 1 AS idx
               FROM s, generate_series(0, 62) AS l WHERE (s.size >> l) & 1 = 1)
    SELECT prior, s.size,
           (SELECT m.value FROM node_meta m WHERE m.name = 'content_hash'),
           e.level, e.idx,
           CASE WHEN e.level = 0
                THEN (SELECT ev.leaf_hash FROM audit_events ev WHERE ev.seq = e.idx)
                ELSE (SELECT n.hash FROM audit_nodes n
                      WHERE n.level = e.level AND n.idx = e.idx) END
    FROM s LEFT JOIN e ON true;
END
$$;
