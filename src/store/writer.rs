//! Group commit for ticket creation.
//!
//! A commit costs one disk flush (WAL fsync on SQLite with synchronous=full, on PostgreSQL with
//! synchronous_commit=on). One writer task takes every waiting `create_ticket` request and
//! commits them in one transaction with multi-row inserts, so many callers at once share a
//! flush; a caller hears its tracking number only after its own ticket has committed. If a
//! batch fails, its tickets are retried one by one so one bad ticket cannot fail the others.
//!
//! A voicemail's WAV is read before the transaction opens and committed with its ticket
//! (`voicemail_audio`), so the audio is in the shared store as soon as the ticket is. A file
//! that cannot be read never costs the ticket: it is created anyway, and its `created` event
//! says why the audio is not in the store.

use std::collections::HashSet;

use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::tickets::NewTicket;
use super::voicemail_audio::{read_wav_file, WavFile, MAX_VOICEMAIL_BYTES};
use super::{micros, number, on_write, Db, StoreError};

/// Tickets per transaction at most; keeps every statement under the bind-parameter limits.
const MAX_BATCH: usize = 128;
/// Rows per multi-row insert of events or page jobs.
const ROWS_PER_INSERT: usize = 500;
/// Voicemail bytes one batch may hold in memory; the tickets after wait for the next batch.
const AUDIO_PER_BATCH: u64 = MAX_VOICEMAIL_BYTES;

type Reply = oneshot::Sender<Result<(i64, String), StoreError>>;

struct Request {
    ticket: NewTicket,
    reply: Reply,
}

/// A request with its voicemail read from disk.
struct Prepared {
    req: Request,
    audio: Audio,
}

/// A ticket's voicemail audio, as read before its transaction.
#[derive(Debug)]
enum Audio {
    /// No voicemail.
    None,
    Read(WavFile),
    /// Not readable (or too large): the ticket is created without it; the reason goes in its
    /// `created` event.
    NotStored(String),
}

impl Audio {
    fn size(&self) -> u64 {
        match self {
            Audio::Read(f) => f.wav.len() as u64,
            _ => 0,
        }
    }
}

async fn read_audio(ticket: &NewTicket) -> Audio {
    let Some(vm) = &ticket.voicemail else {
        return Audio::None;
    };
    match read_wav_file(&vm.path, MAX_VOICEMAIL_BYTES).await {
        Ok(f) => Audio::Read(f),
        Err(e) => {
            warn!(path = %vm.path, caller = %ticket.caller, error = %e,
                "voicemail audio not stored with its ticket: only the recording node's file may have it");
            Audio::NotStored(e.to_string())
        }
    }
}

/// Handle to the writer task (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request").finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts the writer task on the current runtime; it ends when every `Store` is dropped.
    pub(crate) fn spawn(db: Db) -> Writer {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(db, rx));
        Writer { tx }
    }

    /// Commits `ticket`; returns its row id and tracking number.
    pub(crate) async fn create(&self, ticket: NewTicket) -> Result<(i64, String), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request { ticket, reply })
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        rx.await.map_err(|_| StoreError::WriterStopped)?
    }
}

async fn run(db: Db, mut rx: mpsc::Receiver<Request>) {
    let mut batch: Vec<Prepared> = Vec::with_capacity(MAX_BATCH);
    // A request read but left for the next batch (its audio would overflow this one's).
    let mut next: Option<Prepared> = None;
    loop {
        let first = match next.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(req) => {
                    let audio = read_audio(&req.ticket).await;
                    Prepared { req, audio }
                }
                None => break,
            },
        };
        let mut audio_bytes = first.audio.size();
        batch.push(first);
        while batch.len() < MAX_BATCH && audio_bytes < AUDIO_PER_BATCH {
            let Ok(req) = rx.try_recv() else { break };
            let audio = read_audio(&req.ticket).await;
            if audio_bytes + audio.size() > AUDIO_PER_BATCH {
                next = Some(Prepared { req, audio });
                break;
            }
            audio_bytes += audio.size();
            batch.push(Prepared { req, audio });
        }
        let items: Vec<(&NewTicket, &Audio)> =
            batch.iter().map(|p| (&p.req.ticket, &p.audio)).collect();
        match insert(&db, &items).await {
            Ok(done) => {
                for (p, res) in batch.drain(..).zip(done) {
                    let _ = p.req.reply.send(Ok(res));
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some(p) = batch.pop() {
                    let _ = p.req.reply.send(Err(e));
                }
            }
            Err(e) => {
                warn!(error = %e, tickets = batch.len(), "batch insert failed; retrying one by one");
                for p in batch.drain(..) {
                    let res = insert(&db, &[(&p.req.ticket, &p.audio)])
                        .await
                        .and_then(|mut v| v.pop().ok_or(StoreError::WriterStopped));
                    let _ = p.req.reply.send(res);
                }
            }
        }
    }
}

/// One of the first events of a new ticket.
struct EventRow<'a> {
    id: i64,
    ticket: &'a NewTicket,
    kind: &'static str,
    actor: String,
    to_status: Option<&'static str>,
    reason: Option<String>,
}

/// "($1, $2, ...), ($8, ...)" for `rows` rows of `cols` columns.
fn placeholders(rows: usize, cols: usize, fixed: &str) -> String {
    let mut s = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push_str(", ");
            }
            s.push_str(&format!("${}", r * cols + c + 1));
        }
        s.push_str(fixed);
        s.push(')');
    }
    s
}

/// One transaction: the tickets (fresh numbers; a taken number is redrawn), their voicemail
/// audio, then their events, then their page jobs.
async fn insert(db: &Db, items: &[(&NewTicket, &Audio)]) -> Result<Vec<(i64, String)>, StoreError> {
    let tickets: Vec<&NewTicket> = items.iter().map(|(t, _)| *t).collect();
    let stored_at = micros(chrono::Utc::now());
    let mut prepared = Vec::with_capacity(tickets.len());
    for t in &tickets {
        let answers = serde_json::to_string(&t.answers)
            .map_err(|e| StoreError::Invalid(format!("answers: {e}")))?;
        let reasons = serde_json::to_string(&t.classification_reasons)
            .map_err(|e| StoreError::Invalid(format!("reasons: {e}")))?;
        prepared.push((answers, reasons));
    }
    let mut numbers: Vec<Option<String>> = vec![None; tickets.len()];
    let mut ids: Vec<Option<i64>> = vec![None; tickets.len()];
    on_write!(db, pool => {
        let mut tx = pool.begin_with(db.begin_write()).await?;
        for _attempt in 0..8 {
            let todo: Vec<usize> = (0..tickets.len()).filter(|&i| ids[i].is_none()).collect();
            if todo.is_empty() {
                break;
            }
            let mut drawn = HashSet::new();
            for &i in &todo {
                let mut n = number::random();
                while !drawn.insert(n.clone()) {
                    n = number::random();
                }
                numbers[i] = Some(n);
            }
            let sql = format!(
                "INSERT INTO tickets (number, severity, caller, callback_number, account_id, \
                 language, created_at, callback_due_at, resolution_due_at, voicemail_path, \
                 voicemail_seconds, speech_detected, answers, classification_reasons, suspected_incident, \
                 time_scale, opened_at, status) \
                 VALUES {} ON CONFLICT (number) DO NOTHING RETURNING id, number",
                placeholders(todo.len(), 17, ", 'open'")
            );
            let mut q = sqlx::query_as::<_, (i64, String)>(&sql);
            for &i in &todo {
                let t = tickets[i];
                let vm = t.voicemail.as_ref();
                q = q
                    .bind(numbers[i].clone())
                    .bind(t.severity.as_str())
                    .bind(&t.caller)
                    .bind(t.stored_callback_number())
                    .bind(t.account_id)
                    .bind(&t.language)
                    .bind(micros(t.created_at))
                    .bind(micros(t.due.callback_due_at))
                    .bind(micros(t.due.resolution_due_at))
                    .bind(vm.map(|v| v.path.clone()))
                    .bind(vm.map(|v| v.seconds))
                    .bind(vm.map(|v| v.speech_detected))
                    .bind(&prepared[i].0)
                    .bind(&prepared[i].1)
                    .bind(t.suspected_incident)
                    .bind(i64::from(t.time_scale.factor()))
                    .bind(stored_at);
            }
            for (id, n) in q.fetch_all(&mut *tx).await? {
                if let Some(i) = todo.iter().copied().find(|&i| numbers[i].as_deref() == Some(n.as_str())) {
                    ids[i] = Some(id);
                }
            }
        }
        if ids.iter().any(|i| i.is_none()) {
            return Err(StoreError::NumbersExhausted);
        }
        let ids: Vec<i64> = ids.iter().map(|i| i.unwrap_or_default()).collect();

        // The audio, one row each (megabytes: no multi-row statement).
        for ((_, audio), &id) in items.iter().zip(&ids) {
            if let Audio::Read(f) = audio {
                sqlx::query(
                    "INSERT INTO voicemail_audio (ticket_id, wav, bytes, sha256, stored_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(f.wav.as_slice())
                .bind(f.wav.len() as i64)
                .bind(f.sha256.as_str())
                .bind(stored_at)
                .execute(&mut *tx)
                .await?;
            }
        }

        // Two events per ticket: created (with the voicemail) and classified (with the reasons).
        let mut events: Vec<EventRow<'_>> = Vec::new();
        for ((t, audio), &id) in items.iter().zip(&ids) {
            let vm = t.voicemail.as_ref().map(|v| {
                let mut s = format!("voicemail {} ({:.1} s)", v.path, v.seconds);
                if let Audio::NotStored(why) = audio {
                    s.push_str(&format!("; audio not in the store: {why}"));
                }
                s
            });
            events.push(EventRow { id, ticket: t, kind: "created", actor: t.actor.clone(), to_status: Some("open"), reason: vm });
            events.push(EventRow {
                id,
                ticket: t,
                kind: "classified",
                actor: "triage".into(),
                to_status: None,
                reason: Some(t.classification_reasons.join("; ")),
            });
        }
        for chunk in events.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO ticket_events (ticket_id, at, kind, actor, to_status, to_severity, reason) VALUES {}",
                placeholders(chunk.len(), 7, "")
            );
            let mut q = sqlx::query(&sql);
            for e in chunk {
                q = q
                    .bind(e.id)
                    .bind(micros(e.ticket.created_at))
                    .bind(e.kind)
                    .bind(e.actor.as_str())
                    .bind(e.to_status)
                    .bind(e.ticket.severity.as_str())
                    .bind(e.reason.as_deref());
            }
            q.execute(&mut *tx).await?;
        }

        let pages: Vec<(i64, &NewTicket, &super::NewPage)> = tickets
            .iter()
            .zip(&ids)
            .flat_map(|(t, &id)| t.pages.iter().map(move |p| (id, *t, p)))
            .collect();
        for chunk in pages.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO page_jobs (ticket_id, channel, target, run_at, created_at, updated_at, \
                 person, level, reason, dedup_key, state, attempts) VALUES {}",
                placeholders(chunk.len(), 10, ", 'pending', 0")
            );
            let mut q = sqlx::query(&sql);
            for (id, t, p) in chunk {
                q = q
                    .bind(*id)
                    .bind(p.channel.as_str())
                    .bind(p.target.as_str())
                    .bind(micros(p.run_at))
                    .bind(micros(t.created_at))
                    .bind(micros(t.created_at))
                    .bind(p.person.as_deref())
                    .bind(p.level)
                    .bind(p.reason.as_str())
                    .bind(p.dedup_key.as_deref());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(ids
            .into_iter()
            .zip(numbers)
            .map(|(id, n)| (id, n.unwrap_or_default()))
            .collect())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_number_rows_in_order() {
        assert_eq!(super::placeholders(2, 2, ", 0"), "($1, $2, 0), ($3, $4, 0)");
    }
}
