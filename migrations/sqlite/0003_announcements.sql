-- Incident announcements played to callers before the menu (guide 4.2, 6.1). The current one is
-- the newest row not cleared; the audio (8 kHz mono 16-bit WAV) is kept here so every node
-- plays the same words.
CREATE TABLE announcements (
    id          INTEGER PRIMARY KEY,
    phase       TEXT NOT NULL CHECK (phase IN ('investigating', 'identified', 'monitoring')),
    text_fr     TEXT NOT NULL,
    text_en     TEXT NOT NULL,
    audio_fr    BLOB NOT NULL,
    audio_en    BLOB NOT NULL,
    set_by      TEXT NOT NULL,
    set_at      TEXT NOT NULL,
    cleared_at  TEXT
);
