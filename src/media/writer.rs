//! The recording writer: one thread per media thread that owns the WAV files, so file I/O
//! (page-cache writes, dirty-page throttling, header flushes, trimming) never stalls pacing.
//! Audio crosses in chunks of up to 100 ms: the media thread stages 80 ms per recording in a
//! buffer it then hands over whole (no copy on the way), on a bounded channel; when that is
//! full the chunk is dropped and counted (an overrun) rather than blocking the media thread.
//! Emptied buffers come back on a second channel for the next chunks.
//!
//! Nothing here blocks the media thread: a start or finish that finds the queue full waits in a
//! local backlog, sent in order before anything else (`pump`, every tick); audio that finds the
//! queue full or a backlog waiting is dropped and counted (the recording's `dropped_ms`).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};

use tokio::sync::mpsc::UnboundedSender;

use super::jitter::FRAME as MAX_FRAME;
use super::recorder::Recorder;
use super::types::{MediaEvent, RecordingSummary};

/// Samples per chunk: 100 ms.
pub const CHUNK: usize = 800;
/// A call hands its staged audio over once it holds this much (80 ms): one more frame of up to
/// `MAX_FRAME` samples still fits in a chunk.
pub const STAGE_FLUSH: usize = CHUNK - MAX_FRAME;

/// Chunks the writer may lag behind: 2048 × 80 ms over 500 calls is ~330 ms of disk stall.
const QUEUE: usize = 2048;

pub enum RecMsg {
    Start {
        key: u64,
        path: PathBuf,
        events: UnboundedSender<MediaEvent>,
        span: tracing::Span,
    },
    Audio {
        key: u64,
        pcm: Vec<i16>,
    },
    Finish {
        key: u64,
        keep: Option<(u64, u64)>,
        summary: RecordingSummary,
    },
    /// The media thread is stopping: finish what is queued, then end.
    Stop,
    /// Test hook: the writer stalls (a slow disk) until this receives.
    #[cfg(test)]
    Pause(std::sync::mpsc::Receiver<()>),
}

pub struct RecWriter {
    tx: SyncSender<RecMsg>,
    /// Buffers the writer has emptied, to stage the next chunks in.
    spares: Receiver<Vec<i16>>,
    /// Starts and finishes the queue had no room for, in order.
    backlog: VecDeque<RecMsg>,
    pub overruns: u64,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Dropping the writer (its media thread stopping) waits until every queued chunk is written
/// and every recording finished: an engine shut down by its service manager leaves whole
/// voicemails behind, not `.part` files for the next start to patch.
impl Drop for RecWriter {
    fn drop(&mut self) {
        // Stopping: waiting for the writer is what is wanted now.
        for m in self.backlog.drain(..) {
            let _ = self.tx.send(m);
        }
        let _ = self.tx.send(RecMsg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl RecWriter {
    pub fn spawn(name: String) -> std::io::Result<RecWriter> {
        Self::spawn_sized(name, QUEUE)
    }

    fn spawn_sized(name: String, queue: usize) -> std::io::Result<RecWriter> {
        let (tx, rx) = sync_channel(queue);
        let (spare_tx, spares) = sync_channel(queue);
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || run(rx, spare_tx))?;
        Ok(RecWriter {
            tx,
            spares,
            backlog: VecDeque::new(),
            overruns: 0,
            thread: Some(thread),
        })
    }

    /// An empty buffer of `CHUNK` samples' capacity to stage audio in.
    pub fn buffer(&self) -> Vec<i16> {
        self.spares
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK))
    }

    pub fn start(
        &mut self,
        key: u64,
        path: PathBuf,
        events: UnboundedSender<MediaEvent>,
        span: tracing::Span,
    ) {
        self.control(RecMsg::Start {
            key,
            path,
            events,
            span,
        });
    }

    /// Queue a start or finish without blocking: behind the backlog, or into it when full.
    fn control(&mut self, msg: RecMsg) {
        self.pump();
        if !self.backlog.is_empty() {
            self.backlog.push_back(msg);
            return;
        }
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(m)) => self.backlog.push_back(m),
            Err(TrySendError::Disconnected(_)) => {
                tracing::error!("recording writer gone: recording message lost");
            }
        }
    }

    /// Send what the backlog holds, as far as the queue has room (called every tick).
    pub fn pump(&mut self) {
        while let Some(m) = self.backlog.pop_front() {
            match self.tx.try_send(m) {
                Ok(()) => {}
                Err(TrySendError::Full(m)) => {
                    self.backlog.push_front(m);
                    return;
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.backlog.clear();
                    return;
                }
            }
        }
    }

    /// Queue one chunk of audio without blocking; `false` if the writer is behind and it was
    /// dropped.
    pub fn audio(&mut self, key: u64, pcm: Vec<i16>) -> bool {
        self.pump();
        let sent = if self.backlog.is_empty() {
            self.tx.try_send(RecMsg::Audio { key, pcm })
        } else {
            // Behind a start or finish still waiting: sending now would overtake it.
            Err(TrySendError::Full(RecMsg::Audio { key, pcm }))
        };
        match sent {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.overruns += 1;
                if self.overruns.is_power_of_two() {
                    tracing::warn!(
                        overruns = self.overruns,
                        "recording writer behind: audio dropped"
                    );
                }
                false
            }
        }
    }

    pub fn finish(&mut self, key: u64, keep: Option<(u64, u64)>, summary: RecordingSummary) {
        self.control(RecMsg::Finish { key, keep, summary });
    }
}

struct Open {
    recorder: Option<Recorder>,
    events: UnboundedSender<MediaEvent>,
    span: tracing::Span,
}

/// How often the writer drains its queue. It polls rather than blocking in `recv` so that the
/// media thread's `try_send` never has a sleeping receiver to wake (a futex syscall and a
/// context switch per frame); 10 ms of write latency costs nothing.
const POLL: std::time::Duration = std::time::Duration::from_millis(10);

fn run(rx: Receiver<RecMsg>, spares: SyncSender<Vec<i16>>) {
    let mut open: HashMap<u64, Open> = HashMap::new();
    loop {
        let msg = match rx.try_recv() {
            Ok(m) => m,
            Err(TryRecvError::Empty) => {
                std::thread::sleep(POLL);
                continue;
            }
            Err(TryRecvError::Disconnected) => break,
        };
        match msg {
            RecMsg::Stop => break,
            #[cfg(test)]
            RecMsg::Pause(go) => {
                let _ = go.recv();
            }
            RecMsg::Start {
                key,
                path,
                events,
                span,
            } => {
                let recorder = match Recorder::create(&path) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        tracing::error!(parent: &span, error = %e, "cannot start recording");
                        None
                    }
                };
                open.insert(
                    key,
                    Open {
                        recorder,
                        events,
                        span,
                    },
                );
            }
            RecMsg::Audio { key, mut pcm } => {
                if let Some(o) = open.get_mut(&key) {
                    if let Some(r) = o.recorder.as_mut() {
                        if let Err(e) = r.write(&pcm) {
                            tracing::error!(parent: &o.span, error = %e, "recording write failed");
                            o.recorder = None;
                        }
                    }
                }
                pcm.clear();
                let _ = spares.try_send(pcm);
            }
            RecMsg::Finish { key, keep, summary } => {
                let Some(o) = open.remove(&key) else { continue };
                let _g = o.span.enter();
                match o.recorder.map(|r| r.finish(keep)) {
                    Some(Ok(_)) => tracing::info!(
                        path = %summary.path.display(),
                        duration_ms = summary.duration_ms,
                        speech = summary.speech_detected,
                        "recording finished"
                    ),
                    Some(Err(e)) => tracing::error!(error = %e, "recording finish failed"),
                    None => {}
                }
                let _ = o.events.send(MediaEvent::RecordingFinished(summary));
            }
        }
    }
    // The media thread is gone (it finishes its calls' recordings before it stops, so this
    // is only a recording whose finish was lost): finalise it untrimmed.
    for (_, o) in open {
        if let Some(r) = o.recorder {
            let _ = r.finish(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stalled_writer_never_blocks_the_media_thread_and_drops_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = RecWriter::spawn_sized("rec-test".into(), 4).unwrap();
        let (go, paused) = std::sync::mpsc::channel();
        w.tx.send(RecMsg::Pause(paused)).unwrap();
        let (events, mut finished) = tokio::sync::mpsc::unbounded_channel();
        // Far more than the queue holds, while the writer is stalled: every call returns.
        let mut dropped = 0;
        for key in 0..10u64 {
            let path = dir.path().join(format!("vm{key}.wav"));
            w.start(key, path.clone(), events.clone(), tracing::Span::none());
            for _ in 0..5 {
                let mut pcm = w.buffer();
                pcm.resize(CHUNK, 1000);
                dropped += u64::from(!w.audio(key, pcm));
            }
            let summary = RecordingSummary {
                path,
                duration_ms: 0,
                speech_detected: false,
                trimmed_start_ms: 0,
                trimmed_end_ms: 0,
                foreign_packets: 0,
                dropped_ms: 0,
            };
            w.finish(key, None, summary);
        }
        assert!(dropped > 0 && w.overruns == dropped, "overruns counted");
        // The disk comes back: every recording is still started and finished, in order.
        go.send(()).unwrap();
        drop(w);
        for key in 0..10 {
            let ev = finished
                .try_recv()
                .expect("each recording reports finished");
            let MediaEvent::RecordingFinished(sum) = ev else {
                panic!("{ev:?}")
            };
            assert_eq!(sum.path, dir.path().join(format!("vm{key}.wav")));
            assert!(sum.path.exists());
        }
    }
}
