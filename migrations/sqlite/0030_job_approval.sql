-- Two-person approval (issue 30): a bulk job over more than
-- REDRIVE_APPROVAL_THRESHOLD messages waits in `awaiting_approval` until
-- another user approves it, or until it expires.
ALTER TABLE jobs ADD COLUMN approval_expires_at INTEGER;
ALTER TABLE jobs ADD COLUMN approved_by TEXT;
ALTER TABLE jobs ADD COLUMN approved_at INTEGER;
CREATE INDEX jobs_awaiting_approval ON jobs (approval_expires_at) WHERE state = 'awaiting_approval';

PRAGMA writable_schema = ON;
UPDATE sqlite_master
SET sql = replace(sql,
    'CHECK (state IN (''scheduled'', ''running'', ''paused'', ''completed'', ''cancelled'', ''failed''))',
    'CHECK (state IN (''awaiting_approval'', ''scheduled'', ''running'', ''paused'', ''completed'', ''cancelled'', ''failed''))')
WHERE type = 'table' AND name = 'jobs';
PRAGMA writable_schema = OFF;
PRAGMA writable_schema = RESET;
