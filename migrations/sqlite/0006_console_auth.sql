-- The admin console: who may log in (argon2 PHC hashes), their sessions and API tokens (only a
-- SHA-256 of each secret is kept), and the audit log of every change.
CREATE TABLE users (
    name            TEXT PRIMARY KEY,
    role            TEXT NOT NULL CHECK (role IN ('admin', 'technician', 'viewer')),
    password_hash   TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    disabled        BOOLEAN NOT NULL DEFAULT 0
);

-- A login: id_hash is the hex SHA-256 of the cookie's value; expires_at slides with use.
CREATE TABLE sessions (
    id_hash     TEXT PRIMARY KEY,
    user_name   TEXT NOT NULL REFERENCES users(name),
    csrf_token  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    last_seen   TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_name);
CREATE INDEX sessions_expiry ON sessions(expires_at);

-- Scripts' bearer tokens: token_hash is the hex SHA-256 of the token.
CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY,
    user_name   TEXT NOT NULL REFERENCES users(name),
    token_hash  TEXT NOT NULL UNIQUE,
    label       TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    last_used   TEXT,
    revoked     BOOLEAN NOT NULL DEFAULT 0
);
CREATE INDEX api_tokens_user ON api_tokens(user_name);

-- Who changed what, when, before and after (JSON text): never rewritten.
CREATE TABLE audit_events (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    before  TEXT,
    after   TEXT
);
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
