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

-- 2. `received_order`: how far `received_at` ever ran behind a message
--    stored earlier (`disorder`, milliseconds). Ids are handed out in the
--    order messages are stored and `received_at` is stamped when they
--    arrive, so a later id is never received more than `disorder` before an
--    earlier one. A time filter becomes an id range with that margin, and
--    a page reads only the ids of its window instead of every newer row.
CREATE TABLE received_order (
    singleton       INTEGER PRIMARY KEY CHECK (singleton = 1),
    max_received_at INTEGER NOT NULL,
    disorder        INTEGER NOT NULL
);
INSERT INTO received_order
SELECT 1, COALESCE(MAX(received_at), 0), COALESCE(MAX(MAX(before - received_at, 0)), 0)
FROM (SELECT received_at, MAX(received_at) OVER (ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
      FROM messages);

CREATE TRIGGER received_order_insert AFTER INSERT ON messages BEGIN
    UPDATE received_order SET
        disorder = MAX(disorder, max_received_at - NEW.received_at),
        max_received_at = MAX(max_received_at, NEW.received_at);
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
