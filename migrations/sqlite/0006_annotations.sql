-- Notes and tags on messages and failure groups ("under investigation", an
-- owner, a ticket link). Groups are keyed by their fingerprint id.
CREATE TABLE annotations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    target_kind TEXT    NOT NULL CHECK (target_kind IN ('message', 'group')),
    target_id   TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('note', 'tag')),
    text        TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    at          INTEGER NOT NULL
);

CREATE INDEX annotations_target ON annotations (target_kind, target_id, kind);
CREATE UNIQUE INDEX annotations_unique_tag ON annotations (target_kind, target_id, text) WHERE kind = 'tag';
CREATE INDEX annotations_tag ON annotations (kind, text);
