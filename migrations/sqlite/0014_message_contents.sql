-- What a publisher sent (body, properties, headers, stack trace) is written
-- once and never changes; a message's state changes several times (claimed,
-- replayed, discarded...). In one row, every state change rewrote the whole
-- record, overflow pages included (about 4 KB for a Spring failure), and
-- every list and count read past it. Apart, a state change rewrites a row of
-- a couple of hundred bytes, and lists stay in small pages.
CREATE TABLE message_contents (
    message_id  INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    body        BLOB    NOT NULL,
    properties  TEXT    NOT NULL,
    headers     TEXT    NOT NULL,
    stack_trace TEXT
);
INSERT INTO message_contents (message_id, body, properties, headers, stack_trace)
SELECT id, body, properties, headers, stack_trace FROM messages;

-- The one property the advisor counts over all failed messages.
ALTER TABLE messages ADD COLUMN persistent INTEGER NOT NULL DEFAULT 1;
UPDATE messages
SET persistent = CASE WHEN COALESCE(json_extract(properties, '$.delivery_mode'), 1) = 2 THEN 1 ELSE 0 END;

ALTER TABLE messages DROP COLUMN body;
ALTER TABLE messages DROP COLUMN properties;
ALTER TABLE messages DROP COLUMN headers;
ALTER TABLE messages DROP COLUMN stack_trace;
