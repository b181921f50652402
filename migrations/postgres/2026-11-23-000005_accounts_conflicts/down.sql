DROP TABLE conflicts;
DROP TABLE api_tokens;
DROP TABLE sessions;
DROP TABLE users;
