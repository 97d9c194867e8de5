//! One media thread: owns a shard of calls, wakes on a 5 ms grid (timerfd, absolute deadlines on
//! CLOCK_MONOTONIC) to send the calls whose 20 ms schedule falls on that phase, and on socket
//! readiness (epoll) to receive. Commands arrive on a channel with an eventfd wake; events leave
//! on each call's tokio channel. Nothing here blocks except `epoll_wait`.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};

use rtp_rs::RtpReader;
use tokio::sync::{mpsc::UnboundedSender, oneshot};

use super::dtmf::DtmfDetector;
use super::g711;
use super::health::ShardState;
use super::jitter::{JitterBuffer, Out, Push, FRAME as MAX_FRAME};
use super::pacing::{Pacer, RtpClock};
use super::ports::PortPool;
use super::prompts::{Prompt, FRAME};
use super::rfc4733::{EventReceiver, TelephoneEvent};
use super::rtcp;
use super::stats::{estimate_mos, RecvStats};
use super::sys::{
    disconnect_udp, monotonic_ns, pin_to_nth_cpu, realtime_ns, set_realtime, Epoll, RecvBatch,
    Timer, Waker,
};
use super::types::{
    CallStats, DigitSource, MediaBackend, MediaEvent, PlayOptions, PlaybackId, RecordOptions,
    RecordingSummary,
};
use super::types::{Codec, MediaDirection, NegotiatedMedia};
use super::uring::{Received, RecvKey, Uring};
use super::vad::{FrameVad, SpeechEvent, SpeechTracker};
use super::writer::{RecWriter, STAGE_FLUSH};
use super::IoUringMode;
use super::SendBeforeLatch;
use crate::panics::message as panic_message;
use ipnet::IpNet;

pub const GRID_NS: u64 = 5_000_000;
pub const PERIOD_NS: u64 = 20_000_000;
const SLOTS: usize = (PERIOD_NS / GRID_NS) as usize;
const RTCP_INTERVAL_NS: u64 = 5_000_000_000;
const MAX_CATCHUP: u64 = 3;
const TOKEN_TIMER: u64 = u64::MAX;
const TOKEN_WAKER: u64 = u64::MAX - 1;
/// In-band detection is muted this long after an RFC 4733 packet (phones that send both).
const INBAND_MUTE_NS: u64 = 1_000_000_000;
/// Silence kept around speech when trimming a recording: 200 ms.
const TRIM_MARGIN_FRAMES: u64 = 10;

static SILENCE_PCMU: [u8; FRAME] = [0xFF; FRAME];
static SILENCE_PCMA: [u8; FRAME] = [0xD5; FRAME];

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

/// A playlist being played. It owns references to its audio: a prompt replaced meanwhile, or a
/// clip nobody else holds, is freed when the playlist is dropped (played out, replaced, stopped,
/// or its call closed), never on a packet.
struct Playback {
    id: PlaybackId,
    list: Vec<Arc<Prompt>>,
    idx: usize,
    /// `list[idx]`, kept here: the list is its own allocation, and reading it on every tick
    /// was a cache miss per packet sent. Cloned once per prompt (a count, no allocation).
    current: Option<Arc<Prompt>>,
    frame: usize,
    opts: PlayOptions,
}

impl Playback {
    fn new(id: PlaybackId, list: Vec<Arc<Prompt>>, opts: PlayOptions) -> Playback {
        let current = list.first().cloned();
        Playback {
            id,
            list,
            idx: 0,
            current,
            frame: 0,
            opts,
        }
    }

    fn seek(&mut self, idx: usize) {
        self.idx = idx;
        self.current = self.list.get(idx).cloned();
        self.frame = 0;
    }
}

struct Recording {
    key: u64,
    path: PathBuf,
    samples: u64,
    max_samples: u64,
    end_after_silence_frames: Option<u32>,
    tracker: SpeechTracker,
    /// Audio not yet handed to the writer (under `STAGE_FLUSH` samples between frames).
    stage: Vec<i16>,
    /// Audio not yet seen by the VAD (under one 20 ms frame).
    vad_carry: Vec<i16>,
    /// Samples per packet of the caller's stream, for filling a lost one.
    packet_len: usize,
    /// The call's `foreign_packets` when the recording started.
    foreign_at_start: u64,
    /// Samples the writer could not take (its queue full).
    dropped: u64,
}

impl Recording {
    fn stage(&mut self, pcm: &[i16], writer: &mut RecWriter) {
        self.stage.extend_from_slice(pcm);
        if self.stage.len() >= STAGE_FLUSH {
            self.hand_over(writer);
        }
    }

    /// The staged audio goes to the writer as it is (no copy); staging goes on in a spare
    /// buffer.
    fn hand_over(&mut self, writer: &mut RecWriter) {
        if self.stage.is_empty() {
            return;
        }
        let full = std::mem::replace(&mut self.stage, writer.buffer());
        let n = full.len() as u64;
        if !writer.audio(self.key, full) {
            self.dropped += n;
        }
    }

    /// One in-order packet's audio (or a gap) for the recorder and VAD; `true` when the
    /// recording is complete (silence after speech, or its length limit). Packets may carry
    /// 10 to 30 ms; the VAD and speech tracker always see 20 ms frames, so their frame counts
    /// (trim margins, silence to end a message) mean the same time whatever the caller sends.
    fn take(
        &mut self,
        pcm: Option<&[i16]>,
        vad: &mut Option<FrameVad>,
        events: &UnboundedSender<MediaEvent>,
        writer: &mut RecWriter,
    ) -> bool {
        let zeros = [0i16; MAX_FRAME];
        let frame = match pcm {
            Some(p) => {
                self.packet_len = p.len().clamp(1, MAX_FRAME);
                p
            }
            // A lost packet: as long as the ones around it.
            None => &zeros[..self.packet_len],
        };
        self.stage(frame, writer);
        self.samples += frame.len() as u64;
        let vad = vad.get_or_insert_with(FrameVad::new);
        let mut done = false;
        if self.vad_carry.is_empty() && frame.len() % FRAME == 0 {
            // Whole 20 ms frames (the usual packet): straight from the packet, no carry copy.
            for f in frame.chunks_exact(FRAME) {
                done |= self.classify(vad, f, events);
            }
        } else {
            self.vad_carry.extend_from_slice(frame);
            let mut carry = std::mem::take(&mut self.vad_carry);
            let mut chunks = carry.chunks_exact(FRAME);
            for f in &mut chunks {
                done |= self.classify(vad, f, events);
            }
            let rest = chunks.remainder().len();
            let used = carry.len() - rest;
            carry.drain(..used);
            self.vad_carry = carry;
        }
        done || self.samples >= self.max_samples
    }

    /// The caller's stream restarted: what `jb` holds of the old one goes to the recording,
    /// then `jb` starts again. `true` when the recording is complete.
    fn restart_stream(
        &mut self,
        jb: &mut JitterBuffer,
        vad: &mut Option<FrameVad>,
        events: &UnboundedSender<MediaEvent>,
        writer: &mut RecWriter,
    ) -> bool {
        let mut done = false;
        while !done {
            let frame = match jb.pop_any() {
                None => break,
                Some(Out::Frame(f)) => Some(f),
                Some(Out::Gap) => None,
                Some(Out::Skipped(_)) => continue,
            };
            done = self.take(frame, vad, events, writer);
        }
        jb.restart();
        done
    }

    /// One 20 ms frame through the VAD and speech tracker; `true` when the silence that ends
    /// the message has been reached.
    fn classify(
        &mut self,
        vad: &mut FrameVad,
        frame: &[i16],
        events: &UnboundedSender<MediaEvent>,
    ) -> bool {
        match self.tracker.push(vad.is_speech(frame)) {
            Some(SpeechEvent::Started { .. }) => {
                let _ = events.send(MediaEvent::SpeechStarted);
            }
            Some(SpeechEvent::Ended { .. }) => {
                let _ = events.send(MediaEvent::SpeechEnded);
            }
            None => {}
        }
        self.end_after_silence_frames.is_some_and(|n| {
            self.tracker.first_speech.is_some() && self.tracker.silent_frames() >= n
        })
    }
}

struct Call {
    span: tracing::Span,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    port: u16,
    events: UnboundedSender<MediaEvent>,
    media: Option<NegotiatedMedia>,
    remote: Option<SocketAddr>,
    latched: bool,
    /// Whether media may go to `remote` before the peer's RTP latched it
    /// (`[media] send_before_latch`).
    send_unlatched: bool,
    /// The address the RTP socket is connected to (the latched peer).
    connected: Option<SocketAddr>,
    pacer: Option<Pacer>,
    slot: usize,
    clock: RtpClock,
    last_tick: u64,
    marker_next: bool,
    playback: Option<Playback>,
    rx: RecvStats,
    rx_ssrc: Option<u32>,
    jb: JitterBuffer,
    te: EventReceiver,
    dtmf: DtmfDetector,
    last_4733_ns: Option<u64>,
    vad: Option<FrameVad>,
    rec: Option<Recording>,
    bridge: Option<usize>,
    relay_ts_offset: Option<u32>,
    /// The io_uring receive request serving the RTP socket, when it is armed.
    recv_key: Option<RecvKey>,
    opened_ns: u64,
    last_rx_ns: u64,
    timed_out: bool,
    next_rtcp_ns: u64,
    sent_packets: u64,
    sent_octets: u64,
    peer_report: rtcp::PeerReport,
    last_sr_rx_ns: u64,
    foreign_packets: u64,
    bad_packets: u64,
    #[cfg(test)]
    panic_on_rtp: bool,
}

impl Call {
    fn emit(&self, ev: MediaEvent) {
        let _ = self.events.send(ev);
    }

    fn token(idx: usize, gen: u32, rtcp: bool) -> u64 {
        (idx as u64) << 32 | (gen as u64) << 1 | rtcp as u64
    }

    /// Once latched, the RTP socket is connected to the peer: sends skip the per-packet route
    /// lookup, and the kernel drops other sources (which the latch ignored anyway).
    fn connect(&mut self, peer: SocketAddr) {
        self.connected = self.rtp.connect(peer).is_ok().then_some(peer);
    }

    fn send_rtp(&self, pkt: &[u8], remote: SocketAddr) -> bool {
        if self.connected == Some(remote) {
            self.rtp.send(pkt).is_ok()
        } else {
            self.rtp.send_to(pkt, remote).is_ok()
        }
    }

    fn sending(&self) -> bool {
        self.bridge.is_none()
            && self.may_send()
            && self.media.is_some_and(|m| m.direction.we_send())
    }

    /// Whether anything (prompts, relayed audio, RTCP) may go to `remote`: once latched, or
    /// before when `send_before_latch` allows its address.
    fn may_send(&self) -> bool {
        self.remote.is_some() && (self.latched || self.send_unlatched)
    }

    /// A packet from a source that may not latch this call (nor, once latched, replace the
    /// peer): dropped and counted, logged the first time and then at powers of two.
    fn foreign(&mut self, src: SocketAddr) {
        self.foreign_packets += 1;
        if self.foreign_packets.is_power_of_two() {
            let _g = self.span.enter();
            tracing::warn!(%src, count = self.foreign_packets, "RTP from a stranger dropped");
        }
    }

    fn stats(&self, now: u64) -> CallStats {
        let expected = self.rx.expected();
        let lost = self.rx.lost();
        let loss_pct = if expected > 0 {
            lost.max(0) as f64 * 100.0 / expected as f64
        } else {
            0.0
        };
        let jitter_ms = self.rx.jitter() as f64 / 8.0;
        CallStats {
            duration_ms: (now.saturating_sub(self.opened_ns)) / 1_000_000,
            packets_sent: self.sent_packets,
            packets_received: self.rx.received,
            packets_lost: lost,
            jitter_ms,
            mos: estimate_mos(0.0, jitter_ms, loss_pct),
            peer_fraction_lost: self.peer_report.block.map(|b| b.fraction_lost),
            peer_jitter_ms: self.peer_report.block.map(|b| b.jitter as f64 / 8.0),
            foreign_packets: self.foreign_packets,
            malformed_packets: self.bad_packets,
        }
    }

    fn stop_playback(&mut self) {
        if let Some(p) = self.playback.take() {
            let id = p.id;
            // Its audio goes first: whoever hears "finished" finds it freed.
            drop(p);
            self.emit(MediaEvent::PlaybackFinished(id));
        }
    }

    fn digit(&mut self, digit: char, source: DigitSource) {
        tracing::info!(parent: &self.span, %digit, ?source, "digit");
        self.emit(MediaEvent::Digit { digit, source });
        if self.playback.as_ref().is_some_and(|p| p.opts.barge_in) {
            self.stop_playback();
        }
    }

    /// Writes this tick's payload into `out` (one frame): the current prompt frame or silence.
    fn write_payload(&mut self, codec: Codec, out: &mut [u8]) {
        let silence: &'static [u8] = match codec {
            Codec::Pcmu => &SILENCE_PCMU,
            Codec::Pcma => &SILENCE_PCMA,
        };
        loop {
            let Some(p) = self.playback.as_mut() else {
                out.copy_from_slice(silence);
                return;
            };
            let frame = p
                .current
                .as_ref()
                .map(|prompt| prompt.frame(codec, p.frame));
            match frame {
                Some(Some(f)) => {
                    out.copy_from_slice(f);
                    if p.idx == 0 && p.frame == 0 {
                        self.marker_next = true;
                    }
                    p.frame += 1;
                    return;
                }
                Some(None) => {
                    let next = p.idx + 1;
                    p.seek(next);
                }
                None => {
                    if p.opts.repeat && !p.list.is_empty() && p.idx > 0 {
                        p.seek(0);
                        continue;
                    }
                    self.stop_playback();
                    out.copy_from_slice(silence);
                    return;
                }
            }
        }
    }

    fn send_tick(&mut self, tick: u64, buf: &mut [u8], ring: Option<(&mut Uring, u32)>) {
        self.last_tick = tick;
        if !self.sending() {
            return;
        }
        let (Some(m), Some(remote)) = (self.media, self.remote) else {
            return;
        };
        let n = 12 + FRAME;
        self.write_payload(m.codec, &mut buf[12..n]);
        let ts = self.clock.timestamp(tick);
        let seq = self.clock.next_seq();
        write_header(
            buf,
            self.marker_next,
            m.payload_type,
            seq,
            ts,
            self.clock.ssrc,
        );
        self.marker_next = false;
        let sent = match ring {
            Some((r, idx)) if self.connected == Some(remote) => {
                r.queue_send(self.rtp.as_raw_fd(), idx, &buf[..n])
                    || self.send_rtp(&buf[..n], remote)
            }
            _ => self.send_rtp(&buf[..n], remote),
        };
        if sent {
            self.sent_packets += 1;
            self.sent_octets += FRAME as u64;
        }
        // A playlist that just ran out reports now, not a tick later.
        if let Some(p) = &self.playback {
            if p.idx >= p.list.len() && !p.opts.repeat {
                self.stop_playback();
            }
        }
    }

    fn rtcp_due(&mut self, now: u64) {
        if now < self.next_rtcp_ns {
            return;
        }
        self.next_rtcp_ns = now + RTCP_INTERVAL_NS;
        if !self.may_send() {
            return;
        }
        let Some(remote) = self.remote else { return };
        let dest = SocketAddr::new(remote.ip(), remote.port().wrapping_add(1));
        let sender = (self.sent_packets > 0).then(|| rtcp::SenderInfo {
            ntp: rtcp::ntp_from_unix_ns(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
            ),
            rtp_ts: self.clock.timestamp(self.last_tick),
            packets: self.sent_packets as u32,
            octets: self.sent_octets as u32,
        });
        let block = self.rx_ssrc.map(|ssrc| {
            let (lsr, dlsr) = match self.peer_report.sr_ntp_mid {
                Some(mid) => (
                    mid,
                    (now.saturating_sub(self.last_sr_rx_ns) * 65536 / 1_000_000_000) as u32,
                ),
                None => (0, 0),
            };
            rtcp::ReportBlock {
                ssrc,
                fraction_lost: self.rx.take_fraction_lost(),
                cumulative_lost: self.rx.lost().clamp(i32::MIN as i64, i32::MAX as i64) as i32,
                ext_highest_seq: self.rx.extended_max() as u32,
                jitter: self.rx.jitter(),
                lsr,
                dlsr,
            }
        });
        let mut out = [0u8; 52];
        let n = rtcp::write_report(&mut out, self.clock.ssrc, sender, block);
        let _ = self.rtcp.send_to(&out[..n], dest);
    }

    fn inactivity(&mut self, now: u64, timeout: u64) {
        let on_hold = self
            .media
            .is_none_or(|m| m.direction != MediaDirection::SendRecv);
        if on_hold || self.timed_out {
            return;
        }
        if now.saturating_sub(self.last_rx_ns) >= timeout {
            self.timed_out = true;
            let _g = self.span.enter();
            tracing::warn!("no RTP for {} s", timeout / 1_000_000_000);
            self.emit(MediaEvent::MediaTimeout);
        }
    }

    fn finish_recording(&mut self, writer: &mut RecWriter) {
        let Some(mut rec) = self.rec.take() else {
            return;
        };
        // Drain what the jitter buffer still holds.
        let zeros = [0i16; MAX_FRAME];
        while let Some(o) = self.jb.pop_any() {
            let f = match o {
                Out::Frame(f) => f,
                Out::Gap => &zeros[..rec.packet_len],
                Out::Skipped(_) => continue,
            };
            rec.stage(f, writer);
            rec.samples += f.len() as u64;
        }
        rec.hand_over(writer);
        self.jb = JitterBuffer::new(3);
        let total = rec.samples;
        let frames = total / FRAME as u64;
        let t = &rec.tracker;
        let keep = match (t.first_speech, t.last_speech) {
            (Some(a), Some(b)) => {
                let start = a.saturating_sub(TRIM_MARGIN_FRAMES) * FRAME as u64;
                let end = ((b + 1 + TRIM_MARGIN_FRAMES).min(frames)) * FRAME as u64;
                Some((start, end.max(start)))
            }
            _ => None,
        };
        let speech_detected = keep.is_some();
        let (ks, ke) = keep.unwrap_or((0, total));
        let summary = RecordingSummary {
            path: rec.path,
            duration_ms: total * 1000 / 8000,
            speech_detected,
            trimmed_start_ms: ks * 1000 / 8000,
            trimmed_end_ms: (total - ke.min(total)) * 1000 / 8000,
            foreign_packets: self.foreign_packets - rec.foreign_at_start,
            dropped_ms: rec.dropped * 1000 / 8000,
        };
        // Finalising (header, trim, rename) happens on the writer thread, which then reports.
        writer.finish(rec.key, keep, summary);
    }
}

fn write_header(buf: &mut [u8], marker: bool, pt: u8, seq: u16, ts: u32, ssrc: u32) {
    buf[0] = 0x80;
    buf[1] = (marker as u8) << 7 | (pt & 0x7F);
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&ts.to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
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
                tracing::error!(parent: &c.span, panic = %why, "media bug: this call's media is ended");
                c.emit(MediaEvent::Failed);
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
                        tracing::info!(
                            error = %e,
                            "media threads stay on the normal scheduler (SCHED_FIFO not permitted)"
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
                Err(e) => tracing::info!(error = %e, "io_uring not available: epoll"),
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

    fn call_mut(&mut self, id: u64) -> Option<&mut Call> {
        let idx = *self.by_id.get(&id)?;
        self.calls.get_mut(idx)?.as_mut()
    }

    fn command(&mut self, c: Command, now: u64) {
        match c {
            Command::Open(o) => self.open(*o, now),
            Command::Apply(id, m) => self.apply(id, m, now),
            Command::Play {
                id,
                playback,
                list,
                opts,
            } => {
                let Some(&idx) = self.by_id.get(&id) else {
                    return;
                };
                let Some(c) = self.calls.get_mut(idx).and_then(Option::as_mut) else {
                    return;
                };
                c.stop_playback();
                c.playback = Some(Playback::new(playback, list, opts));
                // A caller who pressed a key hears the next prompt at once, not at the call's
                // next 20 ms slot: its first packet goes now (a plain send, not queued for the
                // next tick's ring submit), the rest on the grid.
                if let Some(p) = c.pacer.as_mut() {
                    if p.next_deadline() > now + GRID_NS {
                        if let Some(t) = p.take_next_early(now) {
                            c.send_tick(t, &mut self.buf[..], None);
                        }
                    }
                }
            }
            Command::StopPlayback(id) => {
                if let Some(c) = self.call_mut(id) {
                    c.stop_playback();
                }
            }
            Command::Record { id, path, opts } => {
                let Some(&idx) = self.by_id.get(&id) else {
                    return;
                };
                let Some(c) = self.calls[idx].as_mut() else {
                    return;
                };
                c.finish_recording(&mut self.writer);
                tracing::info!(parent: &c.span, path = %path.display(), "recording");
                self.next_rec_key += 1;
                let key = self.next_rec_key;
                self.writer
                    .start(key, path.clone(), c.events.clone(), c.span.clone());
                c.jb = JitterBuffer::new(3);
                c.rec = Some(Recording {
                    key,
                    path,
                    samples: 0,
                    max_samples: opts.max_seconds as u64 * 8000,
                    end_after_silence_frames: opts.end_after_silence_ms.map(|ms| (ms / 20).max(1)),
                    tracker: SpeechTracker::new(3, 15),
                    stage: self.writer.buffer(),
                    vad_carry: Vec::with_capacity(FRAME + MAX_FRAME),
                    packet_len: FRAME,
                    foreign_at_start: c.foreign_packets,
                    dropped: 0,
                });
            }
            Command::StopRecording(id) => {
                let Some(&idx) = self.by_id.get(&id) else {
                    return;
                };
                if let Some(c) = self.calls[idx].as_mut() {
                    c.finish_recording(&mut self.writer);
                }
            }
            Command::Digit(id, d) => {
                if let Some(c) = self.call_mut(id) {
                    c.digit(d, DigitSource::SipInfo);
                }
            }
            Command::Bridge(a, b) => {
                let (Some(&ia), Some(&ib)) = (self.by_id.get(&a), self.by_id.get(&b)) else {
                    return;
                };
                if ia == ib {
                    return;
                }
                for (x, y) in [(ia, ib), (ib, ia)] {
                    if let Some(c) = self.calls[x].as_mut() {
                        c.bridge = Some(y);
                        c.relay_ts_offset = None;
                        c.stop_playback();
                    }
                    self.watch_rtp(x, true);
                }
            }
            Command::Unbridge(a) => {
                let Some(&ia) = self.by_id.get(&a) else {
                    return;
                };
                let peer = self.calls[ia].as_mut().and_then(|c| c.bridge.take());
                for x in [Some(ia), peer].into_iter().flatten() {
                    if let Some(c) = self.calls[x].as_mut() {
                        c.bridge = None;
                        c.marker_next = true;
                    }
                    self.watch_rtp(x, false);
                }
            }
            Command::Close { id, reply } => self.close(id, reply, now),
            Command::Shutdown => self.stop = true,
            #[cfg(test)]
            Command::TestPanicOnRtp(id) => {
                if let Some(c) = self.call_mut(id) {
                    c.panic_on_rtp = true;
                }
            }
            #[cfg(test)]
            Command::TestKill => {}
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
        self.calls[idx] = Some(Call {
            span,
            rtp: o.rtp,
            rtcp: o.rtcp,
            port: o.port,
            events: o.events,
            media: None,
            remote: None,
            latched: false,
            send_unlatched: false,
            connected: None,
            pacer: None,
            slot: 0,
            clock: RtpClock {
                ssrc: rand::random(),
                ts_base: rand::random(),
                samples_per_tick: FRAME as u32,
                seq: rand::random(),
            },
            last_tick: 0,
            marker_next: true,
            playback: None,
            rx: RecvStats::default(),
            rx_ssrc: None,
            jb: JitterBuffer::new(3),
            te: EventReceiver::new(),
            dtmf: DtmfDetector::new(),
            last_4733_ns: None,
            vad: None,
            rec: None,
            bridge: None,
            relay_ts_offset: None,
            recv_key: None,
            opened_ns: now,
            last_rx_ns: now,
            timed_out: false,
            next_rtcp_ns: now + RTCP_INTERVAL_NS,
            sent_packets: 0,
            sent_octets: 0,
            peer_report: Default::default(),
            last_sr_rx_ns: now,
            foreign_packets: 0,
            bad_packets: 0,
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
        // Least-loaded phase slot for a call that starts its schedule now.
        let slot = (0..SLOTS).min_by_key(|&s| self.slots[s].len()).unwrap_or(0);
        let Some(c) = self.calls[idx].as_mut() else {
            return;
        };
        let _g = c.span.enter();
        tracing::info!(remote = %m.remote_rtp, codec = ?m.codec, direction = ?m.direction, "media applied");
        if c.media.is_none_or(|old| old.remote_rtp != m.remote_rtp) {
            c.remote = Some(m.remote_rtp);
            c.latched = false;
            c.send_unlatched = self
                .ctx
                .send_before_latch
                .allows(m.remote_rtp.ip(), &self.ctx.trusted);
            if !c.send_unlatched {
                tracing::info!(remote = %m.remote_rtp, "media waits for the peer's RTP before sending (send_before_latch)");
            }
            // Accept any source again until the new peer is latched.
            if c.connected.take().is_some() {
                let _ = disconnect_udp(&c.rtp);
            }
        }
        let was_sending = c.sending();
        c.media = Some(m);
        if c.sending() && !was_sending {
            c.marker_next = true;
        }
        c.last_rx_ns = now;
        c.timed_out = false;
        if c.pacer.is_none() {
            // First grid point at or after now with this slot's phase.
            let g = now / GRID_NS + 1;
            let g = g + ((slot as u64 + SLOTS as u64 - g % SLOTS as u64) % SLOTS as u64);
            c.pacer = Some(Pacer::new(g * GRID_NS, PERIOD_NS, MAX_CATCHUP));
            c.slot = slot;
            self.slots[slot].push(idx);
        }
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
                p.marker_next = true;
            }
            self.watch_rtp(peer, false);
        }
        let Some(mut c) = self.calls[idx].take() else {
            return;
        };
        c.finish_recording(&mut self.writer);
        if c.pacer.is_some() {
            self.slots[c.slot].retain(|&i| i != idx);
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
        let stats = c.stats(now);
        {
            let _g = c.span.enter();
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
        let inactivity = self.ctx.inactivity_ns;
        for g in from..=g_now {
            let slot = (g % SLOTS as u64) as usize;
            let mut k = 0;
            while let Some(&idx) = self.slots[slot].get(k) {
                k += 1;
                self.guarded(idx, now, |s| s.tick_call(idx, now, inactivity));
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

    /// One call's work on a grid tick: its due packets, RTCP, inactivity.
    fn tick_call(&mut self, idx: usize, now: u64, inactivity: u64) {
        let Some(c) = self.calls[idx].as_mut() else {
            return;
        };
        if let Some(p) = c.pacer.as_mut() {
            let due = p.poll(now);
            for t in due.first..due.first + due.count {
                let ring = self.uring.as_mut().map(|u| (u, idx as u32));
                c.send_tick(t, &mut self.buf[..], ring);
            }
        }
        c.rtcp_due(now);
        c.inactivity(now, inactivity);
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
                    let peer = match c.media {
                        Some(_) if c.latched => c.remote.is_some_and(|r| r.ip() == src.ip()),
                        Some(m) => m.may_latch(src.ip()),
                        None => false,
                    };
                    if !peer {
                        c.foreign(src);
                        continue;
                    }
                    let rep = rtcp::parse(&self.buf[..len]);
                    if rep.sr_ntp_mid.is_some() {
                        c.last_sr_rx_ns = now;
                    }
                    if rep.sr_ntp_mid.is_some() || rep.block.is_some() {
                        c.peer_report = rep;
                    }
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
                        let _g = c.span.enter();
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
            let _g = c.span.enter();
            tracing::error!(error = %e, "cannot watch socket");
        }
    }

    /// `arrival_ns` is the kernel's receive time (CLOCK_REALTIME), for RFC 3550 jitter.
    fn handle_rtp(&mut self, idx: usize, n: usize, src: SocketAddr, now: u64, arrival_ns: u64) {
        let Some(c) = self.calls[idx].as_mut() else {
            return;
        };
        let Some(m) = c.media else { return };
        #[cfg(test)]
        if c.panic_on_rtp {
            panic!("test hook: panic on RTP");
        }
        let pkt = &self.buf[..n];
        let Ok(rtp) = RtpReader::new(pkt) else {
            c.bad_packets += 1;
            return;
        };
        if !c.latched {
            if !m.may_latch(src.ip()) {
                c.foreign(src);
                return;
            }
            if c.remote != Some(src) {
                let _g = c.span.enter();
                tracing::info!(%src, "symmetric RTP: latched to source");
            }
            c.remote = Some(src);
            c.latched = true;
            c.connect(src);
        } else if c.remote != Some(src) {
            c.foreign(src);
            return;
        }
        c.last_rx_ns = now;
        c.timed_out = false;
        let pt = rtp.payload_type();
        let ts = rtp.timestamp();
        let payload = rtp.payload();
        let marker = rtp.mark();
        let (off, len) = (
            n - payload.len() - rtp.padding().unwrap_or(0) as usize,
            payload.len(),
        );
        if Some(pt) == m.telephone_event_pt {
            let Some(ev) = TelephoneEvent::parse(payload) else {
                c.bad_packets += 1; // shorter than one event: neither a digit nor relayed
                return;
            };
            c.last_4733_ns = Some(now);
            let digit = c.te.handle_event(ts, ev);
            if let Some(peer) = c.bridge {
                self.relay(idx, peer, marker, ts, off, len, true);
            }
            if let Some(d) = digit {
                if let Some(c) = self.calls[idx].as_mut() {
                    c.digit(d, DigitSource::Rfc4733);
                }
            }
            return;
        }
        let codec = match pt {
            0 => Codec::Pcmu,
            8 => Codec::Pcma,
            p if p == m.payload_type => m.codec,
            _ => {
                c.bad_packets += 1;
                return;
            }
        };
        let restarts = c.rx.restarts;
        let ssrc = rtp.ssrc();
        if c.rx_ssrc.is_some_and(|old| old != ssrc) {
            // A new stream (the phone restarted it): numbering starts again.
            tracing::info!(parent: &c.span, ssrc, "RTP stream restarted (new SSRC)");
            c.rx.restart();
        }
        c.rx_ssrc = Some(ssrc);
        // RTP clock units (8 kHz) of the arrival time; only differences matter.
        let arrival = (arrival_ns / 125_000) as u32;
        let ext =
            c.rx.handle_packet(u16::from(rtp.sequence_number()), ts, arrival);
        let restarted = c.rx.restarts != restarts;
        if let Some(peer) = c.bridge {
            self.relay(idx, peer, marker, ts, off, len, false);
            return;
        }
        let samples = g711::decode(codec, payload, &mut self.pcm[..]);
        let pcm = &self.pcm[..samples];
        let inband_muted = c
            .last_4733_ns
            .is_some_and(|t| now.saturating_sub(t) < INBAND_MUTE_NS);
        let inband = c.dtmf.process(pcm);
        if let (Some(d), false) = (inband, inband_muted) {
            c.digit(d, DigitSource::InBand);
        }
        if let Some(rec) = c.rec.as_mut() {
            let w = &mut self.writer;
            // A restarted stream: what the buffer holds of the old one is played out, then it
            // starts again from this packet (else every later packet would be "late").
            let mut done = restarted && rec.restart_stream(&mut c.jb, &mut c.vad, &c.events, w);
            if let (Some(ext), false) = (ext, done) {
                let mut pushed = c.jb.push(ext, pcm);
                if pushed == Push::Restart {
                    done = rec.restart_stream(&mut c.jb, &mut c.vad, &c.events, w);
                    pushed = c.jb.push(ext, pcm);
                }
                if pushed == Push::Now && !done {
                    done = rec.take(Some(pcm), &mut c.vad, &c.events, w);
                }
            }
            // Once the recording is complete, what the buffer still holds goes to its tail
            // (`finish_recording` drains it), not through here.
            while !done {
                let Some(o) = c.jb.pop_ready() else { break };
                let frame = match o {
                    Out::Frame(f) => Some(f),
                    Out::Gap => None,
                    Out::Skipped(_) => continue,
                };
                done = rec.take(frame, &mut c.vad, &c.events, &mut self.writer);
            }
            if done {
                c.finish_recording(&mut self.writer);
            }
        }
    }

    /// Forward the packet in `self.buf[..n]` (payload at `off`) from call `from` to its bridge
    /// peer `to`: the peer's SSRC, its sequence numbers, timestamps shifted onto its timeline,
    /// payload transcoded when the two legs use different laws.
    #[allow(clippy::too_many_arguments)]
    fn relay(
        &mut self,
        from: usize,
        to: usize,
        marker: bool,
        ts: u32,
        off: usize,
        len: usize,
        event: bool,
    ) {
        let in_codec = self.calls[from]
            .as_ref()
            .and_then(|c| c.media)
            .map(|m| m.codec);
        let Some(p) = self.calls.get_mut(to).and_then(Option::as_mut) else {
            return;
        };
        let (Some(pm), Some(remote)) = (p.media, p.remote) else {
            return;
        };
        if !pm.direction.we_send() || !p.may_send() {
            return;
        }
        let out_pt = if event {
            match pm.telephone_event_pt {
                Some(pt) => pt,
                None => return,
            }
        } else {
            pm.payload_type
        };
        let offset = *p
            .relay_ts_offset
            .get_or_insert_with(|| p.clock.timestamp(p.last_tick).wrapping_sub(ts));
        let out_ts = ts.wrapping_add(offset);
        let seq = p.clock.next_seq();
        let mut out = [0u8; 12 + 480];
        let len = len.min(480);
        let payload = &self.buf[off..off + len];
        match (event, in_codec) {
            (false, Some(ic)) if ic != pm.codec => {
                for (o, &b) in out[12..12 + len].iter_mut().zip(payload) {
                    *o = g711::transcode_byte(ic, pm.codec, b);
                }
            }
            _ => out[12..12 + len].copy_from_slice(payload),
        }
        write_header(
            &mut out,
            marker || p.marker_next,
            out_pt,
            seq,
            out_ts,
            p.clock.ssrc,
        );
        p.marker_next = false;
        if p.send_rtp(&out[..12 + len], remote) {
            p.sent_packets += 1;
            p.sent_octets += len as u64;
        }
    }
}
