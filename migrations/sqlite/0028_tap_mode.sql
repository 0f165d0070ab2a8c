-- Tap mode (issue 29): a queue may be captured by copy, through a queue of
-- Redrive's own bound wherever the service's queue is.

-- An operator's choice of mode for one queue; a queue without a row takes
-- REDRIVE_CAPTURE_MODE.
CREATE TABLE capture_modes (
    vhost TEXT    NOT NULL,
    name  TEXT    NOT NULL,
    mode  TEXT    NOT NULL CHECK (mode IN ('consume', 'tap')),
    actor TEXT    NOT NULL,
    at    INTEGER NOT NULL,
    PRIMARY KEY (vhost, name)
);

-- A switch from consume to tap under way: the marker published to the
-- queue and its tap at once (see `ingest::switch`), and which side has
-- passed it. Kept until both have, so a restart resumes the cut.
CREATE TABLE capture_switches (
    vhost       TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    marker      TEXT    NOT NULL,
    source_done INTEGER NOT NULL DEFAULT 0 CHECK (source_done IN (0, 1)),
    tap_done    INTEGER NOT NULL DEFAULT 0 CHECK (tap_done IN (0, 1)),
    started_at  INTEGER NOT NULL,
    PRIMARY KEY (vhost, name)
);

-- Where a stored message's original is: NULL when Redrive consumed it,
-- 'in_queue' for a copy from a tap, 'taken' when Redrive later took the
-- original without storing it again, 'left' when the original had left the
-- queue by the time Redrive took the queue over (`app::model::TapOriginal`).
ALTER TABLE messages ADD COLUMN tap TEXT CHECK (tap IN ('in_queue', 'taken', 'left'));
CREATE INDEX messages_tap_originals ON messages (vhost, queue, content_hash) WHERE tap = 'in_queue';
