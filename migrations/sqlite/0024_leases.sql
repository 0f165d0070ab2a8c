-- Work one instance of a cluster does at a time (the monitor's samples and
-- findings, the alert outbox, retention, each running job): a named lease
-- with a holder and an expiry. A live holder renews it; once it expires,
-- another instance may take it over.
CREATE TABLE leases (
    name       TEXT    PRIMARY KEY,
    holder     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
