-- Users and their roles. Usernames and e-mails are ASCII (checked by the application) and unique
-- case-insensitively; the expression indexes also serve the login lookup, so it never scans.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL,
    email         TEXT    NOT NULL,
    full_name     TEXT,
    password_hash TEXT    NOT NULL,
    is_active     BOOLEAN NOT NULL DEFAULT 1,
    empleado_id   BIGINT,
    permissions   TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(permissions)),
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL
);

CREATE UNIQUE INDEX users_username_ci ON users (lower(username));
CREATE UNIQUE INDEX users_email_ci ON users (lower(email));

-- Roles in assignment order: `position` orders them, the first is `whoami`'s role.
CREATE TABLE user_roles (
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        TEXT    NOT NULL,
    position    INTEGER NOT NULL,
    assigned_at TEXT    NOT NULL,
    PRIMARY KEY (user_id, role),
    UNIQUE (user_id, position)
);
