DROP TABLE node_meta;
