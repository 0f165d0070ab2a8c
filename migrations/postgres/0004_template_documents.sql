-- The search indexer tokenises a stack-trace template once (issue 27):
-- each message's document is its own text followed by its template's
-- document, filled by the indexer the first time a message of that
-- template is indexed (NULL until then, and for templates stored before).
ALTER TABLE stack_traces ADD COLUMN document TSVECTOR;
