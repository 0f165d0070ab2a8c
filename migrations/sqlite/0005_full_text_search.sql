-- Full-text search over body text, reason, stack trace, message id and header
-- values. External to `messages` (rowid = messages.id), written by the store.
-- PostgreSQL equivalent: a tsvector column with a GIN index.
CREATE VIRTUAL TABLE messages_fts USING fts5 (
    body, reason, stack_trace, message_id, headers,
    tokenize = 'unicode61'
);

-- Index what is already stored (headers as their JSON text).
INSERT INTO messages_fts (rowid, body, reason, stack_trace, message_id, headers)
SELECT id,
       CASE WHEN length(body) <= 1048576 THEN CAST(body AS TEXT) END,
       reason, stack_trace, message_id, headers
FROM messages;
