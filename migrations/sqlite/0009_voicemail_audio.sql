-- Voicemail audio in the store (issue 14): once the WAV is fsynced on the node that took the
-- call, its bytes are committed in the same transaction as the ticket, so the e-mail page, the
-- console's player and "press 2 to hear the voicemail" work from any node, and a node whose disk
-- dies loses nothing. `tickets.voicemail_path` stays as provenance (where it was recorded).
-- A 3-minute message is about 3 MB (8 kHz, 16-bit mono).
CREATE TABLE voicemail_audio (
    ticket_id   INTEGER PRIMARY KEY REFERENCES tickets(id),
    wav         BLOB NOT NULL,
    -- Size of `wav` in bytes, readable without loading the audio (attachment limits).
    bytes       INTEGER NOT NULL CHECK (bytes >= 0),
    -- SHA-256 of `wav`, lowercase hex: operators compare it with the file on the recording node.
    sha256      TEXT NOT NULL,
    stored_at   TEXT NOT NULL
);
