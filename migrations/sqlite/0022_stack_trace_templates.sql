-- Stack traces stored once per template (see `store/contents.rs`): the
-- trace with the message's reason replaced by a marker, shared by every
-- message of a failure group. A message's `stack_trace` is then NULL and
-- `trace_id` names its template; rows stored before keep their trace whole.
CREATE TABLE stack_traces (
    id       INTEGER PRIMARY KEY,
    hash     BLOB NOT NULL UNIQUE,
    template TEXT NOT NULL
);
ALTER TABLE message_contents ADD COLUMN trace_id INTEGER REFERENCES stack_traces (id);
-- Finds the templates no message uses any more once retention purged
-- theirs (traces that differ in more than the reason get one each).
CREATE INDEX message_contents_trace ON message_contents (trace_id) WHERE trace_id IS NOT NULL;
