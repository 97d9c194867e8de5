//! One call's RTP, sans-I/O: latching, the 20 ms send schedule, prompts, RFC 4733 and in-band
//! DTMF, the jitter buffer, VAD and recording, RTCP, the inactivity timeout, bridged relay.
//! Time (monotonic ns, and the wall clock for RTCP's NTP stamps and RFC 3550 jitter) comes in
//! as arguments; packets come in as bytes and leave through `poll_transmit`; events to the call's
//! flow leave through `poll_event`. The shell (`shard.rs`) owns the sockets, the clocks and the
//! timers; tests drive `now` by hand.
//!
//! After every `handle_*` or command, the shell drains `poll_transmit` and `poll_event`: a tick's
//! packets are written one at a time into the shell's buffer (no allocation per packet).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ipnet::IpNet;
use rtp_rs::RtpReader;

use super::dtmf::DtmfDetector;
use super::g711;
use super::jitter::{JitterBuffer, Out, Push, FRAME as MAX_FRAME};
use super::pacing::{Pacer, RtpClock};
use super::prompts::{Prompt, FRAME};
use super::rfc4733::{EventReceiver, TelephoneEvent};
use super::rtcp;
use super::stats::{estimate_mos, RecvStats};
use super::types::{
    CallStats, Codec, DigitSource, MediaDirection, MediaEvent, NegotiatedMedia, PlayOptions,
    PlaybackId, RecordOptions, RecordingSummary,
};
use super::vad::{FrameVad, SpeechEvent, SpeechTracker};
use super::writer::{RecWriter, STAGE_FLUSH};
use super::SendBeforeLatch;

/// The shell's wake-up grid: a prompt started less than this before the call's next slot waits
/// for it; more, and its first packet goes at once.
pub const GRID_NS: u64 = 5_000_000;
/// One packet every 20 ms.
pub const PERIOD_NS: u64 = 20_000_000;
const RTCP_INTERVAL_NS: u64 = 5_000_000_000;
const MAX_CATCHUP: u64 = 3;
/// In-band detection is muted this long after an RFC 4733 packet (phones that send both).
const INBAND_MUTE_NS: u64 = 1_000_000_000;
/// Silence kept around speech when trimming a recording: 200 ms.
const TRIM_MARGIN_FRAMES: u64 = 10;
/// The largest relayed payload (30 ms of G.711 and then some).
const MAX_RELAY: usize = 480;

static SILENCE_PCMU: [u8; FRAME] = [0xFF; FRAME];
static SILENCE_PCMA: [u8; FRAME] = [0xD5; FRAME];

/// Where a recording's audio goes: the shard's writer thread, or a test's memory. Audio is
/// handed over in whole staged buffers (no copy).
pub trait RecordSink {
    /// An empty buffer to stage the next chunk in.
    fn buffer(&mut self) -> Vec<i16>;
    /// One chunk of recording `key`; `false` when it was dropped (the writer behind).
    fn audio(&mut self, key: u64, pcm: Vec<i16>) -> bool;
    /// The recording is complete: keep `keep` (samples) of it, and report `summary`.
    fn finish(&mut self, key: u64, keep: Option<(u64, u64)>, summary: RecordingSummary);
}

impl RecordSink for RecWriter {
    fn buffer(&mut self) -> Vec<i16> {
        RecWriter::buffer(self)
    }
    fn audio(&mut self, key: u64, pcm: Vec<i16>) -> bool {
        RecWriter::audio(self, key, pcm)
    }
    fn finish(&mut self, key: u64, keep: Option<(u64, u64)>, summary: RecordingSummary) {
        RecWriter::finish(self, key, keep, summary)
    }
}

/// What the shell lends a leg for one received packet: room to decode its audio into (shared
/// by every call of a thread, so it stays in cache) and the recording sink.
pub struct Scratch<'a> {
    pub pcm: &'a mut [i16],
    pub recorder: &'a mut dyn RecordSink,
}

/// The policy a leg is opened with.
#[derive(Debug, Clone)]
pub struct LegConfig {
    /// No RTP this long (not on hold) → `MediaEvent::MediaTimeout`.
    pub inactivity_ns: u64,
    pub send_before_latch: SendBeforeLatch,
    pub trusted: Arc<[IpNet]>,
}

/// The random start of the stream we send (RFC 3550 §5.1: SSRC, timestamp and sequence start
/// at random); drawn by the shell, so a test chooses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegSeed {
    pub ssrc: u32,
    pub ts_base: u32,
    pub seq: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransmitKind {
    Rtp,
    Rtcp,
}

/// A packet to send: to `dest` from the call's RTP or RTCP socket. `bytes` borrows the buffer
/// the shell passed in.
#[derive(Debug)]
pub struct Transmit<'b> {
    pub kind: TransmitKind,
    pub dest: SocketAddr,
    pub bytes: &'b [u8],
}

/// A bridged leg's packet, for its peer's `relay`: where the payload lies in the packet.
#[derive(Debug, Clone, Copy)]
pub struct Relay {
    marker: bool,
    ts: u32,
    off: usize,
    len: usize,
    /// An RFC 4733 event (sent with the peer's telephone-event type), else audio.
    event: bool,
    codec: Codec,
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
    fn stage(&mut self, pcm: &[i16], writer: &mut dyn RecordSink) {
        self.stage.extend_from_slice(pcm);
        if self.stage.len() >= STAGE_FLUSH {
            self.hand_over(writer);
        }
    }

    /// The staged audio goes to the writer as it is (no copy); staging goes on in a spare
    /// buffer.
    fn hand_over(&mut self, writer: &mut dyn RecordSink) {
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
        events: &mut VecDeque<MediaEvent>,
        writer: &mut dyn RecordSink,
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
        events: &mut VecDeque<MediaEvent>,
        writer: &mut dyn RecordSink,
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
        events: &mut VecDeque<MediaEvent>,
    ) -> bool {
        match self.tracker.push(vad.is_speech(frame)) {
            Some(SpeechEvent::Started { .. }) => {
                events.push_back(MediaEvent::SpeechStarted);
            }
            Some(SpeechEvent::Ended { .. }) => {
                events.push_back(MediaEvent::SpeechEnded);
            }
            None => {}
        }
        self.end_after_silence_frames.is_some_and(|n| {
            self.tracker.first_speech.is_some() && self.tracker.silent_frames() >= n
        })
    }
}

/// One call's media, without sockets or clocks.
pub struct MediaLeg {
    span: tracing::Span,
    config: LegConfig,
    media: Option<NegotiatedMedia>,
    remote: Option<SocketAddr>,
    latched: bool,
    /// Whether media may go to `remote` before the peer's RTP latched it
    /// (`[media] send_before_latch`).
    send_unlatched: bool,
    pacer: Option<Pacer>,
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
    /// Relaying to a peer leg (the shell holds which): no prompts, no local audio path.
    bridged: bool,
    relay_ts_offset: Option<u32>,
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
    /// Ticks due and not yet written by `poll_transmit`: `due_next..due_end`.
    due_next: u64,
    due_end: u64,
    /// A report due, and the (monotonic, wall) time it was due at.
    rtcp_due: Option<(u64, u64)>,
    events: VecDeque<MediaEvent>,
}

impl MediaLeg {
    pub fn new(config: LegConfig, seed: LegSeed, now: u64, span: tracing::Span) -> MediaLeg {
        MediaLeg {
            span,
            config,
            media: None,
            remote: None,
            latched: false,
            send_unlatched: false,
            pacer: None,
            clock: RtpClock {
                ssrc: seed.ssrc,
                ts_base: seed.ts_base,
                samples_per_tick: FRAME as u32,
                seq: seed.seq,
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
            bridged: false,
            relay_ts_offset: None,
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
            due_next: 0,
            due_end: 0,
            rtcp_due: None,
            events: VecDeque::new(),
        }
    }

    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// The peer whose RTP latched this leg: the shell connects the RTP socket to it.
    #[inline]
    pub fn latched_peer(&self) -> Option<SocketAddr> {
        if self.latched {
            self.remote
        } else {
            None
        }
    }

    #[inline]
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// The next packet due, written into `buf` (at least 64 bytes; the shell's receive buffer
    /// does). The count of packets sent assumes it leaves: call `unsent` if it did not.
    #[inline]
    pub fn poll_transmit<'b>(&mut self, buf: &'b mut [u8]) -> Option<Transmit<'b>> {
        while self.due_next < self.due_end {
            let tick = self.due_next;
            self.due_next += 1;
            if let Some((n, dest)) = self.send_tick(tick, buf) {
                return Some(Transmit {
                    kind: TransmitKind::Rtp,
                    dest,
                    bytes: &buf[..n],
                });
            }
        }
        let (now, wall_ns) = self.rtcp_due.take()?;
        let (n, dest) = self.report(now, wall_ns, buf)?;
        Some(Transmit {
            kind: TransmitKind::Rtcp,
            dest,
            bytes: &buf[..n],
        })
    }

    /// The shell could not send `t`: it is not counted as sent.
    #[inline]
    pub fn unsent(&mut self, t: &Transmit<'_>) {
        if t.kind == TransmitKind::Rtp {
            self.sent_packets = self.sent_packets.saturating_sub(1);
            let payload = t.bytes.len().saturating_sub(12) as u64;
            self.sent_octets = self.sent_octets.saturating_sub(payload);
        }
    }

    fn emit(&mut self, ev: MediaEvent) {
        self.events.push_back(ev);
    }

    fn sending(&self) -> bool {
        !self.bridged && self.may_send() && self.media.is_some_and(|m| m.direction.we_send())
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

    pub fn stats(&self, now: u64) -> CallStats {
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

    /// The negotiated media (first answer, re-INVITE, hold). `schedule_from` is when the shell
    /// wants the first packet (its least-loaded phase); used only if the leg has no schedule
    /// yet, and then `true` is returned (the shell files it under that phase).
    pub fn apply(&mut self, now: u64, m: NegotiatedMedia, schedule_from: u64) -> bool {
        let _g = self.span.clone().entered();
        tracing::info!(remote = %m.remote_rtp, codec = ?m.codec, direction = ?m.direction, "media applied");
        if self.media.is_none_or(|old| old.remote_rtp != m.remote_rtp) {
            self.remote = Some(m.remote_rtp);
            // Accept any source again until the new peer is latched.
            self.latched = false;
            self.send_unlatched = self
                .config
                .send_before_latch
                .allows(m.remote_rtp.ip(), &self.config.trusted);
            if !self.send_unlatched {
                tracing::info!(remote = %m.remote_rtp, "media waits for the peer's RTP before sending (send_before_latch)");
            }
        }
        let was_sending = self.sending();
        self.media = Some(m);
        if self.sending() && !was_sending {
            self.marker_next = true;
        }
        self.last_rx_ns = now;
        self.timed_out = false;
        if self.pacer.is_some() {
            return false;
        }
        self.pacer = Some(Pacer::new(schedule_from, PERIOD_NS, MAX_CATCHUP));
        true
    }

    /// Play `list` from now, replacing what was playing (which reports finished).
    pub fn play(&mut self, now: u64, id: PlaybackId, list: Vec<Arc<Prompt>>, opts: PlayOptions) {
        self.stop_playback();
        self.playback = Some(Playback::new(id, list, opts));
        // A caller who pressed a key hears the next prompt at once, not at the call's next
        // 20 ms slot: its first packet goes now, the rest on the grid.
        if let Some(p) = self.pacer.as_mut() {
            if p.next_deadline() > now + GRID_NS {
                if let Some(t) = p.take_next_early(now) {
                    if self.due_next == self.due_end {
                        self.due_next = t;
                    }
                    self.due_end = t + 1;
                }
            }
        }
    }

    pub fn stop_playback(&mut self) {
        if let Some(p) = self.playback.take() {
            let id = p.id;
            // Its audio goes first: whoever hears "finished" finds it freed.
            drop(p);
            self.emit(MediaEvent::PlaybackFinished(id));
        }
    }

    /// Record the caller into recording `key` (which the shell has opened in `sink`), ending
    /// any recording before.
    pub fn record(
        &mut self,
        key: u64,
        path: PathBuf,
        opts: RecordOptions,
        sink: &mut dyn RecordSink,
    ) {
        self.stop_recording(sink);
        self.jb = JitterBuffer::new(3);
        self.rec = Some(Recording {
            key,
            path,
            samples: 0,
            max_samples: opts.max_seconds as u64 * 8000,
            end_after_silence_frames: opts.end_after_silence_ms.map(|ms| (ms / 20).max(1)),
            tracker: SpeechTracker::new(3, 15),
            stage: sink.buffer(),
            vad_carry: Vec::with_capacity(FRAME + MAX_FRAME),
            packet_len: FRAME,
            foreign_at_start: self.foreign_packets,
            dropped: 0,
        });
    }

    /// A digit from signalling (SIP INFO): as if heard.
    pub fn sip_digit(&mut self, digit: char) {
        self.digit(digit, DigitSource::SipInfo);
    }

    /// Bridged to a peer (the shell relays each leg's packets to the other through `relay`),
    /// or back to prompts and the local audio path.
    pub fn set_bridged(&mut self, bridged: bool) {
        self.bridged = bridged;
        if bridged {
            self.relay_ts_offset = None;
            self.stop_playback();
        } else {
            self.marker_next = true;
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

    /// Tick `tick`'s packet into `buf`: its length and destination, or `None` when this leg
    /// sends nothing now (bridged, on hold, not latched).
    fn send_tick(&mut self, tick: u64, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
        self.last_tick = tick;
        if !self.sending() {
            return None;
        }
        let (m, remote) = (self.media?, self.remote?);
        let n = 12 + FRAME;
        let buf = buf.get_mut(..n)?;
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
        self.sent_packets += 1;
        self.sent_octets += FRAME as u64;
        // A playlist that just ran out reports now, not a tick later.
        if let Some(p) = &self.playback {
            if p.idx >= p.list.len() && !p.opts.repeat {
                self.stop_playback();
            }
        }
        Some((n, remote))
    }

    /// The shell's timer: `now` on the monotonic clock, `wall_ns` the same instant on the
    /// wall clock (Unix ns, for the sender report's NTP stamp). Queues the packets due (catching
    /// up at most three missed ticks), a report every 5 s, and the inactivity timeout.
    #[inline]
    pub fn handle_tick(&mut self, now: u64, wall_ns: u64) {
        if let Some(p) = self.pacer.as_mut() {
            let due = p.poll(now);
            if due.count > 0 {
                self.due_next = due.first;
                self.due_end = due.first + due.count;
            }
        }
        if now >= self.next_rtcp_ns {
            self.next_rtcp_ns = now + RTCP_INTERVAL_NS;
            if self.may_send() {
                self.rtcp_due = Some((now, wall_ns));
            }
        }
        self.inactivity(now);
    }

    /// Our report (SR once we have sent, else RR) into `buf`, for the peer's RTCP port.
    fn report(&mut self, now: u64, wall_ns: u64, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
        if !self.may_send() {
            return None;
        }
        let remote = self.remote?;
        let dest = SocketAddr::new(remote.ip(), remote.port().wrapping_add(1));
        let sender = (self.sent_packets > 0).then(|| rtcp::SenderInfo {
            ntp: rtcp::ntp_from_unix_ns(wall_ns as u128),
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
        let out: &mut [u8; 52] = buf.get_mut(..52)?.try_into().ok()?;
        let n = rtcp::write_report(out, self.clock.ssrc, sender, block);
        Some((n, dest))
    }

    fn inactivity(&mut self, now: u64) {
        let on_hold = self
            .media
            .is_none_or(|m| m.direction != MediaDirection::SendRecv);
        if on_hold || self.timed_out {
            return;
        }
        let timeout = self.config.inactivity_ns;
        if now.saturating_sub(self.last_rx_ns) >= timeout {
            self.timed_out = true;
            tracing::warn!(parent: &self.span, "no RTP for {} s", timeout / 1_000_000_000);
            self.emit(MediaEvent::MediaTimeout);
        }
    }

    /// An RTCP packet from `from`: the peer's report is kept for the call's statistics and our
    /// next report's LSR/DLSR.
    pub fn handle_rtcp(&mut self, now: u64, from: SocketAddr, bytes: &[u8]) {
        let peer = match self.media {
            Some(_) if self.latched => self.remote.is_some_and(|r| r.ip() == from.ip()),
            Some(m) => m.may_latch(from.ip()),
            None => false,
        };
        if !peer {
            self.foreign(from);
            return;
        }
        let rep = rtcp::parse(bytes);
        if rep.sr_ntp_mid.is_some() {
            self.last_sr_rx_ns = now;
        }
        if rep.sr_ntp_mid.is_some() || rep.block.is_some() {
            self.peer_report = rep;
        }
    }

    /// An RTP packet from `from`, received at `arrival_ns` on the wall clock (the kernel's
    /// stamp; only differences matter, for RFC 3550 jitter). A bridged leg returns what its
    /// peer's `relay` forwards.
    pub fn handle_rtp(
        &mut self,
        now: u64,
        arrival_ns: u64,
        from: SocketAddr,
        pkt: &[u8],
        scratch: &mut Scratch<'_>,
    ) -> Option<Relay> {
        let m = self.media?;
        let Ok(rtp) = RtpReader::new(pkt) else {
            self.bad_packets += 1;
            return None;
        };
        if !self.latched {
            if !m.may_latch(from.ip()) {
                self.foreign(from);
                return None;
            }
            if self.remote != Some(from) {
                let _g = self.span.enter();
                tracing::info!(src = %from, "symmetric RTP: latched to source");
            }
            self.remote = Some(from);
            self.latched = true;
        } else if self.remote != Some(from) {
            self.foreign(from);
            return None;
        }
        self.last_rx_ns = now;
        self.timed_out = false;
        let pt = rtp.payload_type();
        let ts = rtp.timestamp();
        let payload = rtp.payload();
        let marker = rtp.mark();
        let relay = |event| Relay {
            marker,
            ts,
            off: pkt.len() - payload.len() - rtp.padding().unwrap_or(0) as usize,
            len: payload.len(),
            event,
            codec: m.codec,
        };
        if Some(pt) == m.telephone_event_pt {
            let Some(ev) = TelephoneEvent::parse(payload) else {
                self.bad_packets += 1; // shorter than one event: neither a digit nor relayed
                return None;
            };
            self.last_4733_ns = Some(now);
            if let Some(d) = self.te.handle_event(ts, ev) {
                self.digit(d, DigitSource::Rfc4733);
            }
            return self.bridged.then(|| relay(true));
        }
        let codec = match pt {
            0 => Codec::Pcmu,
            8 => Codec::Pcma,
            p if p == m.payload_type => m.codec,
            _ => {
                self.bad_packets += 1;
                return None;
            }
        };
        let restarts = self.rx.restarts;
        let ssrc = rtp.ssrc();
        if self.rx_ssrc.is_some_and(|old| old != ssrc) {
            // A new stream (the phone restarted it): numbering starts again.
            tracing::info!(parent: &self.span, ssrc, "RTP stream restarted (new SSRC)");
            self.rx.restart();
        }
        self.rx_ssrc = Some(ssrc);
        // RTP clock units (8 kHz) of the arrival time; only differences matter.
        let arrival = (arrival_ns / 125_000) as u32;
        let ext = self
            .rx
            .handle_packet(u16::from(rtp.sequence_number()), ts, arrival);
        let restarted = self.rx.restarts != restarts;
        if self.bridged {
            return Some(relay(false));
        }
        let samples = g711::decode(codec, payload, scratch.pcm);
        let pcm = &scratch.pcm[..samples];
        let inband_muted = self
            .last_4733_ns
            .is_some_and(|t| now.saturating_sub(t) < INBAND_MUTE_NS);
        let inband = self.dtmf.process(pcm);
        if let (Some(d), false) = (inband, inband_muted) {
            self.digit(d, DigitSource::InBand);
        }
        let w = &mut *scratch.recorder;
        if let Some(rec) = self.rec.as_mut() {
            let (jb, vad, events) = (&mut self.jb, &mut self.vad, &mut self.events);
            // A restarted stream: what the buffer holds of the old one is played out, then it
            // starts again from this packet (else every later packet would be "late").
            let mut done = restarted && rec.restart_stream(jb, vad, events, w);
            if let (Some(ext), false) = (ext, done) {
                let mut pushed = jb.push(ext, pcm);
                if pushed == Push::Restart {
                    done = rec.restart_stream(jb, vad, events, w);
                    pushed = jb.push(ext, pcm);
                }
                if pushed == Push::Now && !done {
                    done = rec.take(Some(pcm), vad, events, w);
                }
            }
            // Once the recording is complete, what the buffer still holds goes to its tail
            // (`finish_recording` drains it), not through here.
            while !done {
                let Some(o) = jb.pop_ready() else { break };
                let frame = match o {
                    Out::Frame(f) => Some(f),
                    Out::Gap => None,
                    Out::Skipped(_) => continue,
                };
                done = rec.take(frame, vad, events, w);
            }
            if done {
                self.stop_recording(w);
            }
        }
        None
    }

    /// Forward a packet of the bridged peer (`relay` from its `handle_rtp`, `pkt` the packet)
    /// as ours: our SSRC, our sequence numbers, its timestamps shifted onto our timeline, the
    /// payload transcoded when the two legs use different laws. Written into `out` (at least
    /// 12 + 480 bytes), to send at once.
    pub fn relay<'b>(&mut self, r: &Relay, pkt: &[u8], out: &'b mut [u8]) -> Option<Transmit<'b>> {
        let (pm, remote) = (self.media?, self.remote?);
        if !pm.direction.we_send() || !self.may_send() {
            return None;
        }
        let out_pt = if r.event {
            pm.telephone_event_pt?
        } else {
            pm.payload_type
        };
        let len = r.len.min(MAX_RELAY);
        let payload = pkt.get(r.off..r.off + len)?;
        let out = out.get_mut(..12 + len)?;
        let (clock, last_tick) = (self.clock, self.last_tick);
        let offset = *self
            .relay_ts_offset
            .get_or_insert_with(|| clock.timestamp(last_tick).wrapping_sub(r.ts));
        let out_ts = r.ts.wrapping_add(offset);
        let seq = self.clock.next_seq();
        if !r.event && r.codec != pm.codec {
            for (o, &b) in out[12..].iter_mut().zip(payload) {
                *o = g711::transcode_byte(r.codec, pm.codec, b);
            }
        } else {
            out[12..].copy_from_slice(payload);
        }
        write_header(
            out,
            r.marker || self.marker_next,
            out_pt,
            seq,
            out_ts,
            self.clock.ssrc,
        );
        self.marker_next = false;
        self.sent_packets += 1;
        self.sent_octets += len as u64;
        Some(Transmit {
            kind: TransmitKind::Rtp,
            dest: remote,
            bytes: out,
        })
    }

    /// Ends the recording, if one: what the jitter buffer still holds goes to its tail, and
    /// the sink finalises it (trimmed to the speech and its margins) and reports.
    pub fn stop_recording(&mut self, sink: &mut dyn RecordSink) {
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
            rec.stage(f, sink);
            rec.samples += f.len() as u64;
        }
        rec.hand_over(sink);
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
        // Finalising (header, trim, rename) is the sink's (the writer thread), which reports.
        sink.finish(rec.key, keep, summary);
    }
}

fn write_header(buf: &mut [u8], marker: bool, pt: u8, seq: u16, ts: u32, ssrc: u32) {
    buf[0] = 0x80;
    buf[1] = (marker as u8) << 7 | (pt & 0x7F);
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&ts.to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    //! The leg on synthetic time: `now` is whatever the test says, so a 10 s timeout or a
    //! 5 s RTCP interval takes microseconds.

    use super::*;
    use crate::media::dtmf;
    use crate::media::rfc4733::digit_to_event;

    const MS: u64 = 1_000_000;
    const SEED: LegSeed = LegSeed {
        ssrc: 0x1234_5678,
        ts_base: 1000,
        // Two packets before the sequence wraps.
        seq: 65534,
    };
    /// The far end's stream.
    const PEER_SSRC: u32 = 0xCAFE_F00D;

    fn peer() -> SocketAddr {
        "192.0.2.10:4000".parse().unwrap()
    }

    fn config() -> LegConfig {
        LegConfig {
            inactivity_ns: 10_000 * MS,
            send_before_latch: SendBeforeLatch::Always,
            trusted: Arc::from(Vec::new()),
        }
    }

    fn media(direction: MediaDirection) -> NegotiatedMedia {
        NegotiatedMedia {
            remote_rtp: peer(),
            codec: Codec::Pcmu,
            payload_type: 0,
            telephone_event_pt: Some(101),
            direction,
            ptime_ms: 20,
            signalling_peer: None,
        }
    }

    /// A leg opened at 0 whose schedule starts at 20 ms.
    fn leg() -> MediaLeg {
        let mut l = MediaLeg::new(config(), SEED, 0, tracing::Span::none());
        assert!(l.apply(0, media(MediaDirection::SendRecv), 20 * MS));
        l
    }

    /// A finished recording: its key, the part kept, its summary.
    type Finished = (u64, Option<(u64, u64)>, RecordingSummary);

    /// What a recording's sink was given.
    #[derive(Default)]
    struct Tape {
        audio: Vec<i16>,
        chunks: usize,
        finished: Vec<Finished>,
    }

    impl RecordSink for Tape {
        fn buffer(&mut self) -> Vec<i16> {
            Vec::with_capacity(800)
        }
        fn audio(&mut self, _key: u64, pcm: Vec<i16>) -> bool {
            self.audio.extend_from_slice(&pcm);
            self.chunks += 1;
            true
        }
        fn finish(&mut self, key: u64, keep: Option<(u64, u64)>, summary: RecordingSummary) {
            self.finished.push((key, keep, summary));
        }
    }

    #[derive(Debug)]
    struct Sent {
        kind: TransmitKind,
        dest: SocketAddr,
        bytes: Vec<u8>,
    }

    impl Sent {
        fn seq(&self) -> u16 {
            u16::from_be_bytes([self.bytes[2], self.bytes[3]])
        }
        fn ts(&self) -> u32 {
            u32::from_be_bytes(self.bytes[4..8].try_into().unwrap())
        }
        fn ssrc(&self) -> u32 {
            u32::from_be_bytes(self.bytes[8..12].try_into().unwrap())
        }
        fn marker(&self) -> bool {
            self.bytes[1] & 0x80 != 0
        }
        fn pt(&self) -> u8 {
            self.bytes[1] & 0x7F
        }
        fn payload(&self) -> &[u8] {
            &self.bytes[12..]
        }
    }

    fn drain(l: &mut MediaLeg) -> Vec<Sent> {
        let mut buf = [0u8; 2048];
        let mut out = Vec::new();
        while let Some(t) = l.poll_transmit(&mut buf) {
            out.push(Sent {
                kind: t.kind,
                dest: t.dest,
                bytes: t.bytes.to_vec(),
            });
        }
        out
    }

    fn tick(l: &mut MediaLeg, now: u64) -> Vec<Sent> {
        l.handle_tick(now, 1_700_000_000_000_000_000 + now);
        drain(l)
    }

    fn events(l: &mut MediaLeg) -> Vec<MediaEvent> {
        std::iter::from_fn(|| l.poll_event()).collect()
    }

    fn rtp(seq: u16, ts: u32, pt: u8, payload: &[u8]) -> Vec<u8> {
        rtp_of(PEER_SSRC, seq, ts, pt, payload)
    }

    fn rtp_of(ssrc: u32, seq: u16, ts: u32, pt: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[4..8].copy_from_slice(&ts.to_be_bytes());
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    /// 20 ms of µ-law audio, every sample `level`.
    fn level(level: i16) -> [u8; FRAME] {
        [g711::encode_sample(Codec::Pcmu, level); FRAME]
    }

    /// Feed one packet from the peer at `now`; what it relays, if bridged.
    fn receive(l: &mut MediaLeg, now: u64, pkt: &[u8], tape: &mut Tape) -> Option<Relay> {
        let mut pcm = [0i16; 2048];
        let mut s = Scratch {
            pcm: &mut pcm,
            recorder: tape,
        };
        l.handle_rtp(now, now, peer(), pkt, &mut s)
    }

    #[test]
    fn a_prompt_plays_as_rtp_on_the_20ms_grid() {
        let mut l = leg();
        assert!(
            tick(&mut l, 19 * MS).is_empty(),
            "nothing before the schedule"
        );
        // Silence until a prompt plays, the stream's first packet marked.
        let p = tick(&mut l, 20 * MS);
        assert_eq!(p.len(), 1);
        let first = &p[0];
        assert_eq!((first.kind, first.dest), (TransmitKind::Rtp, peer()));
        assert_eq!(
            (first.seq(), first.ts(), first.ssrc()),
            (65534, 1000, SEED.ssrc)
        );
        assert_eq!((first.pt(), first.marker()), (0, true));
        assert_eq!(first.payload(), &SILENCE_PCMU[..]);

        // Three frames of prompt, played at 25 ms: its first packet goes at once (tick 1,
        // ahead of its 40 ms deadline), the rest on the grid.
        let pcm: Vec<i16> = (0..3 * FRAME).map(|i| (i as i16 % 100) * 50).collect();
        let prompt = Arc::new(Prompt::from_samples("test".into(), &pcm));
        l.play(
            25 * MS,
            PlaybackId(7),
            vec![prompt.clone()],
            PlayOptions::default(),
        );
        let p = drain(&mut l);
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].seq(), p[0].ts(), p[0].marker()), (65535, 1160, true));
        assert_eq!(p[0].payload(), prompt.frame(Codec::Pcmu, 0).unwrap());
        assert!(tick(&mut l, 40 * MS).is_empty(), "tick 1 went early");
        for (k, now) in [(1, 60), (2, 80)] {
            let p = tick(&mut l, now * MS);
            assert_eq!(p.len(), 1);
            let want_seq = (65535u16).wrapping_add(k as u16);
            assert_eq!(p[0].seq(), want_seq, "the sequence wraps and goes on");
            assert_eq!(p[0].ts(), 1000 + (k + 1) * 160);
            assert!(!p[0].marker());
            assert_eq!(
                p[0].payload(),
                prompt.frame(Codec::Pcmu, k as usize).unwrap()
            );
        }
        assert!(events(&mut l).is_empty());
        // Played out: silence, and the flow hears of it.
        let p = tick(&mut l, 100 * MS);
        assert_eq!(p[0].payload(), &SILENCE_PCMU[..]);
        assert_eq!(
            events(&mut l),
            [MediaEvent::PlaybackFinished(PlaybackId(7))]
        );

        // A thread woken 100 ms late catches up three ticks and skips the older ones: the
        // timestamps jump over them, the sequence does not.
        let p = tick(&mut l, 200 * MS);
        let got: Vec<(u16, u32)> = p.iter().map(|s| (s.seq(), s.ts())).collect();
        assert_eq!(
            got,
            [
                (3, 1000 + 7 * 160),
                (4, 1000 + 8 * 160),
                (5, 1000 + 9 * 160)
            ]
        );
        assert_eq!(l.stats(200 * MS).packets_sent, 8);
    }

    #[test]
    fn a_packet_that_did_not_leave_is_not_counted() {
        let mut l = leg();
        l.handle_tick(20 * MS, 0);
        let mut buf = [0u8; 2048];
        let t = l.poll_transmit(&mut buf).unwrap();
        let t = Transmit {
            kind: t.kind,
            dest: t.dest,
            bytes: t.bytes,
        };
        l.unsent(&t);
        assert_eq!(l.stats(20 * MS).packets_sent, 0);
    }

    #[test]
    fn an_rfc4733_digit_is_reported_once_and_mutes_in_band_detection() {
        let mut l = leg();
        let mut tape = Tape::default();
        let ev = |end, duration| {
            let mut b = [0u8; 4];
            TelephoneEvent {
                event: digit_to_event('5').unwrap(),
                end,
                volume: 10,
                duration,
            }
            .write(&mut b);
            b
        };
        // One event: three packets with the same timestamp, the last marked as the end, and
        // the end sent three times (RFC 4733 §2.5.1.4).
        let mut now = 1000 * MS;
        for (seq, (end, d)) in [(false, 160), (false, 320), (true, 480), (true, 480)]
            .into_iter()
            .enumerate()
        {
            assert!(receive(
                &mut l,
                now,
                &rtp(seq as u16 + 1, 8000, 101, &ev(end, d)),
                &mut tape
            )
            .is_none());
            now += 20 * MS;
        }
        assert_eq!(
            events(&mut l),
            [MediaEvent::Digit {
                digit: '5',
                source: DigitSource::Rfc4733
            }]
        );

        // The same phone also sends the tone in band: not a second digit while muted...
        let tone = |digit, start: u64, seq0: u16, l: &mut MediaLeg, tape: &mut Tape| {
            let mut pcm = [0i16; 8 * 100];
            dtmf::generate(digit, 7000.0, 7000.0, 0, &mut pcm);
            let mut now = start;
            for (k, f) in pcm
                .chunks(FRAME)
                .chain([[0i16; FRAME].as_slice(); 5])
                .enumerate()
            {
                let mut enc = [0u8; FRAME];
                g711::encode(Codec::Pcmu, f, &mut enc);
                let seq = seq0 + k as u16;
                receive(l, now, &rtp(seq, 160 * seq as u32, 0, &enc), tape);
                now += 20 * MS;
            }
        };
        tone('5', now, 10, &mut l, &mut tape);
        assert!(events(&mut l).is_empty(), "in-band muted after RFC 4733");
        // ...but heard once a second has passed without RFC 4733.
        tone('8', now + 1500 * MS, 30, &mut l, &mut tape);
        assert_eq!(
            events(&mut l),
            [MediaEvent::Digit {
                digit: '8',
                source: DigitSource::InBand
            }]
        );
    }

    #[test]
    fn a_recording_gets_the_callers_audio_in_order_with_gaps_for_losses() {
        let mut l = leg();
        let mut tape = Tape::default();
        l.record(
            1,
            "/rec/x.wav".into(),
            RecordOptions {
                max_seconds: 60,
                end_after_silence_ms: None,
            },
            &mut tape,
        );
        // Packet k carries level k × 1000. 4 overtakes 3; 7 is lost (its late arrival after
        // the buffer gave up on it is dropped); 9 comes twice.
        let order = [1u16, 2, 4, 3, 5, 6, 8, 9, 9, 10, 7, 11, 12];
        for (i, &seq) in order.iter().enumerate() {
            let now = 1000 * MS + i as u64 * 20 * MS;
            let pkt = rtp(seq, seq as u32 * 160, 0, &level(seq as i16 * 1000));
            receive(&mut l, now, &pkt, &mut tape);
        }
        l.stop_recording(&mut tape);
        let heard: Vec<i16> = tape.audio.chunks(FRAME).map(|f| f[0]).collect();
        let want: Vec<i16> = (1..=12)
            .map(|k| match k {
                7 => 0,
                k => g711::decode_sample(Codec::Pcmu, g711::encode_sample(Codec::Pcmu, k * 1000)),
            })
            .collect();
        assert_eq!(heard, want);
        assert!(tape
            .audio
            .chunks(FRAME)
            .all(|f| f.iter().all(|&s| s == f[0])));
        assert!(
            tape.chunks >= 3,
            "handed over in chunks, not at the end only"
        );
        let (key, _, summary) = &tape.finished[0];
        assert_eq!((*key, summary.duration_ms), (1, 240));
        assert_eq!(summary.path, PathBuf::from("/rec/x.wav"));
        let stats = l.stats(2000 * MS);
        assert_eq!(stats.packets_received, 13);
    }

    /// With the next test, moved from `tests/media_engine.rs`
    /// (`silence_ends_a_message_and_no_rtp_times_out`, which waited a 1 s timeout in real time).
    #[test]
    fn a_recording_ends_itself_after_the_silence_that_follows_speech() {
        let mut l = leg();
        let mut tape = Tape::default();
        l.record(
            2,
            "/rec/y.wav".into(),
            RecordOptions {
                max_seconds: 60,
                end_after_silence_ms: Some(400),
            },
            &mut tape,
        );
        // A second of a voice-like sound: harmonics of 140 Hz.
        let mut speech = [0i16; 8000];
        for (i, s) in speech.iter_mut().enumerate() {
            let t = i as f32 / 8000.0;
            let x: f32 = (1..12)
                .map(|h| (2.0 * std::f32::consts::PI * 140.0 * h as f32 * t).sin() / h as f32)
                .sum();
            *s = (x * 6000.0) as i16;
        }
        let mut seq = 1u16;
        let mut now = 1000 * MS;
        let silence = [0i16; FRAME];
        let frames = speech
            .chunks(FRAME)
            .chain(std::iter::repeat_n(&silence[..], 100));
        for f in frames {
            let mut enc = [0u8; FRAME];
            g711::encode(Codec::Pcmu, f, &mut enc);
            receive(&mut l, now, &rtp(seq, seq as u32 * 160, 0, &enc), &mut tape);
            if !tape.finished.is_empty() {
                break;
            }
            seq += 1;
            now += 20 * MS;
        }
        assert_eq!(tape.finished.len(), 1, "ended by the silence");
        assert!(tape.finished[0].2.speech_detected);
        assert!(
            tape.finished[0].2.duration_ms < 1900,
            "ended by silence, not by the sender"
        );
        assert!(seq < 50 + 40, "ended {} packets in", seq);
        let evs = events(&mut l);
        assert_eq!(evs.first(), Some(&MediaEvent::SpeechStarted));
        assert!(evs.contains(&MediaEvent::SpeechEnded));
    }

    #[test]
    fn sender_reports_go_every_five_seconds_to_the_rtcp_port() {
        let mut l = leg();
        let mut tape = Tape::default();
        receive(&mut l, 10 * MS, &rtp(1, 160, 0, &level(0)), &mut tape);
        let mut reports = Vec::new();
        let mut sent = 0;
        let mut now = 20 * MS;
        while now <= 12_000 * MS {
            for s in tick(&mut l, now) {
                match s.kind {
                    TransmitKind::Rtp => sent += 1,
                    TransmitKind::Rtcp => reports.push((now, sent, s)),
                }
            }
            // The peer keeps sending, every 20 ms.
            let seq = (now / (20 * MS)) as u16 + 1;
            receive(
                &mut l,
                now,
                &rtp(seq, seq as u32 * 160, 0, &level(0)),
                &mut tape,
            );
            now += 20 * MS;
        }
        let at: Vec<u64> = reports.iter().map(|r| r.0 / MS).collect();
        assert_eq!(at, [5000, 10000]);
        for (now, sent, r) in &reports {
            assert_eq!(r.dest, "192.0.2.10:4001".parse().unwrap());
            assert_eq!(r.bytes[1], 200, "an SR: we send");
            assert_eq!(
                r.bytes.len(),
                52,
                "with a report block on the peer's stream"
            );
            let ntp = u64::from_be_bytes(r.bytes[8..16].try_into().unwrap());
            assert_eq!(
                ntp,
                rtcp::ntp_from_unix_ns((1_700_000_000_000_000_000 + now) as u128)
            );
            let packets = u32::from_be_bytes(r.bytes[20..24].try_into().unwrap());
            assert_eq!(packets, *sent, "counts what went before it");
            let ssrc = u32::from_be_bytes(r.bytes[28..32].try_into().unwrap());
            assert_eq!(ssrc, PEER_SSRC);
        }
    }

    #[test]
    fn no_rtp_for_the_timeout_is_reported_once_and_not_on_hold() {
        let mut l = leg();
        let mut tape = Tape::default();
        let mut now = 20 * MS;
        while now < 10_000 * MS {
            tick(&mut l, now);
            now += 20 * MS;
        }
        assert!(events(&mut l).is_empty());
        tick(&mut l, 10_000 * MS);
        assert_eq!(events(&mut l), [MediaEvent::MediaTimeout]);
        tick(&mut l, 15_000 * MS);
        assert!(events(&mut l).is_empty(), "reported once");
        // RTP again: the clock restarts.
        receive(&mut l, 16_000 * MS, &rtp(1, 160, 0, &level(0)), &mut tape);
        tick(&mut l, 25_990 * MS);
        assert!(events(&mut l).is_empty());
        tick(&mut l, 26_000 * MS);
        assert_eq!(events(&mut l), [MediaEvent::MediaTimeout]);
        // On hold, silence is expected.
        let mut held = leg();
        held.apply(0, media(MediaDirection::SendOnly), 0);
        tick(&mut held, 60_000 * MS);
        assert!(events(&mut held).is_empty());
    }

    #[test]
    fn rtp_latches_its_source_and_strangers_are_dropped() {
        let mut l = leg();
        let mut tape = Tape::default();
        let mut pcm = [0i16; 2048];
        let mut s = Scratch {
            pcm: &mut pcm,
            recorder: &mut tape,
        };
        let stranger: SocketAddr = "198.51.100.1:4000".parse().unwrap();
        l.handle_rtp(0, 0, stranger, &rtp(1, 160, 0, &level(0)), &mut s);
        assert_eq!(l.latched_peer(), None);
        // The SDP's address, another port (a NAT): latched there.
        let natted: SocketAddr = "192.0.2.10:61000".parse().unwrap();
        l.handle_rtp(0, 0, natted, &rtp(2, 320, 0, &level(0)), &mut s);
        assert_eq!(l.latched_peer(), Some(natted));
        assert_eq!(tick(&mut l, 20 * MS)[0].dest, natted);
        l.handle_rtp(0, 0, peer(), &rtp(3, 480, 0, &level(0)), &mut s);
        l.handle_rtp(0, 0, natted, &[0x80, 0], &mut s);
        let st = l.stats(0);
        assert_eq!((st.foreign_packets, st.malformed_packets), (2, 1));
        assert_eq!(st.packets_received, 1);
    }

    #[test]
    fn a_bridged_packet_goes_out_as_the_peers_stream_transcoded() {
        let mut a = leg();
        let mut b = MediaLeg::new(
            config(),
            LegSeed {
                ssrc: 0xB,
                ts_base: 50_000,
                seq: 9,
            },
            0,
            tracing::Span::none(),
        );
        let far_b: SocketAddr = "192.0.2.20:6000".parse().unwrap();
        b.apply(
            0,
            NegotiatedMedia {
                remote_rtp: far_b,
                codec: Codec::Pcma,
                payload_type: 8,
                telephone_event_pt: None,
                ..media(MediaDirection::SendRecv)
            },
            0,
        );
        a.set_bridged(true);
        b.set_bridged(true);
        assert!(
            tick(&mut a, 20 * MS).is_empty(),
            "a bridged leg sends no prompts"
        );
        let mut tape = Tape::default();
        let mut out = [0u8; 12 + 480];
        let mut got = Vec::new();
        for seq in [100u16, 101] {
            let pkt = rtp(seq, seq as u32 * 160, 0, &level(3000));
            let r = receive(&mut a, 30 * MS, &pkt, &mut tape).expect("relayed");
            let t = b.relay(&r, &pkt, &mut out).unwrap();
            assert_eq!(t.dest, far_b);
            got.push((
                u16::from_be_bytes([t.bytes[2], t.bytes[3]]),
                u32::from_be_bytes(t.bytes[4..8].try_into().unwrap()),
                t.bytes[1],
                t.bytes[12],
            ));
        }
        let alaw = g711::transcode_byte(Codec::Pcmu, Codec::Pcma, level(3000)[0]);
        // B's sequence; A's timestamps moved onto B's timeline; A-law; the first marked.
        assert_eq!(got[0], (9, 50_000, 0x80 | 8, alaw));
        assert_eq!(got[1], (10, 50_160, 8, alaw));
        // A telephone event finds no type on B: not relayed.
        let ev = rtp(102, 102 * 160, 101, &[5, 0x80, 0, 160]);
        let r = receive(&mut a, 40 * MS, &ev, &mut tape).unwrap();
        assert!(b.relay(&r, &ev, &mut out).is_none());
    }

    /// Moved from `tests/media_engine.rs`, where it waited 1.5 s of real time.
    #[test]
    fn hold_stops_the_stream_and_resume_continues_it_with_a_new_codec() {
        let mut l = leg();
        let p = tick(&mut l, 20 * MS);
        let last_seq = p[0].seq();
        // Put on hold: we answer recvonly, so we stop sending.
        l.apply(30 * MS, media(MediaDirection::RecvOnly), 0);
        // On hold and silent for longer than the inactivity limit: no timeout, no RTP (our
        // receiver reports go on).
        let mut now = 40 * MS;
        while now < 15_000 * MS {
            assert!(tick(&mut l, now)
                .iter()
                .all(|s| s.kind == TransmitKind::Rtcp));
            now += 20 * MS;
        }
        assert!(events(&mut l).is_empty(), "no MediaTimeout on hold");
        // Resume with PCMA (a re-INVITE changed the codec): marker, next sequence number, the
        // timestamp still on the call's timeline.
        let pcma = NegotiatedMedia {
            codec: Codec::Pcma,
            payload_type: 8,
            ..media(MediaDirection::SendRecv)
        };
        assert!(!l.apply(now, pcma, 0), "the schedule is kept");
        let p: Vec<Sent> = tick(&mut l, now)
            .into_iter()
            .filter(|s| s.kind == TransmitKind::Rtp)
            .collect();
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].pt(), p[0].marker()), (8, true));
        assert_eq!(p[0].seq(), last_seq.wrapping_add(1));
        assert_eq!(p[0].ts(), 1000 + ((now - 20 * MS) / (20 * MS)) as u32 * 160);
        assert_eq!(p[0].payload(), &SILENCE_PCMA[..]);
    }

    /// Moved from `tests/media_engine.rs`, where it waited for a 1 s timeout in real time.
    #[test]
    fn an_untrusted_sdp_address_gets_no_rtp_until_it_sends() {
        // A spoofed INVITE naming a victim's address outside the trusted networks: nothing is
        // sent there until RTP comes from it.
        let config = LegConfig {
            send_before_latch: SendBeforeLatch::Trusted,
            trusted: Arc::from(vec!["127.0.0.1/32".parse::<IpNet>().unwrap()]),
            ..config()
        };
        let mut l = MediaLeg::new(config, SEED, 0, tracing::Span::none());
        l.apply(0, media(MediaDirection::SendRecv), 20 * MS);
        let prompt = Arc::new(Prompt::from_samples("greeting".into(), &[3000; 8000]));
        let repeat = PlayOptions {
            barge_in: false,
            repeat: true,
        };
        l.play(MS, PlaybackId(1), vec![prompt], repeat);
        let mut now = 20 * MS;
        while now <= 10_000 * MS {
            assert!(
                tick(&mut l, now).is_empty(),
                "nothing to {} at {now}",
                peer()
            );
            now += 20 * MS;
        }
        // The inactivity timeout passed without one sent.
        assert_eq!(events(&mut l), [MediaEvent::MediaTimeout]);
        // A real phone there sends: the leg answers it.
        let mut tape = Tape::default();
        receive(&mut l, now, &rtp(1, 160, 0, &level(0)), &mut tape);
        assert_eq!(l.latched_peer(), Some(peer()));
        let p = tick(&mut l, now);
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].dest, p[0].bytes.len()), (peer(), 172));
        // "always" sends at once (every other test here).
    }

    #[test]
    fn a_new_ssrc_mid_message_keeps_the_whole_message() {
        let mut l = leg();
        let mut tape = Tape::default();
        let opts = RecordOptions {
            max_seconds: 60,
            end_after_silence_ms: None,
        };
        l.record(3, "/rec/z.wav".into(), opts, &mut tape);
        let frame = |k: u16| level(k as i16 * 300);
        let mut now = 1000 * MS;
        for k in 0..50u16 {
            let pkt = rtp_of(PEER_SSRC, 30_000 + k, 7 + k as u32 * 160, 0, &frame(k));
            receive(&mut l, now, &pkt, &mut tape);
            now += 20 * MS;
        }
        // A new SSRC whose numbering starts a little behind the old one's.
        for k in 50..100u16 {
            let pkt = rtp_of(
                0x5566_7788,
                30_000 - 40 + k,
                99 + k as u32 * 160,
                0,
                &frame(k),
            );
            receive(&mut l, now, &pkt, &mut tape);
            now += 20 * MS;
        }
        l.stop_recording(&mut tape);
        let heard: Vec<i16> = tape.audio.chunks(FRAME).map(|f| f[0]).collect();
        let want: Vec<i16> = (0..100u16)
            .map(|k| g711::decode_sample(Codec::Pcmu, frame(k)[0]))
            .collect();
        assert_eq!(heard, want);
    }
}
