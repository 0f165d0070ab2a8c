-- Browsing under every filter (issue 25).
--
-- 1. `message_counts`: how many messages each (vhost, queue, service,
--    group, status) holds, kept by triggers in the same transaction as every
--    insert, status change and delete. The monitor, the overview and
--    `/metrics` read their counts here instead of grouping a million rows
--    every sample, and the list plans each page from it: which index arms
--    hold matches, how many match, and the exact total of a filter.
--    NULL service and group are '' (a key column must not be NULL).
CREATE TABLE message_counts (
    vhost     TEXT    NOT NULL,
    queue     TEXT    NOT NULL,
    service   TEXT    NOT NULL,
    group_id  TEXT    NOT NULL,
    status    TEXT    NOT NULL,
    messages  INTEGER NOT NULL,
    transient INTEGER NOT NULL,
    PRIMARY KEY (vhost, queue, service, group_id, status)
) WITHOUT ROWID;

INSERT INTO message_counts
SELECT vhost, queue, COALESCE(service, ''), COALESCE(group_id, ''), status,
       COUNT(*), SUM(1 - persistent)
FROM messages GROUP BY 1, 2, 3, 4, 5;

CREATE TRIGGER message_counts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO message_counts VALUES (NEW.vhost, NEW.queue, COALESCE(NEW.service, ''),
        COALESCE(NEW.group_id, ''), NEW.status, 1, 1 - NEW.persistent)
    ON CONFLICT DO UPDATE SET messages = messages + 1, transient = transient + excluded.transient;
END;

CREATE TRIGGER message_counts_delete AFTER DELETE ON messages BEGIN
    UPDATE message_counts SET messages = messages - 1, transient = transient - (1 - OLD.persistent)
    WHERE vhost = OLD.vhost AND queue = OLD.queue AND service = COALESCE(OLD.service, '')
      AND group_id = COALESCE(OLD.group_id, '') AND status = OLD.status;
END;

CREATE TRIGGER message_counts_update AFTER UPDATE OF vhost, queue, service, group_id, status, persistent
ON messages
WHEN OLD.vhost IS NOT NEW.vhost OR OLD.queue IS NOT NEW.queue OR OLD.service IS NOT NEW.service
  OR OLD.group_id IS NOT NEW.group_id OR OLD.status IS NOT NEW.status
  OR OLD.persistent IS NOT NEW.persistent
BEGIN
    UPDATE message_counts SET messages = messages - 1, transient = transient - (1 - OLD.persistent)
    WHERE vhost = OLD.vhost AND queue = OLD.queue AND service = COALESCE(OLD.service, '')
      AND group_id = COALESCE(OLD.group_id, '') AND status = OLD.status;
    INSERT INTO message_counts VALUES (NEW.vhost, NEW.queue, COALESCE(NEW.service, ''),
        COALESCE(NEW.group_id, ''), NEW.status, 1, 1 - NEW.persistent)
    ON CONFLICT DO UPDATE SET messages = messages + 1, transient = transient + excluded.transient;
END;

-- 2. `received_blocks`: the earliest and latest `received_at` in each block
--    of 1,024 consecutive ids. A time filter becomes the id range of the
--    blocks that overlap it, so a page reads only the ids of its window
--    instead of every newer row. `received_at` is stamped on arrival and ids
--    are handed out as messages are stored, so a window's blocks are
--    consecutive but for messages stored late (a commit retried through a
--    database outage); a block only widens, never narrows (a purge leaves
--    it as it was), so the range always holds every message of the window.
CREATE TABLE received_blocks (
    block           INTEGER PRIMARY KEY,
    min_received_at INTEGER NOT NULL,
    max_received_at INTEGER NOT NULL
);
INSERT INTO received_blocks
SELECT id / 1024, MIN(received_at), MAX(received_at) FROM messages GROUP BY id / 1024;

CREATE TRIGGER received_blocks_insert AFTER INSERT ON messages BEGIN
    INSERT INTO received_blocks VALUES (NEW.id / 1024, NEW.received_at, NEW.received_at)
    ON CONFLICT (block) DO UPDATE SET
        min_received_at = MIN(min_received_at, excluded.min_received_at),
        max_received_at = MAX(max_received_at, excluded.max_received_at);
END;

-- 3. The indexes a page is read through, each with `id` last so a page is
--    read newest first and stops after its rows (see `store::browse`):
--    a vhost (and status), a queue (and status), a failure group (then its
--    queue and status). The service and group-alone indexes are covered by
--    these; the queue index without status by the one with it.
DROP INDEX IF EXISTS messages_queue_id;
DROP INDEX IF EXISTS messages_service_id;
DROP INDEX IF EXISTS messages_group_id;
CREATE INDEX messages_vhost_status_id ON messages (vhost, status, id);
CREATE INDEX messages_group_queue_status_id ON messages (group_id, vhost, queue, status, id);
