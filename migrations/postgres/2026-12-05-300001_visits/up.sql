-- Visits (走访): one view row per visit document, rebuilt from its versions (the author's latest).
CREATE TABLE visits (
    visit_id     TEXT PRIMARY KEY NOT NULL,
    child_id     TEXT NOT NULL,
    recorded_by  TEXT NOT NULL,
    visited_on   DATE NOT NULL,
    kind         TEXT NOT NULL,
    visitor_role TEXT NOT NULL,
    -- The assessment's level on the common scale ("1".."4"), when the visit assessed risk.
    risk_level   TEXT,
    next_due_on  DATE,
    head         TEXT NOT NULL,
    body         TEXT NOT NULL,
    recorded_at  TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL
);
CREATE INDEX visits_child ON visits (child_id, visited_on);
-- When the child's next visit is due under this node's visit schedule (NULL: no rule applies),
-- and the responsible worker's name, for the due list.
ALTER TABLE children ADD COLUMN visit_due_on DATE;
ALTER TABLE children ADD COLUMN responsible_worker TEXT;
CREATE INDEX children_visit_due ON children (visit_due_on, id_number);
CREATE INDEX children_responsible_worker ON children (responsible_worker);
