DROP TABLE child_benefits;
