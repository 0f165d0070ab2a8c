-- Replay plans (issue 28): a job may wait in state `scheduled` for its
-- `start_at`, and carries how it sends (canary, ramp, adaptive rate, single
-- queue) and where it is in that plan.
--
-- SQLite cannot change a CHECK in place, and rebuilding `jobs` is not safe
-- here: its items and vhosts refer to it with ON DELETE CASCADE, and
-- foreign keys cannot be turned off inside the migration's transaction
-- (sqlx runs every SQLite migration in one). So the CHECK is widened the
-- way SQLite documents for changing constraints (`ALTER TABLE`, "making
-- other kinds of table schema changes"): the table's stored definition is
-- edited, which every existing row satisfies since the new list only adds
-- a state. It comes after the columns are added (`ADD COLUMN` edits the
-- definition at offsets taken from the parsed schema), and `RESET` makes
-- this connection read the schema again; others read it when they open.
-- The plan as requested (`app::model::ReplayPlan`, JSON); NULL is plain.
ALTER TABLE jobs ADD COLUMN plan TEXT;
ALTER TABLE jobs ADD COLUMN start_at INTEGER;
ALTER TABLE jobs ADD COLUMN pause_reason TEXT;
-- Where the job is in its plan, since when, and the items settled then.
ALTER TABLE jobs ADD COLUMN phase TEXT;
ALTER TABLE jobs ADD COLUMN phase_since INTEGER;
ALTER TABLE jobs ADD COLUMN phase_base INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN current_rate REAL;
ALTER TABLE jobs ADD COLUMN phase_note TEXT;
ALTER TABLE jobs ADD COLUMN waiting TEXT;
-- When the last canary began, and the ids of its copies that failed again (JSON).
ALTER TABLE jobs ADD COLUMN canary_since INTEGER;
ALTER TABLE jobs ADD COLUMN canary_returned TEXT;
CREATE INDEX jobs_scheduled ON jobs (start_at) WHERE state = 'scheduled';

PRAGMA writable_schema = ON;
UPDATE sqlite_master
SET sql = replace(sql,
    'CHECK (state IN (''running'', ''paused'', ''completed'', ''cancelled'', ''failed''))',
    'CHECK (state IN (''scheduled'', ''running'', ''paused'', ''completed'', ''cancelled'', ''failed''))')
WHERE type = 'table' AND name = 'jobs';
PRAGMA writable_schema = OFF;
PRAGMA writable_schema = RESET;

