DROP INDEX contacts_connection_live;
