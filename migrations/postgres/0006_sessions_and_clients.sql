-- Refresh-token families (RFC 6749 §6, RFC 9700 §4.14.2) and OAuth2 service clients.
-- Times are Unix seconds, UTC. Secrets are never stored: only their SHA-256 (they are 256-bit
-- random values, so a fast hash is enough and each use stays cheap).

-- One session per login: the family of refresh tokens rotated from it. `id` is the `sid` of the
-- access tokens it issues. It ends on logout, on reuse of a spent refresh token, or when the
-- user's `token_version` moves past `user_version` (password change or reset, deactivation,
-- role change); and lapses at `expires_at` (absolute lifetime) or after the tenant's idle
-- timeout counted from `last_used_at`.
CREATE TABLE refresh_sessions (
    id           TEXT    PRIMARY KEY,
    user_id      BIGINT  NOT NULL,
    user_version BIGINT  NOT NULL,
    created_at   BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL,
    last_used_at BIGINT  NOT NULL,
    ended_at     BIGINT,
    end_reason   TEXT
);
CREATE INDEX refresh_sessions_user ON refresh_sessions (user_id);
CREATE INDEX refresh_sessions_expiry ON refresh_sessions (expires_at);

-- Each refresh token of a family, spent (`used_at`) once rotated; a spent one presented again
-- ends the family. The access token issued with it (`access_jti`, valid until
-- `access_expires_at`) is revoked when its family ends that way.
CREATE TABLE refresh_tokens (
    token_hash        TEXT    PRIMARY KEY,
    session_id        TEXT    NOT NULL REFERENCES refresh_sessions (id) ON DELETE CASCADE,
    issued_at         BIGINT  NOT NULL,
    used_at           BIGINT,
    access_jti        TEXT    NOT NULL,
    access_expires_at BIGINT  NOT NULL
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Machine-to-machine clients (client-credentials grant): what they may do, as space-separated
-- `module.action` names, never more than their creator held.
CREATE TABLE service_clients (
    client_id    TEXT    PRIMARY KEY,
    name         TEXT    NOT NULL,
    secret_hash  TEXT    NOT NULL,
    permissions  TEXT    NOT NULL,
    created_by   TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
