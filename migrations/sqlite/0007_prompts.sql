-- Prompts uploaded from the console (issue 13). Every upload is a new version, kept so it can be
-- rolled back to; at most one version per (lang, name) is active, none meaning the bundled
-- default plays. The audio is an 8 kHz mono 16-bit WAV, in the store so every node plays the
-- same recording.
CREATE TABLE prompt_versions (
    id          INTEGER PRIMARY KEY,
    lang        TEXT NOT NULL CHECK (lang IN ('fr', 'en')),
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL CHECK (version > 0),
    audio       BLOB NOT NULL,
    seconds     REAL NOT NULL,
    uploaded_by TEXT NOT NULL,
    uploaded_at TEXT NOT NULL,
    active      BOOLEAN NOT NULL DEFAULT FALSE,
    UNIQUE (lang, name, version)
);
CREATE UNIQUE INDEX prompt_versions_one_active ON prompt_versions (lang, name) WHERE active;

-- One counter, bumped by every upload and rollback: what each node's poller compares.
CREATE TABLE prompt_changes (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    generation  INTEGER NOT NULL
);
INSERT INTO prompt_changes (id, generation) VALUES (1, 0);
