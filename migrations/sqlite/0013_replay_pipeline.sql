-- Loop detection for bulk jobs, without rescanning a job's done items: the
-- copies that came back (few) by when they arrived, then their job item.
CREATE INDEX messages_returned_copies ON messages (received_at) WHERE replay_id IS NOT NULL;
CREATE INDEX job_items_replay_id ON job_items (replay_id) WHERE replay_id IS NOT NULL;
