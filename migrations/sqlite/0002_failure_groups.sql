-- Failure groups: a fingerprint per message (see server/src/ingest/fingerprint.rs).
-- Rows stored before this migration are fingerprinted by Redrive at start-up.
ALTER TABLE messages ADD COLUMN exception_type TEXT;
ALTER TABLE messages ADD COLUMN group_id TEXT;
ALTER TABLE messages ADD COLUMN group_title TEXT;

CREATE INDEX messages_group_id ON messages (group_id, id);
CREATE INDEX messages_service_id ON messages (service, id);
CREATE INDEX messages_received_at ON messages (received_at);
