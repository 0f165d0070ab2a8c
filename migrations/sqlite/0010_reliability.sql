-- Redelivery dedup: a stored row absorbs at most one redelivered copy of
-- itself (the copy the broker sends again when an ack was lost), so N
-- identical failures stay N rows.
ALTER TABLE messages ADD COLUMN absorbed_redelivery INTEGER NOT NULL DEFAULT 0;

-- A replay in flight names the instance that claimed it and when it was last
-- seen alive, so a sweep can settle rows an instance left behind.
ALTER TABLE messages ADD COLUMN replay_owner TEXT;
ALTER TABLE messages ADD COLUMN replay_heartbeat INTEGER;
-- The x-redrive-replay-id of a replay in flight, or of one whose outcome is
-- unknown (published, never confirmed): a manual retry reuses it so
-- consumers can de-duplicate.
ALTER TABLE messages ADD COLUMN pending_replay_id TEXT;
-- Set when a replay was published but never confirmed: the operator must
-- check before retrying (a retry reuses pending_replay_id).
ALTER TABLE messages ADD COLUMN replay_uncertain INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_replaying ON messages (replay_heartbeat) WHERE status = 'replaying';

-- The queues Redrive captures, kept so capture starts without the
-- management API, with why each is captured.
CREATE TABLE watched_queues (
    vhost  TEXT    NOT NULL,
    name   TEXT    NOT NULL,
    reason TEXT    NOT NULL,
    since  INTEGER NOT NULL,
    PRIMARY KEY (vhost, name)
);

-- An operator's choice for one queue, which wins over every rule.
CREATE TABLE watch_overrides (
    vhost TEXT    NOT NULL,
    name  TEXT    NOT NULL,
    watch INTEGER NOT NULL CHECK (watch IN (0, 1)),
    actor TEXT    NOT NULL,
    at    INTEGER NOT NULL,
    PRIMARY KEY (vhost, name)
);
