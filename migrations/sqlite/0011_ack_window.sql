-- A captured row is "unsettled" from its commit until Redrive is about to
-- ack its delivery. Only an unsettled row may absorb a redelivered copy: a
-- crash in that window is the one way the broker can redeliver a message
-- Redrive already holds. Any other redelivery (another consumer's requeue, a
-- nack, a consumer that died) is a distinct failure and gets its own row.
ALTER TABLE messages ADD COLUMN ack_unsettled INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_ack_unsettled ON messages (vhost, queue, content_hash) WHERE ack_unsettled = 1;
