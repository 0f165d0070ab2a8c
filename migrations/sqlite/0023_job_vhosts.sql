-- Who may see a job depends on the vhosts of its messages. They were found
-- on every read by joining all of the job's items to their messages: a job
-- of 100,000 messages cost 25 ms per read, and a page watching a replay (the
-- UI polls, so does any script) took half a core from the replay itself.
-- The vhosts are now recorded once, when the job is created. They are the
-- job's scope for good: a message that retention later deletes does not make
-- the job visible to someone who could not see it before.
CREATE TABLE job_vhosts (
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    vhost  TEXT    NOT NULL,
    PRIMARY KEY (job_id, vhost)
) WITHOUT ROWID;

INSERT INTO job_vhosts (job_id, vhost)
SELECT DISTINCT i.job_id, m.vhost FROM job_items i JOIN messages m ON m.id = i.message_id;
