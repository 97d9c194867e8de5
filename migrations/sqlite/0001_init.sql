-- Customers, tickets with their append-only event log, and the page-job outbox (SQLite).
-- Timestamps are RFC 3339 UTC text, which sorts in time order.

CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    company     TEXT NOT NULL,
    address     TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- A registered number identifies the company calling (digits only, 1NPANXXXXXX for NANP).
CREATE TABLE account_numbers (
    number      TEXT PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE
);
CREATE INDEX account_numbers_account ON account_numbers(account_id);

CREATE TABLE account_contacts (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('administrative', 'technical', 'billing')),
    name        TEXT NOT NULL,
    phone       TEXT NOT NULL DEFAULT '',
    email       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX account_contacts_account ON account_contacts(account_id);

CREATE TABLE tickets (
    id                      INTEGER PRIMARY KEY,
    number                  TEXT NOT NULL UNIQUE,
    severity                TEXT NOT NULL CHECK (severity IN ('S1', 'S2', 'S3')),
    status                  TEXT NOT NULL CHECK (status IN
                              ('open', 'paged', 'acknowledged', 'called_back', 'resolved', 'cancelled')),
    caller                  TEXT NOT NULL,
    callback_number         TEXT NOT NULL,
    account_id              INTEGER REFERENCES accounts(id),
    language                TEXT NOT NULL,
    created_at              TEXT NOT NULL,
    paged_at                TEXT,
    acknowledged_at         TEXT,
    called_back_at          TEXT,
    resolved_at             TEXT,
    cancelled_at            TEXT,
    callback_due_at         TEXT NOT NULL,
    resolution_due_at       TEXT NOT NULL,
    voicemail_path          TEXT,
    voicemail_seconds       REAL,
    speech_detected         BOOLEAN,
    answers                 TEXT NOT NULL DEFAULT '{}',
    classification_reasons  TEXT NOT NULL DEFAULT '[]',
    suspected_incident      BOOLEAN NOT NULL DEFAULT 0
);
-- `tickets list --open` reads only this small partial index, however many tickets are closed.
CREATE INDEX tickets_open ON tickets(callback_due_at)
    WHERE status IN ('open', 'paged', 'acknowledged', 'called_back');
CREATE INDEX tickets_created ON tickets(created_at);

CREATE TABLE ticket_events (
    id              INTEGER PRIMARY KEY,
    ticket_id       INTEGER NOT NULL REFERENCES tickets(id),
    at              TEXT NOT NULL,
    kind            TEXT NOT NULL,
    actor           TEXT NOT NULL,
    from_status     TEXT,
    to_status       TEXT,
    from_severity   TEXT,
    to_severity     TEXT,
    reason          TEXT
);
CREATE INDEX ticket_events_ticket ON ticket_events(ticket_id, id);

-- Who did what and why is history: it is never rewritten.
CREATE TRIGGER ticket_events_no_update BEFORE UPDATE ON ticket_events
BEGIN SELECT RAISE(ABORT, 'ticket_events is append-only'); END;
CREATE TRIGGER ticket_events_no_delete BEFORE DELETE ON ticket_events
BEGIN SELECT RAISE(ABORT, 'ticket_events is append-only'); END;

-- The outbox drained by paging: a job exists only once its ticket row has committed.
CREATE TABLE page_jobs (
    id          INTEGER PRIMARY KEY,
    ticket_id   INTEGER NOT NULL REFERENCES tickets(id),
    channel     TEXT NOT NULL,
    target      TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'leased', 'done', 'failed', 'cancelled')),
    run_at      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until TEXT,
    last_error  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX page_jobs_runnable ON page_jobs(run_at) WHERE state IN ('pending', 'leased');
CREATE INDEX page_jobs_ticket ON page_jobs(ticket_id);
