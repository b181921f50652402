ALTER TABLE heads ADD CONSTRAINT heads_version_id_fkey FOREIGN KEY (version_id) REFERENCES versions (id);
