-- Capture and the search indexer check no foreign key per row (issue 27).
--
-- A message's contents and search document are written only by capture
-- (in the message's own transaction) and by the indexer (for messages it
-- has just read, which retention never purges: it takes only indexed
-- ids), so the per-row checks that they name a message found nothing and
-- cost about 10 µs a row each, a tenth of capture's work on PostgreSQL.
-- Their deletion with the message is kept, as one statement per purge.
-- The trace template's key stays checked: it is what keeps retention from
-- deleting a template that a capture of another instance is about to use.
ALTER TABLE message_contents DROP CONSTRAINT message_contents_message_id_fkey;
ALTER TABLE message_search DROP CONSTRAINT message_search_message_id_fkey;

CREATE FUNCTION messages_deleted_contents() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM message_contents WHERE message_id IN (SELECT id FROM old_messages);
    DELETE FROM message_search WHERE message_id IN (SELECT id FROM old_messages);
    RETURN NULL;
END;
$$;
CREATE TRIGGER messages_delete_contents AFTER DELETE ON messages
    REFERENCING OLD TABLE AS old_messages FOR EACH STATEMENT EXECUTE FUNCTION messages_deleted_contents();
