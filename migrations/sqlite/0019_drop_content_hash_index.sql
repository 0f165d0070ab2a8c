-- Every capture paid for a 32-byte key in this index; since 0018 the one
-- query on content_hash (a redelivered copy looking for its row) uses the
-- partial index messages_ack_pending, which holds only rows whose ack is
-- not yet settled.
DROP INDEX IF EXISTS messages_content_hash;
