//! Voicemails become tickets, and none is ever lost.
//!
//! When a caller starts a message, the flow writes an [`Intake`] beside the recording
//! (`<name>.intake.json`, fsynced): who called, the callback number, the key they pressed, the
//! language. When the message ends (or the caller hangs up), the recording is fsynced and the
//! [`VoicemailDesk`] turns the pair into a ticket: account by calling number, triage, SLA
//! deadlines, one `create_ticket`. Then the intake is renamed `<name>.ticket.json`.
//!
//! - A crash mid-message leaves a `.part` recording (made whole at start-up by
//!   `media::recover_unfinished`) and its intake: [`pending_intakes`] finds them and the desk
//!   opens their tickets, marked recovered.
//! - A store that is down when a message ends: the desk tells the waiting caller at once (the
//!   flow says the message is kept), then retries with backoff until the store is back, taking
//!   the messages in the order they came, a few at a time. Nothing is dropped.
//! - A crash between the ticket's commit and the rename: the desk looks the ticket up by its
//!   recording before creating one, so a voicemail is never ticketed twice.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use tokio::sync::{mpsc, oneshot, Notify, Semaphore};
use tracing::{error, info, info_span, warn, Instrument};

use super::callback::CallbackNumber;
use crate::schedule::{sla, LiveSchedule, Schedule};
use crate::store::{NewTicket, Store, StoreError, Ticket, Voicemail};
use crate::triage::{Triage, TriageInput};

/// Beside `vm.wav`: `vm.intake.json` while its ticket is to be made, `vm.ticket.json` after.
const INTAKE_SUFFIX: &str = ".intake.json";
const DONE_SUFFIX: &str = ".ticket.json";
/// Longest wait between two tries while the store is down.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Messages turned into tickets at once: each waits on the store (a lookup, a transaction, two
/// fsyncs), so a few in parallel keep a storm's tracking numbers seconds, not minutes, away.
const DESK_WIDTH: usize = 8;

/// What the flow knows when a message starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intake {
    pub call_id: String,
    /// The calling number as the caller ID gave it ("anonymous" when hidden).
    pub caller: String,
    /// The number the caller confirmed or keyed for the callback, if the callback policy took
    /// one. Never the caller ID by default: a refused number is no callback number.
    pub callback_number: Option<CallbackNumber>,
    /// The key pressed in the emergency menu ('1' S1, '2' S2, '3' anything else), if any.
    pub keypress: Option<char>,
    /// "fr" or "en".
    pub language: String,
    pub business_hours: bool,
    pub started_at: DateTime<Utc>,
    /// What the IVR collected (question → answer), copied to the ticket.
    #[serde(default)]
    pub answers: BTreeMap<String, String>,
    /// Set when the recording ended normally; absent after a crash mid-message.
    #[serde(default)]
    pub finished: Option<Finished>,
    /// The tracking number, once the ticket exists (in `.ticket.json` only).
    #[serde(default)]
    pub ticket: Option<String>,
}

/// How a recording ended, as the media engine reported it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    pub seconds: f64,
    pub speech_detected: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not an intake record: {source}")]
    Malformed {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Why the desk could not give the caller a tracking number now.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    /// The store refused or was unreachable; the ticket will be made when it is back.
    #[error("the ticket store is unavailable ({0}); the voicemail is kept and will be ticketed")]
    StoreDown(String),
    #[error("the voicemail desk has stopped")]
    Stopped,
}

impl Intake {
    /// `dir/vm.wav` → `dir/vm.intake.json`.
    pub fn path_for(recording: &Path) -> PathBuf {
        sibling(recording, INTAKE_SUFFIX)
    }

    /// Writes the intake durably (temporary file, fsync, rename, fsync of the directory)
    /// before the recording starts.
    pub fn write(&self, recording: &Path) -> Result<(), IntakeError> {
        write_durably(&Intake::path_for(recording), self)
    }

    pub fn read(path: &Path) -> Result<Intake, IntakeError> {
        let text = std::fs::read(path).map_err(|source| IntakeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|source| IntakeError::Malformed {
            path: path.to_path_buf(),
            source,
        })
    }
}

fn sibling(recording: &Path, suffix: &str) -> PathBuf {
    let stem = recording
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    recording.with_file_name(format!("{stem}{suffix}"))
}

fn write_durably(path: &Path, intake: &Intake) -> Result<(), IntakeError> {
    let io = |source| IntakeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(intake).map_err(|e| io(std::io::Error::other(e)))?;
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(&bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    crate::durable::fsync_dir_of(path).map_err(io)
}

/// The voicemails a previous run left without a ticket, oldest first: each intake in `dir`
/// with its recording (None when the engine died before the first audio reached the disk).
/// Run after `media::recover_unfinished`, which makes crashed recordings whole.
pub fn pending_intakes(dir: &Path) -> Vec<(PathBuf, Intake)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(INTAKE_SUFFIX) else {
            continue;
        };
        match Intake::read(&e.path()) {
            Ok(intake) => out.push((dir.join(format!("{stem}.wav")), intake)),
            // Kept on disk for a person to read; never deleted.
            Err(err) => error!(error = %err, "unreadable voicemail intake left aside"),
        }
    }
    out.sort_by_key(|(_, intake)| intake.started_at);
    out
}

/// Length and speech of a recording that did not finish normally, read back from the file
/// (webrtc-vad over its 20 ms frames: speech is 10 voiced frames in a row, as on a live call).
fn measure(recording: &Path) -> Option<Finished> {
    let reader = hound::WavReader::open(recording).ok()?;
    let rate = reader.spec().sample_rate.max(1);
    let samples: Vec<i16> = reader.into_samples::<i16>().map_while(Result::ok).collect();
    let mut vad = crate::media::vad::FrameVad::new();
    let mut tracker = crate::media::vad::SpeechTracker::new(10, 25);
    let mut speech = false;
    if rate == 8000 {
        for frame in samples.chunks_exact(160) {
            if tracker.push(vad.is_speech(frame)).is_some() {
                speech = true;
            }
        }
    }
    Some(Finished {
        seconds: samples.len() as f64 / f64::from(rate),
        speech_detected: speech,
    })
}

struct Job {
    recording: PathBuf,
    intake: Intake,
    recovered: bool,
    reply: Option<oneshot::Sender<Result<Ticket, DeskError>>>,
}

/// Turns voicemails into tickets, a few at a time in the order they came, retrying while the
/// store is down.
#[derive(Debug, Clone)]
pub struct VoicemailDesk {
    tx: mpsc::UnboundedSender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("recording", &self.recording)
            .finish_non_exhaustive()
    }
}

impl VoicemailDesk {
    /// Starts the desk's task on the current runtime. It runs while a desk handle exists.
    pub fn start(store: Store, schedule: Schedule, triage: Triage) -> VoicemailDesk {
        Self::start_notifying(
            store,
            LiveSchedule::new(schedule),
            triage,
            Arc::new(Notify::new()),
        )
    }

    /// [`VoicemailDesk::start`], and `opened` is notified each time a ticket is made (paging
    /// wakes on it rather than waiting for its next pass).
    pub fn start_notifying(
        store: Store,
        schedule: LiveSchedule,
        triage: Triage,
        opened: Arc<Notify>,
    ) -> VoicemailDesk {
        // Unbounded on purpose: one entry per caller's message; refusing one would lose it.
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx, store, schedule, triage, opened));
        VoicemailDesk { tx }
    }

    /// Opens the ticket of a message that just ended (its recording fsynced, `intake.finished`
    /// set). The answer comes as soon as the ticket exists, or at the first failure: the desk
    /// keeps trying after that, and the ticket is made when the store is back.
    pub fn submit(
        &self,
        recording: PathBuf,
        intake: Intake,
    ) -> oneshot::Receiver<Result<Ticket, DeskError>> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            recording,
            intake,
            recovered: false,
            reply: Some(reply),
        };
        if let Err(mpsc::error::SendError(job)) = self.tx.send(job) {
            if let Some(reply) = job.reply {
                let _ = reply.send(Err(DeskError::Stopped));
            }
        }
        rx
    }

    /// Queues what a previous run left (see [`pending_intakes`]); their tickets are marked
    /// recovered. Nobody waits for them.
    pub fn recover(&self, dir: &Path) -> usize {
        let pending = pending_intakes(dir);
        let n = pending.len();
        for (recording, intake) in pending {
            warn!(recording = %recording.display(), call_id = %intake.call_id, "voicemail without a ticket from a previous run: opening it now");
            let _ = self.tx.send(Job {
                recording,
                intake,
                recovered: true,
                reply: None,
            });
        }
        n
    }
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<Job>,
    store: Store,
    schedule: LiveSchedule,
    triage: Triage,
    opened: Arc<Notify>,
) {
    // Tickets are committed one after the other in the order the messages came (each sees the
    // ones before it, for the correlation of a suspected incident), and what follows a commit
    // (the done-marker's fsyncs, the caller's answer) overlaps the next ones, up to
    // [`DESK_WIDTH`] messages at once: done strictly one by one, a storm's hundredth caller
    // waited ten seconds behind their '#' for a ticket.
    let width = Arc::new(Semaphore::new(DESK_WIDTH));
    let mut previous: Option<oneshot::Receiver<()>> = None;
    while let Some(job) = rx.recv().await {
        let Ok(permit) = width.clone().acquire_owned().await else {
            return;
        };
        let (committed, next_turn) = oneshot::channel();
        let turn = previous.replace(next_turn);
        let (store, schedule, triage, opened) = (
            store.clone(),
            schedule.clone(),
            triage.clone(),
            opened.clone(),
        );
        tokio::spawn(async move {
            if let Some(turn) = turn {
                // Err: the message before ended without a ticket (the desk is stopping).
                let _ = turn.await;
            }
            open_until_done(job, committed, &store, &schedule, &triage, &opened).await;
            drop(permit);
        });
    }
}

/// Opens `job`'s ticket, retrying with backoff while the store is down, and says so on
/// `committed` once the ticket exists (the next message's turn).
async fn open_until_done(
    mut job: Job,
    committed: oneshot::Sender<()>,
    store: &Store,
    schedule: &LiveSchedule,
    triage: &Triage,
    opened: &Notify,
) {
    let span =
        info_span!("voicemail", call_id = %job.intake.call_id, ticket = tracing::field::Empty);
    let mut backoff = Duration::from_millis(500);
    loop {
        let attempt = open_ticket(store, &schedule.get(), triage, &job)
            .instrument(span.clone())
            .await;
        match attempt {
            Ok(ticket) => {
                span.record("ticket", ticket.number.as_str());
                let _ = committed.send(());
                opened.notify_one();
                let mut done = job.intake.clone();
                done.ticket = Some(ticket.number.clone());
                let marked =
                    write_durably(&sibling(&job.recording, DONE_SUFFIX), &done).and_then(|()| {
                        let intake = Intake::path_for(&job.recording);
                        std::fs::remove_file(&intake).map_err(|source| IntakeError::Io {
                            path: intake,
                            source,
                        })
                    });
                if let Err(e) = marked {
                    // The ticket exists; a next run finds it by its recording.
                    warn!(parent: &span, error = %e, "ticket made but its intake not marked done");
                }
                if let Some(reply) = job.reply.take() {
                    let _ = reply.send(Ok(ticket));
                }
                return;
            }
            Err(e) => {
                warn!(parent: &span, error = %e, retry_in_ms = backoff.as_millis() as u64, "ticket not made yet: the store is unavailable; retrying");
                if let Some(reply) = job.reply.take() {
                    let _ = reply.send(Err(DeskError::StoreDown(e.to_string())));
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn open_ticket(
    store: &Store,
    schedule: &Schedule,
    triage: &Triage,
    job: &Job,
) -> Result<Ticket, StoreError> {
    let intake = &job.intake;
    let has_audio = job.recording.exists();
    let path = job.recording.to_string_lossy().into_owned();
    if has_audio {
        if let Some(t) = store.ticket_for_voicemail(&path).await? {
            info!(ticket = %t.number, "this voicemail already has its ticket");
            return Ok(t);
        }
    }
    let account = store.find_account_by_number(&intake.caller).await?;
    let recent = match triage.correlation_window() {
        Some(w) => store.recent_customers(Utc::now() - w).await?,
        None => Vec::new(),
    };
    let finished = intake
        .finished
        .or_else(|| has_audio.then(|| measure(&job.recording)).flatten());
    let customer = account
        .as_ref()
        .map(|a| a.code.clone())
        .unwrap_or_else(|| intake.caller.clone());
    let class = triage.classify(&TriageInput {
        keypress: intake.keypress,
        speech_detected: finished.map(|f| f.speech_detected),
        transcript: None,
        customer: Some(&customer),
        recent_customers: &recent,
    });
    let mut answers = intake.answers.clone();
    if let Some(k) = intake.keypress {
        answers.insert("emergency_key".into(), k.to_string());
    }
    answers.insert(
        "business_hours".into(),
        if intake.business_hours { "yes" } else { "no" }.into(),
    );
    if job.recovered {
        answers.insert(
            "recovered".into(),
            "the engine stopped during the message; opened at the next start".into(),
        );
    }
    let ticket = NewTicket {
        severity: class.severity,
        caller: intake.caller.clone(),
        callback_number: intake.callback_number.clone(),
        account_id: account.as_ref().map(|a| a.id),
        language: intake.language.clone(),
        voicemail: has_audio.then(|| Voicemail {
            path: path.clone(),
            seconds: finished.map(|f| f.seconds).unwrap_or(0.0),
            speech_detected: finished.is_some_and(|f| f.speech_detected),
        }),
        answers,
        classification_reasons: class.reasons,
        suspected_incident: class.suspected_incident,
        time_scale: schedule.sla().time_scale,
        created_at: intake.started_at,
        due: sla::due(schedule, class.severity, intake.started_at),
        pages: Vec::new(),
        actor: "ivr".into(),
    };
    store.create_ticket(&ticket).await
}
