-- PostgreSQL checks a foreign key row by row, in a trigger per inserted row: a
-- sync page of 2 000 new contacts and their ~8 000 keys fired ~12 000 of them
-- (measured with 2 000 contacts and 8 000 keys: 175 ms with the three keys
-- below, 105 ms without). What they guarded is kept in code instead: a
-- connection's contacts and their keys are deleted with it (after their people
-- are relinked and their events written), under the org's lock that every
-- writer of contacts takes, and a writer finds the connection still there
-- before it stores (a sync through its run's lease, which goes with the
-- connection). SQLite checks foreign keys cheaply and keeps them.
ALTER TABLE contacts DROP CONSTRAINT contacts_org_id_fkey;
ALTER TABLE contacts DROP CONSTRAINT contacts_connection_id_fkey;
ALTER TABLE contact_keys DROP CONSTRAINT contact_keys_contact_id_fkey;
