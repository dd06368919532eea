-- When a key was last used (written at most once a minute per key), and when it
-- stops working (NULL: never).
ALTER TABLE api_keys ADD COLUMN last_used_at TIMESTAMP;
ALTER TABLE api_keys ADD COLUMN expires_at TIMESTAMP;
