DROP TABLE blocked_identifiers;
DROP TABLE merged_people;
DROP TABLE identity_operation_contacts;
DROP TABLE identity_bonds;
DROP TABLE identity_operations;
