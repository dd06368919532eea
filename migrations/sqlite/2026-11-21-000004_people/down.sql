DROP INDEX contacts_person;
DROP TABLE people;
