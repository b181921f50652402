DROP TABLE children;
DROP TABLE heads;
DROP TABLE version_parents;
DROP TABLE versions;
