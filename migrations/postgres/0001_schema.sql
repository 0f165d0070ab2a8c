-- Redrive's schema on PostgreSQL: the same tables, columns and meaning as
-- the SQLite schema at its migration 0024, so one set of SQL (server/src/
-- store/sql) runs on both. Every integer is BIGINT (Rust's i64), flags that
-- SQL compares with 0 and 1 stay BIGINT, times are unix milliseconds.

CREATE TABLE messages (
    id                   BIGSERIAL PRIMARY KEY,
    vhost                TEXT    NOT NULL,
    queue                TEXT    NOT NULL,
    status               TEXT    NOT NULL DEFAULT 'failed'
        CHECK (status IN ('failed', 'replaying', 'replayed', 'discarded')),
    received_at          BIGINT  NOT NULL,
    delivery_exchange    TEXT    NOT NULL,
    delivery_routing_key TEXT    NOT NULL,
    original_exchange    TEXT,
    original_routing_key TEXT,
    reason               TEXT,
    death_count          BIGINT  NOT NULL DEFAULT 0,
    service              TEXT,
    message_id           TEXT,
    -- x-redrive-replay-id carried by a replayed copy that failed again.
    replay_id            TEXT,
    content_hash         BYTEA   NOT NULL,
    exception_type       TEXT,
    group_id             TEXT,
    group_title          TEXT,
    absorbed_redelivery  BIGINT  NOT NULL DEFAULT 0 CHECK (absorbed_redelivery IN (0, 1)),
    replay_owner         TEXT,
    replay_heartbeat     BIGINT,
    pending_replay_id    TEXT,
    replay_uncertain     BIGINT  NOT NULL DEFAULT 0 CHECK (replay_uncertain IN (0, 1)),
    ack_state            BIGINT  NOT NULL DEFAULT 0,
    persistent           BIGINT  NOT NULL DEFAULT 1 CHECK (persistent IN (0, 1)),
    possible_copy_of     BIGINT
);
CREATE INDEX messages_status_id ON messages (status, id);
CREATE INDEX messages_queue_id ON messages (vhost, queue, id);
CREATE INDEX messages_queue_status_id ON messages (vhost, queue, status, id);
CREATE INDEX messages_group_id ON messages (group_id, id);
CREATE INDEX messages_service_id ON messages (service, id);
CREATE INDEX messages_service_received ON messages (service, received_at);
CREATE INDEX messages_received ON messages (received_at);
CREATE INDEX messages_replaying ON messages (replay_heartbeat) WHERE status = 'replaying';
CREATE INDEX messages_returned_copies ON messages (received_at) WHERE replay_id IS NOT NULL;
CREATE INDEX messages_replay_id ON messages (replay_id) WHERE replay_id IS NOT NULL;

CREATE TABLE stack_traces (
    id       BIGSERIAL PRIMARY KEY,
    hash     BYTEA NOT NULL UNIQUE,
    template TEXT  NOT NULL
);

CREATE TABLE message_contents (
    message_id  BIGINT PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    body        BYTEA  NOT NULL,
    properties  TEXT   NOT NULL,
    headers     TEXT   NOT NULL,
    stack_trace TEXT,
    trace_id    BIGINT REFERENCES stack_traces (id)
);
CREATE INDEX message_contents_trace ON message_contents (trace_id) WHERE trace_id IS NOT NULL;

CREATE TABLE message_events (
    id         BIGSERIAL PRIMARY KEY,
    message_id BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    at         BIGINT NOT NULL,
    action     TEXT   NOT NULL,
    actor      TEXT   NOT NULL,
    target     TEXT,
    result     TEXT   NOT NULL CHECK (result IN ('ok', 'error')),
    detail     TEXT,
    replay_id  TEXT
);
CREATE INDEX message_events_message ON message_events (message_id, id);
CREATE INDEX message_events_replay_id ON message_events (replay_id);

-- Full-text search: one document per message, written by the indexer behind
-- capture (`indexed_through` is the highest id it covers).
CREATE TABLE message_search (
    message_id BIGINT   PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    document   TSVECTOR NOT NULL
);
CREATE INDEX message_search_document ON message_search USING GIN (document);
CREATE TABLE search_progress (
    singleton       BIGINT PRIMARY KEY CHECK (singleton = 1),
    indexed_through BIGINT NOT NULL
);
INSERT INTO search_progress (singleton, indexed_through) VALUES (1, 0);

-- One row per committed capture batch whose ack is not settled (see
-- store::capture).
CREATE TABLE ack_batches (
    first_id     BIGINT PRIMARY KEY,
    last_id      BIGINT NOT NULL,
    state        BIGINT NOT NULL CHECK (state IN (1, 2)),
    committed_at BIGINT NOT NULL,
    CHECK (last_id >= first_id)
);

CREATE TABLE jobs (
    id                 BIGSERIAL PRIMARY KEY,
    action             TEXT   NOT NULL CHECK (action IN ('replay', 'discard')),
    state              TEXT   NOT NULL
        CHECK (state IN ('running', 'paused', 'completed', 'cancelled', 'failed')),
    actor              TEXT   NOT NULL,
    selection          TEXT   NOT NULL,
    target_exchange    TEXT,
    target_routing_key TEXT,
    rate_per_sec       DOUBLE PRECISION,
    total              BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    finished_at        BIGINT,
    note               TEXT,
    loop_check_from    BIGINT NOT NULL DEFAULT 0,
    items_pending      BIGINT NOT NULL DEFAULT 0,
    items_done         BIGINT NOT NULL DEFAULT 0,
    items_failed       BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX jobs_state ON jobs (state, id);

CREATE TABLE job_items (
    job_id     BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    message_id BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    -- skipped: the message was no longer `failed` when its turn came.
    state      TEXT   NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'done', 'failed', 'skipped')),
    error      TEXT,
    replay_id  TEXT,
    settled_at BIGINT,
    PRIMARY KEY (job_id, message_id)
);
CREATE INDEX job_items_state ON job_items (job_id, state, message_id);
CREATE INDEX job_items_replay_id ON job_items (replay_id) WHERE replay_id IS NOT NULL;

-- A job's progress is counted from its items as they change, so reading it
-- never scans a hundred thousand items and can never drift from them. The
-- triggers run once per statement, over its transition tables: a row
-- trigger updated the job's row once per item, and a step of a thousand
-- items left a chain of a thousand dead versions of that one row, which
-- every later update walked (replay slowed as a job went on).
CREATE FUNCTION job_items_counted(job_id BIGINT, pending BIGINT, done BIGINT, failed BIGINT)
    RETURNS void LANGUAGE sql AS $$
    UPDATE jobs SET items_pending = items_pending + pending, items_done = items_done + done,
        items_failed = items_failed + failed
    WHERE id = job_id;
$$;
CREATE FUNCTION job_items_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM job_items_counted(job_id, COUNT(*) FILTER (WHERE state = 'pending'),
        COUNT(*) FILTER (WHERE state IN ('done', 'skipped')), COUNT(*) FILTER (WHERE state = 'failed'))
    FROM new_items GROUP BY job_id;
    RETURN NULL;
END;
$$;
CREATE FUNCTION job_items_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM job_items_counted(n.job_id,
        SUM((n.state = 'pending')::int - (o.state = 'pending')::int),
        SUM((n.state IN ('done', 'skipped'))::int - (o.state IN ('done', 'skipped'))::int),
        SUM((n.state = 'failed')::int - (o.state = 'failed')::int))
    FROM new_items n JOIN old_items o ON o.job_id = n.job_id AND o.message_id = n.message_id
    WHERE n.state IS DISTINCT FROM o.state
    GROUP BY n.job_id;
    RETURN NULL;
END;
$$;
CREATE FUNCTION job_items_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM job_items_counted(job_id, -COUNT(*) FILTER (WHERE state = 'pending'),
        -COUNT(*) FILTER (WHERE state IN ('done', 'skipped')), -COUNT(*) FILTER (WHERE state = 'failed'))
    FROM old_items GROUP BY job_id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER job_items_count_insert AFTER INSERT ON job_items
    REFERENCING NEW TABLE AS new_items FOR EACH STATEMENT EXECUTE FUNCTION job_items_inserted();
CREATE TRIGGER job_items_count_update AFTER UPDATE ON job_items
    REFERENCING OLD TABLE AS old_items NEW TABLE AS new_items
    FOR EACH STATEMENT EXECUTE FUNCTION job_items_updated();
CREATE TRIGGER job_items_count_delete AFTER DELETE ON job_items
    REFERENCING OLD TABLE AS old_items FOR EACH STATEMENT EXECUTE FUNCTION job_items_deleted();

CREATE TABLE job_vhosts (
    job_id BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    vhost  TEXT   NOT NULL,
    PRIMARY KEY (job_id, vhost)
);

CREATE TABLE annotations (
    id          BIGSERIAL PRIMARY KEY,
    target_kind TEXT   NOT NULL CHECK (target_kind IN ('message', 'group')),
    target_id   TEXT   NOT NULL,
    kind        TEXT   NOT NULL CHECK (kind IN ('note', 'tag')),
    text        TEXT   NOT NULL,
    actor       TEXT   NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX annotations_target ON annotations (target_kind, target_id, kind);
CREATE UNIQUE INDEX annotations_unique_tag ON annotations (target_kind, target_id, text) WHERE kind = 'tag';
CREATE INDEX annotations_tag ON annotations (kind, text);

CREATE TABLE queue_samples (
    at              BIGINT           NOT NULL,
    vhost           TEXT             NOT NULL,
    queue           TEXT             NOT NULL,
    resolution_secs BIGINT           NOT NULL,
    ready           DOUBLE PRECISION NOT NULL,
    unacked         DOUBLE PRECISION NOT NULL,
    consumers       DOUBLE PRECISION NOT NULL,
    publish_rate    DOUBLE PRECISION NOT NULL,
    deliver_rate    DOUBLE PRECISION NOT NULL,
    redeliver_rate  DOUBLE PRECISION NOT NULL,
    ack_rate        DOUBLE PRECISION NOT NULL,
    -- Messages waiting for a human: ready in the broker plus, for a watched
    -- queue, failures Redrive holds that nobody has handled yet.
    backlog         DOUBLE PRECISION NOT NULL
);
CREATE INDEX queue_samples_queue_at ON queue_samples (vhost, queue, at);
CREATE INDEX queue_samples_at ON queue_samples (at, resolution_secs);
CREATE INDEX queue_samples_resolution_at ON queue_samples (resolution_secs, at);

CREATE TABLE findings (
    id          BIGSERIAL PRIMARY KEY,
    vhost       TEXT   NOT NULL,
    object_type TEXT   NOT NULL CHECK (object_type IN ('queue', 'exchange', 'publisher')),
    object      TEXT   NOT NULL,
    kind        TEXT   NOT NULL,
    severity    TEXT   NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    message     TEXT   NOT NULL,
    fix         TEXT   NOT NULL,
    action      TEXT,
    first_seen  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    resolved_at BIGINT
);
CREATE UNIQUE INDEX findings_open ON findings (vhost, object_type, object, kind) WHERE resolved_at IS NULL;
CREATE INDEX findings_resolved ON findings (resolved_at);

CREATE TABLE alert_rules (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT   NOT NULL,
    condition   TEXT   NOT NULL,
    webhook_url TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE TABLE alert_firing (
    rule_id BIGINT           NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    key     TEXT             NOT NULL,
    since   BIGINT           NOT NULL,
    value   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (rule_id, key)
);
CREATE TABLE alert_deliveries (
    id              BIGSERIAL PRIMARY KEY,
    rule_id         BIGINT NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    event           TEXT   NOT NULL CHECK (event IN ('firing', 'resolved', 'test')),
    key             TEXT   NOT NULL,
    payload         TEXT   NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT,
    delivered_at    BIGINT,
    last_error      TEXT
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX alert_deliveries_rule ON alert_deliveries (rule_id, id);

CREATE TABLE watched_queues (
    vhost  TEXT   NOT NULL,
    name   TEXT   NOT NULL,
    reason TEXT   NOT NULL,
    since  BIGINT NOT NULL,
    PRIMARY KEY (vhost, name)
);
CREATE TABLE watch_overrides (
    vhost TEXT    NOT NULL,
    name  TEXT    NOT NULL,
    watch BOOLEAN NOT NULL,
    actor TEXT    NOT NULL,
    at    BIGINT  NOT NULL,
    PRIMARY KEY (vhost, name)
);

CREATE TABLE sessions (
    token_hash BYTEA  PRIMARY KEY,
    "user"     TEXT   NOT NULL,
    -- The token forms and server functions echo (double submit).
    csrf       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL,
    source     TEXT
);
CREATE INDEX sessions_last_seen ON sessions (last_seen);

CREATE TABLE audit (
    id          BIGSERIAL PRIMARY KEY,
    at          BIGINT NOT NULL,
    "user"      TEXT   NOT NULL,
    source      TEXT,
    action      TEXT   NOT NULL,
    vhost       TEXT,
    object      TEXT,
    exchange    TEXT,
    routing_key TEXT,
    result      TEXT   NOT NULL CHECK (result IN ('ok', 'failed', 'refused')),
    detail      TEXT
);
CREATE INDEX audit_user_id ON audit ("user", id);
CREATE INDEX audit_action_id ON audit (action, id);
CREATE INDEX audit_at ON audit (at);
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit entries are append-only';
END;
$$;
CREATE TRIGGER audit_append_only BEFORE UPDATE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();

CREATE TABLE leases (
    name       TEXT   PRIMARY KEY,
    holder     TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
