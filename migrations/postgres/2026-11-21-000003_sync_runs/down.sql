ALTER TABLE contacts DROP COLUMN list_hash;
DROP TABLE sync_seen;
DROP TABLE sync_leases;
DROP TABLE sync_runs;
