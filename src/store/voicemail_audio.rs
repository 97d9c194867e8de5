//! Voicemail audio in the store (issue 14), so it does not live only on the disk of the node
//! that took the call.
//!
//! The ticket's writer reads the fsynced WAV and commits its bytes (`voicemail_audio`) in the
//! same transaction as the ticket: once a caller hears the tracking number, every node can play,
//! attach or export the message. `tickets.voicemail_path` stays as provenance. Tickets from
//! before this table get their audio from [`Store::backfill_voicemail_audio`] (run at start by
//! each node, for the files it has); until then readers fall back to the local file
//! ([`Store::voicemail_wav`]).

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use tracing::{debug, info, warn};

use super::{micros, on_read, on_write, Store, StoreError};

/// Largest voicemail kept in the store: a 3-minute message is about 3 MB, and the recorder
/// stops long before this; anything bigger is not one of ours.
pub const MAX_VOICEMAIL_BYTES: u64 = 64 * 1024 * 1024;

/// Why a recording's bytes could not be taken from its file.
#[derive(Debug, thiserror::Error)]
pub enum VoicemailFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is {bytes} bytes, more than the {limit} bytes a voicemail may have")]
    TooLarge {
        path: String,
        bytes: u64,
        limit: u64,
    },
}

impl VoicemailFileError {
    /// The file is not there (as opposed to there but unreadable or too large).
    pub fn is_not_found(&self) -> bool {
        matches!(self, VoicemailFileError::Read { source, .. }
            if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// A WAV read from disk, ready to store.
#[derive(Debug, Clone)]
pub(crate) struct WavFile {
    pub wav: Vec<u8>,
    pub sha256: String,
}

/// Reads a recording (at most `limit` bytes) and hashes it, off the async threads.
pub(crate) async fn read_wav_file(path: &str, limit: u64) -> Result<WavFile, VoicemailFileError> {
    let owned = path.to_string();
    let read = tokio::task::spawn_blocking(move || {
        // Hashing megabytes is CPU work too: it stays off the async threads with the read.
        read_capped(Path::new(&owned), limit).map(|wav| WavFile {
            sha256: sha256_hex(&wav),
            wav,
        })
    })
    .await;
    match read {
        Ok(r) => r,
        Err(e) => Err(VoicemailFileError::Read {
            path: path.to_string(),
            source: std::io::Error::other(e.to_string()),
        }),
    }
}

/// The file's bytes, refusing one larger than `limit` (checked before and after reading: the
/// file might grow in between).
fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, VoicemailFileError> {
    use std::io::Read;
    let err = |source| VoicemailFileError::Read {
        path: path.display().to_string(),
        source,
    };
    let too_large = |bytes| VoicemailFileError::TooLarge {
        path: path.display().to_string(),
        bytes,
        limit,
    };
    let file = std::fs::File::open(path).map_err(err)?;
    let size = file.metadata().map_err(err)?.len();
    if size > limit {
        return Err(too_large(size));
    }
    let mut wav = Vec::with_capacity(size as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut wav)
        .map_err(err)?;
    if wav.len() as u64 > limit {
        return Err(too_large(wav.len() as u64));
    }
    Ok(wav)
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What the store knows of a ticket's stored audio, without the audio.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VoicemailAudioInfo {
    pub bytes: i64,
    /// Lowercase hex.
    pub sha256: String,
    pub stored_at: DateTime<Utc>,
}

/// Where a voicemail's bytes were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WavSource {
    /// The shared store: the same on every node.
    Store,
    /// The recording's file on this node (a ticket whose audio is not in the store yet).
    LocalFile,
}

/// A ticket's voicemail as a reader (e-mail, phone, console, CLI) gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoicemailWav {
    /// The ticket has no voicemail.
    NoVoicemail,
    Found {
        wav: Vec<u8>,
        source: WavSource,
    },
    /// Larger than the reader's limit (not loaded).
    TooLarge {
        bytes: u64,
    },
    /// Recorded, but neither in the store nor on this node's disk.
    Gone,
    /// Recorded, but cannot be read from here now (the store failed and the file is not
    /// readable); `why` is for logs and people.
    Unreadable {
        why: String,
    },
}

/// What [`Store::backfill_voicemail_audio`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillReport {
    /// Audio rows written from this node's files.
    pub stored: u64,
    /// Tickets whose recording is not on this node (another node's, or lost).
    pub not_here: u64,
    /// Files present but unreadable or too large.
    pub failed: u64,
}

/// Tickets handled per backfill query.
const BACKFILL_BATCH: i64 = 100;

impl Store {
    /// The ticket's voicemail WAV from the store, `None` if it has no audio row.
    pub async fn voicemail_audio(&self, ticket_id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        on_read!(&self.db, pool => {
            let wav: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT wav FROM voicemail_audio WHERE ticket_id = $1")
                    .bind(ticket_id)
                    .fetch_optional(pool)
                    .await?;
            Ok(wav)
        })
    }

    /// Size, hash and time of the ticket's stored audio, `None` if it has no audio row.
    pub async fn voicemail_audio_info(
        &self,
        ticket_id: i64,
    ) -> Result<Option<VoicemailAudioInfo>, StoreError> {
        on_read!(&self.db, pool => {
            let row = sqlx::query(
                "SELECT bytes, sha256, stored_at FROM voicemail_audio WHERE ticket_id = $1",
            )
            .bind(ticket_id)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(r) => Ok(Some(VoicemailAudioInfo {
                    bytes: r.try_get("bytes")?,
                    sha256: r.try_get("sha256")?,
                    stored_at: r.try_get("stored_at")?,
                })),
                None => Ok(None),
            }
        })
    }

    /// Stores a ticket's audio if it has none yet (the backfill; several nodes may try at once).
    /// Returns whether this call stored it.
    pub async fn store_voicemail_audio(
        &self,
        ticket_id: i64,
        wav: &[u8],
    ) -> Result<bool, StoreError> {
        if wav.len() as u64 > MAX_VOICEMAIL_BYTES {
            return Err(StoreError::Invalid(format!(
                "a voicemail of {} bytes is more than the {MAX_VOICEMAIL_BYTES} bytes the store keeps",
                wav.len()
            )));
        }
        let sha = sha256_hex(wav);
        on_write!(&self.db, pool => {
            let done = sqlx::query(
                "INSERT INTO voicemail_audio (ticket_id, wav, bytes, sha256, stored_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (ticket_id) DO NOTHING",
            )
            .bind(ticket_id)
            .bind(wav)
            .bind(wav.len() as i64)
            .bind(&sha)
            .bind(micros(Utc::now()))
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// The ticket's voicemail, from the store first, else from the file it was recorded to (on
    /// this node), refusing more than `limit` bytes. A store that fails falls back to the file
    /// too: a page should not wait for the database to play or attach what is on disk.
    pub async fn voicemail_wav(
        &self,
        ticket: &str,
        ticket_id: i64,
        local_path: Option<&str>,
        limit: u64,
    ) -> VoicemailWav {
        let Some(path) = local_path else {
            return VoicemailWav::NoVoicemail;
        };
        let from_store = on_read!(&self.db, pool => {
            sqlx::query(
                "SELECT bytes, CASE WHEN bytes <= $2 THEN wav END AS wav \
                 FROM voicemail_audio WHERE ticket_id = $1",
            )
            .bind(ticket_id)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_optional(pool)
            .await
            .and_then(|row| match row {
                Some(r) => Ok(Some((r.try_get::<i64, _>("bytes")?, r.try_get::<Option<Vec<u8>>, _>("wav")?))),
                None => Ok(None),
            })
        });
        let store_failed = match from_store {
            Ok(Some((_, Some(wav)))) => {
                return VoicemailWav::Found {
                    wav,
                    source: WavSource::Store,
                }
            }
            Ok(Some((bytes, None))) => {
                return VoicemailWav::TooLarge {
                    bytes: bytes.max(0) as u64,
                }
            }
            Ok(None) => None,
            Err(e) => {
                warn!(ticket, error = %e, "voicemail: the store failed; trying the local file");
                Some(e)
            }
        };
        match read_wav_file(path, limit).await {
            Ok(f) => {
                debug!(
                    ticket,
                    path, "voicemail read from the local file (not in the store)"
                );
                VoicemailWav::Found {
                    wav: f.wav,
                    source: WavSource::LocalFile,
                }
            }
            Err(VoicemailFileError::TooLarge { bytes, .. }) => VoicemailWav::TooLarge { bytes },
            Err(e) if e.is_not_found() && store_failed.is_none() => VoicemailWav::Gone,
            Err(e) => VoicemailWav::Unreadable {
                why: match store_failed {
                    Some(s) => format!("the store failed ({s}) and {e}"),
                    None => e.to_string(),
                },
            },
        }
    }

    /// Stores the audio of tickets that have a recording but no audio row (tickets from before
    /// audio was stored, or whose file could not be read when they were made), from the files
    /// this node has. Idempotent, and safe on several nodes at once.
    pub async fn backfill_voicemail_audio(&self) -> Result<BackfillReport, StoreError> {
        let mut report = BackfillReport::default();
        let mut after = 0i64;
        loop {
            let batch: Vec<(i64, String, String)> = on_read!(&self.db, pool => {
                sqlx::query_as(
                    "SELECT t.id, t.number, t.voicemail_path FROM tickets t \
                     LEFT JOIN voicemail_audio v ON v.ticket_id = t.id \
                     WHERE t.voicemail_path IS NOT NULL AND v.ticket_id IS NULL AND t.id > $1 \
                     ORDER BY t.id LIMIT $2",
                )
                .bind(after)
                .bind(BACKFILL_BATCH)
                .fetch_all(pool)
                .await?
            });
            let Some(last) = batch.last() else { break };
            after = last.0;
            for (id, number, path) in batch {
                match read_wav_file(&path, MAX_VOICEMAIL_BYTES).await {
                    Ok(f) => {
                        if self.store_voicemail_audio(id, &f.wav).await? {
                            info!(ticket = %number, path, bytes = f.wav.len(), "voicemail audio stored from the local file");
                            report.stored += 1;
                        }
                    }
                    Err(e) if e.is_not_found() => report.not_here += 1,
                    Err(e) => {
                        warn!(ticket = %number, error = %e, "voicemail audio not stored");
                        report.failed += 1;
                    }
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn files_are_read_up_to_the_limit() {
        let dir = tempfile::tempdir().map_err(|e| e.to_string());
        let Ok(dir) = dir else { panic!("{dir:?}") };
        let path = dir.path().join("vm.wav");
        std::fs::write(&path, [1u8; 100]).unwrap_or_else(|e| panic!("{e}"));
        let p = path.to_string_lossy().into_owned();
        let f = read_wav_file(&p, 100).await.map_err(|e| e.to_string());
        assert_eq!(f.map(|f| f.wav.len()), Ok(100));
        let e = read_wav_file(&p, 99).await;
        assert!(
            matches!(
                e,
                Err(VoicemailFileError::TooLarge {
                    bytes: 100,
                    limit: 99,
                    ..
                })
            ),
            "{e:?}"
        );
        let gone = dir.path().join("gone.wav").to_string_lossy().into_owned();
        assert!(read_wav_file(&gone, 100)
            .await
            .is_err_and(|e| e.is_not_found()));
    }
}
