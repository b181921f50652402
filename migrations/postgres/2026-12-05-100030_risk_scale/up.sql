-- Risk on one scale (issue 21 #4): the view column holds the level on the common scale, "1" (most
-- severe) to "4", no longer a node's local label. Labels of the default palette map to their
-- levels; any other text (another palette's label) cannot be read without its palette → NULL.
-- Version bodies and the view's merged record are not rewritten: pre-1.0, a body carrying a
-- label is not read any more (README, "Risk levels"); such files are imported again.
UPDATE children SET risk_level = CASE risk_level
    WHEN '红' THEN '1'
    WHEN '橙' THEN '2'
    WHEN '黄' THEN '3'
    WHEN '绿' THEN '4'
    ELSE NULL
END
WHERE risk_level IS NOT NULL;
-- The per-level gauge (hukou_children_risk) groups graded files by level and regions at every
-- scrape, and the red-risk list filters by level: both read this index alone.
CREATE INDEX children_risk ON children (risk_level, hukou_region, residence_region);
