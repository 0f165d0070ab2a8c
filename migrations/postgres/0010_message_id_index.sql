-- Links that last (issue 30): `/m/{message_id}` finds stored messages by
-- the AMQP message id their publisher gave them, in one index lookup.
-- Partial: messages without an id (Spring sets none by default) cost nothing.
CREATE INDEX messages_message_id ON messages (message_id) WHERE message_id IS NOT NULL;
