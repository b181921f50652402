ALTER TABLE versions DROP COLUMN second_signature;
