DROP TABLE held_deletions;
DROP TABLE deletion_holds;
ALTER TABLE sync_runs DROP COLUMN deletions_held;
