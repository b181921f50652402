-- The six-month rule: the later of the file's last visit and the date the residence side last
-- confirmed its facts (record fields last_visit_on and info_updated_on). Storing, replicating or
-- merging a version never moves it. Existing files keep what the old rule counted (their last
-- change) until their next version.
ALTER TABLE children ADD COLUMN refreshed_on DATE;
UPDATE children SET refreshed_on = GREATEST(last_visit_on, updated_at::date);
CREATE INDEX children_refreshed ON children (refreshed_on);
