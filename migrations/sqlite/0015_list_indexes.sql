-- The messages list filtered by queue and status (the queue page's "failed
-- here" view) walked the whole queue in id order to find the status; with
-- this index it reads exactly one page.
CREATE INDEX messages_queue_status_id ON messages (vhost, queue, status, id);
-- Two identical indexes on received_at (0002 and 0007): every insert paid for both.
DROP INDEX IF EXISTS messages_received_at;
