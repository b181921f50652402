-- A version may carry a second signature by its author, of the other suite, during a
-- migration between signature suites (ed25519 ⇄ sm2-sm3): the text form of the signature
-- ('sm2:…' for SM2), or NULL for a version signed once.
ALTER TABLE versions ADD COLUMN second_signature TEXT;
