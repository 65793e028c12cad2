-- Failed logins against names that match no account, counted and locked by the same rules as
-- an account's (`users.failed_logins`, `failed_window_start`, `locked_until`), so that a lock
-- (429) says nothing about whether an account exists — and, kept here rather than in one
-- process's memory, holds across restarts and replicas as an account's does. `name` is the
-- login as typed, case-folded. Rows whose window and lock have passed are pruned when the
-- server opens the database. Times are Unix seconds, UTC.
CREATE TABLE login_name_failures (
    name                TEXT    PRIMARY KEY,
    failed_logins       BIGINT  NOT NULL,
    failed_window_start BIGINT  NOT NULL,
    locked_until        BIGINT
);
