DROP INDEX sync_runs_finished;
DROP INDEX sync_runs_connection_finished;
