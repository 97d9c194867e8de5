-- The night drill's reports (issue 20): `astreinte drill` posts each night's report to the
-- console, which shows the last one. The report is the drill's JSON (NightReport), kept whole.
CREATE TABLE drill_reports (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    promise_held  BOOLEAN NOT NULL,
    report        TEXT NOT NULL,
    posted_by     TEXT NOT NULL,
    posted_at     TEXT NOT NULL
);
