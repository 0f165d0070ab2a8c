-- The masking rules (REDRIVE_MASK) the search index was built with: when
-- they change, the index is emptied and built again, so no value masked now
-- can be found by a search.
ALTER TABLE search_progress ADD COLUMN mask TEXT NOT NULL DEFAULT '';
