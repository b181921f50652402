DROP INDEX children_risk;
-- Back to the default palette's labels.
UPDATE children SET risk_level = CASE risk_level
    WHEN '1' THEN '红'
    WHEN '2' THEN '橙'
    WHEN '3' THEN '黄'
    WHEN '4' THEN '绿'
    ELSE NULL
END
WHERE risk_level IS NOT NULL;
