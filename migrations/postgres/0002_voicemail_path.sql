-- A voicemail's ticket is found by its recording, so re-submitting a voicemail after a crash
-- (between the ticket's commit and the intake being marked done) never makes a second ticket.
CREATE INDEX IF NOT EXISTS tickets_voicemail_path ON tickets (voicemail_path);
