DROP TABLE tree_heads;
DROP TABLE audit_nodes;
DROP TABLE audit_events;
