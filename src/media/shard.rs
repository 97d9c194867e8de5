//! One media thread: owns a shard of calls, wakes on a 5 ms grid (timerfd, absolute deadlines on
//! CLOCK_MONOTONIC) to send the calls whose 20 ms schedule falls on that phase, and on socket
//! readiness (epoll) to receive. Commands arrive on a channel with an eventfd wake; events leave
//! on each call's tokio channel. Nothing here blocks except `epoll_wait`.
//!
//! Each call's RTP logic is a sans-I/O [`MediaLeg`]; this is its shell: it feeds the leg what
//! the sockets receive and the grid's time, sends what `poll_transmit` gives (through the ring
//! when there is one) and forwards what `poll_event` gives to the call's channel.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc::UnboundedSender, oneshot};

use super::health::ShardState;
use super::leg::{LegConfig, LegSeed, MediaLeg, Scratch, TransmitKind};
use super::ports::PortPool;
use super::prompts::Prompt;
use super::sys::{
    disconnect_udp, monotonic_ns, pin_to_nth_cpu, realtime_ns, set_realtime, Epoll, RecvBatch,
    Timer, Waker,
};
use super::types::NegotiatedMedia;
use super::types::{CallStats, MediaBackend, MediaEvent, PlayOptions, PlaybackId, RecordOptions};
use super::uring::{Received, RecvKey, Uring};
use super::writer::RecWriter;
use super::IoUringMode;
use super::SendBeforeLatch;
use crate::panics::message as panic_message;
use ipnet::IpNet;

pub use super::leg::{GRID_NS, PERIOD_NS};
const SLOTS: usize = (PERIOD_NS / GRID_NS) as usize;
const TOKEN_TIMER: u64 = u64::MAX;
const TOKEN_WAKER: u64 = u64::MAX - 1;

pub struct OpenCall {
    pub id: u64,
    pub call_id: Arc<str>,
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    pub port: u16,
    pub events: UnboundedSender<MediaEvent>,
}

pub enum Command {
    Open(Box<OpenCall>),
    Apply(u64, NegotiatedMedia),
    Play {
        id: u64,
        playback: PlaybackId,
        /// The audio itself: the playlist keeps it alive while it plays, whatever happens to
        /// the prompt set meanwhile.
        list: Vec<Arc<Prompt>>,
        opts: PlayOptions,
    },
    StopPlayback(u64),
    Record {
        id: u64,
        path: PathBuf,
        opts: RecordOptions,
    },
    StopRecording(u64),
    Digit(u64, char),
    Bridge(u64, u64),
    Unbridge(u64),
    Close {
        id: u64,
        reply: Option<oneshot::Sender<CallStats>>,
    },
    Shutdown,
    /// Test hook: the call's next RTP packet panics (inside the per-call guard).
    #[cfg(test)]
    TestPanicOnRtp(u64),
    /// Test hook: the thread panics outside any call's guard.
    #[cfg(test)]
    TestKill,
}

impl Command {
    /// The leg a command is about, if one.
    fn leg(&self) -> Option<u64> {
        match self {
            Command::Open(o) => Some(o.id),
            Command::Apply(id, _)
            | Command::Play { id, .. }
            | Command::StopPlayback(id)
            | Command::Record { id, .. }
            | Command::StopRecording(id)
            | Command::Digit(id, _)
            | Command::Bridge(id, _)
            | Command::Unbridge(id)
            | Command::Close { id, .. } => Some(*id),
            #[cfg(test)]
            Command::TestPanicOnRtp(id) => Some(*id),
            Command::Shutdown => None,
            #[cfg(test)]
            Command::TestKill => None,
        }
    }
}

pub struct ShardCtx {
    /// Shared with the engine: failure, backend, contained panics.
    pub state: Arc<ShardState>,
    pub ports: Arc<Mutex<PortPool>>,
    pub inactivity_ns: u64,
    pub realtime_priority: u8,
    pub pin: bool,
    /// Serve unbridged calls through io_uring when the kernel allows it (else epoll).
    pub io_uring: IoUringMode,
    /// Whether to send to an SDP address before RTP has come from it, and which are trusted.
    pub send_before_latch: SendBeforeLatch,
    pub trusted: Arc<[IpNet]>,
}

/// A call as the thread holds it: its leg (all the RTP logic) and the leg's I/O.
struct Call {
    leg: MediaLeg,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    port: u16,
    events: UnboundedSender<MediaEvent>,
    /// Its phase slot, once the leg has a send schedule.
    slot: Option<usize>,
    /// The call it is bridged to (both relay at once).
    bridge: Option<usize>,
    /// The io_uring receive request serving the RTP socket, when it is armed.
    recv_key: Option<RecvKey>,
    /// The leg's latched peer as last seen here, and the address the RTP socket is connected
    /// to (the same, unless connecting failed).
    latched: Option<SocketAddr>,
    connected: Option<SocketAddr>,
    #[cfg(test)]
    panic_on_rtp: bool,
}

impl Call {
    fn token(idx: usize, gen: u32, rtcp: bool) -> u64 {
        (idx as u64) << 32 | (gen as u64) << 1 | rtcp as u64
    }

    /// Once latched, the RTP socket is connected to the peer: sends skip the per-packet route
    /// lookup, and the kernel drops other sources (which the latch ignored anyway). A new
    /// remote (re-INVITE) unlatches the leg: any source is accepted again until it latches.
    fn follow_latch(&mut self) {
        let peer = self.leg.latched_peer();
        if peer == self.latched {
            return;
        }
        self.latched = peer;
        match peer {
            Some(p) => self.connected = self.rtp.connect(p).is_ok().then_some(p),
            None => {
                if self.connected.take().is_some() {
                    let _ = disconnect_udp(&self.rtp);
                }
            }
        }
    }

    fn send_rtp(&self, pkt: &[u8], remote: SocketAddr) -> bool {
        if self.connected == Some(remote) {
            self.rtp.send(pkt).is_ok()
        } else {
            self.rtp.send_to(pkt, remote).is_ok()
        }
    }

    /// Send what the leg has due, through `buf`; a tick's RTP goes on the ring when given.
    fn transmit(&mut self, buf: &mut [u8], mut ring: Option<(&mut Uring, u32)>) {
        while let Some(t) = self.leg.poll_transmit(buf) {
            let sent = match (t.kind, ring.as_mut()) {
                (TransmitKind::Rtcp, _) => {
                    let _ = self.rtcp.send_to(t.bytes, t.dest);
                    true
                }
                (TransmitKind::Rtp, Some((r, idx))) if self.connected == Some(t.dest) => {
                    r.queue_send(self.rtp.as_raw_fd(), *idx, t.bytes)
                        || self.send_rtp(t.bytes, t.dest)
                }
                (TransmitKind::Rtp, _) => self.send_rtp(t.bytes, t.dest),
            };
            if !sent {
                self.leg.unsent(&t);
            }
        }
    }

    /// The leg's events to the call's flow.
    fn forward_events(&mut self) {
        while let Some(ev) = self.leg.poll_event() {
            let _ = self.events.send(ev);
        }
    }

    /// After a command: what it made due goes now (plain sends), its events to the flow.
    fn settle(&mut self, buf: &mut [u8]) {
        self.transmit(buf, None);
        self.forward_events();
    }
}

pub struct Shard {
    index: usize,
    ctx: ShardCtx,
    rx: Receiver<Command>,
    waker: Arc<Waker>,
    epoll: Epoll,
    /// The unbridged calls' sockets, polled once per tick.
    bulk: Epoll,
    bulk_events: Vec<libc::epoll_event>,
    /// Unbridged calls' sockets go on `bulk` (served per tick). Only under SCHED_FIFO: a
    /// normally scheduled thread woken late does a whole tick's receives late, and measured
    /// worse (p99 20 ms at 1,000 calls) than waking for each packet (p99 1.6-2.3 ms).
    batched_rx: bool,
    /// With `batched_rx`, unbridged calls' RTP is received (and the tick's packets sent)
    /// through this ring instead of `bulk`, where the kernel permits.
    uring: Option<Uring>,
    rbatch: RecvBatch,
    timer: Timer,
    calls: Vec<Option<Call>>,
    free: Vec<usize>,
    gens: Vec<u32>,
    by_id: std::collections::HashMap<u64, usize>,
    slots: [Vec<usize>; SLOTS],
    last_grid: u64,
    buf: Box<[u8; 2048]>,
    pcm: Box<[i16; 2048]>,
    writer: RecWriter,
    next_rec_key: u64,
    stop: bool,
}

impl Shard {
    pub fn new(
        index: usize,
        ctx: ShardCtx,
        rx: Receiver<Command>,
        waker: Arc<Waker>,
    ) -> std::io::Result<Shard> {
        let epoll = Epoll::new()?;
        let timer = Timer::new()?;
        epoll.add(timer.raw(), TOKEN_TIMER)?;
        epoll.add(waker.raw(), TOKEN_WAKER)?;
        Ok(Shard {
            index,
            ctx,
            rx,
            waker,
            epoll,
            bulk: Epoll::new()?,
            bulk_events: vec![libc::epoll_event { events: 0, u64: 0 }; 512],
            batched_rx: false,
            uring: None,
            rbatch: RecvBatch::new(),
            timer,
            calls: Vec::new(),
            free: Vec::new(),
            gens: Vec::new(),
            by_id: Default::default(),
            slots: Default::default(),
            last_grid: 0,
            buf: Box::new([0; 2048]),
            pcm: Box::new([0; 2048]),
            writer: RecWriter::spawn(format!("media-rec-{index}"))?,
            next_rec_key: 0,
            stop: false,
        })
    }

    pub fn state(&self) -> Arc<ShardState> {
        self.ctx.state.clone()
    }

    /// Serve until `Shutdown` (`Ok`) or a failure of the thread's own machinery (`Err`, the
    /// reason). A panic in one call's work ends that call only (see `guarded`).
    pub fn run(mut self) -> Result<(), String> {
        let span = tracing::info_span!("media", shard = self.index);
        let _g = span.enter();
        let now = monotonic_ns();
        self.last_grid = now / GRID_NS;
        if let Err(e) = self.timer.arm_at((self.last_grid + 1) * GRID_NS) {
            tracing::error!(error = %e, "cannot arm media timer");
            return Err(format!("cannot arm the media timer: {e}"));
        }
        let mut failure = None;
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        while !self.stop {
            let n = match self.epoll.wait(&mut events, -1) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "epoll_wait failed");
                    failure = Some(format!("epoll_wait failed: {e}"));
                    break;
                }
            };
            let now = monotonic_ns();
            let mut grid = false;
            for ev in &events[..n] {
                match ev.u64 {
                    TOKEN_TIMER => {
                        self.timer.ack();
                        grid = true;
                    }
                    TOKEN_WAKER => {
                        self.waker.ack();
                        self.drain_commands(now);
                    }
                    token => self.readable(token, now),
                }
            }
            if grid {
                self.on_grid(now);
                if self.batched_rx {
                    self.drain_bulk(now);
                }
            }
        }
        let ids: Vec<u64> = self.by_id.keys().copied().collect();
        for id in ids {
            self.close(id, None, monotonic_ns());
        }
        failure.map_or(Ok(()), Err)
    }

    /// Run one call's work (`idx`), containing a panic to that call: it is logged with its
    /// call-id, counted, reported to its flow (`MediaEvent::Failed`) and closed.
    fn guarded(&mut self, idx: usize, now: u64, work: impl FnOnce(&mut Shard)) {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(self)));
        if let Err(p) = r {
            self.fail_call(Some(idx), &panic_message(&*p), now);
        }
    }

    fn fail_call(&mut self, idx: Option<usize>, why: &str, now: u64) {
        self.ctx
            .state
            .panics
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(idx) = idx else {
            tracing::error!(panic = %why, "media bug on a call being opened");
            return;
        };
        match self.calls.get(idx).and_then(Option::as_ref) {
            Some(c) => {
                tracing::error!(parent: c.leg.span(), panic = %why, "media bug: this call's media is ended");
                let _ = c.events.send(MediaEvent::Failed);
            }
            None => tracing::error!(panic = %why, "media bug on a call being opened or closed"),
        }
        // Only after a panic: a scan is fine.
        let id = self
            .by_id
            .iter()
            .find(|(_, &i)| i == idx)
            .map(|(&id, _)| id);
        let Some(id) = id else { return };
        let closed =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.close(id, None, now)));
        if closed.is_err() {
            // Closing it panicked too: forget it (its slot and port are not reused).
            self.by_id.remove(&id);
            for s in self.slots.iter_mut() {
                s.retain(|&i| i != idx);
            }
            if let Some(c) = self.calls.get_mut(idx) {
                let c = c.take();
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(c)));
            }
        }
    }

    /// Real-time priority (and pinning) for this thread, when configured and permitted. The
    /// recording writer thread was spawned before this and keeps the normal scheduler.
    pub fn scheduling(&mut self) {
        let _g = tracing::info_span!("media", shard = self.index).entered();
        if self.ctx.pin {
            match pin_to_nth_cpu(self.index) {
                Ok(cpu) => tracing::debug!(cpu, "media thread pinned"),
                Err(e) => tracing::info!(error = %e, "media thread not pinned"),
            }
        }
        let prio = self.ctx.realtime_priority;
        let mut realtime = false;
        if prio > 0 {
            match set_realtime(prio) {
                Ok(()) => {
                    tracing::debug!(prio, "media thread on SCHED_FIFO");
                    realtime = true;
                }
                Err(e) => {
                    static LOGGED: std::sync::atomic::AtomicBool =
                        std::sync::atomic::AtomicBool::new(false);
                    if !LOGGED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        tracing::warn!(
                            error = %e,
                            prio,
                            "media threads stay on the normal scheduler: SCHED_FIFO was refused \
                             (give the process RLIMIT_RTPRIO >= [media] realtime_priority or \
                             CAP_SYS_NICE, or set realtime_priority = 0 to stop asking)"
                        );
                    }
                }
            }
        }
        let ring = match self.ctx.io_uring {
            IoUringMode::Off => false,
            IoUringMode::WithRealtime => realtime,
            IoUringMode::Always => true,
        };
        if ring {
            // Created here, on the media thread: the ring's only submitter.
            match Uring::new() {
                Ok(u) => {
                    tracing::debug!("receiving and sending through io_uring");
                    self.uring = Some(u);
                }
                Err(e) => {
                    // Said once for all threads by the engine (MediaEngine::io_summary).
                    tracing::debug!(error = %e, "io_uring not available: epoll");
                    self.ctx.state.set_uring_refused(e.to_string());
                }
            }
        }
        // Per-tick receives: under SCHED_FIFO, or through the ring (the epoll set per tick on a
        // normally scheduled thread measured worse than a wake-up per packet).
        self.batched_rx = realtime || self.uring.is_some();
        self.ctx.state.set_backend(if self.uring.is_some() {
            MediaBackend::IoUring
        } else if self.batched_rx {
            MediaBackend::EpollPerTick
        } else {
            MediaBackend::Epoll
        });
    }

    fn drain_commands(&mut self, now: u64) {
        loop {
            match self.rx.try_recv() {
                Ok(c) => {
                    #[cfg(test)]
                    if matches!(c, Command::TestKill) {
                        panic!("test hook: media thread killed");
                    }
                    let leg = c.leg();
                    let run = std::panic::AssertUnwindSafe(|| self.command(c, now));
                    if let Err(p) = std::panic::catch_unwind(run) {
                        let idx = leg.and_then(|id| self.by_id.get(&id).copied());
                        self.fail_call(idx, &panic_message(&*p), now);
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.stop = true;
                    break;
                }
            }
        }
    }

    fn command(&mut self, c: Command, now: u64) {
        let id = match c {
            Command::Open(o) => return self.open(*o, now),
            Command::Apply(id, m) => return self.apply(id, m, now),
            Command::Close { id, reply } => return self.close(id, reply, now),
            Command::Bridge(a, b) => return self.bridge(a, b),
            Command::Unbridge(a) => return self.unbridge(a),
            Command::Shutdown => {
                self.stop = true;
                return;
            }
            #[cfg(test)]
            Command::TestKill => return,
            ref c => c.leg().unwrap_or(u64::MAX),
        };
        let Some(&idx) = self.by_id.get(&id) else {
            return;
        };
        let Some(call) = self.calls.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let leg = &mut call.leg;
        match c {
            Command::Play {
                playback,
                list,
                opts,
                ..
            } => leg.play(now, playback, list, opts),
            Command::StopPlayback(_) => leg.stop_playback(),
            Command::Record { path, opts, .. } => {
                leg.stop_recording(&mut self.writer);
                tracing::info!(parent: leg.span(), path = %path.display(), "recording");
                self.next_rec_key += 1;
                let key = self.next_rec_key;
                self.writer
                    .start(key, path.clone(), call.events.clone(), leg.span().clone());
                leg.record(key, path, opts, &mut self.writer);
            }
            Command::StopRecording(_) => leg.stop_recording(&mut self.writer),
            Command::Digit(_, d) => leg.sip_digit(d),
            #[cfg(test)]
            Command::TestPanicOnRtp(_) => call.panic_on_rtp = true,
            _ => {}
        }
        // A prompt's first packet goes now (a plain send, not queued for the next tick's
        // ring submit): a caller who pressed a key hears it at once.
        call.settle(&mut self.buf[..]);
    }

    fn bridge(&mut self, a: u64, b: u64) {
        let (Some(&ia), Some(&ib)) = (self.by_id.get(&a), self.by_id.get(&b)) else {
            return;
        };
        if ia == ib {
            return;
        }
        for (x, y) in [(ia, ib), (ib, ia)] {
            if let Some(c) = self.calls[x].as_mut() {
                c.bridge = Some(y);
                c.leg.set_bridged(true);
                c.forward_events();
            }
            self.watch_rtp(x, true);
        }
    }

    fn unbridge(&mut self, a: u64) {
        let Some(&ia) = self.by_id.get(&a) else {
            return;
        };
        let peer = self.calls[ia].as_mut().and_then(|c| c.bridge.take());
        for x in [Some(ia), peer].into_iter().flatten() {
            if let Some(c) = self.calls[x].as_mut() {
                c.bridge = None;
                c.leg.set_bridged(false);
            }
            self.watch_rtp(x, false);
        }
    }

    fn open(&mut self, o: OpenCall, now: u64) {
        let idx = self.free.pop().unwrap_or_else(|| {
            self.calls.push(None);
            self.gens.push(0);
            self.calls.len() - 1
        });
        self.gens[idx] = self.gens[idx].wrapping_add(1) & 0x7FFF_FFFF;
        let gen = self.gens[idx];
        let span = tracing::info_span!("call", call_id = %o.call_id, port = o.port);
        for (sock, rtcp) in [(&o.rtp, false), (&o.rtcp, true)] {
            let set = if self.batched_rx {
                &self.bulk
            } else {
                &self.epoll
            };
            if let Err(e) = set.add(sock.as_raw_fd(), Call::token(idx, gen, rtcp)) {
                let _g = span.enter();
                tracing::error!(error = %e, "cannot watch socket");
            }
        }
        self.by_id.insert(o.id, idx);
        let config = LegConfig {
            inactivity_ns: self.ctx.inactivity_ns,
            send_before_latch: self.ctx.send_before_latch,
            trusted: self.ctx.trusted.clone(),
        };
        let seed = LegSeed {
            ssrc: rand::random(),
            ts_base: rand::random(),
            seq: rand::random(),
        };
        self.calls[idx] = Some(Call {
            leg: MediaLeg::new(config, seed, now, span),
            rtp: o.rtp,
            rtcp: o.rtcp,
            port: o.port,
            events: o.events,
            slot: None,
            bridge: None,
            recv_key: None,
            latched: None,
            connected: None,
            #[cfg(test)]
            panic_on_rtp: false,
        });
        if self.uring.is_some() {
            // RTP moves from the bulk epoll to the ring (RTCP, a packet every 5 s, stays).
            self.watch_rtp(idx, false);
        }
    }

    fn apply(&mut self, id: u64, m: NegotiatedMedia, now: u64) {
        let Some(&idx) = self.by_id.get(&id) else {
            return;
        };
        // Least-loaded phase slot for a call that starts its schedule now, and its first grid
        // point at or after now.
        let slot = (0..SLOTS).min_by_key(|&s| self.slots[s].len()).unwrap_or(0);
        let g = now / GRID_NS + 1;
        let g = g + ((slot as u64 + SLOTS as u64 - g % SLOTS as u64) % SLOTS as u64);
        let Some(c) = self.calls[idx].as_mut() else {
            return;
        };
        if c.leg.apply(now, m, g * GRID_NS) {
            c.slot = Some(slot);
            self.slots[slot].push(idx);
        }
        c.follow_latch();
        c.settle(&mut self.buf[..]);
    }

    fn close(&mut self, id: u64, reply: Option<oneshot::Sender<CallStats>>, now: u64) {
        let Some(idx) = self.by_id.remove(&id) else {
            if let Some(r) = reply {
                let _ = r.send(CallStats::default());
            }
            return;
        };
        // Unbridge the peer.
        if let Some(peer) = self.calls[idx].as_ref().and_then(|c| c.bridge) {
            if let Some(p) = self.calls[peer].as_mut() {
                p.bridge = None;
                p.leg.set_bridged(false);
            }
            self.watch_rtp(peer, false);
        }
        let Some(mut c) = self.calls[idx].take() else {
            return;
        };
        c.leg.stop_recording(&mut self.writer);
        if let Some(slot) = c.slot {
            self.slots[slot].retain(|&i| i != idx);
        }
        for fd in [c.rtp.as_raw_fd(), c.rtcp.as_raw_fd()] {
            self.epoll.delete(fd);
            self.bulk.delete(fd);
        }
        if let Some(u) = self.uring.as_mut() {
            if let Some(key) = c.recv_key.take() {
                u.cancel(key);
            }
            u.release(idx as u32);
        }
        let stats = c.leg.stats(now);
        {
            let _g = c.leg.span().enter();
            tracing::info!(
                sent = stats.packets_sent,
                received = stats.packets_received,
                lost = stats.packets_lost,
                jitter_ms = stats.jitter_ms,
                mos = stats.mos,
                "media closed"
            );
        }
        let port = c.port;
        drop(c); // closes the sockets before the port goes back
        if let Ok(mut p) = self.ctx.ports.lock() {
            p.release(port);
        }
        self.free.push(idx);
        if let Some(r) = reply {
            let _ = r.send(stats);
        }
    }

    fn on_grid(&mut self, now: u64) {
        let g_now = now / GRID_NS;
        let from = (self.last_grid + 1).max(g_now.saturating_sub(SLOTS as u64 - 1));
        // The wall clock once per tick, for the sender reports due.
        let wall_ns = realtime_ns();
        for g in from..=g_now {
            let slot = (g % SLOTS as u64) as usize;
            let mut k = 0;
            while let Some(&idx) = self.slots[slot].get(k) {
                k += 1;
                self.guarded(idx, now, |s| s.tick_call(idx, now, wall_ns));
            }
        }
        if let Some(u) = self.uring.as_mut() {
            if let Err(e) = u.submit() {
                tracing::warn!(error = %e, "io_uring submit failed");
            }
        }
        // Recording starts and finishes the writer had no room for (never waited for here).
        self.writer.pump();
        self.last_grid = g_now;
        let _ = self.timer.arm_at((g_now + 1) * GRID_NS);
    }

    /// One call's work on a grid tick: its due packets (on the ring when there is one), RTCP,
    /// inactivity.
    fn tick_call(&mut self, idx: usize, now: u64, wall_ns: u64) {
        let Some(c) = self.calls[idx].as_mut() else {
            return;
        };
        c.leg.handle_tick(now, wall_ns);
        let ring = self.uring.as_mut().map(|u| (u, idx as u32));
        c.transmit(&mut self.buf[..], ring);
        c.forward_events();
    }

    fn readable(&mut self, token: u64, now: u64) {
        let idx = (token >> 32) as usize;
        let gen = ((token >> 1) & 0x7FFF_FFFF) as u32;
        let is_rtcp = token & 1 == 1;
        if self.gens.get(idx) != Some(&gen) {
            return;
        }
        let Some(c) = self.calls.get(idx).and_then(Option::as_ref) else {
            return;
        };
        let fd = if is_rtcp {
            c.rtcp.as_raw_fd()
        } else {
            c.rtp.as_raw_fd()
        };
        // One packet per readiness: epoll is level-triggered, so a second queued packet is
        // reported again (errors, e.g. ICMP, read as nothing to read).
        let n = self.rbatch.recv(fd);
        for i in 0..n {
            let Some((pkt, src)) = self.rbatch.packet(i) else {
                continue;
            };
            let len = pkt.len();
            self.buf[..len].copy_from_slice(pkt);
            if is_rtcp {
                if let Some(c) = self.calls[idx].as_mut() {
                    c.leg.handle_rtcp(now, src, &self.buf[..len]);
                }
            } else {
                let arrival_ns = self.rbatch.arrival_ns(i).unwrap_or_else(realtime_ns);
                self.guarded(idx, now, |s| s.handle_rtp(idx, len, src, now, arrival_ns));
            }
        }
    }

    /// Serve the sockets of unbridged calls: polled once per grid tick (one `epoll_wait` for
    /// all of them) rather than waking the thread for each packet. Their audio goes to the
    /// recorder, VAD and digit detectors, for which up to 5 ms of extra delay is nothing.
    /// Each round reads one packet per ready socket; the level-triggered set then holds only
    /// the sockets with more queued (a burst), so rounds repeat until it is empty: a burst is
    /// drained at once, and the common case costs one empty `epoll_wait` per tick.
    fn drain_bulk(&mut self, now: u64) {
        self.drain_ring(now);
        let mut events = std::mem::take(&mut self.bulk_events);
        for _ in 0..64 {
            let n = self.bulk.wait(&mut events, 0).unwrap_or(0);
            if n == 0 {
                break;
            }
            for ev in &events[..n] {
                self.readable(ev.u64, now);
            }
        }
        self.bulk_events = events;
    }

    /// Everything the ring received since the last tick, for all its calls.
    fn drain_ring(&mut self, now: u64) {
        let mut enter = true;
        loop {
            let Some(u) = self.uring.as_mut() else { return };
            let r = match u.poll(enter, &mut self.buf[..]) {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "io_uring poll failed");
                    return;
                }
            };
            enter = false;
            let (key, packet, ended) = match r {
                Received::Packet {
                    key,
                    len,
                    src,
                    arrival_ns,
                    more,
                } => (key, src.map(|s| (len, s, arrival_ns)), !more),
                Received::Ended { key, error } => {
                    if error != libc::ENOBUFS && error != libc::ECANCELED {
                        tracing::debug!(error, "io_uring receive ended");
                    }
                    (key, None, true)
                }
            };
            let idx = key.slot as usize;
            let current = self
                .calls
                .get(idx)
                .and_then(Option::as_ref)
                .is_some_and(|c| c.recv_key == Some(key));
            if !current {
                continue; // a request already cancelled or replaced
            }
            if let Some((len, src, arrival_ns)) = packet {
                let arrival_ns = arrival_ns.unwrap_or_else(realtime_ns);
                self.guarded(idx, now, |s| s.handle_rtp(idx, len, src, now, arrival_ns));
            }
            if ended {
                // The request stopped (out of buffers, CQ full): arm a new one.
                if let Some(c) = self.calls.get_mut(idx).and_then(Option::as_mut) {
                    c.recv_key = None;
                }
                if self
                    .calls
                    .get(idx)
                    .and_then(Option::as_ref)
                    .is_some_and(|c| c.bridge.is_none())
                {
                    self.watch_rtp(idx, false);
                }
            }
        }
    }

    /// Watch a call's RTP socket on the thread's main epoll (bridged: relay at once) or on the
    /// per-tick set: the io_uring receive when there is a ring, else the `bulk` epoll.
    fn watch_rtp(&mut self, idx: usize, immediate: bool) {
        let Some(c) = self.calls.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let fd = c.rtp.as_raw_fd();
        if immediate {
            if let (Some(key), Some(u)) = (c.recv_key.take(), self.uring.as_mut()) {
                u.cancel(key);
            }
        } else if self.batched_rx {
            if let Some(u) = self.uring.as_mut() {
                if c.recv_key.is_some() {
                    return;
                }
                match u.arm(fd, idx as u32) {
                    Ok(key) => {
                        c.recv_key = Some(key);
                        self.epoll.delete(fd);
                        self.bulk.delete(fd);
                        return;
                    }
                    Err(e) => {
                        let _g = c.leg.span().enter();
                        tracing::warn!(error = %e, "io_uring receive not armed: epoll");
                    }
                }
            }
        }
        let Some(c) = self.calls.get(idx).and_then(Option::as_ref) else {
            return;
        };
        self.epoll.delete(fd);
        self.bulk.delete(fd);
        let set = if immediate || !self.batched_rx {
            &self.epoll
        } else {
            &self.bulk
        };
        if let Err(e) = set.add(fd, Call::token(idx, self.gens[idx], false)) {
            let _g = c.leg.span().enter();
            tracing::error!(error = %e, "cannot watch socket");
        }
    }

    /// The RTP packet in `self.buf[..n]` for call `idx`; a bridged call's goes on to its peer
    /// at once. `arrival_ns` is the kernel's receive time (CLOCK_REALTIME), for RFC 3550 jitter.
    fn handle_rtp(&mut self, idx: usize, n: usize, src: SocketAddr, now: u64, arrival_ns: u64) {
        let Some(c) = self.calls[idx].as_mut() else {
            return;
        };
        #[cfg(test)]
        if c.panic_on_rtp {
            panic!("test hook: panic on RTP");
        }
        let pkt = &self.buf[..n];
        let mut scratch = Scratch {
            pcm: &mut self.pcm[..],
            recorder: &mut self.writer,
        };
        let relay = c.leg.handle_rtp(now, arrival_ns, src, pkt, &mut scratch);
        c.follow_latch();
        c.forward_events();
        let (Some(r), Some(peer)) = (relay, c.bridge) else {
            return;
        };
        let Some(p) = self.calls.get_mut(peer).and_then(Option::as_mut) else {
            return;
        };
        let mut out = [0u8; 12 + 480];
        if let Some(t) = p.leg.relay(&r, pkt, &mut out) {
            if !p.send_rtp(t.bytes, t.dest) {
                p.leg.unsent(&t);
            }
        }
    }
}
