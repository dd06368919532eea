-- Webhook endpoints: where an org's events are POSTed, in order, from a cursor
-- into its feed. The signing secrets are sealed like provider credentials.
CREATE TABLE webhook_endpoints (
    id                      TEXT PRIMARY KEY NOT NULL,
    org_id                  TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    url                     TEXT NOT NULL,
    -- Comma-separated event types; empty: every type.
    event_types             TEXT NOT NULL,
    enabled                 BOOLEAN NOT NULL,
    description             TEXT,
    -- Sealed JSON: the signing secret, and the previous one with the time it
    -- stops signing (after a rotation).
    secrets                 TEXT NOT NULL,
    -- The last event number delivered (or given up on).
    cursor_seq              INTEGER NOT NULL,
    -- Failed attempts at the next event, and when to try it again.
    attempts                INTEGER NOT NULL,
    next_attempt_at         TIMESTAMP,
    failing_since           TIMESTAMP,
    disabled_reason         TEXT,
    lease_owner             TEXT,
    lease_until             TIMESTAMP,
    created_at              TIMESTAMP NOT NULL,
    updated_at              TIMESTAMP NOT NULL
);
CREATE INDEX webhook_endpoints_org ON webhook_endpoints (org_id, id);

-- Each event sent to an endpoint: its attempts and how the last one went.
CREATE TABLE webhook_deliveries (
    id                  TEXT PRIMARY KEY NOT NULL,
    org_id              TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    endpoint_id         TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    event_seq           INTEGER NOT NULL,
    event_type          TEXT NOT NULL,
    -- pending | delivered | failed
    status              TEXT NOT NULL,
    attempts            INTEGER NOT NULL,
    last_status_code    INTEGER,
    last_error          TEXT,
    last_latency_ms     INTEGER,
    next_attempt_at     TIMESTAMP,
    created_at          TIMESTAMP NOT NULL,
    updated_at          TIMESTAMP NOT NULL,
    UNIQUE (endpoint_id, event_seq)
);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
