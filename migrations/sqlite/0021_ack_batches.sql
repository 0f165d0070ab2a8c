-- The ack state of captured rows moves from every row to its batch.
-- Before, each batch of 500 rows was updated twice more after its commit
-- (in flight, then settled), which rewrote every row and its entry in the
-- partial index `messages_ack_pending`: a third of the database work of
-- capture. A batch is one contiguous range of ids committed by one
-- transaction, so its state is one row here, removed once the broker
-- confirmed the ack. States as in 0018: 1 committed, ack not sent;
-- 2 ack sent, its processing not confirmed. Settled batches have no row.
CREATE TABLE ack_batches (
    first_id     INTEGER PRIMARY KEY,
    last_id      INTEGER NOT NULL,
    state        INTEGER NOT NULL CHECK (state IN (1, 2)),
    committed_at INTEGER NOT NULL,
    CHECK (last_id >= first_id)
);
-- Rows left unsettled by the previous version keep their doubt, one range each.
INSERT INTO ack_batches (first_id, last_id, state, committed_at)
    SELECT id, id, ack_state, received_at FROM messages WHERE ack_state > 0;
DROP INDEX messages_ack_pending;
-- `messages.ack_state` is no longer read or written. It stays (always 0
-- from here on): dropping a column makes SQLite rewrite every row, which
-- on a large database would hold the first start-up for minutes.
UPDATE messages SET ack_state = 0 WHERE ack_state > 0;
