-- Every captured row is written into each index of `messages`; two of them
-- cost capture more than they served.
--
-- A 32-byte key per row, for one query (a redelivered copy looking for its
-- row) that since 0018 reads the partial index messages_ack_pending, which
-- holds only the rows whose ack is not settled.
DROP INDEX IF EXISTS messages_content_hash;
-- Captured failures carry no x-redrive-replay-id; only replayed copies that
-- failed again do, and only they are ever looked up by it.
DROP INDEX IF EXISTS messages_replay_id;
CREATE INDEX messages_replay_id ON messages (replay_id) WHERE replay_id IS NOT NULL;
