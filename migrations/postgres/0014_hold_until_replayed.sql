-- A hold may also end when a fix is replayed (issue 30): the first message
-- of the group that a replay delivers (the broker confirmed it) ends the
-- hold, whichever instance or job sent it; `hold_until` stays its latest end.
ALTER TABLE group_claims ADD COLUMN hold_until_replayed BOOLEAN NOT NULL DEFAULT FALSE;
