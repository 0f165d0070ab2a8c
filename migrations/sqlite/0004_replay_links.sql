-- Replay-loop detection: which replay produced which copy, so a copy that
-- fails again (and carries x-redrive-replay-id) links back to its record.
ALTER TABLE message_events ADD COLUMN replay_id TEXT;
CREATE INDEX message_events_replay_id ON message_events (replay_id);
CREATE INDEX messages_replay_id ON messages (replay_id);

-- A job's replays and when they were confirmed, for the loop check.
ALTER TABLE job_items ADD COLUMN replay_id TEXT;
ALTER TABLE job_items ADD COLUMN settled_at INTEGER;
-- The loop check only looks at replays after this time (set on resume).
ALTER TABLE jobs ADD COLUMN loop_check_from INTEGER NOT NULL DEFAULT 0;
