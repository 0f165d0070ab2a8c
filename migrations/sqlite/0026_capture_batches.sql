-- Capture batches and the search indexer no longer rely on one writer
-- (issue 27; PostgreSQL's 0003). SQLite still has one writer, so here its
-- batches are single runs and its indexer finds no gaps, but the shared SQL
-- reads the same tables on both backends.
--
-- 1. `ack_batches`: one row per run of consecutive ids; `batch` (the
--    batch's lowest id) names the batch the ack markers address.
ALTER TABLE ack_batches ADD COLUMN batch INTEGER NOT NULL DEFAULT 0;
UPDATE ack_batches SET batch = first_id;
CREATE INDEX ack_batches_batch ON ack_batches (batch);

-- 2. Runs of ids the indexer's watermark passed before they were committed
--    (see `store::search`).
CREATE TABLE search_gaps (
    first_id INTEGER PRIMARY KEY,
    last_id  INTEGER NOT NULL,
    seen_at  INTEGER NOT NULL,
    CHECK (last_id >= first_id)
);
