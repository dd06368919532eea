ALTER TABLE sync_runs DROP COLUMN suppressed;
DROP TABLE suppressed_identifiers;
DROP TABLE suppressions;
DROP TABLE org_secrets;
