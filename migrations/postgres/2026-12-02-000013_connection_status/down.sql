ALTER TABLE sync_leases DROP COLUMN cancel_requested;
DROP TABLE connection_status;
