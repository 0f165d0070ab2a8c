-- A captured row's ack goes through three states instead of two:
--   1 committed, its ack not sent: a redelivered twin is its copy (absorbed);
--   2 its ack sent, the broker's processing of it not confirmed: a
--     redelivered twin may be its copy or another failure; it is stored and
--     flagged (possible_copy_of), never dropped and never silently doubled;
--   0 the broker confirmed the ack (or the row did not come from a
--     delivery): a redelivered twin is another failure.
ALTER TABLE messages RENAME COLUMN ack_unsettled TO ack_state;
DROP INDEX messages_ack_unsettled;
CREATE INDEX messages_ack_pending ON messages (vhost, queue, content_hash) WHERE ack_state > 0;
-- The row this one may be a redelivered copy of (see state 2 above).
ALTER TABLE messages ADD COLUMN possible_copy_of INTEGER;
