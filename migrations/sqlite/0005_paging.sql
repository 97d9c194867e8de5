-- On-call paging: page jobs know whom, which ladder level and why, and carry a dedup key so a
-- planner that runs twice (a restart, a second node) never enqueues one page twice.
ALTER TABLE page_jobs ADD COLUMN person TEXT;
ALTER TABLE page_jobs ADD COLUMN level INTEGER NOT NULL DEFAULT 0;
ALTER TABLE page_jobs ADD COLUMN reason TEXT NOT NULL DEFAULT 'escalation';
ALTER TABLE page_jobs ADD COLUMN dedup_key TEXT;
ALTER TABLE page_jobs ADD COLUMN sent_at TEXT;
CREATE UNIQUE INDEX page_jobs_dedup ON page_jobs(dedup_key);

-- People who can be paged: seeded from [[paging.people]] at start, changed by the CLI after.
CREATE TABLE paging_people (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    phone       TEXT,
    email       TEXT,
    language    TEXT NOT NULL CHECK (language IN ('fr', 'en')),
    updated_at  TEXT NOT NULL,
    updated_by  TEXT NOT NULL
);

-- "tech2 covers the oncall rotation from Friday 18:00 to Monday 08:00".
CREATE TABLE oncall_overrides (
    id          INTEGER PRIMARY KEY,
    rotation    TEXT NOT NULL,
    person      TEXT NOT NULL,
    starts_at   TEXT NOT NULL,
    ends_at     TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE INDEX oncall_overrides_end ON oncall_overrides(ends_at);

-- Installation-wide values every node must agree on (the acknowledgement links' key).
CREATE TABLE settings (
    key     TEXT PRIMARY KEY,
    value   TEXT NOT NULL
);
