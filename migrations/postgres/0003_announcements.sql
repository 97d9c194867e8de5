-- Incident announcements played to callers before the menu (guide 4.2, 6.1). The current one is
-- the newest row not cleared; the audio (8 kHz mono 16-bit WAV) is kept here so every node
-- plays the same words.
CREATE TABLE announcements (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    phase       TEXT NOT NULL CHECK (phase IN ('investigating', 'identified', 'monitoring')),
    text_fr     TEXT NOT NULL,
    text_en     TEXT NOT NULL,
    audio_fr    BYTEA NOT NULL,
    audio_en    BYTEA NOT NULL,
    set_by      TEXT NOT NULL,
    set_at      TIMESTAMPTZ NOT NULL,
    cleared_at  TIMESTAMPTZ
);
