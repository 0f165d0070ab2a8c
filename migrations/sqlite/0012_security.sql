-- Sign-in sessions, shared by every instance on this database. Only a hash
-- of the cookie's token is stored, so a copy of the database opens no session.
CREATE TABLE sessions (
    token_hash BLOB    PRIMARY KEY,
    user       TEXT    NOT NULL,
    -- The token forms and server functions echo (double submit).
    csrf       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    source     TEXT
);
CREATE INDEX sessions_last_seen ON sessions (last_seen);

-- Who did what, from where, to what, and how it went. Append-only: nothing
-- in Redrive updates an entry; retention deletes old ones and logs that it did.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    user        TEXT    NOT NULL,
    source      TEXT,
    action      TEXT    NOT NULL,
    vhost       TEXT,
    object      TEXT,
    exchange    TEXT,
    routing_key TEXT,
    result      TEXT    NOT NULL CHECK (result IN ('ok', 'failed', 'refused')),
    detail      TEXT
);
CREATE INDEX audit_user_id ON audit (user, id);
CREATE INDEX audit_action_id ON audit (action, id);
CREATE INDEX audit_at ON audit (at);

CREATE TRIGGER audit_append_only BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only');
END;
