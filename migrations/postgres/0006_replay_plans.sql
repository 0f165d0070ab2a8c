-- Replay plans (issue 28): a job may wait in state `scheduled` for its
-- `start_at`, and carries how it sends (canary, ramp, adaptive rate, single
-- queue) and where it is in that plan.
ALTER TABLE jobs DROP CONSTRAINT jobs_state_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_state_check
    CHECK (state IN ('scheduled', 'running', 'paused', 'completed', 'cancelled', 'failed'));
-- The plan as requested (`app::model::ReplayPlan`, JSON); NULL is plain.
ALTER TABLE jobs ADD COLUMN plan TEXT;
ALTER TABLE jobs ADD COLUMN start_at BIGINT;
ALTER TABLE jobs ADD COLUMN pause_reason TEXT;
-- Where the job is in its plan, since when, and the items settled then.
ALTER TABLE jobs ADD COLUMN phase TEXT;
ALTER TABLE jobs ADD COLUMN phase_since BIGINT;
ALTER TABLE jobs ADD COLUMN phase_base BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN current_rate DOUBLE PRECISION;
ALTER TABLE jobs ADD COLUMN phase_note TEXT;
ALTER TABLE jobs ADD COLUMN waiting TEXT;
-- When the last canary began, and the ids of its copies that failed again (JSON).
ALTER TABLE jobs ADD COLUMN canary_since BIGINT;
ALTER TABLE jobs ADD COLUMN canary_returned TEXT;
CREATE INDEX jobs_scheduled ON jobs (start_at) WHERE state = 'scheduled';
