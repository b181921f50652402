-- Reports and referrals (强制报告与转介): one view row per report document (its recording node's
-- latest version).
CREATE TABLE reports (
    report_id      TEXT PRIMARY KEY NOT NULL,
    child_id       TEXT NOT NULL,
    recorded_by    TEXT NOT NULL,
    reported_on    DATE NOT NULL,
    reporter_kind  TEXT NOT NULL,
    -- 1 for an urgent report, 0 otherwise (urgent ones head the list).
    urgent         BIGINT NOT NULL,
    police_called  BIGINT NOT NULL,
    referral_target TEXT,
    head           TEXT NOT NULL,
    body           TEXT NOT NULL,
    recorded_at    TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL
);
CREATE INDEX reports_child ON reports (child_id, reported_on);
CREATE INDEX reports_list ON reports (urgent, report_id);
