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
    pub fn latched_peer(&self) -> Option<SocketAddr> {
        if self.latched {
            self.remote
        } else {
            None
        }
    }

    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// The next packet due, written into `buf` (at least 64 bytes; the shell's receive buffer
    /// does). The count of packets sent assumes it leaves: call `unsent` if it did not.
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
