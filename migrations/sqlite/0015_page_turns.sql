-- Whose turn it is (issue 20): a worker leases a page only when no other page to its person on
-- its channel is under way (leased) or went out less than `[paging] group_window` ago. These two
-- small indexes answer both questions per person and channel without reading every page they
-- were ever sent (a storm's thousands made each lease take a quarter of a second).
CREATE INDEX page_jobs_person_leased ON page_jobs(person, channel, lease_until)
    WHERE state = 'leased';
CREATE INDEX page_jobs_person_sent ON page_jobs(person, channel, updated_at)
    WHERE state IN ('done', 'failed') AND group_of IS NULL;
