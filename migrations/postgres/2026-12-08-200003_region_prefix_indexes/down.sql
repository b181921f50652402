DROP INDEX IF EXISTS children_hukou_prefix;
DROP INDEX IF EXISTS children_residence_prefix;
DROP INDEX IF EXISTS children_residence_township_prefix;
DROP INDEX IF EXISTS children_hukou_township_prefix;
CREATE INDEX children_hukou ON children (hukou_region);
CREATE INDEX children_residence ON children (residence_region);
CREATE INDEX children_residence_township ON children (residence_township);
CREATE INDEX children_hukou_township ON children (hukou_township);
