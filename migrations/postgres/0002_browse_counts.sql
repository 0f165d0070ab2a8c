-- Browsing under every filter (issue 25); SQLite's migration 0025.
--
-- 1. `message_counts`: messages per (vhost, queue, service, group, status),
--    kept by statement-level triggers over transition tables in the same
--    transaction as every insert, status change and delete. Each statement
--    applies its net change per key in key order, so two statements that
--    touch the same keys lock them in the same order (no deadlock).
CREATE TABLE message_counts (
    vhost     TEXT   NOT NULL,
    queue     TEXT   NOT NULL,
    service   TEXT   NOT NULL,
    group_id  TEXT   NOT NULL,
    status    TEXT   NOT NULL,
    messages  BIGINT NOT NULL,
    transient BIGINT NOT NULL,
    PRIMARY KEY (vhost, queue, service, group_id, status)
);

INSERT INTO message_counts
SELECT vhost, queue, COALESCE(service, ''), COALESCE(group_id, ''), status,
       COUNT(*), SUM(1 - persistent)
FROM messages GROUP BY 1, 2, 3, 4, 5;

CREATE FUNCTION message_counts_apply(changes JSONB) RETURNS void LANGUAGE sql AS $$
    INSERT INTO message_counts AS c (vhost, queue, service, group_id, status, messages, transient)
    SELECT vhost, queue, service, group_id, status, SUM(messages), SUM(transient)
    FROM jsonb_to_recordset(changes) AS d(vhost TEXT, queue TEXT, service TEXT, group_id TEXT,
        status TEXT, messages BIGINT, transient BIGINT)
    GROUP BY 1, 2, 3, 4, 5
    HAVING SUM(messages) <> 0 OR SUM(transient) <> 0
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (vhost, queue, service, group_id, status) DO UPDATE
    SET messages = c.messages + excluded.messages, transient = c.transient + excluded.transient;
$$;

CREATE FUNCTION message_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM message_counts_apply(COALESCE(jsonb_agg(d), '[]'))
    FROM (SELECT vhost, queue, COALESCE(service, '') AS service, COALESCE(group_id, '') AS group_id,
                 status, COUNT(*) AS messages, SUM(1 - persistent) AS transient
          FROM new_messages GROUP BY 1, 2, 3, 4, 5) d;
    -- Each id block's earliest and latest arrival (see SQLite's 0025).
    INSERT INTO received_blocks AS r
    SELECT id / 1024, MIN(received_at), MAX(received_at) FROM new_messages GROUP BY 1 ORDER BY 1
    ON CONFLICT (block) DO UPDATE SET
        min_received_at = LEAST(r.min_received_at, excluded.min_received_at),
        max_received_at = GREATEST(r.max_received_at, excluded.max_received_at);
    RETURN NULL;
END;
$$;

CREATE FUNCTION message_counts_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A message that moved is counted out of its old key and into its new.
    PERFORM message_counts_apply(COALESCE(jsonb_agg(d), '[]'))
    FROM old_messages o JOIN new_messages n USING (id)
    CROSS JOIN LATERAL (VALUES
        (o.vhost, o.queue, COALESCE(o.service, ''), COALESCE(o.group_id, ''), o.status, -1, o.persistent - 1),
        (n.vhost, n.queue, COALESCE(n.service, ''), COALESCE(n.group_id, ''), n.status, 1, 1 - n.persistent)
    ) AS d(vhost, queue, service, group_id, status, messages, transient)
    WHERE (o.vhost, o.queue, o.service, o.group_id, o.status, o.persistent)
          IS DISTINCT FROM (n.vhost, n.queue, n.service, n.group_id, n.status, n.persistent);
    RETURN NULL;
END;
$$;

CREATE FUNCTION message_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM message_counts_apply(COALESCE(jsonb_agg(d), '[]'))
    FROM (SELECT vhost, queue, COALESCE(service, '') AS service, COALESCE(group_id, '') AS group_id,
                 status, -COUNT(*) AS messages, -SUM(1 - persistent) AS transient
          FROM old_messages GROUP BY 1, 2, 3, 4, 5) d;
    RETURN NULL;
END;
$$;

-- 2. `received_blocks` (see SQLite's 0025).
CREATE TABLE received_blocks (
    block           BIGINT PRIMARY KEY,
    min_received_at BIGINT NOT NULL,
    max_received_at BIGINT NOT NULL
);
INSERT INTO received_blocks
SELECT id / 1024, MIN(received_at), MAX(received_at) FROM messages GROUP BY 1;

CREATE TRIGGER message_counts_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_messages FOR EACH STATEMENT EXECUTE FUNCTION message_counts_inserted();
CREATE TRIGGER message_counts_update AFTER UPDATE ON messages
    REFERENCING OLD TABLE AS old_messages NEW TABLE AS new_messages
    FOR EACH STATEMENT EXECUTE FUNCTION message_counts_updated();
CREATE TRIGGER message_counts_delete AFTER DELETE ON messages
    REFERENCING OLD TABLE AS old_messages FOR EACH STATEMENT EXECUTE FUNCTION message_counts_deleted();

-- 3. The indexes a page is read through (see SQLite's 0025).
DROP INDEX IF EXISTS messages_queue_id;
DROP INDEX IF EXISTS messages_service_id;
DROP INDEX IF EXISTS messages_group_id;
CREATE INDEX messages_vhost_status_id ON messages (vhost, status, id);
CREATE INDEX messages_group_queue_status_id ON messages (group_id, vhost, queue, status, id);
