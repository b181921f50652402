DROP TABLE recon_locks;
DROP TABLE recon_runs;
DROP TABLE recon_meta;
DROP TABLE recon_buckets;
DROP TABLE recon_docs;
DROP TABLE recon_dirty;
