-- The townships (9-digit NBS codes) a file names, for lists filtered by township. Files written
-- before townships existed name none.
ALTER TABLE children ADD COLUMN residence_township TEXT;
ALTER TABLE children ADD COLUMN hukou_township TEXT;
CREATE INDEX children_residence_township ON children (residence_township);
CREATE INDEX children_hukou_township ON children (hukou_township);
