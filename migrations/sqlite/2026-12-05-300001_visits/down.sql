DROP INDEX children_responsible_worker;
DROP INDEX children_visit_due;
ALTER TABLE children DROP COLUMN responsible_worker;
ALTER TABLE children DROP COLUMN visit_due_on;
DROP TABLE visits;
