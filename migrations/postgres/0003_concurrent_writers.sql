-- Writers of several instances no longer take one turn (issue 27).
--
-- 1. A capture batch's ids are drawn from the sequence and need not be one
--    range: another instance may draw between them. `ack_batches` holds
--    one row per run of consecutive ids; `batch` (the batch's lowest id)
--    names the batch its runs belong to, and ack markers address it.
ALTER TABLE ack_batches ADD COLUMN batch BIGINT;
UPDATE ack_batches SET batch = first_id;
ALTER TABLE ack_batches ALTER COLUMN batch SET NOT NULL;
CREATE INDEX ack_batches_batch ON ack_batches (batch);

-- 2. Ids commit out of order, so the search indexer's watermark may pass an
--    id whose transaction is still open (or was rolled back: the sequence
--    does not give ids back). Each such run is kept here and looked at
--    again on every pass until its messages are indexed or it is an hour
--    old (a rolled-back id never commits; no capture transaction stays
--    open that long: `lock_timeout` and the commit retry end it first).
CREATE TABLE search_gaps (
    first_id BIGINT PRIMARY KEY,
    last_id  BIGINT NOT NULL,
    seen_at  BIGINT NOT NULL,
    CHECK (last_id >= first_id)
);

-- 3. The browse counters take no row lock a writer of another instance
--    would wait for. The triggers append deltas; the search indexer (one
--    instance at a time) folds them into the tables it alone updates; the
--    names the queries read are views of both, so a count is exact at
--    every commit.
ALTER TABLE message_counts RENAME TO message_counts_folded;
ALTER TABLE received_blocks RENAME TO received_blocks_folded;

-- The same columns, without the key: rows are only appended and folded.
CREATE TABLE message_count_deltas (LIKE message_counts_folded);
CREATE TABLE received_block_deltas (LIKE received_blocks_folded);

CREATE VIEW message_counts AS
SELECT vhost, queue, service, group_id, status,
       CAST(SUM(messages) AS BIGINT) AS messages, CAST(SUM(transient) AS BIGINT) AS transient
FROM (SELECT vhost, queue, service, group_id, status, messages, transient FROM message_counts_folded
      UNION ALL
      SELECT vhost, queue, service, group_id, status, messages, transient FROM message_count_deltas) c
GROUP BY vhost, queue, service, group_id, status;

CREATE VIEW received_blocks AS
SELECT block, MIN(min_received_at) AS min_received_at, MAX(max_received_at) AS max_received_at
FROM (SELECT block, min_received_at, max_received_at FROM received_blocks_folded
      UNION ALL
      SELECT block, min_received_at, max_received_at FROM received_block_deltas) r
GROUP BY block;

CREATE OR REPLACE FUNCTION message_counts_apply(changes JSONB) RETURNS void LANGUAGE sql AS $$
    INSERT INTO message_count_deltas (vhost, queue, service, group_id, status, messages, transient)
    SELECT vhost, queue, service, group_id, status, SUM(messages), SUM(transient)
    FROM jsonb_to_recordset(changes) AS d(vhost TEXT, queue TEXT, service TEXT, group_id TEXT,
        status TEXT, messages BIGINT, transient BIGINT)
    GROUP BY 1, 2, 3, 4, 5
    HAVING SUM(messages) <> 0 OR SUM(transient) <> 0;
$$;

CREATE OR REPLACE FUNCTION message_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM message_counts_apply(COALESCE(jsonb_agg(d), '[]'))
    FROM (SELECT vhost, queue, COALESCE(service, '') AS service, COALESCE(group_id, '') AS group_id,
                 status, COUNT(*) AS messages, SUM(1 - persistent) AS transient
          FROM new_messages GROUP BY 1, 2, 3, 4, 5) d;
    INSERT INTO received_block_deltas
    SELECT id / 1024, MIN(received_at), MAX(received_at) FROM new_messages GROUP BY 1;
    RETURN NULL;
END;
$$;
