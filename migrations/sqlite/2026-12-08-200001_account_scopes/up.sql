-- The region scope of an account (domain::Scope's text form): region prefixes (2, 4 or 6
-- digits) and township prefixes (9 digits) joined by ','; '' is the whole node.
ALTER TABLE users ADD COLUMN scope TEXT NOT NULL DEFAULT '';
ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT '';
