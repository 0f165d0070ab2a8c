-- A switch of capture mode goes either way (issue 29, several instances):
-- the operator's change records it in the same transaction as the mode, so
-- every instance sees the queue as switching from the moment it changes,
-- and only the instance holding the `capture-switch` lease touches the
-- queue or its tap until the switch ends.
--   direction:   'to_tap' (cut at the marker) or 'to_consume' (the tap
--                retired, then its originals paired with the copies);
--   marker_sent: set just before a switch to tap publishes its marker, so
--                a resumed switch knows whether one may be out already.
ALTER TABLE capture_switches ADD COLUMN direction TEXT NOT NULL DEFAULT 'to_tap'
    CHECK (direction IN ('to_tap', 'to_consume'));
ALTER TABLE capture_switches ADD COLUMN marker_sent BOOLEAN NOT NULL DEFAULT TRUE;

-- REDRIVE_CAPTURE_MODE as it was last applied. Every watched queue has a
-- mode row (`actor` 'REDRIVE_CAPTURE_MODE' when it came from the default),
-- so every instance reads each queue's mode from here, whatever its own
-- setting; an instance that starts with a different default switches the
-- queues whose mode came from the default, with their switches recorded.
CREATE TABLE capture_default (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    mode TEXT    NOT NULL CHECK (mode IN ('consume', 'tap')),
    at   BIGINT  NOT NULL
);
