-- The advisor also reports publishers (e.g. publishing without confirms).
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt,
-- keeping ids so alert keys and links stay valid.
CREATE TABLE findings_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    vhost       TEXT    NOT NULL,
    object_type TEXT    NOT NULL CHECK (object_type IN ('queue', 'exchange', 'publisher')),
    object      TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    severity    TEXT    NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    message     TEXT    NOT NULL,
    fix         TEXT    NOT NULL,
    action      TEXT,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    resolved_at INTEGER
);

INSERT INTO findings_new (id, vhost, object_type, object, kind, severity, message, fix, action,
                          first_seen, last_seen, resolved_at)
SELECT id, vhost, object_type, object, kind, severity, message, fix, action, first_seen, last_seen, resolved_at
FROM findings;

DROP TABLE findings;
ALTER TABLE findings_new RENAME TO findings;

CREATE UNIQUE INDEX findings_open ON findings (vhost, object_type, object, kind) WHERE resolved_at IS NULL;
CREATE INDEX findings_resolved ON findings (resolved_at);
