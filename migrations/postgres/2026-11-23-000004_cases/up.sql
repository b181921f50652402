-- The current view of each eligibility case, for queries (DESIGN §5). Rebuilt from its versions.
CREATE TABLE cases (
    case_id      TEXT PRIMARY KEY NOT NULL,
    child_id     TEXT NOT NULL,
    benefit      TEXT NOT NULL,
    requester    TEXT NOT NULL,
    decider      TEXT NOT NULL,
    state        TEXT NOT NULL,
    submitted_at TIMESTAMP NOT NULL,
    due_on       DATE NOT NULL,
    head_count   BIGINT NOT NULL,
    body         TEXT NOT NULL,
    updated_at   TIMESTAMP NOT NULL
);
CREATE INDEX cases_requester ON cases (requester, state);
CREATE INDEX cases_decider ON cases (decider, state);
CREATE INDEX cases_child ON cases (child_id);
