-- Admin changes to the hours from the console, on top of [schedule] in the config: closed days
-- added, computed holidays worked anyway, and closures. Shared by every node.
CREATE TABLE hours_changes (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('holiday_added', 'holiday_removed', 'closure')),
    -- Local date (YYYY-MM-DD) for holidays; local date-times (YYYY-MM-DDTHH:MM) for closures.
    day         TEXT,
    starts      TEXT,
    ends        TEXT,
    name        TEXT NOT NULL DEFAULT '',
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX hours_changes_day ON hours_changes(kind, day) WHERE day IS NOT NULL;
