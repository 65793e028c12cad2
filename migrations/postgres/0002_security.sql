-- Account security: token revocation by version, lockout counters, password age, logout
-- revocations, and the append-only audit trail. Times are Unix seconds (counters, locks) or
-- milliseconds (audit), UTC, so both backends compare them the same way.

-- Bumped on password change or reset and on deactivation: tokens carry the version they were
-- issued with (`ver`), older ones are refused.
ALTER TABLE users ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0;
-- Login attempts in the current window (reserved before the password is checked, so parallel
-- attempts can never get more tries than the threshold), the window's start, the lock's end.
ALTER TABLE users ADD COLUMN failed_logins BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN failed_window_start BIGINT;
ALTER TABLE users ADD COLUMN locked_until BIGINT;
-- When the password was last set (for optional password aging).
ALTER TABLE users ADD COLUMN password_changed_at BIGINT;

-- Tokens revoked by logout, until they would have expired anyway.
CREATE TABLE revoked_tokens (
    jti        TEXT    PRIMARY KEY,
    user_id    BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL
);
CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);

-- The audit trail (21 CFR Part 11 §11.10(e), EU GMP Annex 11 §12.4): append-only, enforced
-- below by triggers that refuse UPDATE, DELETE and TRUNCATE.
CREATE TABLE audit_events (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at      BIGINT  NOT NULL,           -- Unix time, milliseconds, UTC
    event_type       TEXT    NOT NULL,
    actor_id         BIGINT,
    actor_username   TEXT,
    subject_id       BIGINT,
    subject_username TEXT,                       -- for a failed login: the name attempted
    client_addr      TEXT,
    user_agent       TEXT,
    trace            TEXT,
    details          JSONB   NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_events_time ON audit_events (occurred_at);
CREATE INDEX audit_events_type ON audit_events (event_type, id);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END
$$;

CREATE TRIGGER audit_events_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
