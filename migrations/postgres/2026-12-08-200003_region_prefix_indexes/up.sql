-- Region filters and account scopes are prefixes (`hukou_region LIKE '410105%'`). Under a
-- collation other than C (C.UTF-8 included) PostgreSQL answers LIKE from a btree only with the
-- pattern operator class, so the plain region indexes gave way to sequential scans: a county's
-- page of the files list and a district's statistics read the whole table. The pattern indexes
-- serve equality as well, so they replace the plain ones (no extra write cost).
DROP INDEX IF EXISTS children_hukou;
DROP INDEX IF EXISTS children_residence;
CREATE INDEX children_hukou_prefix ON children (hukou_region text_pattern_ops);
CREATE INDEX children_residence_prefix ON children (residence_region text_pattern_ops);
CREATE INDEX children_residence_township_prefix ON children (residence_township text_pattern_ops);
CREATE INDEX children_hukou_township_prefix ON children (hukou_township text_pattern_ops);
DROP INDEX IF EXISTS children_residence_township;
DROP INDEX IF EXISTS children_hukou_township;
