DROP TABLE evidence_fetches;
DROP TABLE case_evidence;
DROP TABLE evidence_files;
