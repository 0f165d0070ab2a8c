-- Bulk replay/discard jobs. The selection is snapshotted into job_items when
-- the job is created, so a job's scope never changes while it runs.
CREATE TABLE jobs (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    action             TEXT    NOT NULL CHECK (action IN ('replay', 'discard')),
    state              TEXT    NOT NULL
        CHECK (state IN ('running', 'paused', 'completed', 'cancelled', 'failed')),
    actor              TEXT    NOT NULL,
    selection          TEXT    NOT NULL,
    target_exchange    TEXT,
    target_routing_key TEXT,
    rate_per_sec       REAL,
    total              INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    finished_at        INTEGER,
    note               TEXT
);

CREATE TABLE job_items (
    job_id     INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    -- skipped: the message was no longer `failed` when its turn came.
    state      TEXT    NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'done', 'failed', 'skipped')),
    error      TEXT,
    PRIMARY KEY (job_id, message_id)
);

CREATE INDEX job_items_state ON job_items (job_id, state, message_id);
CREATE INDEX jobs_state ON jobs (state, id);
