-- Leases of the work only one process of a node may do at a time (DESIGN §9): sending to a
-- peer (`send:<peer>`) and each singleton job (`job:tree_heads`, ...). A process holds a lease
-- until `expires_at` and renews it well before; another process takes it only once it has
-- expired. `fence` grows by one at every change of holder: a holder settles work only while
-- the lease still carries its fence (the fencing check), so a process that stalled past its
-- lease cannot settle what its successor now owns.
CREATE TABLE leases (
    name TEXT PRIMARY KEY NOT NULL,
    holder TEXT NOT NULL,
    fence BIGINT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
