-- A console user's own language and paging person (issue 21). `lang` ("fr" or "en") is the
-- choice made with the console's language switch, kept with the user so it follows them from
-- the phone to the desktop; NULL: their person's language, else the browser's. `person_id` is
-- the roster's person (paging_people.id) the login acts as: covering their own shift, "only
-- mine"; NULL: the person whose id is the login name, as before. No foreign key: people are
-- seeded again from the configuration at each start, and a person removed from it leaves the
-- link to be fixed (`astreinte users link`), not the user to be deleted. A node of the previous
-- version ignores both columns.
ALTER TABLE users ADD COLUMN lang TEXT CHECK (lang IN ('fr', 'en'));
ALTER TABLE users ADD COLUMN person_id TEXT;
