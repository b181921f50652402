DROP INDEX children_hukou_township;
DROP INDEX children_residence_township;
ALTER TABLE children DROP COLUMN hukou_township;
ALTER TABLE children DROP COLUMN residence_township;
