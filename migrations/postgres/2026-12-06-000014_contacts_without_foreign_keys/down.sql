ALTER TABLE contact_keys ADD CONSTRAINT contact_keys_contact_id_fkey
    FOREIGN KEY (contact_id) REFERENCES contacts(id) ON DELETE CASCADE;
ALTER TABLE contacts ADD CONSTRAINT contacts_connection_id_fkey
    FOREIGN KEY (connection_id) REFERENCES connections(id) ON DELETE CASCADE;
ALTER TABLE contacts ADD CONSTRAINT contacts_org_id_fkey
    FOREIGN KEY (org_id) REFERENCES orgs(id) ON DELETE CASCADE;
