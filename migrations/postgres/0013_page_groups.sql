-- Pages to one person are grouped (issue 20): while a page to someone on a channel is under
-- way or was sent less than `[paging] group_window` ago, their next pages on that channel wait,
-- then go as one naming every ticket. `group_of` is the job whose page carried this one (NULL:
-- sent on its own). A node of the previous version ignores it and sends each job alone.
ALTER TABLE page_jobs ADD COLUMN group_of BIGINT;
CREATE INDEX page_jobs_person ON page_jobs(person, channel, state);
