-- When the ticket row was written, as opposed to `created_at` (when its call began, from which
-- the SLA counts). The ladder sends no page before the ticket exists: a level whose offset
-- passed during the call gets its first page, on every channel, when the ticket is opened, and
-- its repeats count from there. NULL (rows of before, or of a node of the previous version):
-- `created_at` stands in.
ALTER TABLE tickets ADD COLUMN opened_at TIMESTAMPTZ;
