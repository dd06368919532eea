-- Runs carry one of the typed states only (RunStatus, Trigger). Before they were
-- free text, and tests, benches and the demo wrote triggers of their own.
UPDATE sync_runs SET trigger_kind = 'cli'
WHERE trigger_kind NOT IN ('schedule', 'api', 'cli', 'demo');
