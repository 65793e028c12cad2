-- The tenant registry when `tenants.registry = "database"`: read from the legacy database only,
-- so that every replica sees a tenant provisioned through any of them. (Like every table, it
-- exists in each database this server migrates; elsewhere it stays empty.)
CREATE TABLE tenant_registry (
    id           TEXT    PRIMARY KEY,               -- a lowercase DNS label
    name         TEXT    NOT NULL,
    database_url TEXT    NOT NULL,
    active       BOOLEAN NOT NULL DEFAULT TRUE,
    settings     JSONB   NOT NULL DEFAULT '{}'::jsonb, -- [security] and [roles]
    created_at   BIGINT  NOT NULL,                  -- Unix ms, UTC
    updated_at   BIGINT  NOT NULL,
    revision     BIGINT  NOT NULL DEFAULT 1         -- bumped by every change; replicas reload on it
);
