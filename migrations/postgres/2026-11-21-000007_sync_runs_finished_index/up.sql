-- When each connection last finished a run: the scheduler asks this every tick,
-- one index probe per connection instead of a pass over the whole history.
CREATE INDEX sync_runs_connection_finished ON sync_runs (connection_id, finished_at);
-- Runs finished before the retention cutoff, for the hourly prune.
CREATE INDEX sync_runs_finished ON sync_runs (finished_at);
