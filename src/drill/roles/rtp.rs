//! [`RtpPeer`]: the drill's own RTP endpoint for one call (not the engine's media engine: the
//! drill must sound like any outside phone). It sends a 20 ms G.711 frame every 20 ms, speech
//! from a queue or silence, keys as RFC 4733 telephone-events (in-band tones when the peer
//! offered none), and hears: it decodes what arrives and keeps the time of the last loud packet
//! so a role can wait for a prompt to begin or end.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tracing::{debug, Instrument};

use super::RoleError;
use crate::media::{dtmf, g711, rfc4733, Codec, NegotiatedMedia};

/// Samples in one 20 ms frame at 8 kHz.
const FRAME: usize = 160;
const PTIME: Duration = Duration::from_millis(20);
/// A decoded sample louder than this makes the packet "loud" (a prompt is playing); the
/// engine's silence and comfort noise stay well under it.
const LOUD: u16 = 1500;
/// Update packets of one RFC 4733 key press (durations 160, 320, ...), then the end packet
/// three times (§2.5.1.4): a press lasts (UPDATES + 3) × 20 ms, like a phone's.
const UPDATES: u32 = 6;
/// The volume field of event packets (-10 dBm0).
const EVENT_VOLUME: u8 = 10;
/// In-band DTMF: 100 ms of tone, then 60 ms of silence before the next key.
const INBAND_TONE_FRAMES: u32 = 5;
const INBAND_GAP_FRAMES: u32 = 3;
const INBAND_AMPLITUDE: f32 = 5000.0;
/// How long a key may take to go out before `press` gives up (a press lasts 180 ms).
const PRESS_WITHIN: Duration = Duration::from_secs(3);
/// How often the waits look at what was heard.
const POLL: Duration = Duration::from_millis(10);

/// What went through one RTP endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpStats {
    pub packets_sent: u64,
    pub packets_received: u64,
    /// Datagrams that were not RTP we could read (short, wrong version, bad lengths).
    pub malformed: u64,
    /// Well-formed RTP we did not decode (another payload type, a stranger's address).
    pub ignored: u64,
    pub keys_sent: u64,
    /// Samples decoded from the peer.
    pub heard_samples: u64,
    pub send_errors: u64,
}

#[derive(Debug, Clone, Copy)]
struct Media {
    remote: SocketAddr,
    codec: Codec,
    payload_type: u8,
    event_pt: Option<u8>,
}

#[derive(Default)]
struct State {
    media: Option<Media>,
    mouth: VecDeque<i16>,
    keys: VecDeque<char>,
    keys_queued: u64,
    last_loud: Option<Instant>,
    /// Samples heard since the last loud one: silence in the media's own time, which a stall
    /// (a busy machine, a node that dies) does not fake.
    quiet_samples: u64,
    /// Something loud was heard since the last mark (a key pressed, a prompt ended).
    loud_since_mark: bool,
    stats: RtpStats,
    stopped: bool,
}

/// One call's RTP endpoint. Dropping it (or [`RtpPeer::close`]) stops its task.
#[derive(Debug)]
pub struct RtpPeer {
    local: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("stats", &self.stats).finish()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic elsewhere must not silence the drill: the data is plain counters and queues.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl RtpPeer {
    /// Binds on `ip`, on a port of `ports` (inclusive, tried in order) or any free one when
    /// `None`, and starts the task (silent until [`RtpPeer::connect`]).
    pub async fn bind(ip: IpAddr, ports: Option<(u16, u16)>) -> Result<RtpPeer, RoleError> {
        let socket = match ports {
            None => {
                let addr = SocketAddr::new(ip, 0);
                UdpSocket::bind(addr)
                    .await
                    .map_err(|source| RoleError::RtpBind { addr, source })?
            }
            Some((lo, hi)) => {
                let mut last = None;
                let mut found = None;
                for port in lo..=hi {
                    let addr = SocketAddr::new(ip, port);
                    match UdpSocket::bind(addr).await {
                        Ok(s) => {
                            found = Some(s);
                            break;
                        }
                        Err(e) => last = Some((addr, e)),
                    }
                }
                match (found, last) {
                    (Some(s), _) => s,
                    (None, Some((addr, source))) => {
                        return Err(RoleError::RtpBind { addr, source })
                    }
                    (None, None) => {
                        return Err(RoleError::RtpBind {
                            addr: SocketAddr::new(ip, lo),
                            source: std::io::Error::other("empty port range"),
                        })
                    }
                }
            }
        };
        let local = socket.local_addr().map_err(|source| RoleError::RtpBind {
            addr: SocketAddr::new(ip, 0),
            source,
        })?;
        let state = Arc::new(Mutex::new(State::default()));
        let span = tracing::debug_span!("rtp", local = %local);
        let task = tokio::spawn(run(socket, state.clone()).instrument(span));
        Ok(RtpPeer { local, state, task })
    }

    /// Where we receive (the address for our SDP).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Starts sending to the negotiated peer, in its codec; keys on its telephone-event payload
    /// type, or in-band when it has none. Called again (a re-INVITE), it follows the change.
    pub fn connect(&self, media: &NegotiatedMedia) {
        let mut s = lock(&self.state);
        s.media = Some(Media {
            remote: media.remote_rtp,
            codec: media.codec,
            payload_type: media.payload_type,
            event_pt: media.telephone_event_pt,
        });
    }

    pub fn is_connected(&self) -> bool {
        lock(&self.state).media.is_some()
    }

    /// Says `samples` (8 kHz) from now, in real time, after what was already queued.
    pub fn say(&self, samples: &[i16]) {
        lock(&self.state).mouth.extend(samples.iter().copied());
    }

    /// Forgets what was queued and not yet said.
    pub fn hush(&self) {
        lock(&self.state).mouth.clear();
    }

    /// Waits until everything given to [`RtpPeer::say`] has been sent.
    pub async fn wait_said(&self, within: Duration) -> Result<(), RoleError> {
        self.wait("what was said to be sent", within, |s| s.mouth.is_empty())
            .await
    }

    /// Presses `key` (0-9, *, #, A-D) and returns once its packets are sent. Marks: a later
    /// `wait_prompt_*` waits for what the peer plays after this key.
    pub async fn press(&self, key: char) -> Result<(), RoleError> {
        if rfc4733::digit_to_event(key).is_none() {
            return Err(RoleError::BadKey(key));
        }
        let target = {
            let mut s = lock(&self.state);
            if s.media.is_none() {
                return Err(RoleError::NoMedia);
            }
            s.keys.push_back(key);
            s.keys_queued += 1;
            s.loud_since_mark = false;
            s.keys_queued
        };
        self.wait(&format!("key {key} to be sent"), PRESS_WITHIN, |s| {
            s.stats.keys_sent >= target
        })
        .await
    }

    /// Presses each key in turn.
    pub async fn press_all(&self, keys: &str) -> Result<(), RoleError> {
        for k in keys.chars() {
            self.press(k).await?;
        }
        Ok(())
    }

    /// Forgets what was heard so far: the next `wait_prompt_*` waits for new sound.
    pub fn mark(&self) {
        lock(&self.state).loud_since_mark = false;
    }

    /// Waits until the peer plays something after the last mark or key, then 300 ms more of it
    /// (well into the prompt, as a person who recognises it).
    pub async fn wait_prompt_start(&self, within: Duration) -> Result<(), RoleError> {
        let started = Instant::now();
        self.wait("a prompt to begin", within, |s| s.loud_since_mark)
            .await?;
        let begun = lock(&self.state).stats.heard_samples;
        let rest = within.saturating_sub(started.elapsed()).max(PTIME * 50);
        self.wait("300 ms of the prompt", rest, |s| {
            s.stats.heard_samples >= begun + 2400
        })
        .await
    }

    /// Waits until the peer has played something since the last mark or key and then been
    /// quiet for `quiet` (a prompt ended; a menu waits for a key). Marks.
    pub async fn wait_prompt_end(
        &self,
        quiet: Duration,
        within: Duration,
    ) -> Result<(), RoleError> {
        // Silence heard (packets of it), not a pause in the packets: a peer that sends
        // nothing between prompts is covered by a far longer wait on the wall clock.
        let quiet_samples = quiet.as_millis() as u64 * 8;
        self.wait("a prompt to end", within, |s| {
            s.loud_since_mark
                && (s.quiet_samples >= quiet_samples
                    || s.last_loud.is_some_and(|t| t.elapsed() >= quiet * 4))
        })
        .await?;
        self.mark();
        Ok(())
    }

    /// When the peer last played something loud.
    pub fn last_loud(&self) -> Option<Instant> {
        lock(&self.state).last_loud
    }

    pub fn stats(&self) -> RtpStats {
        lock(&self.state).stats
    }

    /// Stops sending and hearing; the task ends.
    pub fn close(&self) {
        lock(&self.state).stopped = true;
        self.task.abort();
    }

    async fn wait(
        &self,
        what: &str,
        within: Duration,
        cond: impl Fn(&State) -> bool,
    ) -> Result<(), RoleError> {
        let deadline = Instant::now() + within;
        loop {
            {
                let s = lock(&self.state);
                if cond(&s) {
                    return Ok(());
                }
                if s.stopped || self.task.is_finished() {
                    return Err(RoleError::RtpStopped);
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(RoleError::Timeout {
                    what: what.to_string(),
                    after: within,
                });
            }
            tokio::time::sleep(POLL.min(deadline - now)).await;
        }
    }
}

impl Drop for RtpPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The key being sent: its event code and RTP timestamp, packets sent so far.
#[derive(Clone, Copy)]
struct Sending {
    key: char,
    code: u8,
    timestamp: u32,
    packets: u32,
}

async fn run(socket: UdpSocket, state: Arc<Mutex<State>>) {
    let ssrc: u32 = rand::random();
    let mut seq: u16 = rand::random();
    let mut timestamp: u32 = rand::random();
    let mut sending: Option<Sending> = None;
    let mut tick = tokio::time::interval(PTIME);
    // Late ticks are not caught up in a burst: the peer's jitter buffer would drop them.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = vec![0u8; 2048];
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let packet = next_packet(&state, &mut sending, ssrc, seq, timestamp);
                timestamp = timestamp.wrapping_add(FRAME as u32);
                if let Some((packet, to)) = packet {
                    seq = seq.wrapping_add(1);
                    let sent = socket.send_to(&packet, to).await;
                    let mut s = lock(&state);
                    match sent {
                        Ok(_) => s.stats.packets_sent += 1,
                        Err(_) => s.stats.send_errors += 1,
                    }
                }
            }
            got = socket.recv_from(&mut buf) => {
                match got {
                    Ok((n, from)) => hear(&state, buf.get(..n).unwrap_or_default(), from),
                    // ICMP port unreachable and the like: the peer may come back.
                    Err(e) => debug!(error = %e, "RTP receive error"),
                }
            }
        }
    }
}

/// The packet for this tick and where it goes; `None` before media is negotiated.
fn next_packet(
    state: &Mutex<State>,
    sending: &mut Option<Sending>,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
) -> Option<(Vec<u8>, SocketAddr)> {
    let mut s = lock(state);
    let media = s.media?;
    if sending.is_none() {
        while let Some(key) = s.keys.pop_front() {
            if let Some(code) = rfc4733::digit_to_event(key) {
                *sending = Some(Sending {
                    key,
                    code,
                    timestamp,
                    packets: 0,
                });
                break;
            }
            s.stats.keys_sent += 1;
        }
    }
    let mut p = Vec::with_capacity(12 + FRAME);
    p.push(0x80);
    p.push(media.payload_type & 0x7f);
    p.extend_from_slice(&seq.to_be_bytes());
    match (*sending, media.event_pt) {
        (Some(k), Some(event_pt)) => {
            // RFC 4733: one timestamp for the whole event, marker on the first packet,
            // growing durations, then the end packet three times.
            let end = k.packets >= UPDATES;
            let duration = (FRAME as u32 * (k.packets.min(UPDATES) + 1)) as u16;
            p[1] = if k.packets == 0 { 0x80 } else { 0 } | (event_pt & 0x7f);
            p.extend_from_slice(&k.timestamp.to_be_bytes());
            p.extend_from_slice(&ssrc.to_be_bytes());
            let mut ev = [0u8; 4];
            rfc4733::TelephoneEvent {
                event: k.code,
                end,
                volume: EVENT_VOLUME,
                duration,
            }
            .write(&mut ev);
            p.extend_from_slice(&ev);
            advance(sending, &mut s, k, UPDATES + 3);
        }
        (sent, _) => {
            let mut frame = [0i16; FRAME];
            match sent {
                // No telephone-event: the key as a tone pair in the audio.
                Some(k) => {
                    if k.packets < INBAND_TONE_FRAMES {
                        let at = k.packets as usize * FRAME;
                        dtmf::generate(k.key, INBAND_AMPLITUDE, INBAND_AMPLITUDE, at, &mut frame);
                    }
                    advance(sending, &mut s, k, INBAND_TONE_FRAMES + INBAND_GAP_FRAMES);
                }
                None => {
                    for v in frame.iter_mut() {
                        *v = s.mouth.pop_front().unwrap_or(0);
                    }
                }
            }
            p.extend_from_slice(&timestamp.to_be_bytes());
            p.extend_from_slice(&ssrc.to_be_bytes());
            let mut enc = [0u8; FRAME];
            let n = g711::encode(media.codec, &frame, &mut enc);
            p.extend_from_slice(enc.get(..n).unwrap_or(&enc));
        }
    }
    Some((p, media.remote))
}

fn advance(sending: &mut Option<Sending>, s: &mut State, k: Sending, packets: u32) {
    if k.packets + 1 >= packets {
        *sending = None;
        s.stats.keys_sent += 1;
    } else {
        *sending = Some(Sending {
            packets: k.packets + 1,
            ..k
        });
    }
}

/// The payload of an RTP packet and its payload type; `None` when it is not one (rtp-rs
/// checks the version, CSRCs, extension and padding against the datagram's length).
fn rtp_payload(d: &[u8]) -> Option<(u8, &[u8])> {
    let r = rtp_rs::RtpReader::new(d).ok()?;
    Some((r.payload_type(), r.payload()))
}

fn hear(state: &Mutex<State>, datagram: &[u8], from: SocketAddr) {
    let mut s = lock(state);
    let Some((pt, payload)) = rtp_payload(datagram) else {
        s.stats.malformed += 1;
        return;
    };
    // Before the answer we do not know the codec; after it, only the peer's audio counts.
    let Some(media) = s.media else {
        s.stats.ignored += 1;
        return;
    };
    if pt != media.payload_type || from.ip().to_canonical() != media.remote.ip().to_canonical() {
        s.stats.ignored += 1;
        return;
    }
    s.stats.packets_received += 1;
    let mut pcm = [0i16; 2048];
    let n = g711::decode(media.codec, payload, &mut pcm);
    s.stats.heard_samples += n as u64;
    match pcm.iter().take(n).rposition(|v| v.unsigned_abs() > LOUD) {
        Some(last) => {
            s.last_loud = Some(Instant::now());
            s.loud_since_mark = true;
            s.quiet_samples = (n - 1 - last) as u64;
        }
        None => s.quiet_samples += n as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_datagrams_are_not_rtp() {
        assert!(rtp_payload(&[]).is_none());
        assert!(rtp_payload(&[0x80; 11]).is_none());
        // Version 1.
        assert!(rtp_payload(&[0x40; 20]).is_none());
        // 15 CSRCs claimed in 20 bytes.
        let mut p = vec![0x8f, 0];
        p.resize(20, 0);
        assert!(rtp_payload(&p).is_none());
        // An extension header past the end.
        let mut p = vec![0x90, 0];
        p.resize(14, 0);
        assert!(rtp_payload(&p).is_none());
        // Padding longer than the packet.
        let mut p = vec![0xa0, 0];
        p.resize(13, 0);
        p[12] = 200;
        assert!(rtp_payload(&p).is_none());
        // A plain packet.
        let mut p = vec![0x80, 8];
        p.resize(12 + 160, 0xd5);
        assert_eq!(rtp_payload(&p).map(|(pt, b)| (pt, b.len())), Some((8, 160)));
    }

    fn media_to(peer: &RtpPeer, event_pt: Option<u8>) -> NegotiatedMedia {
        NegotiatedMedia {
            remote_rtp: peer.local_addr(),
            codec: Codec::Pcma,
            payload_type: 8,
            telephone_event_pt: event_pt,
            direction: crate::media::MediaDirection::SendRecv,
            ptime_ms: 20,
            signalling_peer: None,
        }
    }

    fn tone(ms: usize) -> Vec<i16> {
        (0..ms * 8)
            .map(|i| (8000.0 * (i as f32 * 0.3).sin()) as i16)
            .collect()
    }

    #[tokio::test]
    async fn two_peers_hear_a_prompt_begin_and_end_and_keys_go_out() {
        let ip = IpAddr::from([127, 0, 0, 1]);
        let (a, b) = (
            RtpPeer::bind(ip, None).await.expect("bind a"),
            RtpPeer::bind(ip, None).await.expect("bind b"),
        );
        a.connect(&media_to(&b, Some(101)));
        b.connect(&media_to(&a, None));
        a.say(&tone(600));
        b.wait_prompt_start(Duration::from_secs(5))
            .await
            .expect("prompt begins");
        b.wait_prompt_end(Duration::from_millis(200), Duration::from_secs(5))
            .await
            .expect("prompt ends");
        // Keys: telephone-events from a (b ignores that payload type), in-band tones from b
        // (a hears them as loud audio).
        a.press_all("1#").await.expect("events sent");
        b.press('5').await.expect("tone sent");
        a.wait_prompt_start(Duration::from_secs(5))
            .await
            .expect("in-band key heard");
        assert_eq!(a.stats().keys_sent, 2);
        assert!(b.stats().ignored >= 2 * (UPDATES as u64 + 3));
        assert!(matches!(a.press('x').await, Err(RoleError::BadKey('x'))));
        // A stranger's garbage is counted, not decoded.
        let stranger = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        stranger.send_to(&[0xff; 7], b.local_addr()).expect("send");
        b.wait("the garbage", Duration::from_secs(5), |s| {
            s.stats.malformed == 1
        })
        .await
        .expect("malformed counted");
        a.close();
        assert!(matches!(
            a.wait_said(Duration::from_secs(1)).await,
            Ok(()) | Err(RoleError::RtpStopped)
        ));
    }
}
