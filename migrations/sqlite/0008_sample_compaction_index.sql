-- Compaction looks for samples of one resolution older than a cut-off. With
-- only (at, resolution_secs) it scanned every sample older than an hour —
-- nearly a week of history — on each pass; with the resolution first it
-- reads just the samples still to be averaged.
CREATE INDEX queue_samples_resolution_at ON queue_samples (resolution_secs, at);
