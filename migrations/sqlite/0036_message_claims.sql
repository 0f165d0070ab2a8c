-- A single message's owner and hold (issue 30), beside a group's: the one
-- poison message an operator takes, or holds aside while its fix ships.
-- A held failed message is left out of the overview's waiting count and
-- the inflow alerts until `hold_until`, or until its replay is delivered
-- (`hold_until_replayed`). The row goes with its message.
CREATE TABLE message_claims (
    message_id          INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    owner               TEXT,
    owner_by            TEXT,
    owner_at            INTEGER,
    hold_until          INTEGER,
    hold_note           TEXT,
    held_by             TEXT,
    held_at             INTEGER,
    hold_until_replayed BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX message_claims_held ON message_claims (hold_until) WHERE hold_until IS NOT NULL;
