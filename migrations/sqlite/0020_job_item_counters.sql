-- A job's progress (done, failed, pending) was three COUNT(*)s over its
-- items on every read: a job of 100,000 messages cost milliseconds per read,
-- the jobs list that per job, and a page watching a replay read it every
-- second while the replay's own steps waited for the database. The counts
-- are now kept on the job row by triggers, so every path that inserts,
-- settles, skips or deletes (a message purged by retention cascades to its
-- items) keeps them exact in the same transaction.
ALTER TABLE jobs ADD COLUMN items_pending INTEGER NOT NULL DEFAULT 0;
-- done or skipped: both are finished without a failure.
ALTER TABLE jobs ADD COLUMN items_done INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN items_failed INTEGER NOT NULL DEFAULT 0;

UPDATE jobs SET
    items_pending = (SELECT COUNT(*) FROM job_items i WHERE i.job_id = jobs.id AND i.state = 'pending'),
    items_done = (SELECT COUNT(*) FROM job_items i WHERE i.job_id = jobs.id AND i.state IN ('done', 'skipped')),
    items_failed = (SELECT COUNT(*) FROM job_items i WHERE i.job_id = jobs.id AND i.state = 'failed');

CREATE TRIGGER job_items_count_insert AFTER INSERT ON job_items BEGIN
    UPDATE jobs SET
        items_pending = items_pending + (NEW.state = 'pending'),
        items_done = items_done + (NEW.state IN ('done', 'skipped')),
        items_failed = items_failed + (NEW.state = 'failed')
    WHERE id = NEW.job_id;
END;

CREATE TRIGGER job_items_count_update AFTER UPDATE OF state ON job_items
WHEN OLD.state IS NOT NEW.state BEGIN
    UPDATE jobs SET
        items_pending = items_pending + (NEW.state = 'pending') - (OLD.state = 'pending'),
        items_done = items_done + (NEW.state IN ('done', 'skipped')) - (OLD.state IN ('done', 'skipped')),
        items_failed = items_failed + (NEW.state = 'failed') - (OLD.state = 'failed')
    WHERE id = NEW.job_id;
END;

CREATE TRIGGER job_items_count_delete AFTER DELETE ON job_items BEGIN
    UPDATE jobs SET
        items_pending = items_pending - (OLD.state = 'pending'),
        items_done = items_done - (OLD.state IN ('done', 'skipped')),
        items_failed = items_failed - (OLD.state = 'failed')
    WHERE id = OLD.job_id;
END;
