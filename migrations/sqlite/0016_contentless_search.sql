-- The full-text table kept its own copy of every indexed text (body, stack
-- trace, header values): about 4 KB per Spring failure on top of
-- message_contents. Searches only ever need rowids, so the index is now
-- contentless; `contentless_delete` keeps retention's purge able to remove
-- rows. Re-indexing takes about a minute per million messages, once.
DROP TABLE messages_fts;
CREATE VIRTUAL TABLE messages_fts USING fts5 (
    body, reason, stack_trace, message_id, headers,
    tokenize = 'unicode61',
    content = '',
    contentless_delete = 1
);
INSERT INTO messages_fts (rowid, body, reason, stack_trace, message_id, headers)
SELECT m.id,
       CASE WHEN length(c.body) <= 1048576 THEN CAST(c.body AS TEXT) END,
       m.reason, c.stack_trace, m.message_id, c.headers
FROM messages m JOIN message_contents c ON c.message_id = m.id;
