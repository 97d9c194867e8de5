-- The night drill (issue 20): a drill deployment (`[drill] time_scale`) compresses the SLA
-- targets and the ladder; each ticket records the scale it was opened under, so a drill ticket
-- is shown as one everywhere (console, pages, SLA report) and is never taken for a real one.
-- 1 is a real ticket. A node of the previous version ignores the column and writes 1.
ALTER TABLE tickets ADD COLUMN time_scale INTEGER NOT NULL DEFAULT 1;
