DROP TABLE peer_tree_heads;
DROP TABLE peer_status;
DROP TABLE receipts;
DROP TABLE outbox_rejected;
DROP TABLE outbox;
