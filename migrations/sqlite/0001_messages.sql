-- Failed messages as captured from error and dead-letter queues.
-- Times are unix milliseconds (UTC); bodies are stored byte-exact.
CREATE TABLE messages (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    vhost                TEXT    NOT NULL,
    queue                TEXT    NOT NULL,
    status               TEXT    NOT NULL DEFAULT 'failed'
        CHECK (status IN ('failed', 'replaying', 'replayed', 'discarded')),
    received_at          INTEGER NOT NULL,
    body                 BLOB    NOT NULL,
    properties           TEXT    NOT NULL,
    headers              TEXT    NOT NULL,
    delivery_exchange    TEXT    NOT NULL,
    delivery_routing_key TEXT    NOT NULL,
    original_exchange    TEXT,
    original_routing_key TEXT,
    reason               TEXT,
    stack_trace          TEXT,
    death_count          INTEGER NOT NULL DEFAULT 0,
    service              TEXT,
    message_id           TEXT,
    -- x-redrive-replay-id carried by a replayed copy that failed again.
    replay_id            TEXT,
    content_hash         BLOB    NOT NULL
);

CREATE INDEX messages_status_id ON messages (status, id);
CREATE INDEX messages_queue_id ON messages (vhost, queue, id);
CREATE INDEX messages_content_hash ON messages (content_hash);

-- Every action taken on a message: who, when, where to, and how it went.
CREATE TABLE message_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    at         INTEGER NOT NULL,
    action     TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    target     TEXT,
    result     TEXT    NOT NULL CHECK (result IN ('ok', 'error')),
    detail     TEXT
);

CREATE INDEX message_events_message ON message_events (message_id, id);
