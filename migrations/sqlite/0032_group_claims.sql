-- Owners and holds (issue 30): who is on a failure group, and a hold that
-- keeps it out of the overview's counts, the default group list and the
-- alerts until `hold_until`. `held_after_id` is the highest message id when
-- the hold began: what arrived since is counted above it, on the
-- (group_id, id) index.
CREATE TABLE group_claims (
    group_id      TEXT    PRIMARY KEY,
    owner         TEXT,
    owner_by      TEXT,
    owner_at      INTEGER,
    hold_until    INTEGER,
    hold_note     TEXT,
    held_by       TEXT,
    held_at       INTEGER,
    held_after_id INTEGER
);
CREATE INDEX group_claims_held ON group_claims (hold_until) WHERE hold_until IS NOT NULL;
