-- Two-person approval (issue 30): a bulk job over more than
-- REDRIVE_APPROVAL_THRESHOLD messages waits in `awaiting_approval` until
-- another user approves it, or until it expires.
ALTER TABLE jobs DROP CONSTRAINT jobs_state_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_state_check
    CHECK (state IN ('awaiting_approval', 'scheduled', 'running', 'paused', 'completed', 'cancelled', 'failed'));
ALTER TABLE jobs ADD COLUMN approval_expires_at BIGINT;
ALTER TABLE jobs ADD COLUMN approved_by TEXT;
ALTER TABLE jobs ADD COLUMN approved_at BIGINT;
CREATE INDEX jobs_awaiting_approval ON jobs (approval_expires_at) WHERE state = 'awaiting_approval';
