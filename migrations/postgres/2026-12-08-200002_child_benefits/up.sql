-- The benefits each child holds now (grants not ended), one row per child and benefit, kept with
-- the children view: lists filter by benefit and statistics count them without reading records.
-- Files stored before this table are filled once at the next start
-- (`sync::view::backfill_benefits`).
CREATE TABLE child_benefits (
    id_number TEXT NOT NULL,
    benefit TEXT NOT NULL,
    PRIMARY KEY (id_number, benefit)
);
CREATE INDEX child_benefits_by_benefit ON child_benefits (benefit, id_number);
