CREATE INDEX contacts_connection_live ON contacts (connection_id, remote_was_deleted, remote_id, id);
DROP INDEX contacts_connection_deleted;
