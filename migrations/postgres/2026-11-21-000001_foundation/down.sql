DROP TABLE connections;
DROP TABLE api_keys;
DROP TABLE orgs;
