//! The media engine's public face: [`MediaEngine`] (threads, ports, prompts) and
//! [`MediaSession`] (one call leg). Commands go to the leg's media thread over a channel plus an
//! eventfd wake; events come back on a tokio channel for the call task to `select!` on.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::{mpsc as tmpsc, oneshot};

use super::health::{ExitGuard, ShardState};
use super::ports::PortPool;
use super::prompts::{PromptRef, PromptSet};
use super::shard::{Command, OpenCall, Shard, ShardCtx};
use super::sys::Waker;
use super::types::NegotiatedMedia;
pub use super::types::{
    CallStats, DigitSource, MediaBackend, MediaError, MediaEvent, MediaFailure, PlayOptions,
    PlaybackId, RecordOptions, RecordingSummary,
};
use super::MediaConfig;
use crate::panics::message as panic_message;

struct ShardHandle {
    state: Arc<ShardState>,
    tx: Mutex<Option<mpsc::Sender<Command>>>,
    waker: Arc<Waker>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl ShardHandle {
    fn send(&self, c: Command) -> bool {
        let ok = match self.tx.lock() {
            Ok(g) => g.as_ref().is_some_and(|tx| tx.send(c).is_ok()),
            Err(_) => false,
        };
        if ok {
            self.waker.wake();
        }
        ok
    }
}

struct Inner {
    shards: Vec<ShardHandle>,
    ports: Arc<Mutex<PortPool>>,
    /// Replaced whole when a prompt changes (see [`MediaEngine::set_prompt`]).
    prompts: Mutex<Arc<PromptSet>>,
    bind_ip: IpAddr,
    next_id: AtomicU64,
    next_shard: AtomicUsize,
}

/// The media engine. Cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct MediaEngine {
    inner: Arc<Inner>,
}

impl MediaEngine {
    /// Load and pre-encode the prompts, build the port pool, start the media threads.
    pub fn start(config: &MediaConfig, bind_ip: IpAddr) -> Result<MediaEngine, MediaError> {
        let (lo, hi) = config
            .port_range()
            .ok_or_else(|| MediaError::BadPorts(config.rtp_ports.clone()))?;
        let dir = std::path::Path::new(&config.prompts_dir);
        // The default directory may be absent when the engine runs from elsewhere: the same
        // prompts are compiled in. A directory the admin named must exist.
        let prompts = if !dir.exists() && config.prompts_dir == super::default_prompts_dir() {
            tracing::info!("prompts/ not found here: using the bundled prompts");
            PromptSet::bundled()?
        } else {
            PromptSet::load(dir)?
        };
        // A flow that asks for a prompt nobody recorded would leave a caller in silence.
        prompts.check_complete(dir)?;
        let prompts = Arc::new(prompts);
        let ports = Arc::new(Mutex::new(PortPool::new(lo, hi)));
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let trusted: Arc<[ipnet::IpNet]> = config.trusted.as_slice().into();
        let mut shards = Vec::with_capacity(threads);
        for i in 0..threads {
            let (tx, rx) = mpsc::channel();
            let waker = Arc::new(Waker::new()?);
            let state = Arc::new(ShardState::default());
            let ctx = ShardCtx {
                state: state.clone(),
                ports: ports.clone(),
                inactivity_ns: config.inactivity_timeout_secs.saturating_mul(1_000_000_000),
                realtime_priority: config.realtime_priority,
                pin: config.pin_threads,
                io_uring: config.io_uring,
                send_before_latch: config.send_before_latch,
                trusted: trusted.clone(),
            };
            // The shard is built on its own thread: its calls hold VAD state that is not Send.
            let (ready_tx, ready_rx) = mpsc::sync_channel(1);
            let w = waker.clone();
            let thread = std::thread::Builder::new()
                .name(format!("media-{i}"))
                .spawn(move || {
                    let mut guard = ExitGuard {
                        state: ctx.state.clone(),
                        clean: false,
                    };
                    match Shard::new(i, ctx, rx, w) {
                        Ok(mut shard) => {
                            // Scheduling first: the backend it settles is known when
                            // `start` returns.
                            shard.scheduling();
                            let _ = ready_tx.send(Ok(()));
                            let st = shard.state();
                            let run = std::panic::AssertUnwindSafe(move || shard.run());
                            match std::panic::catch_unwind(run) {
                                Ok(Ok(())) => {}
                                Ok(Err(reason)) => st.fail(reason),
                                Err(p) => {
                                    let reason = format!("panicked: {}", panic_message(&*p));
                                    tracing::error!(shard = i, %reason, "media thread died");
                                    st.fail(reason);
                                }
                            }
                            guard.clean = true;
                        }
                        Err(e) => {
                            guard.clean = true;
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                })?;
            ready_rx.recv().map_err(|_| MediaError::Stopped)??;
            shards.push(ShardHandle {
                state,
                tx: Mutex::new(Some(tx)),
                waker,
                thread: Mutex::new(Some(thread)),
            });
        }
        tracing::info!(threads, prompts = prompts.len(), ports = %config.rtp_ports, "media engine started");
        Ok(MediaEngine {
            inner: Arc::new(Inner {
                shards,
                ports,
                prompts: Mutex::new(prompts),
                bind_ip,
                next_id: AtomicU64::new(1),
                next_shard: AtomicUsize::new(0),
            }),
        })
    }

    /// `Err` once a media thread has stopped while the engine runs (it lost its calls and
    /// takes no new ones): `serve` should stop and exit non-zero, naming it. Cheap (one atomic
    /// load per thread): call it as often as wanted.
    pub fn health(&self) -> Result<(), MediaFailure> {
        for (shard, s) in self.inner.shards.iter().enumerate() {
            if let Some(reason) = s.state.failure() {
                return Err(MediaFailure { shard, reason });
            }
        }
        Ok(())
    }

    /// How each media thread receives RTP, in thread order.
    pub fn backends(&self) -> Vec<MediaBackend> {
        self.inner
            .shards
            .iter()
            .map(|s| s.state.backend())
            .collect()
    }

    /// One line for the log: which I/O backend the media threads use, and why not io_uring
    /// when they do not (`mode` is the config's `[media] io_uring`).
    pub fn io_summary(&self, mode: super::IoUringMode) -> String {
        let backends = self.backends();
        let ring = backends
            .iter()
            .filter(|b| **b == MediaBackend::IoUring)
            .count();
        let n = backends.len();
        if ring == n {
            return format!("media I/O: io_uring on all {n} media threads");
        }
        let refused = self
            .inner
            .shards
            .iter()
            .find_map(|s| s.state.uring_refused());
        let why = match (refused, mode) {
            (Some(e), _) => format!(
                "the kernel refused io_uring ({e}; a seccomp profile such as Docker's blocks it)"
            ),
            (None, super::IoUringMode::Off) => "[media] io_uring = false".to_string(),
            (None, _) => "io_uring serves real-time media threads only ([media] io_uring = \
                          \"always\" uses it on normally scheduled threads)"
                .to_string(),
        };
        if ring == 0 {
            format!("media I/O: epoll on all {n} media threads: {why}")
        } else {
            format!(
                "media I/O: io_uring on {ring} and epoll on {} media threads: {why}",
                n - ring
            )
        }
    }

    /// Panics contained to one call since start (each ended its call with
    /// [`MediaEvent::Failed`]).
    pub fn contained_panics(&self) -> u64 {
        self.inner
            .shards
            .iter()
            .map(|s| s.state.panics.load(Ordering::Relaxed))
            .sum()
    }

    /// The prompts new playlists are resolved against.
    pub fn prompts(&self) -> Arc<PromptSet> {
        match self.inner.prompts.lock() {
            Ok(p) => p.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Adds or replaces the prompt `name` (e.g. `"fr/announcement"`) for every call from now
    /// on, without a restart. A playlist already playing the old audio finishes it (it holds
    /// that audio), and the old audio is freed when the last such playlist ends: replacing a
    /// prompt again and again does not grow memory. Rare (an admin's change): the set is
    /// copied (references, not audio), never locked on the packet path.
    ///
    /// Not for audio one call plays once (a ticket's voicemail): play that as a
    /// [`PromptRef::Clip`](super::prompts::Clip), which never enters the set.
    pub fn set_prompt(&self, name: &str, pcm: &[i16]) {
        // Encoded before the lock: playlists resolving meanwhile are not held up.
        let prompt = super::prompts::Prompt::from_samples(name.to_string(), pcm);
        let mut current = match self.inner.prompts.lock() {
            Ok(p) => p,
            Err(p) => p.into_inner(),
        };
        let mut next = PromptSet::clone(&current);
        next.insert(prompt);
        *current = Arc::new(next);
    }

    pub fn free_ports(&self) -> usize {
        self.inner.ports.lock().map_or(0, |p| p.len())
    }

    /// Allocate ports for a call leg on the next media thread (round robin). Not sending yet.
    pub fn open_session(&self, call_id: &str) -> Result<MediaSession, MediaError> {
        let shard = self.inner.next_shard.fetch_add(1, Ordering::Relaxed) % self.inner.shards.len();
        self.open_on(call_id, shard)
    }

    /// Open a leg on the same media thread as `near`, so the two can be bridged without
    /// crossing threads (the technician leg of a caller, say).
    pub fn open_session_near(
        &self,
        call_id: &str,
        near: &MediaSession,
    ) -> Result<MediaSession, MediaError> {
        self.open_on(call_id, near.shard)
    }

    fn open_on(&self, call_id: &str, shard: usize) -> Result<MediaSession, MediaError> {
        let (port, rtp, rtcp) = self
            .inner
            .ports
            .lock()
            .map_err(|_| MediaError::Stopped)?
            .bind(self.inner.bind_ip)?;
        let local = rtp.local_addr()?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (etx, erx) = tmpsc::unbounded_channel();
        let call_id: Arc<str> = call_id.into();
        let open = OpenCall {
            id,
            call_id: call_id.clone(),
            rtp,
            rtcp,
            port,
            events: etx,
        };
        if !self.inner.shards[shard].send(Command::Open(Box::new(open))) {
            // The sockets went with the command; the port goes back here.
            if let Ok(mut p) = self.inner.ports.lock() {
                p.release(port);
            }
            return Err(MediaError::Stopped);
        }
        Ok(MediaSession {
            id,
            shard,
            call_id,
            local,
            inner: self.inner.clone(),
            events: erx,
            next_playback: AtomicU64::new(1),
            closed: false,
        })
    }

    /// Test hook: media thread `shard` panics outside any call's guard.
    #[cfg(test)]
    pub(crate) fn test_kill_shard(&self, shard: usize) {
        self.inner.shards[shard].send(Command::TestKill);
    }

    /// Stop the media threads (closing every leg) and wait for them.
    pub fn shutdown(&self) {
        for s in &self.inner.shards {
            s.send(Command::Shutdown);
        }
        for s in &self.inner.shards {
            if let Ok(mut t) = s.thread.lock() {
                if let Some(t) = t.take() {
                    let _ = t.join();
                }
            }
            if let Ok(mut tx) = s.tx.lock() {
                tx.take();
            }
        }
    }
}

/// One call leg. Dropping it closes it and returns its ports.
pub struct MediaSession {
    id: u64,
    shard: usize,
    call_id: Arc<str>,
    local: SocketAddr,
    inner: Arc<Inner>,
    events: tmpsc::UnboundedReceiver<MediaEvent>,
    next_playback: AtomicU64,
    closed: bool,
}

impl MediaSession {
    fn send(&self, c: Command) {
        self.inner.shards[self.shard].send(c);
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Our RTP address, for the SDP answer (RTCP is the next port).
    pub fn local_rtp_addr(&self) -> SocketAddr {
        self.local
    }

    /// Start media, or update it on a re-INVITE (hold, codec change, new address).
    pub fn apply(&self, media: NegotiatedMedia) {
        self.send(Command::Apply(self.id, media));
    }

    /// Play a playlist (replacing any current one, which then reports finished). The playlist
    /// holds the audio it plays (a [`PromptRef::Clip`](super::prompts::Clip) included) until it
    /// has played, is replaced or stopped, or the leg closes; then the media thread drops it.
    pub fn play(&self, prompts: &[PromptRef], opts: PlayOptions) -> Result<PlaybackId, MediaError> {
        let mut list = Vec::with_capacity(prompts.len());
        {
            let set = match self.inner.prompts.lock() {
                Ok(p) => p,
                Err(p) => p.into_inner(),
            };
            set.resolve(prompts, &mut list)
                .map_err(MediaError::UnknownPrompt)?;
        }
        let playback = PlaybackId(self.next_playback.fetch_add(1, Ordering::Relaxed));
        self.send(Command::Play {
            id: self.id,
            playback,
            list,
            opts,
        });
        Ok(playback)
    }

    pub fn stop_playback(&self) {
        self.send(Command::StopPlayback(self.id));
    }

    /// Record what the peer sends into `path` (8 kHz mono 16-bit WAV; `path.part` meanwhile).
    pub fn record(&self, path: PathBuf, opts: RecordOptions) {
        self.send(Command::Record {
            id: self.id,
            path,
            opts,
        });
    }

    pub fn stop_recording(&self) {
        self.send(Command::StopRecording(self.id));
    }

    /// A digit that arrived by SIP INFO.
    pub fn inject_digit(&self, digit: char) {
        self.send(Command::Digit(self.id, digit));
    }

    /// Relay this leg and `other` to each other. Both must be on the same media thread.
    pub fn bridge(&self, other: &MediaSession) -> Result<(), MediaError> {
        if self.shard != other.shard {
            return Err(MediaError::NotColocated);
        }
        self.send(Command::Bridge(self.id, other.id));
        Ok(())
    }

    pub fn unbridge(&self) {
        self.send(Command::Unbridge(self.id));
    }

    /// Test hook: the next RTP packet of this leg panics on the media thread.
    #[cfg(test)]
    pub(crate) fn test_panic_on_rtp(&self) {
        self.send(Command::TestPanicOnRtp(self.id));
    }

    /// The next event; `None` once the leg is closed.
    pub async fn next_event(&mut self) -> Option<MediaEvent> {
        self.events.recv().await
    }

    /// Close the leg and get its statistics.
    pub async fn close(mut self) -> CallStats {
        let (tx, rx) = oneshot::channel();
        self.closed = true;
        self.send(Command::Close {
            id: self.id,
            reply: Some(tx),
        });
        rx.await.unwrap_or_default()
    }
}

impl Drop for MediaSession {
    fn drop(&mut self) {
        if !self.closed {
            self.send(Command::Close {
                id: self.id,
                reply: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::time::Duration;

    use super::*;
    use crate::media::{Codec, MediaDirection};

    const WAIT: Duration = Duration::from_secs(10);

    fn engine(ports: &str) -> MediaEngine {
        let cfg = MediaConfig {
            rtp_ports: ports.into(),
            prompts_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/prompts").into(),
            threads: 1, // every leg on the one thread that a panic must not take down
            ..MediaConfig::default()
        };
        MediaEngine::start(&cfg, "127.0.0.1".parse().unwrap()).unwrap()
    }

    fn media(remote: SocketAddr) -> NegotiatedMedia {
        NegotiatedMedia {
            remote_rtp: remote,
            codec: Codec::Pcmu,
            payload_type: 0,
            telephone_event_pt: None,
            direction: MediaDirection::SendRecv,
            ptime_ms: 20,
            signalling_peer: None,
        }
    }

    fn rtp(seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0xFF; 160]);
        p
    }

    fn far() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_in_one_call_ends_that_call_only() {
        let eng = engine("31500-31519");
        let (fa, fb) = (far(), far());
        let mut a = eng.open_session("doomed").unwrap();
        let mut b = eng.open_session("bystander").unwrap();
        a.apply(media(fa.local_addr().unwrap()));
        b.apply(media(fb.local_addr().unwrap()));
        a.test_panic_on_rtp();
        fa.send_to(&rtp(1), a.local_rtp_addr()).unwrap();
        let ev = tokio::time::timeout(WAIT, a.next_event()).await.unwrap();
        assert_eq!(ev, Some(MediaEvent::Failed), "the flow hears of it");
        let ev = tokio::time::timeout(WAIT, a.next_event()).await.unwrap();
        assert_eq!(ev, None, "the failed leg is closed");
        assert_eq!(eng.contained_panics(), 1);
        assert_eq!(eng.health(), Ok(()));
        // The other call on the same thread goes on, and the thread takes new ones.
        b.inject_digit('5');
        let ev = tokio::time::timeout(WAIT, b.next_event()).await.unwrap();
        assert_eq!(
            ev,
            Some(MediaEvent::Digit {
                digit: '5',
                source: DigitSource::SipInfo
            })
        );
        let mut buf = [0u8; 2048];
        let n = fb.recv(&mut buf).unwrap();
        assert_eq!(n, 172, "the bystander still gets its stream");
        let c = eng.open_session("next").unwrap();
        c.apply(media(fa.local_addr().unwrap()));
        let n = fa.recv(&mut buf).unwrap();
        assert_eq!(n, 172, "a new call on the same thread is served");
        let stats = a.close().await;
        assert_eq!(stats, CallStats::default());
        drop((b, c));
        eng.shutdown();
        assert_eq!(eng.health(), Ok(()), "a shutdown is not a failure");
    }

    /// Memory that only grew (issue 23): an announcement replaced 1,000 times and 1,000 clips
    /// played leave the prompt set as it was, and every clip is freed, played out or cut by
    /// the end of its call.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replaced_prompts_and_played_clips_do_not_stay_in_memory() {
        use crate::media::prompts::Clip;
        let eng = engine("31540-31559");
        let fa = far();
        eng.set_prompt("fr/announcement", &[0; 1600]);
        let (count, bytes) = (eng.prompts().len(), eng.prompts().bytes());
        for i in 0..1000 {
            eng.set_prompt("fr/announcement", &[i as i16; 1600]);
        }
        assert_eq!((eng.prompts().len(), eng.prompts().bytes()), (count, bytes));

        let mut s = eng.open_session("vm-heard").unwrap();
        s.apply(media(fa.local_addr().unwrap()));
        // The far end speaks first: the call latches and may send. A few packets: the first
        // may come before the media thread has applied the session's media.
        for seq in 1..=5 {
            fa.send_to(&rtp(seq), s.local_rtp_addr()).unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut watches = Vec::new();
        let mut last = None;
        for i in 0..1000 {
            // Each replaces the one before (a page call's voicemail heard again and again).
            let clip = Clip::new(format!("vm/{i}"), &[900; 800]);
            watches.push(clip.watch());
            last = Some(
                s.play(&[PromptRef::clip(clip)], PlayOptions::default())
                    .unwrap(),
            );
        }
        // And the last played to its end.
        loop {
            match tokio::time::timeout(WAIT, s.next_event()).await.unwrap() {
                Some(MediaEvent::PlaybackFinished(id)) if Some(id) == last => break,
                Some(_) => {}
                None => panic!("the session closed"),
            }
        }
        assert!(
            watches.iter().all(|w| w.upgrade().is_none()),
            "a played clip is kept"
        );
        // One cut short by the end of its call.
        let long = Clip::new("vm/long", &vec![900; 8000 * 30]);
        let w = long.watch();
        s.play(&[PromptRef::clip(long)], PlayOptions::default())
            .unwrap();
        s.close().await;
        assert!(w.upgrade().is_none(), "the clip of a closed call is kept");
        assert_eq!((eng.prompts().len(), eng.prompts().bytes()), (count, bytes));
        eng.shutdown();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_media_thread_is_reported_by_health() {
        let eng = engine("31520-31539");
        assert_eq!(eng.health(), Ok(()));
        let mut s = eng.open_session("lost").unwrap();
        eng.test_kill_shard(0);
        // Its calls' flows see their sessions end...
        let ev = tokio::time::timeout(WAIT, s.next_event()).await.unwrap();
        assert_eq!(ev, None);
        // ...and once the thread is gone, health names it.
        let e = eng.clone();
        tokio::task::spawn_blocking(move || e.shutdown())
            .await
            .unwrap();
        let err = eng.health().unwrap_err();
        assert_eq!(err.shard, 0);
        assert!(err.reason.contains("test hook"), "{err}");
        assert!(matches!(
            eng.open_session("after"),
            Err(MediaError::Stopped)
        ));
    }
}
