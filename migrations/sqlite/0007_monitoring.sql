-- Queue counters sampled from the management API. Raw samples are averaged
-- into coarser buckets as they age (`resolution_secs` says which), and
-- dropped after the retention period.
CREATE TABLE queue_samples (
    at              INTEGER NOT NULL,
    vhost           TEXT    NOT NULL,
    queue           TEXT    NOT NULL,
    resolution_secs INTEGER NOT NULL,
    ready           REAL    NOT NULL,
    unacked         REAL    NOT NULL,
    consumers       REAL    NOT NULL,
    publish_rate    REAL    NOT NULL,
    deliver_rate    REAL    NOT NULL,
    redeliver_rate  REAL    NOT NULL,
    ack_rate        REAL    NOT NULL,
    -- Messages waiting for a human: ready in the broker plus, for a watched
    -- queue, failures Redrive holds that nobody has handled yet.
    backlog         REAL    NOT NULL
);

CREATE INDEX queue_samples_queue_at ON queue_samples (vhost, queue, at);
CREATE INDEX queue_samples_at ON queue_samples (at, resolution_secs);

CREATE INDEX messages_service_received ON messages (service, received_at);
CREATE INDEX messages_received ON messages (received_at);

-- Advisor findings. One open row per (vhost, object, kind); a finding whose
-- condition no longer holds gets `resolved_at` and stays as history.
CREATE TABLE findings (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    vhost       TEXT    NOT NULL,
    object_type TEXT    NOT NULL CHECK (object_type IN ('queue', 'exchange')),
    object      TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    severity    TEXT    NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    message     TEXT    NOT NULL,
    fix         TEXT    NOT NULL,
    action      TEXT,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    resolved_at INTEGER
);

CREATE UNIQUE INDEX findings_open ON findings (vhost, object_type, object, kind) WHERE resolved_at IS NULL;
CREATE INDEX findings_resolved ON findings (resolved_at);

CREATE TABLE alert_rules (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    condition   TEXT    NOT NULL,
    webhook_url TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);

-- What is firing now, per rule and key (e.g. `vhost/queue`): kept so a
-- firing alert is announced once and its end is announced as resolved.
CREATE TABLE alert_firing (
    rule_id INTEGER NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    key     TEXT    NOT NULL,
    since   INTEGER NOT NULL,
    value   REAL    NOT NULL,
    PRIMARY KEY (rule_id, key)
);

-- Webhook outbox: written in the same transaction as the state change, sent
-- by the delivery worker, retried with backoff until delivered or given up.
CREATE TABLE alert_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id         INTEGER NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    event           TEXT    NOT NULL CHECK (event IN ('firing', 'resolved', 'test')),
    key             TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER,
    delivered_at    INTEGER,
    last_error      TEXT
);

CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX alert_deliveries_rule ON alert_deliveries (rule_id, id);
