-- Full-text indexing leaves the capture path: a batch is committed (and
-- acked) without it, and a background indexer covers new messages moments
-- later. `indexed_through` is the highest message id the index covers;
-- every message stored before this migration is indexed already. Ids only
-- grow and SQLite has one writer, so "every id up to here" is exact.
CREATE TABLE search_progress (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    indexed_through INTEGER NOT NULL
);
INSERT INTO search_progress (singleton, indexed_through)
SELECT 1, COALESCE(MAX(id), 0) FROM messages;
