DROP INDEX children_refreshed;
ALTER TABLE children DROP COLUMN refreshed_on;
